//! Object versions: reads, listings, the commit transaction and deletes.

use super::accounts::bucket_from;
use super::codec::{attrs_from_json, attrs_to_json, bare_etag, manifest_from, to_i64};
use super::lock::{ObjectLock, Retention, RetentionMode};
use super::manifest::{Manifest, ManifestError, ManifestHead};
use super::model::{
    Bucket, CommitOutcome, DeleteOutcome, Millis, ObjectAttrs, ObjectCommit, ObjectSummary,
    ObjectVersion, Page, TenantId, Versioning, WriteConditions,
};
use super::refs::{self, RefChanges};
use super::sql::{Cols, Row, Tx, lock_key, params};
use super::versions::new_version_id;
use super::{MetaError, MetaResult};

const GET_LATEST: &str = "SELECT bucket, key, version_id, is_latest, delete_marker, attrs, created_at, manifest, \
     lock_mode, lock_until, legal_hold FROM objects WHERE bucket = $1 AND key = $2 AND is_latest";
const GET_VERSION: &str = "SELECT bucket, key, version_id, is_latest, delete_marker, attrs, created_at, manifest, \
     lock_mode, lock_until, legal_hold FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
// The same without a manifest longer than $N bytes (NULL), with the
// manifest's length last; both stores compute length() without reading it.
const GET_LATEST_BOUNDED: &str = "SELECT bucket, key, version_id, is_latest, delete_marker, attrs, created_at, \
     CASE WHEN length(manifest) <= $3 THEN manifest ELSE NULL END, \
     lock_mode, lock_until, legal_hold, \
     length(manifest) FROM objects WHERE bucket = $1 AND key = $2 AND is_latest";
const GET_VERSION_BOUNDED: &str = "SELECT bucket, key, version_id, is_latest, delete_marker, attrs, created_at, \
     CASE WHEN length(manifest) <= $4 THEN manifest ELSE NULL END, \
     lock_mode, lock_until, legal_hold, \
     length(manifest) FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
/// Bytes of a large manifest read first, for its parts list (10,000 parts
/// with their ETags need about 600 KB; most need far less).
const PARTS_PREFIX: usize = 64 * 1024;
const BUCKET_TENANT: &str = "SELECT tenant_id FROM buckets WHERE name = $1";
// The bucket row as accounts::bucket_from reads it, held against deletion
// and against versioning changes until the transaction ends.
const BUCKET_SHARED: &str = "SELECT name, tenant_id, backend, created_at, versioning, object_lock, \
     lock_default_mode, lock_default_days, lock_default_years FROM buckets WHERE name = $1 FOR SHARE";
const LATEST_ETAG: &str =
    "SELECT etag, delete_marker FROM objects WHERE bucket = $1 AND key = $2 AND is_latest";
const VERSION_REFS: &str = "SELECT is_latest, delete_marker, manifest, lock_mode, lock_until, legal_hold \
     FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
const NEWEST: &str = "SELECT seq, created_at FROM objects WHERE bucket = $1 AND key = $2 \
     ORDER BY seq DESC LIMIT 1";
const DELETE_VERSION: &str =
    "DELETE FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
const CLEAR_LATEST: &str =
    "UPDATE objects SET is_latest = FALSE WHERE bucket = $1 AND key = $2 AND is_latest";
const INSERT_VERSION: &str = "INSERT INTO objects \
     (bucket, key, version_id, is_latest, delete_marker, size, etag, attrs, created_at, manifest, \
      seq, lock_mode, lock_until, legal_hold) \
     VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const PROMOTE_NEWEST: &str = "UPDATE objects SET is_latest = TRUE \
     WHERE bucket = $1 AND key = $2 AND version_id = \
     (SELECT version_id FROM objects WHERE bucket = $1 AND key = $2 \
      ORDER BY seq DESC LIMIT 1)";

// Listings scan the (bucket, key) WHERE is_latest index over a key range:
// `prefix <= key < successor(prefix)`, or `key > after` when that is tighter.
const LIST_FROM_TO: &str = "SELECT key, size, etag, created_at FROM objects \
     WHERE bucket = $1 AND is_latest AND NOT delete_marker AND key >= $2 AND key < $3 \
     ORDER BY key LIMIT $4";
const LIST_AFTER_TO: &str = "SELECT key, size, etag, created_at FROM objects \
     WHERE bucket = $1 AND is_latest AND NOT delete_marker AND key > $2 AND key < $3 \
     ORDER BY key LIMIT $4";
const LIST_FROM: &str = "SELECT key, size, etag, created_at FROM objects \
     WHERE bucket = $1 AND is_latest AND NOT delete_marker AND key >= $2 \
     ORDER BY key LIMIT $3";
const LIST_AFTER: &str = "SELECT key, size, etag, created_at FROM objects \
     WHERE bucket = $1 AND is_latest AND NOT delete_marker AND key > $2 \
     ORDER BY key LIMIT $3";

/// Serialises every transaction that changes one key (commit, delete,
/// complete) across all gateway processes sharing the database.
pub(crate) fn key_lock(bucket: &str, key: &str) -> i64 {
    lock_key("object", &[bucket, key])
}

fn version_from(row: &Row) -> MetaResult<ObjectVersion> {
    let c = Cols::new(row, "objects");
    let bucket = c.text(0)?;
    let key = c.text(1)?;
    let version_id = c.text(2)?;
    let whose = || format!("{bucket}/{key} version {version_id}");
    let attrs = attrs_from_json(&c.text(5)?, &whose)?;
    let manifest = manifest_from(c.bytes(7)?, &whose)?;
    Ok(ObjectVersion {
        is_latest: c.bool(3)?,
        delete_marker: c.bool(4)?,
        attrs,
        created_at: c.i64(6)?,
        manifest,
        lock: lock_from(&c, 8, &whose)?,
        bucket,
        key,
        version_id,
    })
}

/// A version's Object Lock from its `lock_mode, lock_until, legal_hold`
/// columns, starting at column `at`.
pub(crate) fn lock_from(
    c: &Cols<'_>,
    at: usize,
    whose: &dyn Fn() -> String,
) -> MetaResult<ObjectLock> {
    let retention = match (c.opt_text(at)?, c.opt_i64(at + 1)?) {
        (None, None) => None,
        (Some(mode), Some(until)) => Some(Retention {
            mode: RetentionMode::parse(&mode).ok_or_else(|| {
                MetaError::Corrupt(format!("{}: unknown retention mode {mode:?}", whose()))
            })?,
            until,
        }),
        _ => {
            return Err(MetaError::Corrupt(format!(
                "{}: retention mode and date must be set together",
                whose()
            )));
        }
    };
    Ok(ObjectLock {
        retention,
        legal_hold: c.bool(at + 2)?,
    })
}

pub(crate) async fn get(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> MetaResult<Option<ObjectVersion>> {
    let row = match version_id {
        None => tx.query_opt(GET_LATEST, &params![bucket, key]).await?,
        Some(v) => tx.query_opt(GET_VERSION, &params![bucket, key, v]).await?,
    };
    row.as_ref().map(version_from).transpose()
}

/// A version whose manifest is read whole only up to `inline_limit` bytes;
/// a larger one comes with its parts list only and the `ManifestHead` to
/// read its chunk entries with `manifest_slice`.
pub(crate) async fn get_bounded(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    inline_limit: usize,
) -> MetaResult<Option<(ObjectVersion, Option<ManifestHead>)>> {
    let limit = i64::try_from(inline_limit).unwrap_or(i64::MAX);
    let row = match version_id {
        None => {
            tx.query_opt(GET_LATEST_BOUNDED, &params![bucket, key, limit])
                .await?
        }
        Some(v) => {
            tx.query_opt(GET_VERSION_BOUNDED, &params![bucket, key, v, limit])
                .await?
        }
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let c = Cols::new(&row, "objects");
    let len = c.u64(11)?;
    if len <= inline_limit as u64 {
        return version_from(&row).map(|v| Some((v, None)));
    }
    let (bucket, key, version) = (c.text(0)?, c.text(1)?, c.text(2)?);
    let whose = || format!("{bucket}/{key} version {version}");
    let corrupt = |e: ManifestError| MetaError::Corrupt(format!("manifest of {}: {e}", whose()));
    // The parts list is usually inside the first piece; a long one is read on.
    let mut prefix = slice(tx, &bucket, &key, &version, 0, PARTS_PREFIX).await?;
    let (manifest, head) = loop {
        match Manifest::decode_head(&prefix, len) {
            Ok(h) => break h,
            Err(ManifestError::Truncated(_)) if (prefix.len() as u64) < len => {
                let more = slice(
                    tx,
                    &bucket,
                    &key,
                    &version,
                    prefix.len() as u64,
                    prefix.len(),
                )
                .await?;
                if more.is_empty() {
                    return Err(corrupt(ManifestError::Truncated(prefix.len())));
                }
                prefix.extend_from_slice(&more);
            }
            Err(e) => return Err(corrupt(e)),
        }
    };
    let attrs = attrs_from_json(&c.text(5)?, &whose)?;
    Ok(Some((
        ObjectVersion {
            is_latest: c.bool(3)?,
            delete_marker: c.bool(4)?,
            attrs,
            created_at: c.i64(6)?,
            manifest,
            lock: lock_from(&c, 8, &whose)?,
            bucket,
            key,
            version_id: version,
        },
        Some(head),
    )))
}

/// `len` bytes of a version's manifest from byte `offset` (fewer at its end).
pub(crate) async fn slice(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: &str,
    offset: u64,
    len: usize,
) -> MetaResult<Vec<u8>> {
    tx.manifest_range([bucket, key, version_id], offset, len)
        .await?
        .ok_or_else(|| MetaError::NoSuchVersion {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: version_id.to_owned(),
        })
}

/// The smallest string greater than every string that starts with `prefix`,
/// in byte (= code point) order; None when no such bound exists.
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `limit + 1` rows are fetched so a page knows whether more follow.
pub(crate) fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

pub(crate) fn page<T>(mut items: Vec<T>, limit: usize) -> Page<T> {
    let truncated = items.len() > limit;
    items.truncate(limit);
    Page { items, truncated }
}

pub(crate) async fn require_bucket(tx: &mut dyn Tx, bucket: &str) -> MetaResult<TenantId> {
    match tx.query_opt(BUCKET_TENANT, &params![bucket]).await? {
        Some(row) => Cols::new(&row, "buckets").tenant(0),
        None => Err(MetaError::NoSuchBucket(bucket.to_owned())),
    }
}

pub(crate) async fn list(
    tx: &mut dyn Tx,
    bucket: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> MetaResult<Page<ObjectSummary>> {
    require_bucket(tx, bucket).await?;
    let n = fetch_limit(limit);
    let upper = prefix_successor(prefix);
    let rows = match (after.filter(|a| *a >= prefix), upper) {
        (None, Some(u)) => {
            tx.query(LIST_FROM_TO, &params![bucket, prefix, u, n])
                .await?
        }
        (Some(a), Some(u)) => tx.query(LIST_AFTER_TO, &params![bucket, a, u, n]).await?,
        (None, None) => tx.query(LIST_FROM, &params![bucket, prefix, n]).await?,
        (Some(a), None) => tx.query(LIST_AFTER, &params![bucket, a, n]).await?,
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let c = Cols::new(row, "objects");
        items.push(ObjectSummary {
            key: c.text(0)?,
            size: c.u64(1)?,
            etag: c.text(2)?,
            created_at: c.i64(3)?,
        });
    }
    Ok(page(items, limit))
}

/// Whether `etag` is one of the comma-separated ETags in a conditional
/// header (`*` matches any).
fn etag_listed(header: &str, etag: &str) -> bool {
    let etag = bare_etag(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || bare_etag(t) == etag)
}

/// If-Match / If-None-Match against the current latest version (a delete
/// marker counts as no version).
pub(crate) fn check_conditions(c: &WriteConditions, current: Option<&str>) -> MetaResult<()> {
    if let Some(m) = &c.if_match {
        match current {
            None => {
                return Err(MetaError::PreconditionFailed(
                    "If-Match: the object does not exist".into(),
                ));
            }
            Some(etag) if !etag_listed(m, etag) => {
                return Err(MetaError::PreconditionFailed(format!(
                    "If-Match: the current ETag is {etag}"
                )));
            }
            Some(_) => {}
        }
    }
    if let (Some(m), Some(etag)) = (&c.if_none_match, current)
        && etag_listed(m, etag)
    {
        return Err(MetaError::PreconditionFailed(format!(
            "If-None-Match: the object exists with ETag {etag}"
        )));
    }
    Ok(())
}

async fn current_etag(tx: &mut dyn Tx, bucket: &str, key: &str) -> MetaResult<Option<String>> {
    let Some(row) = tx.query_opt(LATEST_ETAG, &params![bucket, key]).await? else {
        return Ok(None);
    };
    let c = Cols::new(&row, "objects");
    if c.bool(1)? {
        return Ok(None);
    }
    c.text(0).map(Some)
}

/// Locks the bucket row against deletion and versioning changes for the
/// rest of the transaction, and reads it.
pub(crate) async fn lock_bucket(tx: &mut dyn Tx, bucket: &str) -> MetaResult<Bucket> {
    match tx.query_opt(BUCKET_SHARED, &params![bucket]).await? {
        Some(row) => bucket_from(&row),
        None => Err(MetaError::NoSuchBucket(bucket.to_owned())),
    }
}

/// `lock_bucket`, checking the committing tenant owns the bucket.
pub(crate) async fn lock_bucket_for(
    tx: &mut dyn Tx,
    bucket: &str,
    tenant: TenantId,
) -> MetaResult<Bucket> {
    let b = lock_bucket(tx, bucket).await?;
    if b.tenant_id != tenant {
        return Err(MetaError::Internal(format!(
            "bucket {bucket} belongs to tenant {}, not to the committing tenant {tenant}",
            b.tenant_id
        )));
    }
    Ok(b)
}

/// Evaluates the commit's conditions against the latest version.
pub(crate) async fn check_commit_conditions(
    tx: &mut dyn Tx,
    commit: &ObjectCommit,
) -> MetaResult<()> {
    if commit.conditions == WriteConditions::default() {
        return Ok(());
    }
    let current = current_etag(tx, &commit.bucket, &commit.key).await?;
    check_conditions(&commit.conditions, current.as_deref())
}

struct StoredVersion {
    is_latest: bool,
    delete_marker: bool,
    manifest: Manifest,
    lock: ObjectLock,
}

async fn stored_version(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> MetaResult<Option<StoredVersion>> {
    let Some(row) = tx
        .query_opt(VERSION_REFS, &params![bucket, key, version_id])
        .await?
    else {
        return Ok(None);
    };
    let c = Cols::new(&row, "objects");
    let whose = || format!("{bucket}/{key} version {version_id}");
    Ok(Some(StoredVersion {
        is_latest: c.bool(0)?,
        delete_marker: c.bool(1)?,
        manifest: manifest_from(c.bytes(2)?, &whose)?,
        lock: lock_from(&c, 3, &whose)?,
    }))
}

/// Where a new version of a key goes: the next seq, and a creation time no
/// earlier than the newest existing version's (clocks of several gateways
/// may disagree), so a key's history is ordered the same by seq and by time
/// and "the version current at T" is well defined.
async fn next_slot(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    created_at: Millis,
) -> MetaResult<(i64, Millis)> {
    let Some(row) = tx.query_opt(NEWEST, &params![bucket, key]).await? else {
        return Ok((1, created_at));
    };
    let c = Cols::new(&row, "objects");
    Ok((c.i64(0)? + 1, created_at.max(c.i64(1)?)))
}

/// What a new row of `objects` holds besides its key and version id.
struct NewRow<'a> {
    delete_marker: bool,
    attrs: &'a ObjectAttrs,
    created_at: Millis,
    manifest: &'a Manifest,
    seq: i64,
    lock: ObjectLock,
}

/// Makes `version` the key's latest version.
async fn insert_latest(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version: &str,
    row: NewRow<'_>,
) -> MetaResult<()> {
    tx.execute(CLEAR_LATEST, &params![bucket, key]).await?;
    let retention = row.lock.retention;
    tx.execute(
        INSERT_VERSION,
        &params![
            bucket,
            key,
            version,
            row.delete_marker,
            to_i64(row.attrs.size, "object size")?,
            row.attrs.etag.as_str(),
            attrs_to_json(row.attrs)?,
            row.created_at,
            row.manifest.encode(),
            row.seq,
            retention.map(|r| r.mode.as_str()),
            retention.map(|r| r.until),
            row.lock.legal_hold,
        ],
    )
    .await?;
    Ok(())
}

/// The end of every commit, once the key and the bucket row are locked and
/// conditions hold: choose the version id from the bucket's versioning (a
/// new one when enabled, else "null", replacing the "null" version), account
/// references (the caller's `changes` plus the new manifest, minus the
/// version it replaces), drop the replaced version and insert the new one as
/// latest with its Object Lock.
pub(crate) async fn store_version(
    tx: &mut dyn Tx,
    commit: &ObjectCommit,
    b: &Bucket,
    mut changes: RefChanges,
    now: Millis,
) -> MetaResult<CommitOutcome> {
    let (bucket, key) = (&commit.bucket, &commit.key);
    let (seq, created_at) = next_slot(tx, bucket, key, commit.created_at).await?;
    let lock = match (&b.object_lock, commit.lock) {
        (None, Some(_)) => {
            return Err(MetaError::InvalidRequest(
                "Bucket is missing Object Lock Configuration".into(),
            ));
        }
        (None, None) => ObjectLock::default(),
        (Some(bucket_lock), asked) => bucket_lock.for_new_version(asked, created_at),
    };
    let (version, replaced) = match b.versioning {
        Versioning::Enabled => (new_version_id(seq), None),
        Versioning::Unversioned | Versioning::Suspended => {
            let old = stored_version(tx, bucket, key, "null").await?;
            if let Some(old) = &old {
                refuse_locked(&old.lock, bucket, key, "null", now, false)?;
                changes.release(&old.manifest);
            }
            ("null".to_owned(), old)
        }
    };
    changes.add(&commit.manifest);
    let lost_races = refs::apply(
        tx,
        commit.tenant_id,
        changes,
        &commit.new_chunks,
        &commit.new_packs,
        now,
    )
    .await?;
    if replaced.is_some() {
        tx.execute(DELETE_VERSION, &params![bucket, key, version.as_str()])
            .await?;
    }
    insert_latest(
        tx,
        bucket,
        key,
        &version,
        NewRow {
            delete_marker: false,
            attrs: &commit.attrs,
            created_at,
            manifest: &commit.manifest,
            seq,
            lock,
        },
    )
    .await?;
    Ok(CommitOutcome {
        replaced: replaced.map(|_| version.clone()),
        version_id: version,
        lost_races,
    })
}

/// Locked when Object Lock forbids removing this version now.
fn refuse_locked(
    lock: &ObjectLock,
    bucket: &str,
    key: &str,
    version: &str,
    now: Millis,
    bypass_governance: bool,
) -> MetaResult<()> {
    match lock.deletion_blocked(now, bypass_governance) {
        Some(why) => Err(MetaError::Locked(format!(
            "{bucket}/{key} version {version}: {why}"
        ))),
        None => Ok(()),
    }
}

pub(crate) async fn commit(
    tx: &mut dyn Tx,
    commit: &ObjectCommit,
    now: Millis,
) -> MetaResult<CommitOutcome> {
    tx.lock_key(key_lock(&commit.bucket, &commit.key)).await?;
    let bucket = lock_bucket_for(tx, &commit.bucket, commit.tenant_id).await?;
    check_commit_conditions(tx, commit).await?;
    store_version(tx, commit, &bucket, RefChanges::default(), now).await
}

pub(crate) async fn delete(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    bypass_governance: bool,
    now: Millis,
) -> MetaResult<DeleteOutcome> {
    tx.lock_key(key_lock(bucket, key)).await?;
    let b = lock_bucket(tx, bucket).await?;
    let mut out = DeleteOutcome {
        deleted_version: None,
        delete_marker: false,
        created_marker: None,
    };
    let remove = match (version_id, b.versioning) {
        (Some(v), _) => Some(v),
        (None, Versioning::Unversioned | Versioning::Suspended) => Some("null"),
        (None, Versioning::Enabled) => None,
    };
    if let Some(v) = remove
        && let Some(was_marker) = remove_version(tx, &b, key, v, bypass_governance, now).await?
    {
        out.deleted_version = Some(v.to_owned());
        out.delete_marker = was_marker;
    }
    if version_id.is_none() && b.versioning != Versioning::Unversioned {
        out.created_marker = Some(add_delete_marker(tx, &b, key, now).await?);
    }
    Ok(out)
}

/// Removes one version for good (Locked if Object Lock forbids it) and
/// releases its references; promotes the newest remaining version if it was
/// the latest. Some(was it a delete marker) if the version existed.
async fn remove_version(
    tx: &mut dyn Tx,
    b: &Bucket,
    key: &str,
    version: &str,
    bypass_governance: bool,
    now: Millis,
) -> MetaResult<Option<bool>> {
    let Some(old) = stored_version(tx, &b.name, key, version).await? else {
        return Ok(None);
    };
    refuse_locked(&old.lock, &b.name, key, version, now, bypass_governance)?;
    let mut changes = RefChanges::default();
    changes.release(&old.manifest);
    refs::apply(tx, b.tenant_id, changes, &[], &[], now).await?;
    tx.execute(DELETE_VERSION, &params![b.name.as_str(), key, version])
        .await?;
    if old.is_latest {
        tx.execute(PROMOTE_NEWEST, &params![b.name.as_str(), key])
            .await?;
    }
    Ok(Some(old.delete_marker))
}

/// Adds a delete marker as the key's latest version: a new version id on an
/// enabled bucket, "null" on a suspended one (whose "null" version the
/// caller removed first). Returns its version id.
async fn add_delete_marker(
    tx: &mut dyn Tx,
    b: &Bucket,
    key: &str,
    now: Millis,
) -> MetaResult<String> {
    let (seq, created_at) = next_slot(tx, &b.name, key, now).await?;
    let version = match b.versioning {
        Versioning::Enabled => new_version_id(seq),
        Versioning::Unversioned | Versioning::Suspended => "null".to_owned(),
    };
    insert_latest(
        tx,
        &b.name,
        key,
        &version,
        NewRow {
            delete_marker: true,
            attrs: &ObjectAttrs::default(),
            created_at,
            manifest: &Manifest::default(),
            seq,
            lock: ObjectLock::default(),
        },
    )
    .await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_exactly_the_prefixed_strings() {
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        let succ = prefix_successor("é").unwrap_or_default();
        assert!("é~".as_bytes() < succ.as_bytes() && "ê" >= succ.as_str());
    }

    #[test]
    fn conditions() {
        let c = |m: Option<&str>, n: Option<&str>| WriteConditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
        };
        assert!(check_conditions(&c(None, Some("*")), None).is_ok());
        assert!(check_conditions(&c(None, Some("*")), Some("\"a\"")).is_err());
        assert!(check_conditions(&c(None, Some("a")), Some("\"a\"")).is_err());
        assert!(check_conditions(&c(None, Some("\"b\"")), Some("\"a\"")).is_ok());
        assert!(check_conditions(&c(Some("*"), None), None).is_err());
        assert!(check_conditions(&c(Some("*"), None), Some("\"a\"")).is_ok());
        assert!(check_conditions(&c(Some("\"b\", \"a\""), None), Some("a")).is_ok());
        assert!(check_conditions(&c(Some("\"b\""), None), Some("\"a\"")).is_err());
    }
}
