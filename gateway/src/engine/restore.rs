//! Point-in-time views and restores of a versioned bucket.
//!
//! The state of a bucket at an instant T is, for every key, the newest
//! version created at or before T, unless that is a delete marker. Versions
//! of a key are ordered the same by seq and by creation time (the commit
//! clamps times), so "newest at or before T" is the first such version in
//! listing order.
//!
//! A restore makes that state current again: each key whose current version
//! differs gets a new version that references the same chunks as the one of
//! time T (nothing is read, copied or uploaded: exactly like CopyObject),
//! and each key created later gets a delete marker. A key whose current
//! version already has that content and metadata is left alone, so a second
//! run changes nothing. It is refused unless versioning was enabled at T and
//! never suspended since: a suspended bucket overwrites its "null" versions,
//! so the history after T would not hold the state of T any more.

use time::format_description::well_known::Rfc3339;

use super::{Engine, EngineError, EngineResult, now_millis};
use crate::meta::{Bucket, ObjectCommit, VersionSummary, Versioning, lock::rfc3339};

/// Keys are scanned in pages of this many versions.
const PAGE: usize = 1000;
/// A progress event after every this many keys.
const PROGRESS_EVERY: u64 = 1000;

/// An instant, milliseconds since the epoch.
pub type PointInTime = i64;

/// RFC 3339 text ("2026-03-01T12:00:00Z", "…+01:00", fractions allowed) as
/// milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<PointInTime, String> {
    let t = time::OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e}); e.g. 2026-03-01T12:00:00Z"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{s:?} is out of range"))
}

/// What a restore does (or, dry, would do) to one key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RestoreAction {
    /// A new current version with the content and metadata of `from_version`.
    Restore {
        key: String,
        from_version: String,
        size: u64,
        /// The new version's id (None in a dry run).
        new_version: Option<String>,
    },
    /// A delete marker: the key did not exist at that time.
    Delete {
        key: String,
        marker_version: Option<String>,
    },
}

/// Counts of a restore, also its progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreReport {
    pub bucket: String,
    pub at: String,
    pub prefix: String,
    pub dry_run: bool,
    pub keys_scanned: u64,
    pub restored: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Logical bytes the restored versions reference again (none copied).
    pub restored_bytes: u64,
}

/// What a restore tells its caller as it goes.
pub enum RestoreEvent<'a> {
    Action(&'a RestoreAction),
    Progress(&'a RestoreReport),
}

/// One key: its current version and the one it had at the instant.
struct KeyState {
    key: String,
    latest: Option<VersionSummary>,
    then: Option<VersionSummary>,
}

impl Engine {
    /// Refuses an instant whose state the history cannot give back exactly.
    pub async fn check_restorable(&self, bucket: &Bucket, at: PointInTime) -> EngineResult<()> {
        let history = self.inner.meta.versioning_history(&bucket.name).await?;
        let refuse = |why: String| {
            Err(EngineError::InvalidRequest(format!(
                "bucket {} cannot be shown or restored as of {}: {why}",
                bucket.name,
                rfc3339(at)
            )))
        };
        let Some(first) = history.first() else {
            return refuse("it has no versioning history (it was never versioned)".into());
        };
        if at < first.at {
            return refuse(format!("it was created later, at {}", rfc3339(first.at)));
        }
        let then = history
            .iter()
            .rev()
            .find(|c| c.at <= at)
            .map_or(Versioning::Unversioned, |c| c.status);
        if then != Versioning::Enabled {
            return refuse(format!(
                "versioning was {} then, so older versions were not kept",
                then.as_str()
            ));
        }
        if let Some(s) = history
            .iter()
            .find(|c| c.at > at && c.status != Versioning::Enabled)
        {
            return refuse(format!(
                "versioning was {} at {}, and writes since may have replaced versions of that time",
                s.status.as_str(),
                rfc3339(s.at)
            ));
        }
        Ok(())
    }

    /// Calls `f` with every version and delete marker under `prefix`, keys
    /// in order and each key's versions newest first, a page at a time.
    pub async fn for_each_version<F>(
        &self,
        bucket: &str,
        prefix: &str,
        mut f: F,
    ) -> EngineResult<()>
    where
        F: AsyncFnMut(VersionSummary) -> EngineResult<()>,
    {
        let mut after: Option<(String, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(k, v)| (k.as_str(), Some(v.as_str())));
            let page = self
                .inner
                .meta
                .list_versions(bucket, prefix, cursor, PAGE)
                .await?;
            for v in page.items {
                after = Some((v.key.clone(), v.version_id.clone()));
                f(v).await?;
            }
            if !page.truncated {
                return Ok(());
            }
        }
    }

    /// Calls `f` with each key under `prefix` (in key order), its current
    /// version and its version at `at`.
    async fn for_each_key_state<F>(
        &self,
        bucket: &str,
        prefix: &str,
        at: PointInTime,
        mut f: F,
    ) -> EngineResult<()>
    where
        F: AsyncFnMut(KeyState) -> EngineResult<()>,
    {
        let mut group: Option<KeyState> = None;
        self.for_each_version(bucket, prefix, async |v: VersionSummary| {
            if group.as_ref().is_some_and(|g| g.key != v.key)
                && let Some(done) = group.take()
            {
                f(done).await?;
            }
            let g = group.get_or_insert_with(|| KeyState {
                key: v.key.clone(),
                latest: None,
                then: None,
            });
            // Newest first: the first version at or before T is the one.
            if g.then.is_none() && v.created_at <= at {
                g.then = Some(v.clone());
            }
            if v.is_latest {
                g.latest = Some(v);
            }
            Ok(())
        })
        .await?;
        if let Some(done) = group {
            f(done).await?;
        }
        Ok(())
    }

    /// The objects a bucket held at `at` (versions, never delete markers), in
    /// key order. Refused like a restore when the history cannot tell.
    pub async fn list_at(
        &self,
        bucket: &Bucket,
        prefix: &str,
        at: PointInTime,
    ) -> EngineResult<Vec<VersionSummary>> {
        self.check_restorable(bucket, at).await?;
        let mut out = Vec::new();
        self.for_each_key_state(&bucket.name, prefix, at, async |k: KeyState| {
            out.extend(k.then.filter(|v| !v.delete_marker));
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Makes the bucket's state at `at` current again (see the module doc).
    pub async fn restore_bucket(
        &self,
        bucket: &Bucket,
        prefix: &str,
        at: PointInTime,
        dry_run: bool,
        on: &mut dyn FnMut(RestoreEvent<'_>),
    ) -> EngineResult<RestoreReport> {
        self.check_restorable(bucket, at).await?;
        let mut report = RestoreReport {
            bucket: bucket.name.clone(),
            at: rfc3339(at),
            prefix: prefix.to_owned(),
            dry_run,
            ..RestoreReport::default()
        };
        self.for_each_key_state(&bucket.name, prefix, at, async |k: KeyState| {
            report.keys_scanned += 1;
            match self.restore_key(bucket, k, dry_run).await? {
                Some(action) => {
                    match &action {
                        RestoreAction::Restore { size, .. } => {
                            report.restored += 1;
                            report.restored_bytes += size;
                        }
                        RestoreAction::Delete { .. } => report.deleted += 1,
                    }
                    on(RestoreEvent::Action(&action));
                }
                None => report.unchanged += 1,
            }
            if report.keys_scanned.is_multiple_of(PROGRESS_EVERY) {
                on(RestoreEvent::Progress(&report));
            }
            Ok(())
        })
        .await?;
        tracing::info!(
            bucket = %bucket.name, at = %report.at, restored = report.restored,
            deleted = report.deleted, unchanged = report.unchanged, dry_run, "bucket restored"
        );
        Ok(report)
    }

    /// Brings one key back to its state at the instant; None if it is there.
    async fn restore_key(
        &self,
        bucket: &Bucket,
        k: KeyState,
        dry_run: bool,
    ) -> EngineResult<Option<RestoreAction>> {
        let meta = &self.inner.meta;
        let latest = k.latest.filter(|l| !l.delete_marker);
        let Some(then) = k.then.filter(|t| !t.delete_marker) else {
            if latest.is_none() {
                return Ok(None);
            }
            let marker_version = if dry_run {
                None
            } else {
                meta.delete_object(&bucket.name, &k.key, None, false)
                    .await?
                    .created_marker
            };
            return Ok(Some(RestoreAction::Delete {
                key: k.key,
                marker_version,
            }));
        };
        let source = meta
            .get_object(&bucket.name, &k.key, Some(&then.version_id))
            .await?
            .ok_or_else(|| EngineError::NoSuchVersion(then.version_id.clone()))?;
        if let Some(l) = &latest {
            if l.version_id == then.version_id {
                return Ok(None);
            }
            // An earlier restore (or an identical write) already put it back.
            if l.etag == then.etag
                && let Some(current) = meta
                    .get_object(&bucket.name, &k.key, Some(&l.version_id))
                    .await?
                && current.manifest == source.manifest
                && current.attrs == source.attrs
            {
                return Ok(None);
            }
        }
        let new_version = if dry_run {
            None
        } else {
            let out = meta
                .commit_object(ObjectCommit {
                    tenant_id: bucket.tenant_id,
                    bucket: bucket.name.clone(),
                    key: k.key.clone(),
                    attrs: source.attrs.clone(),
                    created_at: now_millis(),
                    manifest: source.manifest.clone(),
                    new_chunks: Vec::new(),
                    new_packs: Vec::new(),
                    conditions: Default::default(),
                    lock: None,
                })
                .await?;
            super::put::record_write(source.attrs.size, 0, source.manifest.chunks.len() as u64);
            Some(out.version_id)
        };
        Ok(Some(RestoreAction::Restore {
            key: k.key,
            from_version: then.version_id,
            size: source.attrs.size,
            new_version,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_millis() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("1970-01-01T01:00:00.5+01:00"), Ok(500));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-01-01").is_err());
    }
}
