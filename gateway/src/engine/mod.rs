//! Object semantics: buckets, put/get/list/delete. Knows nothing about HTTP;
//! takes a [`MetaStore`], the pack [`Backends`] and the [`KeyVault`].

mod access;
mod buckets;
mod checksum;
mod copy;
mod cors;
mod discard;
mod encryption;
mod error;
mod get;
mod heal;
mod keys;
mod lifecycle;
mod list;
mod multipart;
mod plan;
mod put;
mod relocate;
mod restore;
mod tagging;
mod validate;
mod versioning;

use std::sync::Arc;

use dooz_chunker::{ChunkerParams, CompressionPolicy};
use dooz_keyvault::KeyVault;

use crate::budget::MemoryBudget;
use crate::config::ChunkingConfig;
use crate::jobs::uploads::UploadLeases;
use crate::meta::{MetaStore, Policy, TenantId};
use crate::store::Backends;

pub use checksum::{ChecksumAlgorithm, Checksums, ExpectedChecksums};
pub use copy::{CopyOutcome, CopySource, MetadataDirective, slice_manifest};
pub use cors::{BucketCors, CORS_METHODS, CorsAnswer, CorsRule, MAX_CORS_RULES};
pub use encryption::BucketEncryption;
pub use error::{EngineError, EngineResult};
pub use get::{ByteRange, GetOutcome, GetRequest, ObjectBody, ReadConditions, part_span};
pub use lifecycle::{
    BucketLifecycle, DAY_MS, Expiration, LifecycleRule, MAX_RULES, NoncurrentExpiration,
    RuleFilter, due_after,
};
pub use list::{ListOutcome, ListParams};
pub use multipart::{
    CompleteOutcome, CompleteRequest, CompletedPart, CreateMultipart, MAX_MULTIPART_OBJECT_SIZE,
    MAX_PART_NUMBER, MIN_PART_SIZE, parse_part_number,
};
pub use put::{PutOutcome, PutRequest};
pub use restore::{PointInTime, RestoreAction, RestoreEvent, RestoreReport, parse_time};
pub use tagging::{
    MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, TagTarget, parse_tagging_header, validate_tags,
};
pub use validate::{MAX_KEY_LEN, MAX_OBJECT_SIZE, MAX_USER_METADATA, validate_bucket_name};
pub use versioning::{VersionListOutcome, VersionListParams, retention_from, shown_version_id};

/// Who is calling: resolved from the request's access key by the front door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub access_key: String,
    pub tenant_id: TenantId,
    pub policy: Policy,
    /// Set by the S3 front door when the policy evaluator allowed this
    /// request (`s3/access.rs`): the role check below then passes, and
    /// governance bypass is what the evaluator said about
    /// s3:BypassGovernanceRetention. None outside the S3 path.
    pub grant: Option<Grant>,
}

/// The policy evaluator's answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub bypass_governance: bool,
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
        if let Some(g) = self.grant {
            return action != Action::BypassGovernanceRetention || g.bypass_governance;
        }
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
    /// Milliseconds in a lifecycle day: [`DAY_MS`] unless the test-only
    /// `lifecycle.debug_day_secs` shortens it.
    pub lifecycle_day_ms: i64,
    /// Re-chunk part boundaries at CompleteMultipartUpload (`heal.rs`).
    pub heal_boundaries: bool,
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
            lifecycle_day_ms: DAY_MS,
            heal_boundaries: c.heal_boundaries,
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

    /// What one upload holds besides its pack buffers, at most: the body
    /// frame being chunked (aws-chunked chunks beyond [`BODY_ALLOWANCE`] are
    /// reserved separately as they arrive), the chunker's buffer (one largest
    /// chunk), the chunks cut from one fed slice, the batch waiting for its
    /// dedup lookup (under the batch size plus one chunk) and the batch
    /// being sealed (its plaintexts and frames: the batch plus one chunk and
    /// one frame).
    pub fn ingest_working_set(&self) -> usize {
        let max = self.chunker.max as usize + dooz_chunker::FRAME_OVERHEAD;
        BODY_ALLOWANCE + FEED_SLICE + 4 * max + 2 * put::LOOKUP_BATCH_BYTES
    }

    /// What an upload reserves before it reads its body: its working set and
    /// one pack buffer. More packs in flight are taken only when free.
    pub fn upload_reservation(&self) -> usize {
        self.ingest_working_set() + self.pack_capacity()
    }
}

/// Request body bytes an upload's working set allows for the frame being
/// processed: hyper hands out frames of at most ~400 KiB; larger
/// aws-chunked chunks, which s3s buffers whole, reserve the rest.
pub const BODY_ALLOWANCE: usize = 1024 * 1024;
/// Body frames are fed to the chunker in slices of at most this many bytes,
/// so the chunks cut at once stay few whatever the frame size.
pub(crate) const FEED_SLICE: usize = 1024 * 1024;

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn MetaStore>,
    backends: Backends,
    vault: KeyVault,
    cfg: EngineConfig,
    /// The data path's memory: back-pressure on uploads and downloads.
    budget: MemoryBudget,
    /// Uploads in flight, published to the collector by the upload lease.
    uploads: Arc<UploadLeases>,
}

impl Engine {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        backends: Backends,
        vault: KeyVault,
        cfg: EngineConfig,
        budget: MemoryBudget,
    ) -> EngineResult<Self> {
        cfg.chunker
            .validate()
            .map_err(|e| EngineError::InvalidArgument(format!("chunking: {e}")))?;
        backends.get(&cfg.default_backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                meta,
                backends,
                vault,
                cfg,
                budget,
                uploads: UploadLeases::new(),
            }),
        })
    }

    /// The data path's memory budget (shared with the front door).
    pub fn budget(&self) -> &MemoryBudget {
        &self.inner.budget
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

    /// This process's uploads in flight (see `jobs::uploads`).
    pub fn uploads(&self) -> &Arc<UploadLeases> {
        &self.inner.uploads
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
