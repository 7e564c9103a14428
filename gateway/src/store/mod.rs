//! Packs on backends: one small [`PackStore`] over `object_store`, whatever
//! the backend. Packs are written create-only under random names and never
//! modified; a write returns only once the backend holds the bytes durably.

pub mod config;
mod counting;
mod staging;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};

pub use config::{BackendConfig, RetrySettings, S3BackendConfig};
use counting::counting_attempts;
pub use staging::StagingFile;

use crate::meta::PackKey;
use crate::throttle::{BackendThrottle, Direction};

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or kept failing after retries: a
    /// client should get 503 and may retry.
    #[error("backend {backend} unavailable: {message}")]
    Unavailable { backend: String, message: String },
    #[error("pack {pack} not found on backend {backend}")]
    NotFound { backend: String, pack: String },
    #[error("pack {pack} already exists on backend {backend}")]
    AlreadyExists { backend: String, pack: String },
    #[error("no backend named {0} is configured")]
    UnknownBackend(String),
    #[error("backend {backend} misconfigured: {message}")]
    Config { backend: String, message: String },
}

/// One named backend holding packs.
#[derive(Clone)]
pub struct PackStore {
    name: String,
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    create_only: bool,
    /// The directory of a local backend, where interrupted writes leave
    /// staging files (see `staging.rs`).
    local_root: Option<std::path::PathBuf>,
    /// `[limits.backends.NAME]`: requests and bytes wait for room here.
    throttle: Option<Arc<BackendThrottle>>,
}

impl std::fmt::Debug for PackStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackStore")
            .field("name", &self.name)
            .field("backend", &self.inner.to_string())
            .finish()
    }
}

/// Pack name on the backend: two hex characters of fan-out, then the id.
pub fn pack_path(prefix: &str, id: &PackKey) -> String {
    let hex = hex::encode(id);
    format!("{prefix}packs/{}/{hex}.dzp", &hex[..2])
}

impl PackStore {
    pub fn open(name: &str, cfg: &BackendConfig) -> Result<Self, StoreError> {
        let config_err = |e: object_store::Error| StoreError::Config {
            backend: name.to_owned(),
            message: e.to_string(),
        };
        let local_root = match cfg {
            BackendConfig::Local { path } => Some(path.clone()),
            _ => None,
        };
        let (inner, prefix, create_only): (Arc<dyn ObjectStore>, String, bool) = match cfg {
            BackendConfig::Local { path } => {
                std::fs::create_dir_all(path).map_err(|e| StoreError::Config {
                    backend: name.to_owned(),
                    message: format!("cannot create {}: {e}", path.display()),
                })?;
                let fs = LocalFileSystem::new_with_prefix(path)
                    .map_err(config_err)?
                    .with_fsync(true);
                (Arc::new(fs), String::new(), true)
            }
            BackendConfig::Memory => (Arc::new(InMemory::new()), String::new(), true),
            BackendConfig::S3(s3) => {
                let r = &s3.retry;
                // Timeouts and pooling live in the counting connector, which
                // builds the HTTP client; object_store keeps only its own checks.
                let client = ClientOptions::new().with_allow_http(true);
                let retry = RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: r.max_retries,
                    retry_timeout: r.retry_timeout,
                };
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_client_options(client)
                    .with_http_connector(counting::CountingConnector {
                        settings: r.clone(),
                        ca_file: s3.ca_file.clone(),
                    })
                    .with_retry(retry)
                    .with_virtual_hosted_style_request(s3.virtual_hosted);
                if !s3.endpoint.is_empty() {
                    b = b.with_endpoint(&s3.endpoint).with_allow_http(true);
                }
                if !s3.access_key_id.is_empty() {
                    b = b
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(s3.secret_access_key.expose());
                }
                (
                    Arc::new(b.build().map_err(config_err)?),
                    s3.prefix.clone(),
                    s3.create_only,
                )
            }
        };
        Ok(Self {
            name: name.to_owned(),
            inner,
            prefix,
            create_only,
            local_root,
            throttle: None,
        })
    }

    /// Waits for the backend's caps: one request of `bytes` bytes (when
    /// known before it is made) in direction `dir`.
    async fn pace(&self, dir: Direction, bytes: u64) {
        if let Some(t) = &self.throttle {
            t.request(dir).await;
            t.bytes(bytes, dir).await;
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self, id: &PackKey) -> Path {
        Path::from(pack_path(&self.prefix, id))
    }

    fn map_err(&self, id: &PackKey, e: object_store::Error) -> StoreError {
        let pack = hex::encode(id);
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                backend: self.name.clone(),
                pack,
            },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StoreError::AlreadyExists {
                backend: self.name.clone(),
                pack,
            },
            other => StoreError::Unavailable {
                backend: self.name.clone(),
                message: other.to_string(),
            },
        }
    }

    /// Writes a whole pack; returns once the backend acknowledged it durably.
    pub async fn put_pack(&self, id: &PackKey, bytes: Bytes) -> Result<(), StoreError> {
        let len = bytes.len();
        self.pace(Direction::Egress, len as u64).await;
        let started = Instant::now();
        let opts = PutOptions {
            mode: if self.create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..Default::default()
        };
        let (res, attempts) = counting_attempts(self.inner.put_opts(
            &self.path(id),
            PutPayload::from_bytes(bytes),
            opts,
        ))
        .await;
        crate::metrics::backend_request(&self.name, "put", started, res.is_ok(), attempts);
        res.map_err(|e| self.map_err(id, e))?;
        crate::metrics::backend_bytes_written(&self.name, len);
        Ok(())
    }

    /// Reads `range` of a pack (the frames a request needs).
    pub async fn get_range(&self, id: &PackKey, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.pace(Direction::Ingress, range.end.saturating_sub(range.start))
            .await;
        let started = Instant::now();
        let (res, attempts) = counting_attempts(self.inner.get_range(&self.path(id), range)).await;
        crate::metrics::backend_request(&self.name, "get", started, res.is_ok(), attempts);
        res.map_err(|e| self.map_err(id, e))
    }

    pub async fn get_pack(&self, id: &PackKey) -> Result<Bytes, StoreError> {
        self.pace(Direction::Ingress, 0).await;
        let started = Instant::now();
        let (res, attempts) = counting_attempts(async {
            match self.inner.get(&self.path(id)).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        })
        .await;
        crate::metrics::backend_request(&self.name, "get", started, res.is_ok(), attempts);
        let bytes = res.map_err(|e| self.map_err(id, e))?;
        // Its size is known only now: the link is charged after the fact.
        if let Some(t) = &self.throttle {
            t.bytes(bytes.len() as u64, Direction::Ingress).await;
        }
        Ok(bytes)
    }

    pub async fn pack_size(&self, id: &PackKey) -> Result<u64, StoreError> {
        self.pace(Direction::Ingress, 0).await;
        let started = Instant::now();
        let (res, attempts) = counting_attempts(self.inner.head(&self.path(id))).await;
        crate::metrics::backend_request(&self.name, "head", started, res.is_ok(), attempts);
        res.map(|m| m.size).map_err(|e| self.map_err(id, e))
    }

    pub async fn delete_pack(&self, id: &PackKey) -> Result<(), StoreError> {
        self.pace(Direction::Egress, 0).await;
        let started = Instant::now();
        let (res, attempts) = counting_attempts(self.inner.delete(&self.path(id))).await;
        crate::metrics::backend_request(&self.name, "delete", started, res.is_ok(), attempts);
        match res {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(id, e)),
        }
    }

    /// Every pack on the backend with its size (for fsck and recovery).
    pub async fn list_packs(&self) -> Result<Vec<(PackKey, u64)>, StoreError> {
        self.pace(Direction::Ingress, 0).await;
        let started = Instant::now();
        let (res, attempts) =
            counting_attempts(self.list_pack_objects().try_collect::<Vec<_>>()).await;
        crate::metrics::backend_request(&self.name, "list", started, res.is_ok(), attempts);
        Ok(res?.into_iter().map(|p| (p.id, p.size)).collect())
    }

    /// Every pack on the backend with its size and modification time, as
    /// the listing goes. An error ends the stream; a listing that ended in an
    /// error must never be taken for the backend's content.
    pub fn list_pack_objects(&self) -> BoxStream<'static, Result<ListedPack, StoreError>> {
        let prefix = Path::from(format!("{}packs", self.prefix));
        let backend = self.name.clone();
        let mut failed = false;
        self.inner
            .list(Some(&prefix))
            .take_while(move |item| {
                // Stop after the first error (yielding it).
                let go = !failed;
                failed |= item.is_err();
                futures::future::ready(go)
            })
            .filter_map(move |item| {
                let out = match item {
                    Err(e) => Some(Err(StoreError::Unavailable {
                        backend: backend.clone(),
                        message: format!("listing packs: {e}"),
                    })),
                    Ok(meta) => listed(&meta).map(Ok),
                };
                futures::future::ready(out)
            })
            .boxed()
    }

    /// A cheap request that proves the backend answers (for /health/ready).
    pub async fn probe(&self) -> Result<(), StoreError> {
        let probe_id = [0u8; 16];
        match self.inner.head(&self.path(&probe_id)).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Unavailable {
                backend: self.name.clone(),
                message: e.to_string(),
            }),
        }
    }
}

/// A pack as a backend listing shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedPack {
    pub id: PackKey,
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch, by the backend's
    /// clock (S3 backends round it down to the second).
    pub modified_ms: i64,
}

/// A listed object that is a pack (`packs/xx/<32 hex>.dzp`).
fn listed(meta: &object_store::ObjectMeta) -> Option<ListedPack> {
    let hex_id = meta.location.filename()?.strip_suffix(".dzp")?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    Some(ListedPack {
        id,
        size: meta.size,
        modified_ms: meta.last_modified.timestamp_millis(),
    })
}

/// All configured backends by name.
#[derive(Clone, Debug, Default)]
pub struct Backends {
    stores: BTreeMap<String, PackStore>,
}

impl Backends {
    pub fn open(configs: &BTreeMap<String, BackendConfig>) -> Result<Self, StoreError> {
        let mut stores = BTreeMap::new();
        for (name, cfg) in configs {
            stores.insert(name.clone(), PackStore::open(name, cfg)?);
        }
        Ok(Self { stores })
    }

    /// Applies `[limits.backends]` caps (names are checked by the config).
    pub fn with_limits(mut self, limits: &crate::throttle::LimitsConfig) -> Self {
        for (name, store) in &mut self.stores {
            if let Some(l) = limits.backends.get(name) {
                store.throttle = BackendThrottle::new(l, limits.burst);
            }
        }
        self
    }

    pub fn get(&self, name: &str) -> Result<&PackStore, StoreError> {
        self.stores
            .get(name)
            .ok_or_else(|| StoreError::UnknownBackend(name.to_owned()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &PackStore> {
        self.stores.values()
    }
}
