//! Versioning and Object Lock jobs: the version listing, a bucket's
//! versioning state and its history, a bucket's Object Lock configuration,
//! and changes to one version's retention or legal hold.
//!
//! A key's versions are ordered by `seq` (the newest has the highest; see
//! `objects::next_slot`). Version ids are 32 hex digits: the seq they were
//! created with, then 64 random bits. Opaque to clients; the seq in front
//! lets a listing resume after a version that was deleted between pages.

use super::accounts::{RECORD_VERSIONING, bucket_from, default_retention_columns};
use super::lock::{LockUpdate, ObjectLock, retention_change_allowed};
use super::model::{Millis, Page, VersionSummary, Versioning, VersioningChange};
use super::objects::{
    fetch_limit, key_lock, lock_bucket, lock_from, page, prefix_successor, require_bucket,
};
use super::sql::{Cols, Row, Tx, params};
use super::{MetaError, MetaResult};

const BUCKET_EXCLUSIVE: &str = "SELECT name, tenant_id, backend, created_at, versioning, object_lock, \
     lock_default_mode, lock_default_days, lock_default_years FROM buckets WHERE name = $1 FOR UPDATE";
const SET_VERSIONING: &str = "UPDATE buckets SET versioning = $2 WHERE name = $1";
const SET_OBJECT_LOCK: &str = "UPDATE buckets SET object_lock = TRUE, lock_default_mode = $2, \
     lock_default_days = $3, lock_default_years = $4 WHERE name = $1";
const HISTORY: &str = "SELECT at, status FROM bucket_versioning WHERE bucket = $1 ORDER BY at, id";

const VERSION_SEQ: &str =
    "SELECT seq FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
// The rest of one key's versions, older than a marker.
const REST_OF_KEY: &str = "SELECT key, version_id, is_latest, delete_marker, size, etag, created_at \
     FROM objects WHERE bucket = $1 AND key = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4";
// Whole keys over a key range, as objects::list bounds it; each key's
// versions newest first (the objects_versions index order).
const KEYS_FROM_TO: &str = "SELECT key, version_id, is_latest, delete_marker, size, etag, created_at \
     FROM objects WHERE bucket = $1 AND key >= $2 AND key < $3 ORDER BY key, seq DESC LIMIT $4";
const KEYS_AFTER_TO: &str = "SELECT key, version_id, is_latest, delete_marker, size, etag, created_at \
     FROM objects WHERE bucket = $1 AND key > $2 AND key < $3 ORDER BY key, seq DESC LIMIT $4";
const KEYS_FROM: &str = "SELECT key, version_id, is_latest, delete_marker, size, etag, created_at \
     FROM objects WHERE bucket = $1 AND key >= $2 ORDER BY key, seq DESC LIMIT $3";
const KEYS_AFTER: &str = "SELECT key, version_id, is_latest, delete_marker, size, etag, created_at \
     FROM objects WHERE bucket = $1 AND key > $2 ORDER BY key, seq DESC LIMIT $3";

const LOCK_OF_LATEST: &str = "SELECT version_id, delete_marker, lock_mode, lock_until, legal_hold \
     FROM objects WHERE bucket = $1 AND key = $2 AND is_latest";
const LOCK_OF_VERSION: &str = "SELECT version_id, delete_marker, lock_mode, lock_until, legal_hold \
     FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
const SET_RETENTION: &str = "UPDATE objects SET lock_mode = $4, lock_until = $5 \
     WHERE bucket = $1 AND key = $2 AND version_id = $3";
const SET_LEGAL_HOLD: &str =
    "UPDATE objects SET legal_hold = $4 WHERE bucket = $1 AND key = $2 AND version_id = $3";

/// A fresh version id for a version stored with `seq`.
pub(crate) fn new_version_id(seq: i64) -> String {
    format!("{:016x}{:016x}", seq, rand::random::<u64>())
}

/// The seq a version id was created with (None for "null" or ids that are
/// not ours).
fn seq_of(version_id: &str) -> Option<i64> {
    if version_id.len() != 32 || !version_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&version_id[..16], 16)
        .ok()
        .and_then(|s| i64::try_from(s).ok())
}

/// Whether a client-supplied version id can name a version: "null" or one
/// of ours. Anything else is S3's "Invalid version id specified".
pub fn is_valid_version_id(version_id: &str) -> bool {
    version_id == "null" || seq_of(version_id).is_some()
}

fn summary_from(row: &Row) -> MetaResult<VersionSummary> {
    let c = Cols::new(row, "objects");
    Ok(VersionSummary {
        key: c.text(0)?,
        version_id: c.text(1)?,
        is_latest: c.bool(2)?,
        delete_marker: c.bool(3)?,
        size: c.u64(4)?,
        etag: c.text(5)?,
        created_at: c.i64(6)?,
    })
}

pub(crate) async fn list_versions(
    tx: &mut dyn Tx,
    bucket: &str,
    prefix: &str,
    after: Option<(&str, Option<&str>)>,
    limit: usize,
) -> MetaResult<Page<VersionSummary>> {
    require_bucket(tx, bucket).await?;
    let n = fetch_limit(limit);
    let upper = prefix_successor(prefix);
    // A marker before the prefix range does not narrow it.
    let after = after.filter(|(k, _)| *k >= prefix);
    let mut rows = Vec::new();
    if let Some((key, Some(version))) = after
        && key.starts_with(prefix)
    {
        let seq = match tx
            .query_opt(VERSION_SEQ, &params![bucket, key, version])
            .await?
        {
            Some(row) => Some(Cols::new(&row, "objects").i64(0)?),
            // Deleted since the previous page: its id still says where it was.
            None => seq_of(version),
        };
        if let Some(seq) = seq {
            rows = tx.query(REST_OF_KEY, &params![bucket, key, seq, n]).await?;
        }
    }
    let left = n - rows.len() as i64;
    if left > 0 {
        let more = match (after.map(|(k, _)| k), upper) {
            (None, Some(u)) => {
                tx.query(KEYS_FROM_TO, &params![bucket, prefix, u, left])
                    .await?
            }
            (Some(k), Some(u)) => {
                tx.query(KEYS_AFTER_TO, &params![bucket, k, u, left])
                    .await?
            }
            (None, None) => tx.query(KEYS_FROM, &params![bucket, prefix, left]).await?,
            (Some(k), None) => tx.query(KEYS_AFTER, &params![bucket, k, left]).await?,
        };
        rows.extend(more);
    }
    let items = rows
        .iter()
        .map(summary_from)
        .collect::<MetaResult<Vec<_>>>()?;
    Ok(page(items, limit))
}

pub(crate) async fn set_versioning(
    tx: &mut dyn Tx,
    bucket: &str,
    status: Versioning,
    at: Millis,
) -> MetaResult<()> {
    if status == Versioning::Unversioned {
        return Err(MetaError::InvalidRequest(
            "a bucket never returns to unversioned once versioning was enabled; suspend it instead"
                .into(),
        ));
    }
    // FOR UPDATE waits for commits holding the row FOR SHARE: each commit
    // sees one versioning state, and the history's order is the commits'.
    let Some(row) = tx.query_opt(BUCKET_EXCLUSIVE, &params![bucket]).await? else {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    };
    let b = bucket_from(&row)?;
    if b.object_lock.is_some() && status != Versioning::Enabled {
        return Err(MetaError::InvalidBucketState(
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                .into(),
        ));
    }
    if b.versioning == status {
        return Ok(());
    }
    tx.execute(SET_VERSIONING, &params![bucket, status.as_str()])
        .await?;
    tx.execute(RECORD_VERSIONING, &params![bucket, at, status.as_str()])
        .await?;
    Ok(())
}

pub(crate) async fn history(tx: &mut dyn Tx, bucket: &str) -> MetaResult<Vec<VersioningChange>> {
    require_bucket(tx, bucket).await?;
    let rows = tx.query(HISTORY, &params![bucket]).await?;
    rows.iter()
        .map(|row| {
            let c = Cols::new(row, "bucket_versioning");
            let status = c.text(1)?;
            Ok(VersioningChange {
                at: c.i64(0)?,
                status: Versioning::parse(&status).ok_or_else(|| {
                    MetaError::Corrupt(format!("bucket {bucket}: versioning {status:?}"))
                })?,
            })
        })
        .collect()
}

pub(crate) async fn set_object_lock(
    tx: &mut dyn Tx,
    bucket: &str,
    lock: super::lock::BucketLock,
) -> MetaResult<()> {
    let Some(row) = tx.query_opt(BUCKET_EXCLUSIVE, &params![bucket]).await? else {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    };
    if bucket_from(&row)?.versioning != Versioning::Enabled {
        return Err(MetaError::InvalidBucketState(
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
                .into(),
        ));
    }
    let (mode, days, years) = default_retention_columns(Some(&lock));
    tx.execute(SET_OBJECT_LOCK, &params![bucket, mode, days, years])
        .await?;
    Ok(())
}

pub(crate) async fn update_lock(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    update: LockUpdate,
    now: Millis,
) -> MetaResult<ObjectLock> {
    tx.lock_key(key_lock(bucket, key)).await?;
    if lock_bucket(tx, bucket).await?.object_lock.is_none() {
        return Err(MetaError::InvalidRequest(
            "Bucket is missing Object Lock Configuration".into(),
        ));
    }
    let row = match version_id {
        None => tx.query_opt(LOCK_OF_LATEST, &params![bucket, key]).await?,
        Some(v) => {
            tx.query_opt(LOCK_OF_VERSION, &params![bucket, key, v])
                .await?
        }
    };
    let Some(row) = row else {
        return Err(match version_id {
            None => MetaError::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            Some(v) => MetaError::NoSuchVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version: v.to_owned(),
            },
        });
    };
    let c = Cols::new(&row, "objects");
    let version = c.text(0)?;
    let whose = || format!("{bucket}/{key} version {version}");
    if c.bool(1)? {
        return Err(MetaError::InvalidRequest(format!(
            "{}: a delete marker has no Object Lock",
            whose()
        )));
    }
    let mut lock = lock_from(&c, 2, &whose)?;
    match update {
        LockUpdate::Retention {
            retention,
            bypass_governance,
        } => {
            retention_change_allowed(lock.retention, retention, now, bypass_governance)
                .map_err(|why| MetaError::Locked(format!("{}: {why}", whose())))?;
            tx.execute(
                SET_RETENTION,
                &params![
                    bucket,
                    key,
                    version.as_str(),
                    retention.map(|r| r.mode.as_str()),
                    retention.map(|r| r.until),
                ],
            )
            .await?;
            lock.retention = retention;
        }
        LockUpdate::LegalHold(on) => {
            tx.execute(SET_LEGAL_HOLD, &params![bucket, key, version.as_str(), on])
                .await?;
            lock.legal_hold = on;
        }
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_carry_their_seq_and_are_unique() {
        let a = new_version_id(7);
        let b = new_version_id(7);
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(seq_of(&a), Some(7));
        assert!(is_valid_version_id(&a));
        assert!(is_valid_version_id("null"));
        for bad in ["", "nul", "zz", "0123456789abcdef0123456789abcdeg", "../x"] {
            assert!(!is_valid_version_id(bad), "{bad}");
        }
    }
}
