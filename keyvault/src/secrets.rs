//! Secrets at rest: stored credentials (users' secret keys, backend credentials)
//! sealed with XChaCha20-Poly1305 under a 32-byte key (normally a tenant's
//! `K_secret`, see [`crate::TenantKeys::secret_key`]).
//!
//! Blob layout (version 1):
//! ```text
//! 0x01 ‖ nonce (24 random bytes) ‖ ciphertext ‖ tag (16 bytes)
//! ```
//! The caller's `aad` is authenticated but not stored: bind the blob to where it
//! lives (e.g. `"dooz/secret/v1" ‖ tenant ‖ access key id`) so that a blob moved
//! to another row does not open. 192-bit random nonces make nonce reuse
//! negligible for any realistic number of seals under one key.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::keys::SecretKey;

/// Version byte of the blob format.
pub const BLOB_V1: u8 = 1;
/// XChaCha20 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to the plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

fn cipher(key: &SecretKey) -> XChaCha20Poly1305 {
    // Borrowed as `&Array` (no copy); the cipher zeroizes its key schedule on drop.
    XChaCha20Poly1305::new(key.expose().into())
}

/// Seals `plaintext` under `key` with a fresh random nonce.
///
/// # Panics
/// Only if `plaintext` exceeds XChaCha20-Poly1305's limit (about 256 GiB).
pub fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    match seal_with_nonce(key, &nonce, aad, plaintext) {
        Ok(blob) => blob,
        Err(e) => panic!("secrets::seal: {e}"),
    }
}

/// Seals with a caller-chosen nonce. For known-answer tests only: reusing a
/// nonce under one key destroys confidentiality and integrity. Use [`seal`].
#[doc(hidden)]
pub fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Config {
        reason: format!("nonce must be {NONCE_LEN} bytes, got {}", nonce.len()),
    })?;
    let mut blob = Vec::with_capacity(OVERHEAD + plaintext.len());
    blob.push(BLOB_V1);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            aad,
            (&mut blob[1 + NONCE_LEN..]).into(),
        )
        .map_err(|_| KeyError::Config {
            reason: "plaintext too long for XChaCha20-Poly1305".into(),
        })?;
    blob.extend_from_slice(&tag);
    Ok(blob)
}

/// Opens a blob made by [`seal`]. Fails with [`KeyError::Tampered`] if the blob,
/// the key or the `aad` differ from sealing time; nothing is decrypted then.
pub fn open(key: &SecretKey, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if blob.len() < OVERHEAD {
        return Err(KeyError::Malformed {
            what: "sealed secret",
            reason: format!(
                "{} bytes is shorter than the {OVERHEAD}-byte overhead",
                blob.len()
            ),
        });
    }
    if blob[0] != BLOB_V1 {
        return Err(KeyError::Malformed {
            what: "sealed secret",
            reason: format!("unknown version {}", blob[0]),
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[1..1 + NONCE_LEN]);
    let mut out = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
    cipher(key)
        .decrypt_in_place(&XNonce::from(nonce), aad, &mut *out)
        .map_err(|_| KeyError::Tampered {
            what: "sealed secret".into(),
            reason: "AEAD authentication failed".into(),
        })?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let k = SecretKey::random();
        let blob = seal(&k, b"row-1", b"hunter2");
        assert_eq!(blob.len(), OVERHEAD + 7);
        assert_eq!(&open(&k, b"row-1", &blob).unwrap()[..], b"hunter2");
        assert!(matches!(
            open(&k, b"row-2", &blob),
            Err(KeyError::Tampered { .. })
        ));
        assert!(matches!(
            open(&SecretKey::random(), b"row-1", &blob),
            Err(KeyError::Tampered { .. })
        ));
        for i in 1..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 0x80;
            assert!(matches!(
                open(&k, b"row-1", &t),
                Err(KeyError::Tampered { .. })
            ));
        }
        let mut v = blob.clone();
        v[0] = 2;
        assert!(matches!(
            open(&k, b"row-1", &v),
            Err(KeyError::Malformed { .. })
        ));
        assert!(matches!(
            open(&k, b"row-1", &blob[..OVERHEAD - 1]),
            Err(KeyError::Malformed { .. })
        ));
        // Fresh nonce per seal.
        assert_ne!(seal(&k, b"", b"x"), seal(&k, b"", b"x"));
    }
}
