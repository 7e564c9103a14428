//! Object semantics: buckets, put/get/list/delete. Knows nothing about HTTP;
//! takes a [`MetaStore`], the pack [`Backends`] and the [`KeyVault`].

mod buckets;
mod checksum;
mod copy;
mod error;
mod get;
mod keys;
mod list;
mod multipart;
mod put;
mod restore;
mod validate;
mod versioning;

use std::sync::Arc;

use dooz_chunker::{ChunkerParams, CompressionPolicy};
use dooz_keyvault::KeyVault;
use tokio::sync::Semaphore;

use crate::config::ChunkingConfig;
use crate::meta::{MetaStore, Policy, TenantId};
use crate::store::Backends;

pub use checksum::{ChecksumAlgorithm, Checksums, ExpectedChecksums};
pub use copy::{CopyOutcome, CopySource, MetadataDirective, slice_manifest};
pub use error::{EngineError, EngineResult};
pub use get::{ByteRange, GetOutcome, GetRequest, ObjectBody, ReadConditions, part_span};
pub use list::{ListOutcome, ListParams};
pub use multipart::{
    CompleteOutcome, CompleteRequest, CompletedPart, CreateMultipart, MAX_PART_NUMBER,
    MIN_PART_SIZE, parse_part_number,
};
pub use put::{PutOutcome, PutRequest};
pub use restore::{PointInTime, RestoreAction, RestoreEvent, RestoreReport, parse_time};
pub use validate::{MAX_KEY_LEN, MAX_OBJECT_SIZE, MAX_USER_METADATA, validate_bucket_name};
pub use versioning::{VersionListOutcome, VersionListParams, retention_from, shown_version_id};

/// Who is calling: resolved from the request's access key by the front door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub access_key: String,
    pub tenant_id: TenantId,
    pub policy: Policy,
}

/// What a request wants to do, for the policy check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    ManageBuckets,
    /// s3:BypassGovernanceRetention: with today's fixed policies only
    /// `admin` holds it.
    BypassGovernanceRetention,
}

impl Principal {
    pub fn allows(&self, action: Action) -> bool {
        matches!(
            (self.policy, action),
            (Policy::Admin, _)
                | (Policy::ReadWrite, Action::Read | Action::Write)
                | (Policy::ReadOnly, Action::Read)
        )
    }
}

/// Tunables of the data path (from `[chunking]`).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub chunker: ChunkerParams,
    pub compression: CompressionPolicy,
    pub pack_target: usize,
    pub packs_in_flight: usize,
    pub read_ahead: usize,
    pub default_backend: String,
}

impl EngineConfig {
    pub fn from_config(c: &ChunkingConfig, default_backend: &str) -> Self {
        Self {
            chunker: ChunkerParams {
                min: c.min_size,
                avg: c.avg_size,
                max: c.max_size,
            },
            compression: CompressionPolicy {
                level: c.compression_level,
            },
            pack_target: c.pack_target_size,
            packs_in_flight: c.packs_in_flight,
            read_ahead: c.read_ahead,
            default_backend: default_backend.to_owned(),
        }
    }
}

impl EngineConfig {
    /// Bytes a pack buffer is allocated with, and budgeted for: a pack is
    /// shipped once it reaches the target, so it holds at most the target
    /// plus one largest frame, plus its index. Allocating all of it up front
    /// keeps a growing buffer from doubling (a 16 MiB pack in a 32 MiB
    /// allocation) and the budget honest.
    pub fn pack_capacity(&self) -> usize {
        const INDEX_ALLOWANCE: usize = 64 * 1024;
        self.pack_target
            + self.chunker.max as usize
            + dooz_chunker::FRAME_OVERHEAD
            + INDEX_ALLOWANCE
    }
}

/// Pack buffers are budgeted in units of this many bytes.
const BUDGET_UNIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn MetaStore>,
    backends: Backends,
    vault: KeyVault,
    cfg: EngineConfig,
    /// Global back-pressure on pack buffers held by all uploads.
    budget: Arc<Semaphore>,
}

impl Engine {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        backends: Backends,
        vault: KeyVault,
        cfg: EngineConfig,
        memory_budget: usize,
    ) -> EngineResult<Self> {
        cfg.chunker
            .validate()
            .map_err(|e| EngineError::InvalidArgument(format!("chunking: {e}")))?;
        backends.get(&cfg.default_backend)?;
        let units = (memory_budget / BUDGET_UNIT).max(cfg.pack_capacity().div_ceil(BUDGET_UNIT));
        Ok(Self {
            inner: Arc::new(Inner {
                meta,
                backends,
                vault,
                cfg,
                budget: Arc::new(Semaphore::new(units)),
            }),
        })
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.inner.meta
    }

    pub fn backends(&self) -> &Backends {
        &self.inner.backends
    }

    pub fn vault(&self) -> &KeyVault {
        &self.inner.vault
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
