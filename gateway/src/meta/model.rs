//! Records the metadata store holds, independent of the database behind it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lock::{BucketLock, ObjectLock};
use super::manifest::Manifest;

/// Tenant ids are UUIDs; their 16 bytes go into chunk AADs.
pub type TenantId = uuid::Uuid;

/// 32-byte keyed-BLAKE3 chunk id (see chunker::ChunkId); kept as bytes here so
/// the metadata layer does not depend on the chunker.
pub type ChunkKey = [u8; 32];

/// Random 16-byte pack id; its lowercase hex is the pack's name on the backend.
pub type PackKey = [u8; 16];

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// "aes-256-gcm-siv" or "chacha20-poly1305".
    pub cipher: String,
    /// Encryption epoch new chunks are sealed under.
    pub current_epoch: u32,
    /// keyvault::WrappedTmk::to_bytes()
    pub wrapped_tmk: Vec<u8>,
    pub created_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub access_key: String,
    pub tenant_id: TenantId,
    pub name: String,
    /// The secret key sealed with the tenant's K_secret (keyvault::secrets).
    pub secret_sealed: Vec<u8>,
    pub policy: Policy,
    pub created_at: Millis,
}

/// What a user may do inside its own tenant. Nobody reaches another tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Everything in the tenant, buckets included.
    Admin,
    /// Read and write objects; cannot create or delete buckets.
    ReadWrite,
    /// List and read only.
    ReadOnly,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Admin => "admin",
            Policy::ReadWrite => "read-write",
            Policy::ReadOnly => "read-only",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Policy::Admin),
            "read-write" => Some(Policy::ReadWrite),
            "read-only" => Some(Policy::ReadOnly),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub tenant_id: TenantId,
    /// Name of the backend (from the config) its packs go to.
    pub backend: String,
    pub created_at: Millis,
    pub versioning: Versioning,
    /// Some when Object Lock is enabled (permanent; versioning stays enabled).
    pub object_lock: Option<BucketLock>,
}

/// A bucket's versioning state. A bucket starts unversioned and, once
/// versioning was enabled, is only ever enabled or suspended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Versioning {
    /// Writes replace the one "null" version of a key.
    #[default]
    Unversioned,
    /// Every write adds a version with a new id; deletes add delete markers.
    Enabled,
    /// Writes replace the "null" version; older versions stay.
    Suspended,
}

impl Versioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Versioning::Unversioned => "unversioned",
            Versioning::Enabled => "enabled",
            Versioning::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unversioned" => Some(Versioning::Unversioned),
            "enabled" => Some(Versioning::Enabled),
            "suspended" => Some(Versioning::Suspended),
            _ => None,
        }
    }
}

/// One change of a bucket's versioning state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersioningChange {
    pub at: Millis,
    pub status: Versioning,
}

/// The representation and integrity data stored with an object version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    pub size: u64,
    /// Quoted S3 ETag, e.g. "\"9e107d9d372bb6826bd81d3542a419d6\"" or "\"...-3\"".
    pub etag: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// RFC 7231 date as sent by the client.
    pub expires: Option<String>,
    /// x-amz-meta-* without the prefix, lower-cased names.
    pub user_metadata: BTreeMap<String, String>,
    /// Algorithm name ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256") -> base64 value.
    pub checksums: BTreeMap<String, String>,
    /// "FULL_OBJECT" or "COMPOSITE" when checksums are present.
    pub checksum_type: Option<String>,
    /// Object tags (S3 tagging) of this version: at most 10, unique keys.
    /// Changed in place by PutObjectTagging; absent in rows written before
    /// tagging existed, which read as no tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub bucket: String,
    pub key: String,
    /// "null" for objects written while versioning is off or suspended.
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub attrs: ObjectAttrs,
    pub created_at: Millis,
    pub manifest: Manifest,
    pub lock: ObjectLock,
}

/// One row of a version listing: a version or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSummary {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub created_at: Millis,
}

/// One row of a listing (latest, non-delete-marker versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub created_at: Millis,
}

/// Where a chunk's frame lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub pack_id: PackKey,
    pub offset: u64,
    pub len: u32,
    pub plain_len: u32,
    pub epoch: u32,
}

/// A frame this upload wrote into one of its new packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewChunk {
    pub id: ChunkKey,
    pub loc: ChunkLocation,
}

/// A pack this upload wrote and the backend acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPack {
    pub id: PackKey,
    pub backend: String,
    pub size: u64,
    /// The lease it was written under: the commit fails (`LeaseLost`) unless
    /// that lease is still held, because once it is gone the orphan sweep
    /// may delete the pack. None only for tools and tests with no collector.
    pub fence: Option<super::leases::LeaseFence>,
}

/// Conditions evaluated against the current latest version inside the commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteConditions {
    /// Commit only if the latest version's etag equals one of these (quoted or not; "*" = exists).
    pub if_match: Option<String>,
    /// Commit only if no latest version exists ("*") or its etag differs.
    pub if_none_match: Option<String>,
}

/// Everything one PutObject / CompleteMultipartUpload / CopyObject commits at
/// once. The version id is the store's choice, from the bucket's versioning
/// state inside the transaction: a new id when enabled, else "null".
#[derive(Clone, Debug)]
pub struct ObjectCommit {
    pub tenant_id: TenantId,
    pub bucket: String,
    pub key: String,
    pub attrs: ObjectAttrs,
    pub created_at: Millis,
    pub manifest: Manifest,
    /// Frames this request stored; all other manifest chunks must already exist
    /// (live or zombie) and are revived / incremented.
    pub new_chunks: Vec<NewChunk>,
    pub new_packs: Vec<NewPack>,
    pub conditions: WriteConditions,
    /// The Object Lock the request asked for (x-amz-object-lock-* headers);
    /// None takes the bucket's default retention. A bucket without Object
    /// Lock refuses Some.
    pub lock: Option<ObjectLock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The id of the version the commit wrote.
    pub version_id: String,
    /// The "null" version this commit replaced (unversioned or suspended overwrite).
    pub replaced: Option<String>,
    /// New chunks whose row another concurrent upload created first: their
    /// frames in our packs are dead bytes.
    pub lost_races: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version removed for good, if any.
    pub deleted_version: Option<String>,
    /// Whether the version removed was a delete marker.
    pub delete_marker: bool,
    /// The delete marker this delete added (versioned or suspended bucket,
    /// no version id given).
    pub created_marker: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartUpload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub tenant_id: TenantId,
    /// Attributes given at CreateMultipartUpload (size/etag filled at completion).
    pub attrs: ObjectAttrs,
    /// The checksum algorithm the client announced, if any.
    pub checksum_algorithm: Option<String>,
    pub created_at: Millis,
    /// Object Lock headers of CreateMultipartUpload, applied at completion.
    pub object_lock: Option<ObjectLock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub checksums: BTreeMap<String, String>,
    pub created_at: Millis,
    pub manifest: Manifest,
}

#[derive(Clone, Debug)]
pub struct PartCommit {
    pub tenant_id: TenantId,
    pub upload_id: String,
    pub part: Part,
    pub new_chunks: Vec<NewChunk>,
    pub new_packs: Vec<NewPack>,
}

/// A page of a listing. `next` is the last key (or upload/part marker) returned
/// when more rows exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRecord {
    pub id: PackKey,
    pub tenant_id: TenantId,
    pub backend: String,
    pub size: u64,
    pub live_bytes: u64,
    pub created_at: Millis,
}

/// A metadata store's connections, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub in_use: usize,
    pub idle: usize,
    /// The pool's limit, where it has one.
    pub max: Option<usize>,
}

/// Logical vs stored totals of one tenant (or all, summed).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageStats {
    pub objects: u64,
    pub logical_bytes: u64,
    pub chunks: u64,
    pub chunk_plain_bytes: u64,
    pub chunk_stored_bytes: u64,
    pub packs: u64,
    pub pack_bytes: u64,
}

/// What `dooz fsck` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub objects_checked: u64,
    pub parts_checked: u64,
    pub chunks_checked: u64,
    /// (tenant, chunk, stored refcount, recomputed refcount)
    pub refcount_mismatches: Vec<(TenantId, ChunkKey, i64, i64)>,
    /// Manifest entries whose chunk row does not exist.
    pub missing_chunks: Vec<(TenantId, ChunkKey)>,
    /// Chunk rows pointing at a pack row that does not exist.
    pub missing_pack_rows: Vec<PackKey>,
    /// Packs whose live_bytes disagree with the sum of their live chunks.
    pub live_bytes_mismatches: Vec<(PackKey, u64, u64)>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.refcount_mismatches.is_empty()
            && self.missing_chunks.is_empty()
            && self.missing_pack_rows.is_empty()
            && self.live_bytes_mismatches.is_empty()
    }
}
