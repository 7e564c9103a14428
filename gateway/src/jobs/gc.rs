//! One collector run: zombie chunks, compaction, unreferenced packs, orphans.
//!
//! 1. **Lease.** The run holds the `gc` lease (one collector per metadata
//!    store); a dry run reads only and takes none.
//! 2. **Cut-off.** Upload leases that expired are revoked (deleted), and the
//!    smallest `low_water` of the remaining ones — this process's own uploads
//!    read live from memory — bounds the start of every upload in flight.
//!    Nothing younger than `cut = min(now − grace, low_water) − clock_skew`
//!    is deleted: an upload in flight saw its chunks live (or touched them)
//!    and wrote its packs after it began.
//! 3. **Chunks.** Zombie rows older than the cut are deleted (pack live bytes
//!    do not change: zombies never counted).
//! 4. **Compaction.** Packs whose live bytes fell below the threshold have
//!    their live frames copied as they are into new packs, and the rows
//!    repointed compare-and-set in one transaction per new pack, fenced by
//!    the `gc` lease (`compact.rs`).
//! 5. **Packs.** Pack rows nothing points at any more are deleted — at once
//!    when they emptied by collection, after the grace period when
//!    compaction emptied them (a reader may hold their old locations) — and
//!    then their backend objects. A failure between the two leaves an orphan.
//! 6. **Orphans.** Each backend is listed completely (or the run stops);
//!    packs without a row, and staging files of local backends, older than
//!    the cut are deleted (`sweep.rs`).

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use super::GcConfig;
use super::compact;
use super::lease::{HeldLease, LeaseTimings, millis};
use super::metrics;
use super::pace::Pace;
use super::sweep;
use super::uploads::UPLOAD_LEASE_PREFIX;
use crate::engine::{Engine, EngineError, now_millis};
use crate::meta::{ChunkKey, MetaError, Millis, PackKey, TenantId, Zombie};
use crate::store::StoreError;

/// Name of the collector's lease.
pub const GC_LEASE: &str = "gc";
/// Zombie rows read and deleted per transaction.
const ZOMBIE_BATCH: usize = 500;
/// Pack rows looked at per query.
const PACK_BATCH: usize = 200;
/// Progress is reported at most this often.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What a run did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// The step running (for progress lines) or "done".
    pub phase: &'static str,
    pub grace_secs: f64,
    /// Milliseconds since the epoch: zombies and orphans younger were kept.
    pub cut_off: Millis,
    /// The oldest upload in flight anywhere, as the upload leases said.
    pub low_water: Millis,
    pub leases_revoked: u64,
    pub chunks_collected: u64,
    pub chunk_bytes_collected: u64,
    pub packs_compacted: u64,
    pub packs_written: u64,
    pub bytes_rewritten: u64,
    pub packs_deleted: u64,
    pub pack_bytes_deleted: u64,
    pub orphans_deleted: u64,
    pub orphan_bytes_deleted: u64,
    pub staging_deleted: u64,
    pub staging_bytes_deleted: u64,
    /// Seconds each step took: chunks, compaction, packs, orphans.
    pub chunks_secs: f64,
    pub compaction_secs: f64,
    pub packs_secs: f64,
    pub orphans_secs: f64,
    pub duration_secs: f64,
}

impl GcReport {
    /// Backend bytes deleted (compaction's writes not subtracted).
    pub fn bytes_reclaimed(&self) -> u64 {
        self.pack_bytes_deleted + self.orphan_bytes_deleted + self.staging_bytes_deleted
    }

    /// The one-line summary the CLI prints and the log carries.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would reclaim"
        } else {
            "reclaimed"
        };
        format!(
            "{verb} {} bytes: {} chunks collected ({} bytes), {} packs deleted, {} packs compacted into {} ({} bytes rewritten), {} orphan packs, {} staging files; {:.1} s",
            self.bytes_reclaimed(),
            self.chunks_collected,
            self.chunk_bytes_collected,
            self.packs_deleted,
            self.packs_compacted,
            self.packs_written,
            self.bytes_rewritten,
            self.orphans_deleted,
            self.staging_deleted,
            self.duration_secs,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("another collector is running ({0})")]
    Busy(String),
    #[error("the gc lease was lost during the run")]
    LeaseLost,
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

impl GcError {
    /// The `cause` label of `dooz_gc_errors_total`.
    pub fn cause(&self) -> &'static str {
        match self {
            GcError::Busy(_) => "busy",
            GcError::LeaseLost | GcError::Meta(MetaError::LeaseLost(_)) => "lease",
            GcError::Meta(_) => "metadata",
            GcError::Store(_) | GcError::Engine(EngineError::Unavailable(_)) => "backend",
            GcError::Engine(_) => "keys",
        }
    }
}

/// A run that stopped early, with what it had done.
#[derive(Debug)]
pub struct GcFailure {
    pub report: GcReport,
    pub error: GcError,
}

pub type Progress<'a> = &'a mut (dyn FnMut(&GcReport) + Send + Sync);

/// Runs collections over one engine's stores.
#[derive(Clone)]
pub struct Collector {
    engine: Engine,
    cfg: GcConfig,
}

/// The state of one run, shared by its steps.
pub(super) struct Run<'a> {
    pub engine: &'a Engine,
    pub cfg: &'a GcConfig,
    pub report: GcReport,
    pub lease: Option<HeldLease>,
    pub rewrite_pace: Pace,
    pub delete_pace: Pace,
    progress: Progress<'a>,
    started: Instant,
    last_progress: Instant,
}

impl Run<'_> {
    /// Stops the run when the `gc` lease is gone (another collector may be
    /// running now).
    pub fn check_lease(&self) -> Result<(), GcError> {
        match &self.lease {
            Some(l) if l.is_lost() => Err(GcError::LeaseLost),
            _ => Ok(()),
        }
    }

    pub fn tick(&mut self, phase: &'static str) {
        self.report.phase = phase;
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            self.report.duration_secs = self.started.elapsed().as_secs_f64();
            (self.progress)(&self.report);
        }
    }

    pub fn dry_run(&self) -> bool {
        self.report.dry_run
    }
}

impl Collector {
    pub fn new(engine: Engine, cfg: GcConfig) -> Self {
        Self { engine, cfg }
    }

    pub fn config(&self) -> &GcConfig {
        &self.cfg
    }

    /// One run. A real run fails with `Busy` while another collector holds
    /// the lease. Logs one line and updates `dooz_gc_*`.
    pub async fn run(&self, dry_run: bool, progress: Progress<'_>) -> Result<GcReport, GcFailure> {
        let started = Instant::now();
        let mut run = Run {
            engine: &self.engine,
            cfg: &self.cfg,
            report: GcReport {
                dry_run,
                phase: "starting",
                grace_secs: self.cfg.grace.as_secs_f64(),
                ..Default::default()
            },
            lease: None,
            rewrite_pace: Pace::new(self.cfg.max_rewrite_bytes_per_sec),
            delete_pace: Pace::new(u64::from(self.cfg.max_deletes_per_sec)),
            progress,
            started,
            last_progress: started,
        };
        let result = run_steps(&mut run).await;
        if let Some(lease) = run.lease.take() {
            lease.release().await;
        }
        run.report.duration_secs = started.elapsed().as_secs_f64();
        run.report.phase = "done";
        let report = run.report;
        let m = &*metrics::GC;
        if !dry_run {
            metrics::record(&report);
        }
        match result {
            Ok(()) => {
                if !dry_run {
                    m.runs.with_label_values(&["ok"]).inc();
                    m.last_success.set(now_millis() / 1000);
                }
                tracing::info!(
                    dry_run,
                    chunks = report.chunks_collected,
                    chunk_bytes = report.chunk_bytes_collected,
                    packs_deleted = report.packs_deleted,
                    packs_compacted = report.packs_compacted,
                    packs_written = report.packs_written,
                    rewritten_bytes = report.bytes_rewritten,
                    orphans = report.orphans_deleted,
                    staging = report.staging_deleted,
                    reclaimed_bytes = report.bytes_reclaimed(),
                    leases_revoked = report.leases_revoked,
                    duration_s = report.duration_secs,
                    "gc run finished"
                );
                Ok(report)
            }
            Err(GcError::Busy(holder)) => {
                m.runs.with_label_values(&["busy"]).inc();
                tracing::info!(holder = %holder, "gc run skipped: another collector holds the lease");
                Err(GcFailure {
                    report,
                    error: GcError::Busy(holder),
                })
            }
            Err(error) => {
                m.runs.with_label_values(&["error"]).inc();
                m.errors.with_label_values(&[error.cause()]).inc();
                tracing::warn!(
                    dry_run,
                    error = %error,
                    phase = report.phase,
                    chunks = report.chunks_collected,
                    packs_deleted = report.packs_deleted,
                    reclaimed_bytes = report.bytes_reclaimed(),
                    "gc run aborted; nothing it had not finished was deleted"
                );
                Err(GcFailure { report, error })
            }
        }
    }
}

async fn run_steps(run: &mut Run<'_>) -> Result<(), GcError> {
    let timings = LeaseTimings::from_config(run.cfg);
    let meta = run.engine.meta().clone();
    if !run.dry_run() {
        match HeldLease::try_acquire(meta.clone(), GC_LEASE, timings).await? {
            Ok(lease) => run.lease = Some(lease),
            Err(holder) => {
                let who = holder.map_or_else(
                    || "it changed hands just now".to_owned(),
                    |h| format!("held by {} until {}", h.owner, h.expires_at),
                );
                return Err(GcError::Busy(who));
            }
        }
    }
    let t0 = now_millis();
    let cut = cut_off(run, t0, timings).await?;
    run.report.cut_off = cut;

    let step = Instant::now();
    collect_zombies(run, cut).await?;
    run.report.chunks_secs = step.elapsed().as_secs_f64();
    run.check_lease()?;
    let step = Instant::now();
    if run.cfg.compact_threshold > 0.0 {
        compact::compact(run).await?;
    }
    run.report.compaction_secs = step.elapsed().as_secs_f64();
    run.check_lease()?;
    // Packs emptied by compaction wait for readers; the others go now.
    let step = Instant::now();
    let retired_before = now_millis().saturating_sub(millis(run.cfg.grace));
    drop_unreferenced(run, retired_before, cut).await?;
    run.report.packs_secs = step.elapsed().as_secs_f64();
    run.check_lease()?;
    let step = Instant::now();
    sweep::sweep(run, cut).await?;
    run.report.orphans_secs = step.elapsed().as_secs_f64();
    Ok(())
}

/// `min(now − grace, oldest upload in flight) − skew`, after revoking
/// expired upload leases (a dry run only ignores them).
async fn cut_off(run: &mut Run<'_>, t0: Millis, t: LeaseTimings) -> Result<Millis, GcError> {
    let meta = run.engine.meta();
    let expired_before = t0.saturating_sub(t.skew_ms());
    if !run.dry_run() {
        let revoked = meta
            .revoke_expired_leases(UPLOAD_LEASE_PREFIX, expired_before)
            .await?;
        for l in &revoked {
            tracing::warn!(
                lease = %l.name, owner = %l.owner, expired_at = l.expires_at,
                "revoked the upload lease of a gateway that stopped renewing it"
            );
        }
        run.report.leases_revoked = revoked.len() as u64;
    }
    let own = run.engine.uploads();
    let mut low = own.low_water();
    for l in meta.list_leases(UPLOAD_LEASE_PREFIX).await? {
        // A real run revoked the expired rows; a dry run only skips them.
        if l.name == own.lease_name() || (run.dry_run() && l.expires_at < expired_before) {
            continue;
        }
        // A row without a mark protects everything (older gateways).
        low = low.min(l.low_water.unwrap_or(Millis::MIN));
    }
    run.report.low_water = low;
    let grace_cut = t0.saturating_sub(millis(run.cfg.grace));
    Ok(grace_cut.min(low).saturating_sub(t.skew_ms()))
}

async fn collect_zombies(run: &mut Run<'_>, cut: Millis) -> Result<(), GcError> {
    let meta = run.engine.meta().clone();
    let mut after: Option<Zombie> = None;
    loop {
        run.check_lease()?;
        let page = meta.gc_zombies(cut, after, ZOMBIE_BATCH).await?;
        let Some(last) = page.last().copied() else {
            return Ok(());
        };
        let full = page.len() == ZOMBIE_BATCH;
        let done = if run.dry_run() {
            page
        } else {
            let ids: Vec<(TenantId, ChunkKey)> = page.iter().map(|z| (z.tenant, z.id)).collect();
            meta.gc_collect_zombies(cut, &ids).await?
        };
        run.report.chunks_collected += done.len() as u64;
        run.report.chunk_bytes_collected += done.iter().map(|z| z.len).sum::<u64>();
        run.tick("chunks");
        if !full {
            return Ok(());
        }
        after = Some(last);
    }
}

/// Deletes pack rows nothing points at, then their backend objects.
async fn drop_unreferenced(
    run: &mut Run<'_>,
    retired_before: Millis,
    cut: Millis,
) -> Result<(), GcError> {
    let meta = run.engine.meta().clone();
    // A dry run has deleted no zombies: count the packs they would empty.
    let zombies_before = run.dry_run().then_some(cut);
    let mut after: Option<PackKey> = None;
    let mut seen = HashSet::new();
    loop {
        run.check_lease()?;
        let page = meta
            .gc_unreferenced_packs(retired_before, zombies_before, after, PACK_BATCH)
            .await?;
        let Some(last) = page.last().map(|p| p.id) else {
            return Ok(());
        };
        let full = page.len() == PACK_BATCH;
        for pack in page {
            if !seen.insert(pack.id) {
                continue;
            }
            if !run.dry_run() {
                // The row goes first: a backend failure after it leaves an
                // orphan for the sweep, never a row without its pack.
                let Some(dropped) = meta.gc_drop_pack(&pack.id, retired_before).await? else {
                    continue;
                };
                let store = run.engine.backends().get(&dropped.backend)?;
                run.delete_pace.take(1).await;
                store.delete_pack(&dropped.id).await?;
            }
            run.report.packs_deleted += 1;
            run.report.pack_bytes_deleted += pack.size;
            run.tick("packs");
        }
        if !full {
            return Ok(());
        }
        after = Some(last);
    }
}
