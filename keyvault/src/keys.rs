//! Key types and the tenant key hierarchy.
//!
//! ```text
//! TMK (32 random bytes, stored only wrapped by the tenant's KEK)
//!  ├─ K_id          = derive_key("dooz keyvault v1 K_id",     TMK)
//!  ├─ K_cdc         = derive_key("dooz keyvault v1 K_cdc",    TMK)
//!  ├─ K_meta        = derive_key("dooz keyvault v1 K_meta",   TMK)
//!  ├─ K_secret      = derive_key("dooz keyvault v1 K_secret", TMK)
//!  ├─ K_enc[e]      = derive_key("dooz keyvault v1 K_enc",    TMK ‖ le32(e))
//!  ├─ K_nonce[e]    = derive_key("dooz keyvault v1 K_nonce",  TMK ‖ le32(e))
//!  └─ commitment    = derive_key("dooz keyvault v1 TMK commitment", TMK)
//! ```
//!
//! `derive_key` is BLAKE3's key derivation mode. Context strings are constants;
//! the epoch number is part of the key material, never of the context.

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::KeyError;

/// BLAKE3 context of `K_id` (keyed chunk ids).
pub const CTX_ID: &str = "dooz keyvault v1 K_id";
/// BLAKE3 context of `K_cdc` (chunker seed).
pub const CTX_CDC: &str = "dooz keyvault v1 K_cdc";
/// BLAKE3 context of `K_meta` (metadata blobs).
pub const CTX_META: &str = "dooz keyvault v1 K_meta";
/// BLAKE3 context of `K_secret` (stored credentials).
pub const CTX_SECRET: &str = "dooz keyvault v1 K_secret";
/// BLAKE3 context of `K_enc[e]`; key material is `TMK ‖ le32(e)`.
pub const CTX_ENC: &str = "dooz keyvault v1 K_enc";
/// BLAKE3 context of `K_nonce[e]`; key material is `TMK ‖ le32(e)`.
pub const CTX_NONCE: &str = "dooz keyvault v1 K_nonce";
/// BLAKE3 context of the key commitment stored in every wrapped TMK record.
pub const CTX_COMMITMENT: &str = "dooz keyvault v1 TMK commitment";

/// A 32-byte secret key. Zeroized on drop; `Debug` and `Display` never show it.
///
/// Equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Wraps existing key bytes. The caller should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// A fresh key from the operating system's CSPRNG (via `rand`'s thread RNG,
    /// which is seeded from and periodically reseeded by the OS).
    pub fn random() -> Self {
        let mut k = SecretKey([0u8; 32]);
        rand::rng().fill_bytes(&mut k.0);
        k
    }

    /// The key bytes. Do not log, format or copy them into long-lived buffers.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a key from a slice that must be exactly 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed {
            what: "secret key",
            reason: format!("expected 32 bytes, got {}", bytes.len()),
        })?;
        Ok(SecretKey(arr))
    }

    fn derive(context: &str, material: &[u8]) -> Self {
        SecretKey(blake3::derive_key(context, material))
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A tenant master key: 32 random bytes, the root of one tenant's key hierarchy.
///
/// It exists in plaintext only in memory; at rest it is always wrapped by a KEK
/// (see [`crate::WrappedTmk`]).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Tmk(SecretKey);

impl Tmk {
    /// A fresh random TMK.
    pub fn random() -> Self {
        Tmk(SecretKey::random())
    }

    /// Wraps existing TMK bytes (for providers that unwrap them, and for tests).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Tmk(SecretKey::from_bytes(bytes))
    }

    /// Builds a TMK from a slice that must be exactly 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        SecretKey::try_from_slice(bytes).map(Tmk)
    }

    /// The TMK bytes; meant for [`crate::KekProvider`] implementations only.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// The key commitment: `derive_key("dooz keyvault v1 TMK commitment", TMK)`.
    ///
    /// One-way; stored in the wrapped record so that a wrong or substituted key
    /// is detected after unwrapping and before use.
    pub fn commitment(&self) -> [u8; 32] {
        blake3::derive_key(CTX_COMMITMENT, self.expose())
    }

    /// Constant-time check of this TMK against a stored commitment.
    pub fn matches_commitment(&self, commitment: &[u8; 32]) -> bool {
        self.commitment().ct_eq(commitment).into()
    }
}

impl fmt::Debug for Tmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tmk(<redacted>)")
    }
}

impl fmt::Display for Tmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tmk(<redacted>)")
    }
}

/// The subkeys of one tenant, derived once from its TMK.
///
/// Holds a copy of the TMK (zeroized on drop) to derive per-epoch keys on demand.
#[derive(Clone)]
pub struct TenantKeys {
    tmk: Tmk,
    id: SecretKey,
    cdc: SecretKey,
    meta: SecretKey,
    secret: SecretKey,
}

impl TenantKeys {
    /// Derives all fixed subkeys of `tmk`.
    pub fn derive(tmk: &Tmk) -> Self {
        let m = tmk.expose();
        TenantKeys {
            tmk: tmk.clone(),
            id: SecretKey::derive(CTX_ID, m),
            cdc: SecretKey::derive(CTX_CDC, m),
            meta: SecretKey::derive(CTX_META, m),
            secret: SecretKey::derive(CTX_SECRET, m),
        }
    }

    /// `K_id`: keys the chunk-id hash (dedup identity). Never changes with epochs.
    pub fn id_key(&self) -> &SecretKey {
        &self.id
    }

    /// `K_cdc`: seeds the content-defined chunker.
    pub fn cdc_key(&self) -> &SecretKey {
        &self.cdc
    }

    /// `K_meta`: encrypts metadata blobs (pack indexes, manifests).
    pub fn meta_key(&self) -> &SecretKey {
        &self.meta
    }

    /// `K_secret`: seals stored credentials (see [`crate::secrets`]).
    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// `K_enc[epoch]`: the chunk encryption key of an epoch.
    pub fn enc_key(&self, epoch: u32) -> SecretKey {
        self.epoch_key(CTX_ENC, epoch)
    }

    /// `K_nonce[epoch]`: the nonce-derivation key of an epoch.
    pub fn nonce_key(&self, epoch: u32) -> SecretKey {
        self.epoch_key(CTX_NONCE, epoch)
    }

    fn epoch_key(&self, context: &str, epoch: u32) -> SecretKey {
        let mut material = zeroize::Zeroizing::new([0u8; 36]);
        material[..32].copy_from_slice(self.tmk.expose());
        material[32..].copy_from_slice(&epoch.to_le_bytes());
        SecretKey::derive(context, &material[..])
    }
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKeys(<redacted>)")
    }
}

impl fmt::Display for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKeys(<redacted>)")
    }
}

/// The epoch after `current`. Starting a new epoch for a tenant means storing
/// this number (the gateway keeps the current epoch in its metadata); keys of
/// every older epoch stay derivable, so old data stays readable.
pub fn next_epoch(current: u32) -> Result<u32, KeyError> {
    current
        .checked_add(1)
        .ok_or(KeyError::EpochOverflow { current })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let k = SecretKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
        assert_eq!(format!("{k}"), "SecretKey(<redacted>)");
        let t = Tmk::from_bytes([0xab; 32]);
        assert_eq!(format!("{t:?} {t}"), "Tmk(<redacted>) Tmk(<redacted>)");
        let tk = TenantKeys::derive(&t);
        assert!(!format!("{tk:?}{tk}").contains("ab"));
    }

    #[test]
    fn subkeys_are_distinct_and_epochs_differ() {
        let tk = TenantKeys::derive(&Tmk::from_bytes([7; 32]));
        let keys = [
            tk.id_key().clone(),
            tk.cdc_key().clone(),
            tk.meta_key().clone(),
            tk.secret_key().clone(),
            tk.enc_key(0),
            tk.enc_key(1),
            tk.nonce_key(0),
            tk.nonce_key(1),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(tk.enc_key(5), tk.enc_key(5));
    }

    #[test]
    fn next_epoch_checks_overflow() {
        assert_eq!(next_epoch(0).unwrap(), 1);
        assert!(matches!(
            next_epoch(u32::MAX),
            Err(KeyError::EpochOverflow { current: u32::MAX })
        ));
    }

    #[test]
    fn commitment_detects_other_key() {
        let a = Tmk::from_bytes([1; 32]);
        let b = Tmk::from_bytes([2; 32]);
        assert!(a.matches_commitment(&a.commitment()));
        assert!(!b.matches_commitment(&a.commitment()));
    }
}
