//! A tenant's chunk keyring, built from its wrapped TMK through the key vault.

use std::sync::Arc;

use dooz_chunker::{Cipher, EpochKeys, Key32, Keyring};
use dooz_keyvault::{SecretKey, TenantKeys, WrappedTmk};

use super::{Engine, EngineError, EngineResult};
use crate::meta::{Tenant, TenantId};

fn key32(k: &SecretKey) -> Key32 {
    Key32::from_bytes(*k.expose())
}

/// Builds the chunker's keyring from derived tenant keys: every epoch up to
/// the current one stays openable.
pub fn keyring_for(tenant: &Tenant, keys: &TenantKeys) -> EngineResult<Keyring> {
    let cipher: Cipher = tenant.cipher.parse().map_err(|_| {
        EngineError::Internal(format!(
            "tenant {} has unknown cipher {}",
            tenant.name, tenant.cipher
        ))
    })?;
    let epochs = (0..=tenant.current_epoch).map(|e| {
        (
            e,
            EpochKeys {
                enc: key32(&keys.enc_key(e)),
                nonce: key32(&keys.nonce_key(e)),
            },
        )
    });
    Keyring::new(
        *tenant.id.as_bytes(),
        key32(keys.id_key()),
        key32(keys.cdc_key()),
        key32(keys.meta_key()),
        cipher,
        tenant.current_epoch,
        epochs,
    )
    .map_err(|e| EngineError::Internal(format!("keyring for tenant {}: {e}", tenant.name)))
}

impl Engine {
    pub(crate) async fn tenant(&self, id: TenantId) -> EngineResult<Tenant> {
        self.inner
            .meta
            .get_tenant(id)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("tenant {id} vanished")))
    }

    /// The tenant's derived keys (unwrapped through its KEK provider, cached by the vault).
    pub async fn tenant_keys(&self, tenant: &Tenant) -> EngineResult<Arc<TenantKeys>> {
        let wrapped = WrappedTmk::from_bytes(&tenant.wrapped_tmk)?;
        Ok(self
            .inner
            .vault
            .tenant_keys(&tenant.id.to_string(), &wrapped)
            .await?)
    }

    pub async fn keyring_of(&self, tenant: &Tenant) -> EngineResult<Arc<Keyring>> {
        let keys = self.tenant_keys(tenant).await?;
        Ok(Arc::new(keyring_for(tenant, &keys)?))
    }
}
