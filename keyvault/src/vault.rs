//! [`KeyVault`]: the providers by name and the cache of unwrapped tenant keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::error::KeyError;
use crate::keys::TenantKeys;
use crate::provider::KekProvider;
use crate::record::WrappedTmk;

/// Providers by name plus a bounded, expiring cache of unwrapped tenant keys.
///
/// Cheap to clone: clones share the providers and the cache.
///
/// Cache semantics:
/// - entries are keyed by tenant id and remember the fingerprint of the record
///   they came from; a different record for the same tenant (after a rewrap or
///   a replacement) is a miss and replaces the entry;
/// - an entry lives at most `cache_ttl` after it was unwrapped (not sliding), so
///   a KEK revoked at the KMS stops being usable within `cache_ttl`;
/// - at most `cache_capacity` tenants are held; the oldest entry is evicted
///   first; a capacity of 0 disables caching;
/// - concurrent misses for the same record unwrap once;
/// - dropped entries are zeroized ([`TenantKeys`] zeroizes on drop, once the
///   last `Arc` held by a caller is gone).
#[derive(Clone)]
pub struct KeyVault {
    inner: Arc<Inner>,
}

struct Inner {
    providers: RwLock<HashMap<String, Arc<dyn KekProvider>>>,
    cache: Mutex<Cache>,
    /// One async lock per record being unwrapped (single flight).
    inflight: Mutex<HashMap<InflightKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped by `forget`: unwraps that started before do not fill the cache.
    generation: AtomicU64,
    ttl: Duration,
    capacity: usize,
}

/// (tenant id, record fingerprint)
type InflightKey = (String, [u8; 32]);

struct Entry {
    fingerprint: [u8; 32],
    keys: Arc<TenantKeys>,
    inserted: Instant,
    seq: u64,
}

#[derive(Default)]
struct Cache {
    by_tenant: HashMap<String, Entry>,
    /// Insertion order (= expiry order, since the TTL is fixed).
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

impl Cache {
    fn remove(&mut self, tenant: &str) {
        if let Some(e) = self.by_tenant.remove(tenant) {
            self.order.remove(&e.seq);
        }
    }

    fn purge_expired(&mut self, ttl: Duration, now: Instant) {
        while let Some((&seq, tenant)) = self.order.first_key_value() {
            let expired = self
                .by_tenant
                .get(tenant)
                .is_none_or(|e| e.seq != seq || now.saturating_duration_since(e.inserted) >= ttl);
            if !expired {
                break;
            }
            let tenant = tenant.clone();
            self.order.remove(&seq);
            if self.by_tenant.get(&tenant).is_some_and(|e| e.seq == seq) {
                self.by_tenant.remove(&tenant);
            }
        }
    }

    fn insert(&mut self, tenant: &str, entry_fp: [u8; 32], keys: Arc<TenantKeys>, cap: usize) {
        self.remove(tenant);
        while self.by_tenant.len() >= cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.by_tenant.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, tenant.to_string());
        self.by_tenant.insert(
            tenant.to_string(),
            Entry {
                fingerprint: entry_fp,
                keys,
                inserted: Instant::now(),
                seq,
            },
        );
    }
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVault")
            .field("providers", &self.provider_names())
            .field("cached", &self.cached_len())
            .field("ttl", &self.inner.ttl)
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl KeyVault {
    /// An empty vault. `cache_ttl`: how long unwrapped keys stay cached;
    /// `cache_capacity`: how many tenants at most (0 disables the cache).
    pub fn new(cache_ttl: Duration, cache_capacity: usize) -> Self {
        KeyVault {
            inner: Arc::new(Inner {
                providers: RwLock::new(HashMap::new()),
                cache: Mutex::new(Cache::default()),
                inflight: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
                ttl: cache_ttl,
                capacity: cache_capacity,
            }),
        }
    }

    /// Registers a provider under its [`KekProvider::name`], replacing any
    /// provider of the same name (in every clone of this vault).
    pub fn add_provider(&mut self, p: Arc<dyn KekProvider>) {
        let name = p.name().to_string();
        self.inner
            .providers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, p);
    }

    /// The provider registered under `name`.
    pub fn provider(&self, name: &str) -> Result<Arc<dyn KekProvider>, KeyError> {
        self.inner
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| KeyError::NotFound {
                what: format!("key provider `{name}` (not configured)"),
            })
    }

    /// Names of the registered providers, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Creates a tenant key: a new random TMK wrapped by `provider`/`key_ref`.
    /// Store the returned record (e.g. [`WrappedTmk::to_bytes`]) with the
    /// tenant; the derived keys are returned for immediate use (not cached,
    /// since the tenant id is not known here).
    pub async fn create_tenant_key(
        &self,
        provider: &str,
        key_ref: &str,
    ) -> Result<(WrappedTmk, Arc<TenantKeys>), KeyError> {
        let p = self.provider(provider)?;
        let (tmk, wrapped) = p.generate(key_ref).await?;
        if wrapped.provider != p.name() {
            return Err(KeyError::config(format!(
                "provider `{}` produced a record for `{}`",
                p.name(),
                wrapped.provider
            )));
        }
        wrapped.validate()?;
        wrapped.verify(&tmk)?;
        tracing::info!(
            provider,
            key_ref,
            kek_version = wrapped.kek_version,
            "created tenant key"
        );
        Ok((wrapped, Arc::new(TenantKeys::derive(&tmk))))
    }

    /// The keys of `tenant_id`, from the cache when `wrapped` is the record
    /// they were unwrapped from and the entry is fresh; otherwise unwrapped
    /// through the record's provider (which checks the key commitment).
    pub async fn tenant_keys(
        &self,
        tenant_id: &str,
        wrapped: &WrappedTmk,
    ) -> Result<Arc<TenantKeys>, KeyError> {
        let fp = wrapped.fingerprint();
        if let Some(k) = self.lookup(tenant_id, &fp) {
            return Ok(k);
        }
        let gate = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            inflight
                .entry((tenant_id.to_string(), fp))
                .or_default()
                .clone()
        };
        let result = {
            let _held = gate.lock().await;
            match self.lookup(tenant_id, &fp) {
                Some(k) => Ok(k),
                None => self.unwrap_and_cache(tenant_id, wrapped, fp).await,
            }
        };
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if inflight
            .get(&(tenant_id.to_string(), fp))
            .is_some_and(|g| Arc::ptr_eq(g, &gate) && Arc::strong_count(g) <= 2)
        {
            inflight.remove(&(tenant_id.to_string(), fp));
        }
        result
    }

    async fn unwrap_and_cache(
        &self,
        tenant_id: &str,
        wrapped: &WrappedTmk,
        fp: [u8; 32],
    ) -> Result<Arc<TenantKeys>, KeyError> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let p = self.provider(&wrapped.provider)?;
        let tmk = p.unwrap(wrapped).await.inspect_err(|e| {
            tracing::warn!(
                tenant = tenant_id,
                provider = %wrapped.provider,
                key_ref = %wrapped.key_ref,
                retryable = e.is_retryable(),
                error = %e,
                "unwrapping tenant key failed"
            );
        })?;
        // Defense in depth: every provider checks, but a third-party one might not.
        wrapped.verify(&tmk)?;
        let keys = Arc::new(TenantKeys::derive(&tmk));
        drop(tmk);
        if self.inner.capacity > 0 {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if self.inner.generation.load(Ordering::Acquire) == generation {
                cache.purge_expired(self.inner.ttl, Instant::now());
                cache.insert(tenant_id, fp, keys.clone(), self.inner.capacity);
            }
        }
        tracing::debug!(
            tenant = tenant_id,
            provider = %wrapped.provider,
            key_ref = %wrapped.key_ref,
            kek_version = wrapped.kek_version,
            "unwrapped tenant key"
        );
        Ok(keys)
    }

    fn lookup(&self, tenant_id: &str, fp: &[u8; 32]) -> Option<Arc<TenantKeys>> {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.purge_expired(self.inner.ttl, Instant::now());
        cache
            .by_tenant
            .get(tenant_id)
            .filter(|e| &e.fingerprint == fp)
            .map(|e| e.keys.clone())
    }

    /// Drops `tenant_id`'s cached keys (after a key change, a shred, or a
    /// tenant deletion). Unwraps already in flight will not re-fill the cache.
    pub fn forget(&self, tenant_id: &str) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(tenant_id);
    }

    /// Drops every cached key.
    pub fn clear(&self) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        cache.by_tenant.clear();
        cache.order.clear();
    }

    /// Drops expired entries now (they are otherwise dropped lazily on the
    /// next cache access). Call periodically to bound how long expired key
    /// material stays in memory on an idle gateway.
    pub fn purge_expired(&self) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.purge_expired(self.inner.ttl, Instant::now());
    }

    /// Number of tenants currently cached (expired entries included until purged).
    pub fn cached_len(&self) -> usize {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_tenant
            .len()
    }
}
