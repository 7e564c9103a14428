//! What can go wrong with an object operation, in S3's terms but without HTTP.

use crate::meta::MetaError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("The specified bucket does not exist: {0}")]
    NoSuchBucket(String),
    #[error("The specified key does not exist: {0}")]
    NoSuchKey(String),
    #[error("The specified version does not exist: {0}")]
    NoSuchVersion(String),
    #[error("The specified multipart upload does not exist: {0}")]
    NoSuchUpload(String),
    /// The version asked for (or, without a version id, the latest) is a
    /// delete marker: 404 NoSuchKey, or 405 when it was named by version id.
    #[error("The specified key {key} is a delete marker (version {version_id})")]
    DeleteMarker {
        key: String,
        version_id: String,
        last_modified: i64,
        /// Named by its version id (405 MethodNotAllowed) rather than being
        /// the latest version (404 NoSuchKey).
        addressed: bool,
    },
    /// Object Lock forbids it (S3 answers AccessDenied).
    #[error("Access Denied because object protected by object lock: {0}")]
    ObjectLocked(String),
    #[error("{0}")]
    InvalidBucketState(String),
    #[error("The specified object does not have a ObjectLock configuration: {0}")]
    NoSuchObjectLockConfiguration(String),
    #[error("Object Lock configuration does not exist for this bucket: {0}")]
    ObjectLockConfigurationNotFound(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("Access Denied: {0}")]
    AccessDenied(String),
    #[error("The requested bucket name is not available: {0}")]
    BucketAlreadyExists(String),
    #[error(
        "Your previous request to create the named bucket succeeded and you already own it: {0}"
    )]
    BucketAlreadyOwnedByYou(String),
    #[error("The bucket you tried to delete is not empty: {0}")]
    BucketNotEmpty(String),
    #[error("The specified bucket is not valid: {0}")]
    InvalidBucketName(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("The requested range is not satisfiable (object size {size})")]
    InvalidRange { size: u64 },
    #[error("Your proposed upload exceeds the maximum allowed size of {max} bytes")]
    EntityTooLarge { max: u64 },
    #[error("Your key is too long: {len} bytes, maximum 1024")]
    KeyTooLong { len: usize },
    #[error("Your metadata headers exceed the maximum allowed metadata size of 2048 bytes")]
    MetadataTooLarge,
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    #[error("Not Modified")]
    NotModified,
    #[error(
        "One or more of the specified parts could not be found, or its entity tag did not match (part {0})"
    )]
    InvalidPart(u32),
    #[error("The list of parts was not in ascending order; parts must be ordered by part number")]
    InvalidPartOrder,
    #[error(
        "Your proposed upload is smaller than the minimum allowed size: part {0} is below 5 MiB and not the last"
    )]
    EntityTooSmall(u32),
    #[error("{0}")]
    MalformedXml(String),
    /// A tag breaks S3's rules (length, characters, duplicates, `aws:`).
    #[error("{0}")]
    InvalidTag(String),
    /// S3's generic 400 (e.g. more than 10 tags on an object).
    #[error("{0}")]
    BadRequest(String),
    #[error("The TagSet does not exist: {0}")]
    NoSuchTagSet(String),
    #[error("The lifecycle configuration does not exist: {0}")]
    NoSuchLifecycleConfiguration(String),
    #[error("The CORS configuration does not exist: {0}")]
    NoSuchCorsConfiguration(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The requested partnumber is not satisfiable")]
    InvalidPartNumber,
    #[error("{0}")]
    BadDigest(String),
    #[error("The Content-MD5 or checksum value that you specified is not valid: {0}")]
    InvalidDigest(String),
    #[error(
        "You did not provide the number of bytes specified by the Content-Length HTTP header ({expected} expected, {received} received)"
    )]
    IncompleteBody { expected: u64, received: u64 },
    #[error("The request body could not be read: {0}")]
    BodyRead(String),
    /// The gateway is out of memory budget; the client should slow down.
    #[error("{0}")]
    SlowDown(String),
    /// Backend or metadata store out of reach; the client should retry.
    #[error("Service unavailable: {0}")]
    Unavailable(String),
    /// A chunk failed authentication or its id check: never serve it.
    #[error("Stored data failed verification: {0}")]
    Corrupt(String),
    #[error("Internal error: {0}")]
    Internal(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

impl From<MetaError> for EngineError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::NoSuchBucket(b) => EngineError::NoSuchBucket(b),
            MetaError::NoSuchKey { key, .. } => EngineError::NoSuchKey(key),
            MetaError::NoSuchVersion { version, .. } => EngineError::NoSuchVersion(version),
            MetaError::NoSuchUpload(u) => EngineError::NoSuchUpload(u),
            MetaError::BucketAlreadyExists(b) => EngineError::BucketAlreadyExists(b),
            MetaError::BucketAlreadyOwnedByYou(b) => EngineError::BucketAlreadyOwnedByYou(b),
            MetaError::BucketNotEmpty(b) => EngineError::BucketNotEmpty(b),
            MetaError::PreconditionFailed(_) => EngineError::PreconditionFailed,
            MetaError::Locked(m) => EngineError::ObjectLocked(m),
            MetaError::InvalidRequest(m) => EngineError::InvalidRequest(m),
            MetaError::InvalidBucketState(m) => EngineError::InvalidBucketState(m),
            // The client retries, and the retry stores the chunk afresh.
            MetaError::ChunkVanished(c) => EngineError::Unavailable(format!(
                "a reused chunk was collected concurrently ({c}); retry"
            )),
            // The gateway could not renew its upload lease in time; a retry
            // runs under the new one.
            MetaError::LeaseLost(l) => EngineError::Unavailable(format!(
                "the upload lease {l} was lost before commit; retry"
            )),
            MetaError::Unavailable(m) => EngineError::Unavailable(format!("metadata store: {m}")),
            MetaError::Corrupt(m) => EngineError::Corrupt(format!("metadata: {m}")),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { .. } => EngineError::Unavailable(e.to_string()),
            // A pack the metadata references is gone: data loss, not a 404.
            StoreError::NotFound { .. } => EngineError::Corrupt(e.to_string()),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

impl From<dooz_keyvault::KeyError> for EngineError {
    fn from(e: dooz_keyvault::KeyError) -> Self {
        if e.is_retryable() {
            EngineError::Unavailable(format!("key service: {e}"))
        } else {
            EngineError::Internal(format!("keys: {e}"))
        }
    }
}

impl From<crate::budget::BudgetError> for EngineError {
    fn from(e: crate::budget::BudgetError) -> Self {
        EngineError::SlowDown(e.to_string())
    }
}
