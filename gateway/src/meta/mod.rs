//! Metadata: tenants, users, buckets, object versions, chunks and packs.
//!
//! One [`MetaStore`] trait; SQLite (embedded default) and PostgreSQL behind it,
//! both passing one shared test suite. Every write that makes data visible is a
//! single transaction: that commit is the linearization point of the request.

mod access;
pub mod audit;
pub mod conninfo;
pub mod lock;
pub mod manifest;
pub mod model;
pub mod postgres;
pub mod sqlite;

mod accounts;
mod bucket_config;
mod check;
mod codec;
mod gc;
mod leases;
mod lifecycle;
mod limits;
mod migrate;
mod multipart;
mod objects;
mod pg_tls;
mod refs;
mod sql;
mod store;
mod tagging;
mod versions;

use std::sync::Arc;

use async_trait::async_trait;

pub use access::{BucketAccess, PublicAccessBlock, StoredPolicy};
pub use audit::{AuditAnchor, AuditFilter, AuditRecord, AuditRow, AuditStore, ChainKey};
pub use bucket_config::ConfigKind;
pub use gc::{ChunkMove, GcStore, PackChunk, Repoint, RepointOutcome, TenantSpace, Zombie};
pub use leases::{LeaseFence, LeaseGrant, LeaseRecord, LeaseRequest, LeaseStore};
pub use lifecycle::{LifecycleState, LifecycleVersion};
pub use limits::LimitRow;
pub use lock::{
    BucketLock, DefaultRetention, LockUpdate, ObjectLock, Retention, RetentionMode, RetentionPeriod,
};
pub use manifest::{Manifest, ManifestChunk, ManifestHead, ManifestPart};
pub use migrate::LATEST as SCHEMA_VERSION;
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::SqlStore;
pub use tagging::Tags;
pub use versions::is_valid_version_id;

/// Connections a PostgreSQL store opened by [`open`] keeps at most.
pub const DEFAULT_PG_POOL_SIZE: usize = 16;

/// Opens the metadata store a URL names and brings its schema up to date:
/// `postgres://…`, `postgresql://…` or a libpq `host=… dbname=…` string for
/// PostgreSQL; `sqlite://PATH`, `sqlite::memory:` or a plain path for a
/// SQLite file (created if missing).
pub async fn open(url: &str) -> MetaResult<Arc<dyn MetaStore>> {
    let url = url.trim();
    if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("host=")
    {
        return Ok(Arc::new(PgStore::connect(url, DEFAULT_PG_POOL_SIZE).await?));
    }
    if url == "sqlite::memory:" || url == ":memory:" {
        return Ok(Arc::new(SqliteStore::open_in_memory().await?));
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.is_empty() {
        return Err(MetaError::Internal("empty metadata store path".into()));
    }
    Ok(Arc::new(SqliteStore::open(path).await?))
}

/// Why a metadata operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    #[error("no such key: {bucket}/{key}")]
    NoSuchKey { bucket: String, key: String },
    #[error("no such version {version} of {bucket}/{key}")]
    NoSuchVersion {
        bucket: String,
        key: String,
        version: String,
    },
    #[error("no such multipart upload: {0}")]
    NoSuchUpload(String),
    #[error("bucket {0} already exists and belongs to another tenant")]
    BucketAlreadyExists(String),
    #[error("bucket {0} already exists and is yours")]
    BucketAlreadyOwnedByYou(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// Object Lock (retention or legal hold) forbids the change.
    #[error("locked: {0}")]
    Locked(String),
    /// The request does not fit the bucket or version (S3 InvalidRequest).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The bucket's state forbids the change (S3 InvalidBucketState).
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    /// A chunk the request planned to reuse was collected before the commit;
    /// the client should retry the request.
    #[error("chunk {0} vanished before commit")]
    ChunkVanished(String),
    /// Work done under a lease (new packs of an upload or of compaction)
    /// may only commit while the lease is held; this one was lost.
    #[error("lease {0} was lost before commit")]
    LeaseLost(String),
    #[error("{what} already exists: {name}")]
    AlreadyExists { what: &'static str, name: String },
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },
    #[error(
        "metadata schema version {found} is newer than this binary knows ({known}); upgrade dooz"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("metadata store error: {0}")]
    Internal(String),
}

impl MetaError {
    /// The error was decided inside the transaction, which then rolled back:
    /// certainly nothing was committed. Connection and commit failures
    /// (`Unavailable`, `Internal`) leave that open.
    pub fn nothing_committed(&self) -> bool {
        matches!(
            self,
            MetaError::NoSuchBucket(_)
                | MetaError::NoSuchKey { .. }
                | MetaError::NoSuchVersion { .. }
                | MetaError::NoSuchUpload(_)
                | MetaError::BucketAlreadyExists(_)
                | MetaError::BucketAlreadyOwnedByYou(_)
                | MetaError::BucketNotEmpty(_)
                | MetaError::PreconditionFailed(_)
                | MetaError::ChunkVanished(_)
                | MetaError::LeaseLost(_)
                | MetaError::AlreadyExists { .. }
                | MetaError::NotFound { .. }
        )
    }
}

pub type MetaResult<T> = Result<T, MetaError>;

/// Keys are compared as UTF-8 byte strings everywhere (S3 lists in binary order).
/// Leases and the collector's operations live in their own traits.
#[async_trait]
pub trait MetaStore: LeaseStore + GcStore + Send + Sync + 'static {
    /// Short name for logs and metrics: "sqlite" or "postgres".
    fn kind(&self) -> &'static str;
    /// Cheap round trip, for /health/ready.
    async fn ping(&self) -> MetaResult<()>;
    /// Connections in use and idle, for metrics.
    fn pool_status(&self) -> PoolStatus;
    /// The audit log (meta/audit.rs), in the same database.
    fn audit(&self) -> &dyn AuditStore;

    // --- tenants and users ---
    async fn create_tenant(&self, tenant: &Tenant) -> MetaResult<()>;
    async fn get_tenant(&self, id: TenantId) -> MetaResult<Option<Tenant>>;
    async fn get_tenant_by_name(&self, name: &str) -> MetaResult<Option<Tenant>>;
    async fn list_tenants(&self) -> MetaResult<Vec<Tenant>>;
    async fn set_tenant_epoch(&self, id: TenantId, epoch: u32) -> MetaResult<()>;
    /// Compare-and-set of the wrapped TMK (key rotation). False if it changed meanwhile.
    async fn replace_wrapped_tmk(&self, id: TenantId, old: &[u8], new: &[u8]) -> MetaResult<bool>;
    /// Tenants ordered by id, after the cursor (for batched rotation).
    async fn list_tenants_after(
        &self,
        after: Option<TenantId>,
        limit: usize,
    ) -> MetaResult<Vec<Tenant>>;

    async fn create_user(&self, user: &User) -> MetaResult<()>;
    async fn get_user(&self, access_key: &str) -> MetaResult<Option<User>>;
    async fn list_users(&self, tenant: Option<TenantId>) -> MetaResult<Vec<User>>;
    async fn delete_user(&self, access_key: &str) -> MetaResult<bool>;

    // --- buckets ---
    /// BucketAlreadyOwnedByYou / BucketAlreadyExists when the name is taken.
    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()>;
    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>>;
    async fn list_buckets(&self, tenant: TenantId) -> MetaResult<Vec<Bucket>>;
    /// A page of a tenant's buckets: names starting with `prefix`, after
    /// `after`, at most `limit`, in name order.
    async fn list_buckets_page(
        &self,
        tenant: TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Page<Bucket>>;
    /// BucketNotEmpty while any object version or multipart upload remains.
    async fn delete_bucket(&self, name: &str) -> MetaResult<()>;
    /// Enables or suspends versioning and records the change with its time.
    /// Never back to unversioned (InvalidRequest); a bucket with Object Lock
    /// stays enabled (InvalidBucketState).
    async fn set_bucket_versioning(
        &self,
        bucket: &str,
        status: Versioning,
        at: Millis,
    ) -> MetaResult<()>;
    /// Every versioning change of the bucket, oldest first.
    async fn versioning_history(&self, bucket: &str) -> MetaResult<Vec<VersioningChange>>;
    /// Enables Object Lock (permanent) with this default retention, or
    /// changes the default. Versioning must be enabled (InvalidBucketState).
    async fn set_bucket_object_lock(&self, bucket: &str, lock: BucketLock) -> MetaResult<()>;

    // --- objects ---
    /// The latest version when `version_id` is None (which may be a delete marker).
    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> MetaResult<Option<ObjectVersion>>;
    /// Like `get_object`, but a manifest of more than `inline_limit` bytes
    /// is not read: the version then carries its parts list only (no
    /// chunks), and the head says where to read entries with
    /// `manifest_slice`.
    async fn get_object_bounded(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        inline_limit: usize,
    ) -> MetaResult<Option<(ObjectVersion, Option<ManifestHead>)>>;
    /// `len` bytes of a version's stored manifest from byte `offset`.
    async fn manifest_slice(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        offset: u64,
        len: usize,
    ) -> MetaResult<Vec<u8>>;
    /// Every version and delete marker with key starting with `prefix`, keys
    /// in byte order and each key's versions newest first, at most `limit`.
    /// `after` = (key, None) resumes after every version of that key;
    /// (key, Some(version)) after that version of it.
    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, Option<&str>)>,
        limit: usize,
    ) -> MetaResult<Page<VersionSummary>>;
    /// Changes the retention or legal hold of a version (the latest when
    /// `version_id` is None) under S3's rules: Locked when forbidden,
    /// InvalidRequest on a bucket without Object Lock or on a delete marker.
    /// Returns the version's lock after the change.
    async fn update_object_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        update: LockUpdate,
        now: Millis,
    ) -> MetaResult<ObjectLock>;
    /// Latest, non-delete-marker versions with key starting with `prefix` and
    /// strictly greater than `after`, in byte order, at most `limit`.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Page<ObjectSummary>>;
    /// Which of these chunks exist for the tenant (live or zombie). A zombie hit
    /// has its zombie_since moved to now, so GC grants the caller a full grace
    /// period to commit its reference.
    async fn lookup_chunks(&self, tenant: TenantId, ids: &[ChunkKey]) -> MetaResult<Vec<ChunkKey>>;
    async fn chunk_locations(
        &self,
        tenant: TenantId,
        ids: &[ChunkKey],
    ) -> MetaResult<Vec<(ChunkKey, ChunkLocation)>>;
    /// The backend each pack lives on (dedup is per tenant, so a bucket's
    /// objects may reference chunks stored on another of the tenant's backends).
    async fn pack_backends(
        &self,
        tenant: TenantId,
        ids: &[PackKey],
    ) -> MetaResult<Vec<(PackKey, String)>>;
    /// One transaction: evaluate conditions against the latest version; insert
    /// new packs and chunks (insert-or-increment); increment (and revive)
    /// reused chunks, failing with ChunkVanished if one is gone; on a
    /// versioning-enabled bucket add a version with a new id, else replace
    /// the "null" version (decrementing its chunks; Locked if it is locked);
    /// insert the version as latest with its Object Lock.
    async fn commit_object(&self, commit: ObjectCommit) -> MetaResult<CommitOutcome>;
    /// S3's DeleteObject. With a version id: remove that version for good
    /// and decrement its chunks (Locked if Object Lock forbids it; a missing
    /// version is not an error). Without: unversioned buckets remove the
    /// "null" version; enabled ones add a delete marker; suspended ones
    /// replace the "null" version with a "null" delete marker.
    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
    ) -> MetaResult<DeleteOutcome>;

    // --- tags ---
    /// Replaces the tag set of a version (the latest when `version_id` is
    /// None); returns its version id. NoSuchKey / NoSuchVersion when it does
    /// not exist, InvalidRequest on a delete marker.
    async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> MetaResult<String>;
    /// A bucket's tag set (None when it has none); NoSuchBucket.
    async fn bucket_tags(&self, bucket: &str) -> MetaResult<Option<Tags>>;
    /// Replaces a bucket's tag set; None removes it. NoSuchBucket.
    async fn set_bucket_tags(&self, bucket: &str, tags: Option<&Tags>) -> MetaResult<()>;

    // --- access policies ---
    /// Creates or replaces a tenant's named policy (document already
    /// checked); InvalidRequest for a built-in name, NotFound for a tenant.
    async fn put_policy(&self, policy: &StoredPolicy) -> MetaResult<()>;
    async fn get_policy(&self, tenant: TenantId, name: &str) -> MetaResult<Option<StoredPolicy>>;
    async fn list_policies(&self, tenant: TenantId) -> MetaResult<Vec<StoredPolicy>>;
    /// False when there was none; InvalidRequest while a user holds it.
    async fn delete_policy(&self, tenant: TenantId, name: &str) -> MetaResult<bool>;
    /// Attaches a built-in or tenant policy to a user (idempotent);
    /// NotFound for an unknown user or policy.
    async fn attach_user_policy(&self, access_key: &str, policy: &str) -> MetaResult<()>;
    /// False when it was not attached; NotFound for an unknown user.
    async fn detach_user_policy(&self, access_key: &str, policy: &str) -> MetaResult<bool>;
    /// The names of the policies attached to a user, sorted.
    async fn user_policies(&self, access_key: &str) -> MetaResult<Vec<String>>;
    /// A bucket's policy text and Block Public Access flags; NoSuchBucket.
    async fn bucket_access(&self, bucket: &str) -> MetaResult<BucketAccess>;
    /// Replaces (Some) or removes (None) the bucket policy; NoSuchBucket.
    async fn set_bucket_policy(&self, bucket: &str, policy: Option<&str>) -> MetaResult<()>;
    /// Replaces (Some) or removes (None) the bucket's Block Public Access
    /// flags; NoSuchBucket.
    async fn set_public_access_block(
        &self,
        bucket: &str,
        pab: Option<&PublicAccessBlock>,
    ) -> MetaResult<()>;

    // --- bucket configurations (CORS, default encryption) ---
    /// A bucket's configuration of one kind (JSON), None without one;
    /// NoSuchBucket.
    async fn bucket_config(&self, bucket: &str, kind: ConfigKind) -> MetaResult<Option<String>>;
    /// Replaces (Some) or removes (None) it; NoSuchBucket.
    async fn set_bucket_config(
        &self,
        bucket: &str,
        kind: ConfigKind,
        body: Option<&str>,
    ) -> MetaResult<()>;

    // --- throttling overrides (`dooz admin limits`) ---
    /// Every override, by scope and subject.
    async fn limit_overrides(&self) -> MetaResult<Vec<LimitRow>>;
    /// Stores (Some) or removes (None) one; whether a row was removed or
    /// written.
    async fn set_limit_override(
        &self,
        scope: &str,
        subject: &str,
        body: Option<&str>,
    ) -> MetaResult<bool>;

    // --- lifecycle ---
    /// A bucket's lifecycle configuration (JSON), None without one; NoSuchBucket.
    async fn bucket_lifecycle(&self, bucket: &str) -> MetaResult<Option<String>>;
    /// Replaces (Some) or removes (None) it; NoSuchBucket.
    async fn set_bucket_lifecycle(&self, bucket: &str, config: Option<&str>) -> MetaResult<()>;
    /// Names of the buckets with a lifecycle configuration, in order.
    async fn buckets_with_lifecycle(&self) -> MetaResult<Vec<String>>;
    async fn lifecycle_state(&self, bucket: &str) -> MetaResult<Option<LifecycleState>>;
    async fn lifecycle_states(&self) -> MetaResult<Vec<LifecycleState>>;
    /// Inserts or replaces a bucket's progress; NoSuchBucket.
    async fn save_lifecycle_state(&self, state: &LifecycleState) -> MetaResult<()>;
    /// Every version of whole keys after `after` (keys in order, versions
    /// newest first): at least `limit` rows unless the bucket ends, more
    /// when one key has more versions.
    async fn lifecycle_scan(
        &self,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Page<LifecycleVersion>>;
    /// Expires the key's current version (as DeleteObject without a version
    /// id) only if `version_id` is still its latest, non-marker version.
    async fn lifecycle_expire_current(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> MetaResult<Option<DeleteOutcome>>;

    // --- multipart ---
    async fn create_multipart(&self, upload: &MultipartUpload) -> MetaResult<()>;
    async fn get_multipart(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>>;
    /// Uploads of a bucket ordered by (key, upload_id) after the markers.
    async fn list_multipart(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> MetaResult<Page<MultipartUpload>>;
    /// Stores a part (same chunk accounting as commit_object); replaces a part
    /// with the same number, releasing its references. NoSuchUpload if gone.
    async fn commit_part(&self, commit: PartCommit) -> MetaResult<()>;
    /// Parts ordered by number, after the marker.
    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize)
    -> MetaResult<Page<Part>>;
    /// Turns the upload into an object version: `joined` concatenates the
    /// chosen parts as the engine read them (checked against the stored
    /// parts: a part replaced since is NotFound "part"); `commit.manifest`
    /// holds the same bytes, its part boundaries possibly re-chunked into
    /// `commit.new_chunks` (`engine/heal.rs`). Every part's references are
    /// released and the object's added; the upload and its parts disappear.
    /// Conditions as in commit_object.
    async fn complete_multipart_from(
        &self,
        upload_id: &str,
        commit: ObjectCommit,
        joined: Manifest,
    ) -> MetaResult<CommitOutcome>;
    /// `complete_multipart_from` with the parts' entries stored as they are.
    async fn complete_multipart(
        &self,
        upload_id: &str,
        commit: ObjectCommit,
    ) -> MetaResult<CommitOutcome> {
        let joined = commit.manifest.clone();
        self.complete_multipart_from(upload_id, commit, joined)
            .await
    }
    /// Releases every part's references and removes the upload.
    async fn abort_multipart(&self, upload_id: &str) -> MetaResult<()>;

    // --- packs, accounting, checks ---
    async fn list_packs(&self, tenant: Option<TenantId>) -> MetaResult<Vec<PackRecord>>;
    async fn usage(&self, tenant: Option<TenantId>) -> MetaResult<UsageStats>;
    /// Recomputes refcounts from every manifest (objects and parts) and pack
    /// live bytes from live chunks, and compares with what is stored.
    async fn fsck(&self) -> MetaResult<FsckReport>;
}
