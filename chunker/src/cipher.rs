//! The AEAD layer: which ciphers exist, their wire ids, and one seal/open
//! path used by chunk frames, pack footers and the known-answer tests alike
//! (so the KATs exercise exactly the code the formats use).

use std::fmt;
use std::str::FromStr;

use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

/// AEAD nonce length for both ciphers.
pub const NONCE_LEN: usize = 12;
/// AEAD tag length for both ciphers.
pub const TAG_LEN: usize = 16;

/// The AEAD a chunk frame is sealed with; its id is recorded in every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cipher {
    /// AES-256-GCM-SIV (RFC 8452), keyed with `K_enc[e]` directly.
    Aes256GcmSiv = 1,
    /// ChaCha20-Poly1305 (RFC 8439), with a key derived per chunk from
    /// `K_enc[e]` and the chunk id (see docs/FORMAT.md).
    ChaCha20Poly1305 = 2,
}

impl Cipher {
    /// Every cipher this version knows.
    pub const ALL: [Cipher; 2] = [Cipher::Aes256GcmSiv, Cipher::ChaCha20Poly1305];

    /// The wire id.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The configuration name: `aes-256-gcm-siv` or `chacha20-poly1305`.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256GcmSiv => "aes-256-gcm-siv",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A byte that is not the id of any [`Cipher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown cipher id {0}")]
pub struct UnknownCipher(pub u8);

impl TryFrom<u8> for Cipher {
    type Error = UnknownCipher;

    fn try_from(id: u8) -> Result<Self, Self::Error> {
        match id {
            1 => Ok(Cipher::Aes256GcmSiv),
            2 => Ok(Cipher::ChaCha20Poly1305),
            other => Err(UnknownCipher(other)),
        }
    }
}

/// A cipher name that is neither `aes-256-gcm-siv` nor `chacha20-poly1305`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown cipher name {0:?} (expected \"aes-256-gcm-siv\" or \"chacha20-poly1305\")")]
pub struct ParseCipherError(pub String);

impl FromStr for Cipher {
    type Err = ParseCipherError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Cipher::ALL
            .into_iter()
            .find(|cipher| cipher.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| ParseCipherError(text.to_owned()))
    }
}

/// The AEAD refused: wrong key, nonce, associated data, or altered bytes.
/// Deliberately carries no detail, like the underlying primitives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AeadFailure;

/// A keyed AEAD, ready to seal and open. AES keeps its expanded key schedule
/// (wiped on drop through `aes/zeroize`); ChaCha20-Poly1305 keeps its key
/// (wiped on drop through `chacha20poly1305/zeroize`).
#[derive(Clone)]
pub(crate) enum AeadKey {
    Aes(Box<Aes256GcmSiv>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl AeadKey {
    pub(crate) fn new(cipher: Cipher, key: &[u8; 32]) -> Self {
        match cipher {
            Cipher::Aes256GcmSiv => AeadKey::Aes(Box::new(Aes256GcmSiv::new(key.into()))),
            Cipher::ChaCha20Poly1305 => {
                AeadKey::ChaCha(Box::new(ChaCha20Poly1305::new(key.into())))
            }
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadFailure> {
        let tag = match self {
            AeadKey::Aes(aead) => aead.encrypt_inout_detached(nonce.into(), aad, buf.into()),
            AeadKey::ChaCha(aead) => aead.encrypt_inout_detached(nonce.into(), aad, buf.into()),
        }
        .map_err(|_| AeadFailure)?;
        Ok(tag.into())
    }

    /// Checks `tag` and decrypts `buf` in place. On failure `buf` holds no
    /// plaintext (both primitives verify before releasing it).
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadFailure> {
        match self {
            AeadKey::Aes(aead) => {
                aead.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            }
            AeadKey::ChaCha(aead) => {
                aead.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
            }
        }
        .map_err(|_| AeadFailure)
    }
}

/// Seal/open with an explicit key, nonce and associated data, for the
/// known-answer tests (RFC 8452, RFC 8439, Wycheproof). The formats never
/// call these: they derive nonces themselves. Hidden from the docs because it
/// is not part of the supported API.
#[doc(hidden)]
pub mod raw {
    use super::{AeadKey, Cipher, NONCE_LEN, TAG_LEN};

    /// Why a raw seal/open refused.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum RawError {
        /// The key is not 32 bytes (the only size this crate uses).
        #[error("key must be 32 bytes, got {0}")]
        KeyLength(usize),
        /// The nonce is not 12 bytes.
        #[error("nonce must be 12 bytes, got {0}")]
        NonceLength(usize),
        /// The sealed input is shorter than a tag.
        #[error("sealed input shorter than the 16-byte tag ({0} bytes)")]
        Truncated(usize),
        /// The AEAD refused.
        #[error("authentication failed")]
        Authentication,
    }

    fn key_and_nonce(
        cipher: Cipher,
        key: &[u8],
        nonce: &[u8],
    ) -> Result<(AeadKey, [u8; NONCE_LEN]), RawError> {
        let key: &[u8; 32] = key.try_into().map_err(|_| RawError::KeyLength(key.len()))?;
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| RawError::NonceLength(nonce.len()))?;
        Ok((AeadKey::new(cipher, key), nonce))
    }

    /// Returns `ciphertext ‖ tag`.
    pub fn seal(
        cipher: Cipher,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, RawError> {
        let (aead, nonce) = key_and_nonce(cipher, key, nonce)?;
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = aead
            .seal_in_place(&nonce, aad, &mut out)
            .map_err(|_| RawError::Authentication)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens `ciphertext ‖ tag`.
    pub fn open(
        cipher: Cipher,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, RawError> {
        let (aead, nonce) = key_and_nonce(cipher, key, nonce)?;
        let body_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(RawError::Truncated(sealed.len()))?;
        let (body, tag) = sealed.split_at(body_len);
        let tag: [u8; TAG_LEN] = tag
            .try_into()
            .map_err(|_| RawError::Truncated(sealed.len()))?;
        let mut out = body.to_vec();
        aead.open_in_place(&nonce, aad, &mut out, &tag)
            .map_err(|_| RawError::Authentication)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_parsing() {
        for cipher in Cipher::ALL {
            assert_eq!(Cipher::try_from(cipher.id()), Ok(cipher));
            assert_eq!(cipher.to_string().parse::<Cipher>(), Ok(cipher));
        }
        assert_eq!(Cipher::Aes256GcmSiv.id(), 1);
        assert_eq!(Cipher::ChaCha20Poly1305.id(), 2);
        assert_eq!(Cipher::try_from(0), Err(UnknownCipher(0)));
        assert_eq!(Cipher::try_from(3), Err(UnknownCipher(3)));
        assert_eq!(
            " AES-256-GCM-SIV ".parse::<Cipher>(),
            Ok(Cipher::Aes256GcmSiv)
        );
        assert!("aes-128-gcm".parse::<Cipher>().is_err());
    }

    #[test]
    fn raw_round_trip_and_refusals() {
        for cipher in Cipher::ALL {
            let sealed = raw::seal(cipher, &[1; 32], &[2; 12], b"aad", b"hello").unwrap();
            assert_eq!(sealed.len(), 5 + TAG_LEN);
            let opened = raw::open(cipher, &[1; 32], &[2; 12], b"aad", &sealed).unwrap();
            assert_eq!(opened, b"hello");
            assert_eq!(
                raw::open(cipher, &[1; 32], &[2; 12], b"aaD", &sealed),
                Err(raw::RawError::Authentication)
            );
            assert_eq!(
                raw::seal(cipher, &[1; 16], &[2; 12], b"", b""),
                Err(raw::RawError::KeyLength(16))
            );
            assert_eq!(
                raw::open(cipher, &[1; 32], &[2; 8], b"", &sealed),
                Err(raw::RawError::NonceLength(8))
            );
            assert_eq!(
                raw::open(cipher, &[1; 32], &[2; 12], b"", &[0; 15]),
                Err(raw::RawError::Truncated(15))
            );
        }
    }
}
