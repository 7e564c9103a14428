//! SSE-C: objects encrypted with a customer-provided key.
//!
//! The customer key (the 32 bytes of `x-amz-server-side-encryption-customer-key`)
//! is never stored. Per object the gateway stores:
//! - a [`CustomerKeyVerifier`]: a random 16-byte salt and
//!   `BLAKE3-keyed(derive_key("dooz keyvault v1 SSE-C verifier", CK), "dooz sse-c verifier" ‖ salt)`,
//!   checked in constant time before anything is decrypted;
//! - the object's random key sealed (see [`crate::secrets`]) under
//!   `derive_key("dooz keyvault v1 SSE-C wrap", CK)`.
//!
//! The salt makes verifiers of the same customer key look unrelated across
//! objects. A 256-bit customer key cannot be brute-forced from the verifier;
//! the MAC is BLAKE3 in keyed mode (a PRF), used in the role of an HMAC.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::keys::SecretKey;
use crate::secrets;

/// BLAKE3 context deriving the verifier MAC key from the customer key.
pub const CTX_VERIFIER: &str = "dooz keyvault v1 SSE-C verifier";
/// BLAKE3 context deriving the object-key wrapping key from the customer key.
pub const CTX_WRAP: &str = "dooz keyvault v1 SSE-C wrap";
const VERIFIER_DOMAIN: &[u8] = b"dooz sse-c verifier";
const WRAP_AAD_DOMAIN: &[u8] = b"dooz/sse-c/object-key/v1";

/// Salted MAC of a customer key, stored with the object (hex in JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerKeyVerifier {
    /// Random per object.
    #[serde(with = "crate::serde_util::hex_array")]
    pub salt: [u8; 16],
    /// MAC of the customer key over the salt.
    #[serde(with = "crate::serde_util::hex_array")]
    pub mac: [u8; 32],
}

fn mac(customer_key: &[u8; 32], salt: &[u8; 16]) -> [u8; 32] {
    let mac_key = Zeroizing::new(blake3::derive_key(CTX_VERIFIER, customer_key));
    let mut h = blake3::Hasher::new_keyed(&mac_key);
    h.update(VERIFIER_DOMAIN);
    h.update(salt);
    *h.finalize().as_bytes()
}

fn wrapping_key(customer_key: &[u8; 32]) -> SecretKey {
    SecretKey::from_bytes(blake3::derive_key(CTX_WRAP, customer_key))
}

fn wrap_aad(aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(WRAP_AAD_DOMAIN.len() + aad.len());
    v.extend_from_slice(WRAP_AAD_DOMAIN);
    v.extend_from_slice(aad);
    v
}

/// A fresh verifier (random salt) for `customer_key`.
pub fn verifier(customer_key: &[u8; 32]) -> CustomerKeyVerifier {
    let salt: [u8; 16] = rand::random();
    CustomerKeyVerifier {
        salt,
        mac: mac(customer_key, &salt),
    }
}

/// Checks `customer_key` against a stored verifier in constant time.
/// A mismatch is [`KeyError::WrongKey`].
pub fn check(customer_key: &[u8; 32], v: &CustomerKeyVerifier) -> Result<(), KeyError> {
    if bool::from(mac(customer_key, &v.salt).ct_eq(&v.mac)) {
        Ok(())
    } else {
        Err(KeyError::WrongKey {
            what: "SSE-C key verifier",
        })
    }
}

/// Seals the per-object key under a key derived from `customer_key`. Bind the
/// blob to the object with `aad` (e.g. bucket ‖ key ‖ version id).
pub fn wrap_object_key(customer_key: &[u8; 32], object_key: &SecretKey, aad: &[u8]) -> Vec<u8> {
    secrets::seal(
        &wrapping_key(customer_key),
        &wrap_aad(aad),
        object_key.expose(),
    )
}

/// Opens a blob made by [`wrap_object_key`]. A wrong customer key or `aad`, or a
/// modified blob, is [`KeyError::WrongKey`]; check the verifier first to tell
/// a wrong key from a corrupt blob.
pub fn unwrap_object_key(
    customer_key: &[u8; 32],
    wrapped: &[u8],
    aad: &[u8],
) -> Result<SecretKey, KeyError> {
    let pt =
        secrets::open(&wrapping_key(customer_key), &wrap_aad(aad), wrapped).map_err(
            |e| match e {
                KeyError::Tampered { .. } => KeyError::WrongKey {
                    what: "SSE-C wrapped object key (or the blob was modified)",
                },
                other => other,
            },
        )?;
    SecretKey::try_from_slice(&pt)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn verifier_checks_and_is_salted() {
        let ck = [9u8; 32];
        let v = verifier(&ck);
        check(&ck, &v).unwrap();
        let mut other = ck;
        other[31] ^= 1;
        assert!(matches!(check(&other, &v), Err(KeyError::WrongKey { .. })));
        assert_ne!(verifier(&ck), v, "salt must differ per verifier");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            serde_json::from_str::<CustomerKeyVerifier>(&json).unwrap(),
            v
        );
    }

    #[test]
    fn object_key_wrapping() {
        let ck = [3u8; 32];
        let ok = SecretKey::random();
        let w = wrap_object_key(&ck, &ok, b"bucket/key");
        assert_eq!(unwrap_object_key(&ck, &w, b"bucket/key").unwrap(), ok);
        assert!(matches!(
            unwrap_object_key(&[4u8; 32], &w, b"bucket/key"),
            Err(KeyError::WrongKey { .. })
        ));
        assert!(matches!(
            unwrap_object_key(&ck, &w, b"bucket/other"),
            Err(KeyError::WrongKey { .. })
        ));
    }
}
