//! Key material as the crate receives it: plain 32-byte secrets handed over
//! by the caller (the gateway derives them from keyvault), wiped on drop.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A tenant's UUID, as its 16 raw bytes.
pub type TenantId = [u8; 16];

/// A pack's id: 16 random bytes chosen by the caller for each new pack.
pub type PackId = [u8; 16];

/// A 32-byte secret key.
///
/// The bytes are wiped when the value is dropped, and `Debug`/`Display` never
/// print them, so a key that ends up in a log line or a panic message leaks
/// nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes, for handing to a primitive.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

impl fmt::Display for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// The two chunk-encryption keys of one encryption epoch `e`:
/// `K_enc[e]` (the AEAD key, or the key the per-chunk ChaCha20 keys are
/// derived from) and `K_nonce[e]` (keys the nonce derivation).
#[derive(Clone, Debug)]
pub struct EpochKeys {
    /// `K_enc[e]`.
    pub enc: Key32,
    /// `K_nonce[e]`.
    pub nonce: Key32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_formatting_is_redacted() {
        let key = Key32::from_bytes([0xAB; 32]);
        assert_eq!(format!("{key:?}"), "Key32(<redacted>)");
        assert_eq!(format!("{key}"), "Key32(<redacted>)");
        let epoch = EpochKeys {
            enc: key.clone(),
            nonce: key,
        };
        let shown = format!("{epoch:?}");
        assert!(!shown.to_lowercase().contains("ab, "), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn expose_returns_the_bytes() {
        let key = Key32::from_bytes([7; 32]);
        assert_eq!(key.expose(), &[7; 32]);
    }
}
