//! The chunk id: `BLAKE3-keyed(K_id, plaintext)`, 32 bytes.

use std::fmt;

/// A chunk's id: the BLAKE3 hash of its plaintext keyed with the tenant's
/// `K_id` (see [`crate::Keyring::chunk_id`]). Keyed, so ids of one tenant say
/// nothing about another tenant's data and cannot be confirmed by anyone
/// without `K_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Self(out))
    }

    /// An id from exactly 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl AsRef<[u8]> for ChunkId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_formatting() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i * 7 + 3).unwrap_or(0);
        }
        let id = ChunkId(bytes);
        let text = id.to_hex();
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("030a11"));
        assert_eq!(format!("{id}"), text);
        assert_eq!(format!("{id:?}"), text);
        assert_eq!(ChunkId::from_hex(&text), Some(id));
        assert_eq!(ChunkId::from_hex(&text.to_uppercase()), Some(id));
        assert_eq!(ChunkId::from_hex(&text[..62]), None);
        assert_eq!(ChunkId::from_hex(&format!("{}zz", &text[..62])), None);
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(ChunkId::from_slice(&[1; 32]), Some(ChunkId([1; 32])));
        assert_eq!(ChunkId::from_slice(&[1; 31]), None);
        assert_eq!(ChunkId::from_slice(&[1; 33]), None);
    }
}
