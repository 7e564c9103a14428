//! The wrapped-TMK record stored in the metadata database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::keys::Tmk;

/// The only record format so far.
pub const WRAPPED_TMK_FORMAT_V1: u8 = 1;

/// Upper bound on a record's serialized size (defends the JSON parser).
const MAX_RECORD_BYTES: usize = 64 * 1024;

/// A tenant master key wrapped by a KEK, as stored in the metadata database.
///
/// Serialized as JSON with a fixed field order (see [`WrappedTmk::to_bytes`]):
/// ```json
/// {"provider":"openbao","key_ref":"tenant-a","kek_version":2,
///  "ciphertext":"<base64>","commitment":"<64 hex>","format":1}
/// ```
/// `commitment` binds the record to exactly one TMK: whatever a provider
/// returns on unwrap is checked against it (constant-time) before use.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WrappedTmk {
    /// Name of the [`crate::KekProvider`] that wrapped it (`local`, `openbao`).
    pub provider: String,
    /// The KEK inside that provider (a transit key name, a local key label).
    pub key_ref: String,
    /// The KEK version used to wrap.
    pub kek_version: u32,
    /// Provider-specific ciphertext of the TMK (base64 in JSON).
    #[serde(with = "crate::serde_util::b64")]
    pub ciphertext: Vec<u8>,
    /// `derive_key("dooz keyvault v1 TMK commitment", TMK)` (hex in JSON).
    #[serde(with = "crate::serde_util::hex_array")]
    pub commitment: [u8; 32],
    /// Record format; [`WRAPPED_TMK_FORMAT_V1`].
    pub format: u8,
}

impl WrappedTmk {
    /// Stable JSON encoding (field order as declared; no whitespace).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, integers and byte arrays into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and validates a stored record.
    pub fn from_bytes(b: &[u8]) -> Result<Self, KeyError> {
        if b.len() > MAX_RECORD_BYTES {
            return Err(KeyError::Malformed {
                what: "wrapped TMK record",
                reason: format!("{} bytes is larger than {MAX_RECORD_BYTES}", b.len()),
            });
        }
        let w: WrappedTmk = serde_json::from_slice(b).map_err(|e| KeyError::Malformed {
            what: "wrapped TMK record",
            reason: e.to_string(),
        })?;
        w.validate()?;
        Ok(w)
    }

    /// Structural checks shared by every provider.
    pub fn validate(&self) -> Result<(), KeyError> {
        let bad = |reason: String| KeyError::Malformed {
            what: "wrapped TMK record",
            reason,
        };
        if self.format != WRAPPED_TMK_FORMAT_V1 {
            return Err(bad(format!("unsupported format {}", self.format)));
        }
        if self.provider.is_empty() || self.provider.len() > 64 {
            return Err(bad("provider name must be 1..=64 bytes".into()));
        }
        if self.key_ref.is_empty() || self.key_ref.len() > 256 {
            return Err(bad("key_ref must be 1..=256 bytes".into()));
        }
        if self.ciphertext.is_empty() {
            return Err(bad("empty ciphertext".into()));
        }
        Ok(())
    }

    /// BLAKE3 of [`WrappedTmk::to_bytes`]: identifies this exact record (cache key).
    pub fn fingerprint(&self) -> [u8; 32] {
        *blake3::hash(&self.to_bytes()).as_bytes()
    }

    /// Checks that `tmk` is the key this record commits to (constant-time).
    pub fn verify(&self, tmk: &Tmk) -> Result<(), KeyError> {
        if tmk.matches_commitment(&self.commitment) {
            Ok(())
        } else {
            Err(KeyError::Commitment {
                provider: self.provider.clone(),
                key_ref: self.key_ref.clone(),
            })
        }
    }
}

/// What a provider reports about itself. Contains no secret.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProviderInfo {
    /// The provider name (`local`, `openbao`).
    pub name: String,
    /// Kind of backend (`local-keyring`, `openbao-transit`).
    pub backend: String,
    /// Where the keys live: a file path, an env var name, a URL and mount.
    pub location: String,
    /// Whether the backend answered and can serve requests.
    pub available: bool,
    /// Newest KEK version, when the provider has a single keyring (local).
    pub current_version: Option<u32>,
    /// Backend-specific facts (server version, seal state, key versions).
    pub details: BTreeMap<String, String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample() -> WrappedTmk {
        WrappedTmk {
            provider: "openbao".into(),
            key_ref: "tenant-a".into(),
            kek_version: 2,
            ciphertext: b"vault:v2:abc".to_vec(),
            commitment: [0x11; 32],
            format: 1,
        }
    }

    #[test]
    fn json_is_stable() {
        let s = String::from_utf8(sample().to_bytes()).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"provider":"openbao","key_ref":"tenant-a","kek_version":2,"ciphertext":"dmF1bHQ6djI6YWJj","commitment":"{}","format":1}}"#,
                "11".repeat(32)
            )
        );
        assert_eq!(WrappedTmk::from_bytes(s.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn rejects_bad_records() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        for bad in [
            good.replace("\"format\":1", "\"format\":2"),
            good.replace("\"format\":1", "\"format\":1,\"extra\":0"),
            good.replace(&"11".repeat(32), &"11".repeat(31)),
            good.replace("dmF1bHQ6djI6YWJj", "***"),
            good.replace("\"openbao\"", "\"\""),
            "not json".to_string(),
        ] {
            assert!(
                matches!(
                    WrappedTmk::from_bytes(bad.as_bytes()),
                    Err(KeyError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprint_changes_with_any_field() {
        let a = sample();
        let mut b = sample();
        b.kek_version = 3;
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), sample().fingerprint());
    }
}
