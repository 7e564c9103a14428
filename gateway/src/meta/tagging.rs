//! Tags: an object version's tag set (a field of its attributes, changed in
//! place by PutObjectTagging) and a bucket's (`buckets.tags`). Limits and
//! characters are checked by the engine before anything gets here.

use std::collections::BTreeMap;

use super::codec::{attrs_from_json, attrs_to_json};
use super::objects::{key_lock, lock_bucket, require_bucket};
use super::sql::{Cols, Tx, params};
use super::{MetaError, MetaResult};

/// A tag set: keys are unique, so a map.
pub type Tags = BTreeMap<String, String>;

const ATTRS_OF_LATEST: &str = "SELECT version_id, delete_marker, attrs \
     FROM objects WHERE bucket = $1 AND key = $2 AND is_latest";
const ATTRS_OF_VERSION: &str = "SELECT version_id, delete_marker, attrs \
     FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
const SET_ATTRS: &str =
    "UPDATE objects SET attrs = $4 WHERE bucket = $1 AND key = $2 AND version_id = $3";
const BUCKET_TAGS: &str = "SELECT tags FROM buckets WHERE name = $1";
const SET_BUCKET_TAGS: &str = "UPDATE buckets SET tags = $2 WHERE name = $1";

/// Replaces the tag set of one version (the latest when `version_id` is
/// None) and returns its version id. NoSuchKey / NoSuchVersion when it does
/// not exist; InvalidRequest on a delete marker, which has no tags.
pub(crate) async fn set_object_tags(
    tx: &mut dyn Tx,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: &Tags,
) -> MetaResult<String> {
    tx.lock_key(key_lock(bucket, key)).await?;
    lock_bucket(tx, bucket).await?;
    let row = match version_id {
        None => tx.query_opt(ATTRS_OF_LATEST, &params![bucket, key]).await?,
        Some(v) => {
            tx.query_opt(ATTRS_OF_VERSION, &params![bucket, key, v])
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
            "{}: a delete marker has no tags",
            whose()
        )));
    }
    let mut attrs = attrs_from_json(&c.text(2)?, &whose)?;
    attrs.tags = tags.clone();
    tx.execute(
        SET_ATTRS,
        &params![bucket, key, version.as_str(), attrs_to_json(&attrs)?],
    )
    .await?;
    Ok(version)
}

/// A bucket's tag set; None when it has none. NoSuchBucket if it is gone.
pub(crate) async fn bucket_tags(tx: &mut dyn Tx, bucket: &str) -> MetaResult<Option<Tags>> {
    let Some(row) = tx.query_opt(BUCKET_TAGS, &params![bucket]).await? else {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    };
    match Cols::new(&row, "buckets").opt_text(0)? {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| MetaError::Corrupt(format!("tags of bucket {bucket}: {e}"))),
    }
}

/// Replaces a bucket's tag set; None (or an empty set) removes it.
pub(crate) async fn set_bucket_tags(
    tx: &mut dyn Tx,
    bucket: &str,
    tags: Option<&Tags>,
) -> MetaResult<()> {
    require_bucket(tx, bucket).await?;
    let json = match tags.filter(|t| !t.is_empty()) {
        Some(t) => Some(
            serde_json::to_string(t)
                .map_err(|e| MetaError::Internal(format!("encoding bucket tags: {e}")))?,
        ),
        None => None,
    };
    tx.execute(SET_BUCKET_TAGS, &params![bucket, json]).await?;
    Ok(())
}
