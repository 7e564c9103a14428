//! Key lifecycle on a deployment: KEK rotation (re-wrap every tenant master
//! key under the newest KEK version — no data touched) and encryption epochs
//! (new writes use new chunk keys; older epochs stay readable).

use std::sync::Arc;

use async_trait::async_trait;
use dooz_keyvault::rotation::{RotationFilter, RotationReport, WrappedKeyStore, rewrap_all};
use dooz_keyvault::{KeyError, KeyVault, WrappedTmk, next_epoch};

use crate::engine::{EngineError, EngineResult};
use crate::meta::{MetaError, MetaStore, Tenant};

/// The tenants table seen as keyvault's store of wrapped TMKs.
pub struct MetaKeyStore {
    meta: Arc<dyn MetaStore>,
}

impl MetaKeyStore {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self { meta }
    }
}

fn store_err(e: MetaError) -> KeyError {
    KeyError::Store {
        retryable: matches!(e, MetaError::Unavailable(_)),
        reason: e.to_string(),
    }
}

#[async_trait]
impl WrappedKeyStore for MetaKeyStore {
    async fn list_wrapped(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, WrappedTmk)>, KeyError> {
        let after = match after {
            Some(a) => Some(a.parse().map_err(|_| KeyError::Store {
                reason: format!("cursor {a} is not a tenant id"),
                retryable: false,
            })?),
            None => None,
        };
        let tenants = self
            .meta
            .list_tenants_after(after, limit)
            .await
            .map_err(store_err)?;
        tenants
            .into_iter()
            .map(|t| Ok((t.id.to_string(), WrappedTmk::from_bytes(&t.wrapped_tmk)?)))
            .collect()
    }

    async fn replace_wrapped(
        &self,
        tenant_id: &str,
        old: &WrappedTmk,
        new: &WrappedTmk,
    ) -> Result<bool, KeyError> {
        let id = tenant_id.parse().map_err(|_| KeyError::Store {
            reason: format!("{tenant_id} is not a tenant id"),
            retryable: false,
        })?;
        // Compare against the bytes as stored: re-serialising could differ.
        let Some(current) = self.meta.get_tenant(id).await.map_err(store_err)? else {
            return Ok(false);
        };
        if WrappedTmk::from_bytes(&current.wrapped_tmk)? != *old {
            return Ok(false);
        }
        self.meta
            .replace_wrapped_tmk(id, &current.wrapped_tmk, &new.to_bytes())
            .await
            .map_err(store_err)
    }
}

/// Re-wraps every selected tenant master key under its provider's newest KEK
/// version, in batches, resumable from `resume_after`.
pub async fn rotate(
    meta: Arc<dyn MetaStore>,
    vault: &KeyVault,
    filter: RotationFilter,
    resume_after: Option<String>,
    batch: usize,
    progress: &mut (dyn FnMut(&RotationReport) + Send),
) -> EngineResult<RotationReport> {
    let store = MetaKeyStore::new(meta);
    let report = rewrap_all(vault, &store, filter, resume_after, batch, progress).await?;
    // Cached unwrapped keys stay valid (the TMK did not change); dropping them
    // makes the next request prove the new record unwraps.
    vault.clear();
    Ok(report)
}

/// Starts a new encryption epoch for a tenant: chunks written from now on are
/// sealed with K_enc/K_nonce of the new epoch. Returns the new epoch.
pub async fn new_epoch(meta: &dyn MetaStore, tenant: &Tenant) -> EngineResult<u32> {
    let next = next_epoch(tenant.current_epoch)?;
    meta.set_tenant_epoch(tenant.id, next)
        .await
        .map_err(EngineError::from)?;
    tracing::info!(tenant = %tenant.name, epoch = next, "new encryption epoch");
    Ok(next)
}
