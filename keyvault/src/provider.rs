//! The KEK provider abstraction.

use async_trait::async_trait;

use crate::error::KeyError;
use crate::keys::Tmk;
use crate::record::{ProviderInfo, WrappedTmk};

/// A key-encryption-key service: wraps and unwraps tenant master keys.
///
/// Implementations: [`crate::LocalKek`] (root keyring file) and
/// [`crate::OpenBaoKek`] (OpenBao / HashiCorp Vault transit). Others (AWS KMS,
/// KMIP) plug in behind the same trait; callers only see provider names.
///
/// Contract for implementors:
/// - `wrap` records the provider's [`KekProvider::name`], the `key_ref`, the KEK
///   version used and the TMK's commitment ([`Tmk::commitment`]).
/// - `unwrap` must check [`WrappedTmk::verify`] before returning the key, and
///   must reject a record whose `provider` is not its own name.
/// - `rewrap` moves a record to the newest KEK version without exposing the TMK
///   to the caller; on an already-current record it returns a record that
///   unwraps to the same TMK with the same `kek_version` (idempotent).
/// - Transient failures are [`KeyError::Unavailable`] (after the provider's own
///   bounded retries); a deleted, revoked or retired KEK is [`KeyError::Revoked`].
/// - Nothing secret (key bytes, tokens) is logged or put into errors.
#[async_trait]
pub trait KekProvider: Send + Sync + 'static {
    /// The provider name stored in records (`local`, `openbao`).
    fn name(&self) -> &str;

    /// Wraps `tmk` under the newest version of the KEK `key_ref`.
    async fn wrap(&self, key_ref: &str, tmk: &Tmk) -> Result<WrappedTmk, KeyError>;

    /// Unwraps a record and checks its key commitment.
    async fn unwrap(&self, wrapped: &WrappedTmk) -> Result<Tmk, KeyError>;

    /// Re-wraps a record under the newest version of its KEK.
    async fn rewrap(&self, wrapped: &WrappedTmk) -> Result<WrappedTmk, KeyError>;

    /// Describes the backend (no secrets). Errors if the backend cannot be reached.
    async fn describe(&self) -> Result<ProviderInfo, KeyError>;

    /// Generates a new random TMK and wraps it. The default draws the TMK from
    /// the local CSPRNG and calls [`KekProvider::wrap`]; a KMS may generate it
    /// server-side instead (OpenBao: `transit/datakey/plaintext`).
    async fn generate(&self, key_ref: &str) -> Result<(Tmk, WrappedTmk), KeyError> {
        let tmk = Tmk::random();
        let wrapped = self.wrap(key_ref, &tmk).await?;
        Ok((tmk, wrapped))
    }

    /// The newest version of KEK `key_ref`, if the provider can tell cheaply.
    /// Rotation uses it to skip records that are already current. `None` means
    /// "unknown"; rotation then calls `rewrap` and compares versions.
    async fn current_version(&self, key_ref: &str) -> Result<Option<u32>, KeyError> {
        let _ = key_ref;
        Ok(None)
    }
}

/// Rejects a record that belongs to another provider or has a bad structure.
pub(crate) fn check_record_owner(name: &str, wrapped: &WrappedTmk) -> Result<(), KeyError> {
    wrapped.validate()?;
    if wrapped.provider != name {
        return Err(KeyError::config(format!(
            "record belongs to provider `{}`, not `{name}`",
            wrapped.provider
        )));
    }
    Ok(())
}
