//! The lifecycle worker: one pass applies every bucket's lifecycle rules.
//!
//! - One worker at a time across gateways: a pass holds the `lifecycle`
//!   lease (`lease.rs`); a dead gateway's lease expires and another takes over.
//! - Bounded: versions are read in batches of `[lifecycle] batch_size` whole
//!   keys (one short read transaction each); every action is its own short
//!   write transaction.
//! - Resumable: after each batch the bucket's cursor (the last key handled)
//!   is saved, and a stopped pass resumes after it. Every decision is made
//!   from the version's state when it is read, and the current-version
//!   expiry is a compare-and-set on the latest version, so a key handled
//!   twice gets no second action and a write since the scan wins.
//! - Object Lock: versions are removed through the metadata store's delete,
//!   which refuses locked versions (and the database trigger behind it);
//!   such versions are skipped and counted, never bypassed. A delete marker
//!   over a locked current version is allowed, as in S3: it removes nothing.
//! - What an action frees (chunks of removed versions, parts of aborted
//!   uploads) becomes zombie chunks that `dooz gc` reclaims.

use std::time::Instant;

use serde::Serialize;

use super::LifecycleConfig;
use super::lease::{HeldLease, LeaseTimings};
use super::pace::Pace;
use crate::engine::{BucketLifecycle, Engine, EngineError, Expiration, due_after, now_millis};
use crate::meta::{
    Bucket, LifecycleState, LifecycleVersion, MetaError, MetaStore, Millis, Tags, Versioning,
};

/// The lease a pass holds.
pub const LEASE: &str = "lifecycle";

/// What a pass did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LifecycleReport {
    pub dry_run: bool,
    pub buckets: u64,
    pub versions_scanned: u64,
    /// Current versions deleted (unversioned buckets; the "null" version of
    /// suspended ones).
    pub objects_expired: u64,
    /// Current versions expired with a delete marker (versioned buckets).
    pub delete_markers_added: u64,
    pub noncurrent_versions_removed: u64,
    /// Delete markers removed (ExpiredObjectDeleteMarker).
    pub delete_markers_removed: u64,
    pub uploads_aborted: u64,
    /// Bytes of the versions removed and of the aborted uploads' parts (the
    /// backend space follows after `dooz gc`).
    pub bytes_released: u64,
    /// Versions a rule selected that Object Lock keeps.
    pub skipped_locked: u64,
    /// Buckets whose pass resumed from a saved cursor.
    pub resumed: u64,
    pub duration_secs: f64,
}

impl LifecycleReport {
    fn add(&mut self, o: &LifecycleReport) {
        self.versions_scanned += o.versions_scanned;
        self.objects_expired += o.objects_expired;
        self.delete_markers_added += o.delete_markers_added;
        self.noncurrent_versions_removed += o.noncurrent_versions_removed;
        self.delete_markers_removed += o.delete_markers_removed;
        self.uploads_aborted += o.uploads_aborted;
        self.bytes_released += o.bytes_released;
        self.skipped_locked += o.skipped_locked;
        self.resumed += o.resumed;
    }

    pub fn summary(&self) -> String {
        format!(
            "{}{} buckets, {} versions scanned: {} objects expired, {} delete markers added, \
             {} noncurrent versions removed, {} delete markers removed, {} uploads aborted, \
             {} bytes released, {} locked versions kept ({:.2}s)",
            if self.dry_run { "dry run: " } else { "" },
            self.buckets,
            self.versions_scanned,
            self.objects_expired,
            self.delete_markers_added,
            self.noncurrent_versions_removed,
            self.delete_markers_removed,
            self.uploads_aborted,
            self.bytes_released,
            self.skipped_locked,
            self.duration_secs,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("another lifecycle pass is running ({0})")]
    Busy(String),
    #[error("the lifecycle lease was lost during the pass")]
    LeaseLost,
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// A pass that stopped early, with what it had done.
#[derive(Debug)]
pub struct LifecycleFailure {
    pub report: LifecycleReport,
    pub error: LifecycleError,
}

/// Called after every batch: the bucket and the pass's totals so far.
pub type Progress<'a> = &'a mut (dyn FnMut(&str, &LifecycleReport) + Send + Sync);

/// One action the rules chose for a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    ExpireCurrent,
    RemoveNoncurrent,
    RemoveMarker,
}

pub struct LifecycleWorker {
    engine: Engine,
    cfg: LifecycleConfig,
    timings: LeaseTimings,
}

impl LifecycleWorker {
    pub fn new(engine: Engine, cfg: LifecycleConfig, timings: LeaseTimings) -> Self {
        Self {
            engine,
            cfg,
            timings,
        }
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.cfg
    }

    fn meta(&self) -> &dyn MetaStore {
        self.engine.meta().as_ref()
    }

    /// One pass over every bucket with a lifecycle configuration (or just
    /// `only`). A dry run reads and reports but changes nothing, its
    /// cursors included.
    pub async fn run(
        &self,
        only: Option<&str>,
        dry_run: bool,
        progress: Progress<'_>,
    ) -> Result<LifecycleReport, LifecycleFailure> {
        let started = Instant::now();
        let mut report = LifecycleReport {
            dry_run,
            ..Default::default()
        };
        let result = self.pass(only, dry_run, &mut report, progress).await;
        report.duration_secs = started.elapsed().as_secs_f64();
        super::metrics::record_lifecycle(&report, result.as_ref().err());
        match result {
            Ok(()) => {
                tracing::info!(target: "dooz::lifecycle", summary = %report.summary(), "lifecycle pass finished");
                Ok(report)
            }
            Err(error) => {
                tracing::warn!(target: "dooz::lifecycle", %error, summary = %report.summary(), "lifecycle pass stopped");
                Err(LifecycleFailure { report, error })
            }
        }
    }

    async fn pass(
        &self,
        only: Option<&str>,
        dry_run: bool,
        report: &mut LifecycleReport,
        progress: Progress<'_>,
    ) -> Result<(), LifecycleError> {
        let meta = self.engine.meta().clone();
        let lease = match HeldLease::try_acquire(meta, LEASE, self.timings).await? {
            Ok(l) => l,
            Err(holder) => {
                return Err(LifecycleError::Busy(
                    holder.map_or_else(|| "unknown holder".to_owned(), |h| h.owner),
                ));
            }
        };
        let buckets = match only {
            Some(b) => vec![b.to_owned()],
            None => self.meta().buckets_with_lifecycle().await?,
        };
        let mut pace = Pace::new(u64::from(self.cfg.max_actions_per_sec));
        let mut outcome = Ok(());
        for name in buckets {
            if lease.is_lost() {
                outcome = Err(LifecycleError::LeaseLost);
                break;
            }
            let Some(bucket) = self.meta().get_bucket(&name).await? else {
                continue;
            };
            let Some(rules) = self.engine.lifecycle_of(&name).await? else {
                continue;
            };
            report.buckets += 1;
            let r = self
                .bucket_pass(
                    &bucket, &rules, dry_run, &lease, &mut pace, report, progress,
                )
                .await;
            if let Err(e) = r {
                outcome = Err(e);
                break;
            }
        }
        super::metrics::LIFECYCLE
            .backlog
            .set(self.unfinished().await.unwrap_or(0));
        lease.release().await;
        outcome
    }

    /// Buckets whose pass is unfinished (the `dooz_lifecycle_backlog` gauge).
    async fn unfinished(&self) -> Result<i64, MetaError> {
        let n = self
            .meta()
            .lifecycle_states()
            .await?
            .iter()
            .filter(|s| s.pass_started.is_some())
            .count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    #[allow(clippy::too_many_arguments)]
    async fn bucket_pass(
        &self,
        bucket: &Bucket,
        rules: &BucketLifecycle,
        dry_run: bool,
        lease: &HeldLease,
        pace: &mut Pace,
        total: &mut LifecycleReport,
        progress: Progress<'_>,
    ) -> Result<(), LifecycleError> {
        let name = bucket.name.as_str();
        let mut state =
            self.meta()
                .lifecycle_state(name)
                .await?
                .unwrap_or_else(|| LifecycleState {
                    bucket: name.to_owned(),
                    ..Default::default()
                });
        let mut mine = LifecycleReport {
            dry_run,
            buckets: 1,
            ..Default::default()
        };
        if dry_run {
            state.cursor_key = None;
        } else if state.pass_started.is_some() {
            mine.resumed = 1;
            tracing::info!(target: "dooz::lifecycle", bucket = name, cursor = ?state.cursor_key, "resuming an unfinished lifecycle pass");
        } else {
            state.pass_started = Some(now_millis());
            state.cursor_key = None;
            self.meta().save_lifecycle_state(&state).await?;
        }
        let day_ms = self.cfg.day_ms();
        loop {
            if lease.is_lost() {
                total.add(&mine);
                return Err(LifecycleError::LeaseLost);
            }
            let page = self
                .meta()
                .lifecycle_scan(name, state.cursor_key.as_deref(), self.cfg.batch_size)
                .await?;
            let mut batch = LifecycleReport::default();
            let now = now_millis();
            for versions in page.items.chunk_by(|a, b| a.key == b.key) {
                batch.versions_scanned += versions.len() as u64;
                for (v, act) in decide(rules, bucket, versions, now, day_ms) {
                    if !dry_run {
                        pace.take(1).await;
                    }
                    self.apply(bucket, v, act, dry_run, now, &mut batch).await?;
                }
            }
            mine.add(&batch);
            if let Some(last) = page.items.last() {
                state.cursor_key = Some(last.key.clone());
            }
            if !dry_run && page.truncated {
                // The batch is done: a restart resumes after its last key.
                self.meta().save_lifecycle_state(&state).await?;
            }
            let mut so_far = total.clone();
            so_far.add(&mine);
            progress(name, &so_far);
            if !page.truncated {
                break;
            }
        }
        self.abort_uploads(bucket, rules, dry_run, pace, &mut mine)
            .await?;
        if !dry_run {
            state.cursor_key = None;
            state.pass_started = None;
            state.last_finished = Some(now_millis());
            state.last_summary = serde_json::to_string(&mine).ok();
            self.meta().save_lifecycle_state(&state).await?;
        }
        total.add(&mine);
        progress(name, total);
        Ok(())
    }

    async fn apply(
        &self,
        bucket: &Bucket,
        v: &LifecycleVersion,
        act: Act,
        dry_run: bool,
        now: Millis,
        r: &mut LifecycleReport,
    ) -> Result<(), LifecycleError> {
        let name = bucket.name.as_str();
        if act != Act::ExpireCurrent && v.lock.deletion_blocked(now, false).is_some() {
            r.skipped_locked += 1;
            return Ok(());
        }
        let marker = bucket.versioning == Versioning::Enabled;
        if dry_run {
            match act {
                Act::ExpireCurrent if marker => r.delete_markers_added += 1,
                Act::ExpireCurrent => {
                    r.objects_expired += 1;
                    r.bytes_released += v.size;
                }
                Act::RemoveNoncurrent => {
                    r.noncurrent_versions_removed += 1;
                    r.bytes_released += v.size;
                }
                Act::RemoveMarker => r.delete_markers_removed += 1,
            }
            return Ok(());
        }
        match act {
            Act::ExpireCurrent => {
                let out = self
                    .meta()
                    .lifecycle_expire_current(name, &v.key, &v.version_id)
                    .await;
                match out {
                    Ok(Some(o)) => {
                        if o.created_marker.is_some() && o.deleted_version.is_none() {
                            r.delete_markers_added += 1;
                        } else {
                            r.objects_expired += 1;
                            r.bytes_released += v.size;
                        }
                    }
                    // Overwritten or deleted since the scan: nothing to do.
                    Ok(None) => {}
                    Err(MetaError::Locked(_)) => r.skipped_locked += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            Act::RemoveNoncurrent | Act::RemoveMarker => {
                match self
                    .meta()
                    .delete_object(name, &v.key, Some(&v.version_id), false)
                    .await
                {
                    Ok(o) if o.deleted_version.is_some() => {
                        if act == Act::RemoveMarker {
                            r.delete_markers_removed += 1;
                        } else {
                            r.noncurrent_versions_removed += 1;
                            r.bytes_released += v.size;
                        }
                    }
                    Ok(_) => {}
                    Err(MetaError::Locked(_)) => r.skipped_locked += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Aborts the bucket's multipart uploads an enabled rule's
    /// AbortIncompleteMultipartUpload makes due (prefix filters only, as S3).
    async fn abort_uploads(
        &self,
        bucket: &Bucket,
        rules: &BucketLifecycle,
        dry_run: bool,
        pace: &mut Pace,
        r: &mut LifecycleReport,
    ) -> Result<(), LifecycleError> {
        let abort_rules: Vec<_> = rules
            .rules
            .iter()
            .filter(|x| x.enabled)
            .filter_map(|x| x.abort_after_days.map(|d| (x.filter.prefix.as_str(), d)))
            .collect();
        if abort_rules.is_empty() {
            return Ok(());
        }
        let day_ms = self.cfg.day_ms();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .meta()
                .list_multipart(
                    &bucket.name,
                    "",
                    after.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    self.cfg.batch_size,
                )
                .await?;
            let now = now_millis();
            for u in &page.items {
                let due = abort_rules.iter().any(|(prefix, days)| {
                    u.key.starts_with(prefix) && now >= due_after(u.created_at, *days, day_ms)
                });
                if !due {
                    continue;
                }
                let bytes = self.upload_bytes(&u.upload_id).await?;
                if !dry_run {
                    pace.take(1).await;
                    match self.meta().abort_multipart(&u.upload_id).await {
                        Ok(()) => {}
                        // Completed or aborted meanwhile.
                        Err(MetaError::NoSuchUpload(_)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                r.uploads_aborted += 1;
                r.bytes_released += bytes;
            }
            after = page
                .items
                .last()
                .map(|u| (u.key.clone(), u.upload_id.clone()));
            if !page.truncated {
                return Ok(());
            }
        }
    }

    async fn upload_bytes(&self, upload_id: &str) -> Result<u64, LifecycleError> {
        let mut total = 0u64;
        let mut after = 0;
        loop {
            let page = match self.meta().list_parts(upload_id, after, 1000).await {
                Ok(p) => p,
                Err(MetaError::NoSuchUpload(_)) => return Ok(total),
                Err(e) => return Err(e.into()),
            };
            total += page.items.iter().map(|p| p.size).sum::<u64>();
            match page.items.last() {
                Some(p) if page.truncated => after = p.part_number,
                _ => return Ok(total),
            }
        }
    }
}

/// What the rules do to one key's versions (newest first) at `now`.
fn decide<'v>(
    rules: &BucketLifecycle,
    bucket: &Bucket,
    versions: &'v [LifecycleVersion],
    now: Millis,
    day_ms: i64,
) -> Vec<(&'v LifecycleVersion, Act)> {
    let mut out = Vec::new();
    let enabled = || rules.rules.iter().filter(|r| r.enabled);
    let Some(latest) = versions.first().filter(|v| v.is_latest) else {
        return out;
    };
    if latest.delete_marker {
        // A marker with nothing behind it: ExpiredObjectDeleteMarker.
        let alone = versions.len() == 1;
        if alone
            && enabled().any(|r| {
                r.expiration == Some(Expiration::ExpiredObjectDeleteMarker)
                    && r.filter.matches(&latest.key, 0, &Tags::new())
            })
        {
            out.push((latest, Act::RemoveMarker));
        }
    } else {
        let due = enabled().any(|r| {
            r.filter.matches(&latest.key, latest.size, &latest.tags)
                && match r.expiration {
                    Some(Expiration::Days(d)) => now >= due_after(latest.created_at, d, day_ms),
                    Some(Expiration::Date(t)) => now >= t,
                    _ => false,
                }
        });
        if due {
            out.push((latest, Act::ExpireCurrent));
        }
    }
    // Noncurrent versions only exist where versioning was ever on.
    if bucket.versioning == Versioning::Unversioned {
        return out;
    }
    for (i, pair) in versions.windows(2).enumerate() {
        let (newer, v) = (&pair[0], &pair[1]);
        // v is the (i+1)-th newest noncurrent version, noncurrent since
        // the version after it was written.
        let nth = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let due = enabled().any(|r| {
            let Some(n) = r.noncurrent else {
                return false;
            };
            r.filter.matches(&v.key, v.size, &v.tags)
                && now >= due_after(newer.created_at, n.days, day_ms)
                && n.newer_versions.is_none_or(|keep| nth > keep)
        });
        if due {
            out.push((v, Act::RemoveNoncurrent));
        }
    }
    out
}

/// The background schedule: a pass every `interval` (with up to 10%
/// jitter); a pass another gateway holds the lease for is skipped.
pub(super) async fn run_periodically(
    worker: LifecycleWorker,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = worker.config().interval;
    loop {
        let jitter = interval.mul_f64(rand::random::<f64>() * 0.1);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval + jitter) => {}
        }
        let mut quiet = |_: &str, _: &LifecycleReport| {};
        tokio::select! {
            _ = stop.changed() => return,
            // The pass logs its own line and counts itself in the metrics;
            // an interrupted one resumes from its cursors next time.
            _ = worker.run(None, false, &mut quiet) => {}
        }
    }
}
