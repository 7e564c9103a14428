//! Lifecycle in the metadata store: a bucket's configuration (JSON the
//! engine validated; opaque here), the worker's per-bucket progress, the
//! scan of versions it decides on, and the one action that needs a
//! compare-and-set: expiring a key's current version only if it still is.

use super::codec::attrs_from_json;
use super::model::{DeleteOutcome, Millis, Page};
use super::objects::{self, fetch_limit, key_lock, lock_from, require_bucket};
use super::sql::{Cols, Row, Tx, params};
use super::tagging::Tags;
use super::{MetaError, MetaResult, ObjectLock};

const LIFECYCLE: &str = "SELECT lifecycle FROM buckets WHERE name = $1";
const SET_LIFECYCLE: &str = "UPDATE buckets SET lifecycle = $2 WHERE name = $1";
const WITH_LIFECYCLE: &str = "SELECT name FROM buckets WHERE lifecycle IS NOT NULL ORDER BY name";
const STATE: &str = "SELECT bucket, cursor_key, pass_started, last_finished, last_summary \
     FROM lifecycle_state WHERE bucket = $1";
const STATES: &str = "SELECT bucket, cursor_key, pass_started, last_finished, last_summary \
     FROM lifecycle_state ORDER BY bucket";
const SAVE_STATE: &str = "INSERT INTO lifecycle_state \
     (bucket, cursor_key, pass_started, last_finished, last_summary) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (bucket) DO UPDATE SET cursor_key = $2, pass_started = $3, \
     last_finished = $4, last_summary = $5";
// Whole keys after the cursor, each key's versions newest first.
const SCAN_FROM: &str = "SELECT key, version_id, is_latest, delete_marker, size, created_at, attrs, \
     lock_mode, lock_until, legal_hold FROM objects WHERE bucket = $1 \
     ORDER BY key, seq DESC LIMIT $2";
const SCAN_AFTER: &str = "SELECT key, version_id, is_latest, delete_marker, size, created_at, attrs, \
     lock_mode, lock_until, legal_hold FROM objects WHERE bucket = $1 AND key > $2 \
     ORDER BY key, seq DESC LIMIT $3";
const SCAN_KEY: &str = "SELECT key, version_id, is_latest, delete_marker, size, created_at, attrs, \
     lock_mode, lock_until, legal_hold FROM objects WHERE bucket = $1 AND key = $2 \
     ORDER BY seq DESC";
const LATEST_ID: &str =
    "SELECT version_id, delete_marker FROM objects WHERE bucket = $1 AND key = $2 AND is_latest";

/// The lifecycle worker's progress in one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleState {
    pub bucket: String,
    /// The last key of the current pass whose versions were all handled.
    pub cursor_key: Option<String>,
    /// When the current pass began; None between passes.
    pub pass_started: Option<Millis>,
    pub last_finished: Option<Millis>,
    /// JSON summary of the last finished pass.
    pub last_summary: Option<String>,
}

/// One version as the lifecycle rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub created_at: Millis,
    pub tags: Tags,
    pub lock: ObjectLock,
}

pub(crate) async fn get(tx: &mut dyn Tx, bucket: &str) -> MetaResult<Option<String>> {
    let Some(row) = tx.query_opt(LIFECYCLE, &params![bucket]).await? else {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    };
    Cols::new(&row, "buckets").opt_text(0)
}

pub(crate) async fn set(tx: &mut dyn Tx, bucket: &str, config: Option<&str>) -> MetaResult<()> {
    require_bucket(tx, bucket).await?;
    tx.execute(SET_LIFECYCLE, &params![bucket, config]).await?;
    Ok(())
}

pub(crate) async fn buckets_with(tx: &mut dyn Tx) -> MetaResult<Vec<String>> {
    let rows = tx.query(WITH_LIFECYCLE, &[]).await?;
    rows.iter()
        .map(|r| Cols::new(r, "buckets").text(0))
        .collect()
}

fn state_from(row: &Row) -> MetaResult<LifecycleState> {
    let c = Cols::new(row, "lifecycle_state");
    Ok(LifecycleState {
        bucket: c.text(0)?,
        cursor_key: c.opt_text(1)?,
        pass_started: c.opt_i64(2)?,
        last_finished: c.opt_i64(3)?,
        last_summary: c.opt_text(4)?,
    })
}

pub(crate) async fn state(tx: &mut dyn Tx, bucket: &str) -> MetaResult<Option<LifecycleState>> {
    tx.query_opt(STATE, &params![bucket])
        .await?
        .as_ref()
        .map(state_from)
        .transpose()
}

pub(crate) async fn states(tx: &mut dyn Tx) -> MetaResult<Vec<LifecycleState>> {
    tx.query(STATES, &[])
        .await?
        .iter()
        .map(state_from)
        .collect()
}

pub(crate) async fn save_state(tx: &mut dyn Tx, s: &LifecycleState) -> MetaResult<()> {
    require_bucket(tx, &s.bucket).await?;
    tx.execute(
        SAVE_STATE,
        &params![
            s.bucket.as_str(),
            s.cursor_key.as_deref(),
            s.pass_started,
            s.last_finished,
            s.last_summary.as_deref()
        ],
    )
    .await?;
    Ok(())
}

fn scanned(row: &Row) -> MetaResult<LifecycleVersion> {
    let c = Cols::new(row, "objects");
    let key = c.text(0)?;
    let version_id = c.text(1)?;
    let whose = || format!("{key} version {version_id}");
    let attrs = attrs_from_json(&c.text(6)?, &whose)?;
    Ok(LifecycleVersion {
        is_latest: c.bool(2)?,
        delete_marker: c.bool(3)?,
        size: c.u64(4)?,
        created_at: c.i64(5)?,
        tags: attrs.tags,
        lock: lock_from(&c, 7, &whose)?,
        key,
        version_id,
    })
}

/// Every version of whole keys after `after`, at least `limit` rows unless
/// the bucket ends first (a key with more versions than `limit` comes
/// whole). `truncated` says more keys follow.
pub(crate) async fn scan(
    tx: &mut dyn Tx,
    bucket: &str,
    after: Option<&str>,
    limit: usize,
) -> MetaResult<Page<LifecycleVersion>> {
    require_bucket(tx, bucket).await?;
    let n = fetch_limit(limit);
    let rows = match after {
        None => tx.query(SCAN_FROM, &params![bucket, n]).await?,
        Some(a) => tx.query(SCAN_AFTER, &params![bucket, a, n]).await?,
    };
    let mut items = rows.iter().map(scanned).collect::<MetaResult<Vec<_>>>()?;
    if items.len() <= limit {
        return Ok(Page {
            items,
            truncated: false,
        });
    }
    // The last key may be cut off: drop it, unless it is the only one,
    // which is then read whole.
    let last = items.last().map(|v| v.key.clone()).unwrap_or_default();
    if items.first().is_some_and(|v| v.key == last) {
        let rows = tx.query(SCAN_KEY, &params![bucket, last.as_str()]).await?;
        items = rows.iter().map(scanned).collect::<MetaResult<Vec<_>>>()?;
    } else {
        items.retain(|v| v.key != last);
    }
    Ok(Page {
        items,
        truncated: true,
    })
}

/// Expires a key's current version as DeleteObject without a version id
/// would (a delete marker on a versioned bucket; on others the "null"
/// version goes), but only while `version_id` is still the key's latest and
/// not a delete marker: a write since the scan wins. None when it was not.
pub(crate) async fn expire_current(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: &str,
    now: Millis,
) -> MetaResult<Option<DeleteOutcome>> {
    tx.lock_key(key_lock(bucket, key)).await?;
    let Some(row) = tx.query_opt(LATEST_ID, &params![bucket, key]).await? else {
        return Ok(None);
    };
    let c = Cols::new(&row, "objects");
    if c.text(0)? != version_id || c.bool(1)? {
        return Ok(None);
    }
    objects::delete(tx, bucket, key, None, false, now)
        .await
        .map(Some)
}
