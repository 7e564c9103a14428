//! KEK rotation: re-wrap every stored TMK under the newest KEK version.
//!
//! Only the wrapped records change; no object data is read or rewritten, and
//! the TMKs (hence all derived keys and chunk ids) stay the same.
//!
//! The job is batched and resumable: it walks the store in tenant-id order with
//! a cursor, reports progress after every batch (`last_tenant` is the cursor to
//! resume from), and swaps each record with compare-and-set so that a record
//! changed concurrently (tenant re-keyed or deleted) is left alone. Running it
//! twice is harmless: current records are counted and skipped.
//!
//! Before a re-wrapped record replaces the old one it is unwrapped once and its
//! commitment checked, so a bad answer from the KMS can never replace a good
//! record.
//!
//! Starting a new *encryption epoch* is separate and does not involve the KMS:
//! the gateway stores the tenant's next epoch number ([`crate::next_epoch`])
//! and new writes use `K_enc`/`K_nonce` of that epoch; older epochs stay
//! derivable from the same TMK.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::KeyError;
use crate::provider::KekProvider;
use crate::record::WrappedTmk;
use crate::vault::KeyVault;

/// Where wrapped TMKs live (the gateway's metadata store implements it).
#[async_trait]
pub trait WrappedKeyStore: Send + Sync {
    /// Up to `limit` records with tenant id strictly greater than `after`
    /// (all from the start when `None`), in ascending tenant-id order.
    async fn list_wrapped(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, WrappedTmk)>, KeyError>;

    /// Replaces `tenant_id`'s record with `new` only if it still equals `old`.
    /// Returns whether it was swapped.
    async fn replace_wrapped(
        &self,
        tenant_id: &str,
        old: &WrappedTmk,
        new: &WrappedTmk,
    ) -> Result<bool, KeyError>;
}

/// Which records a rotation touches. The default touches all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationFilter {
    /// Only records of this provider.
    pub provider: Option<String>,
    /// Only records of this KEK reference.
    pub key_ref: Option<String>,
}

impl RotationFilter {
    /// Every record.
    pub fn all() -> Self {
        Self::default()
    }

    /// Records of one provider.
    pub fn provider(name: impl Into<String>) -> Self {
        RotationFilter {
            provider: Some(name.into()),
            key_ref: None,
        }
    }

    /// Records of one KEK of one provider.
    pub fn key(provider: impl Into<String>, key_ref: impl Into<String>) -> Self {
        RotationFilter {
            provider: Some(provider.into()),
            key_ref: Some(key_ref.into()),
        }
    }

    /// Whether `w` is selected.
    pub fn matches(&self, w: &WrappedTmk) -> bool {
        self.provider.as_deref().is_none_or(|p| p == w.provider)
            && self.key_ref.as_deref().is_none_or(|k| k == w.key_ref)
    }
}

/// Counters of a rotation run (this run only, not earlier resumed runs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Records listed.
    pub scanned: u64,
    /// Records re-wrapped and swapped.
    pub rewrapped: u64,
    /// Records already under the newest KEK version.
    pub already_current: u64,
    /// Records changed concurrently (compare-and-set lost); left alone.
    pub skipped_changed: u64,
    /// Records not selected by the filter.
    pub filtered_out: u64,
    /// Records that failed permanently (revoked KEK, tampered record...).
    pub failed: u64,
    /// Up to 100 `(tenant id, error)` of the failures.
    pub failures: Vec<(String, String)>,
    /// The last tenant fully handled: resume with `resume_after = last_tenant`.
    pub last_tenant: Option<String>,
}

const MAX_FAILURES_LISTED: usize = 100;

/// Re-wraps every selected TMK under the newest KEK version, `batch` records
/// at a time, starting after `resume_after`; `progress` is called after each
/// batch.
///
/// Per-record permanent errors (a revoked KEK, a tampered or foreign record)
/// are counted in [`RotationReport::failed`] and the run continues. Errors that
/// would hit every record — a KMS outage ([`KeyError::is_retryable`]), denied
/// credentials, a missing provider, a store failure — stop the run: resume from
/// the last reported `last_tenant`.
pub async fn rewrap_all(
    vault: &KeyVault,
    store: &dyn WrappedKeyStore,
    filter: RotationFilter,
    resume_after: Option<String>,
    batch: usize,
    progress: &mut (dyn FnMut(&RotationReport) + Send),
) -> Result<RotationReport, KeyError> {
    let batch = batch.max(1);
    let mut report = RotationReport {
        last_tenant: resume_after,
        ..RotationReport::default()
    };
    // Newest version per (provider, key_ref), looked up once per run.
    let mut newest: HashMap<(String, String), Option<u32>> = HashMap::new();
    loop {
        let page = store
            .list_wrapped(report.last_tenant.as_deref(), batch)
            .await?;
        let n = page.len();
        for (tenant, old) in page {
            report.scanned += 1;
            if filter.matches(&old) {
                // A provider that is not configured would fail every record: stop.
                let provider = vault.provider(&old.provider)?;
                match rotate_one(&*provider, store, vault, &tenant, &old, &mut newest).await {
                    Ok(Outcome::Rewrapped) => report.rewrapped += 1,
                    Ok(Outcome::Current) => report.already_current += 1,
                    Ok(Outcome::Changed) => report.skipped_changed += 1,
                    Err(e) if aborts_run(&e) => {
                        tracing::warn!(tenant, error = %e, "KEK rotation stopped; resume after the last reported tenant");
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(tenant, provider = %old.provider, key_ref = %old.key_ref, error = %e, "cannot rewrap tenant key");
                        report.failed += 1;
                        if report.failures.len() < MAX_FAILURES_LISTED {
                            report.failures.push((tenant.clone(), e.to_string()));
                        }
                    }
                }
            } else {
                report.filtered_out += 1;
            }
            report.last_tenant = Some(tenant);
        }
        if n > 0 {
            tracing::info!(
                scanned = report.scanned,
                rewrapped = report.rewrapped,
                already_current = report.already_current,
                failed = report.failed,
                "KEK rotation progress"
            );
            progress(&report);
        }
        if n < batch {
            break;
        }
    }
    Ok(report)
}

enum Outcome {
    Rewrapped,
    Current,
    Changed,
}

fn aborts_run(e: &KeyError) -> bool {
    e.is_retryable() || matches!(e, KeyError::Denied { .. } | KeyError::Store { .. })
}

async fn rotate_one(
    p: &dyn KekProvider,
    store: &dyn WrappedKeyStore,
    vault: &KeyVault,
    tenant: &str,
    old: &WrappedTmk,
    newest: &mut HashMap<(String, String), Option<u32>>,
) -> Result<Outcome, KeyError> {
    old.validate()?;
    let key = (old.provider.clone(), old.key_ref.clone());
    let latest = match newest.get(&key) {
        Some(v) => *v,
        None => {
            let v = p.current_version(&old.key_ref).await?;
            newest.insert(key, v);
            v
        }
    };
    if latest.is_some_and(|v| old.kek_version >= v) {
        return Ok(Outcome::Current);
    }
    let new = p.rewrap(old).await?;
    if new.kek_version <= old.kek_version {
        return Ok(Outcome::Current);
    }
    if new.commitment != old.commitment
        || new.provider != old.provider
        || new.key_ref != old.key_ref
    {
        return Err(KeyError::Tampered {
            what: format!("rewrapped record of tenant `{tenant}`"),
            reason: "provider changed the commitment, provider or key_ref".into(),
        });
    }
    // Prove the new record opens to the same TMK before it replaces the old one.
    p.unwrap(&new).await?;
    if store.replace_wrapped(tenant, old, &new).await? {
        vault.forget(tenant);
        Ok(Outcome::Rewrapped)
    } else {
        Ok(Outcome::Changed)
    }
}

/// An in-memory [`WrappedKeyStore`], for tests and single-process tools.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    records: Mutex<BTreeMap<String, WrappedTmk>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or overwrites) a tenant's record.
    pub fn put(&self, tenant_id: &str, w: WrappedTmk) {
        self.lock().insert(tenant_id.to_string(), w);
    }

    /// A tenant's record.
    pub fn get(&self, tenant_id: &str) -> Option<WrappedTmk> {
        self.lock().get(tenant_id).cloned()
    }

    /// Deletes a tenant's record; returns it.
    pub fn remove(&self, tenant_id: &str) -> Option<WrappedTmk> {
        self.lock().remove(tenant_id)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, WrappedTmk>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WrappedKeyStore for MemoryKeyStore {
    async fn list_wrapped(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, WrappedTmk)>, KeyError> {
        use std::ops::Bound;
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        Ok(self
            .lock()
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn replace_wrapped(
        &self,
        tenant_id: &str,
        old: &WrappedTmk,
        new: &WrappedTmk,
    ) -> Result<bool, KeyError> {
        let mut g = self.lock();
        match g.get_mut(tenant_id) {
            Some(cur) if cur == old => {
                *cur = new.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
