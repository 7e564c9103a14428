//! `dooz_gc_*`: the collector's counters, registered in the process registry
//! (`crate::metrics::METRICS`) the first time they are touched; `dooz serve`
//! touches them at start so that a scrape shows them before the first run.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use super::gc::GcReport;

pub struct GcMetrics {
    pub runs: IntCounterVec,
    pub reclaimed_bytes: IntCounter,
    pub rewritten_bytes: IntCounter,
    pub packs_deleted: IntCounterVec,
    pub chunks_collected: IntCounter,
    pub packs_compacted: IntCounter,
    pub duration: Histogram,
    pub last_success: IntGauge,
    pub errors: IntCounterVec,
    pub relocated_reads: IntCounter,
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(c: C, name: &str) -> C {
    // Static definitions: a failure is a programming error the first test finds.
    crate::metrics::METRICS
        .registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("register metric {name}: {e}"));
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registered(c, name)
}

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registered(c, name)
}

pub static GC: LazyLock<GcMetrics> = LazyLock::new(|| GcMetrics {
    runs: counter_vec(
        "dooz_gc_runs_total",
        "Collector runs by result (ok, error, busy: another gateway held the lease)",
        &["result"],
    ),
    reclaimed_bytes: counter(
        "dooz_gc_reclaimed_bytes_total",
        "Backend bytes deleted: empty, compacted and orphan packs, staging files",
    ),
    rewritten_bytes: counter(
        "dooz_gc_rewritten_bytes_total",
        "Backend bytes written by compaction",
    ),
    packs_deleted: counter_vec(
        "dooz_gc_packs_deleted_total",
        "Packs deleted from backends, by why (empty, orphan, staging)",
        &["reason"],
    ),
    chunks_collected: counter(
        "dooz_gc_chunks_collected_total",
        "Zombie chunk rows deleted",
    ),
    packs_compacted: counter(
        "dooz_gc_packs_compacted_total",
        "Packs whose live chunks were copied into new packs",
    ),
    duration: registered(
        Histogram::with_opts(
            HistogramOpts::new("dooz_gc_duration_seconds", "Duration of collector runs")
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0]),
        )
        .unwrap_or_else(|e| panic!("metric dooz_gc_duration_seconds: {e}")),
        "dooz_gc_duration_seconds",
    ),
    last_success: registered(
        IntGauge::new(
            "dooz_gc_last_success_timestamp_seconds",
            "Unix time the last collector run completed",
        )
        .unwrap_or_else(|e| panic!("metric dooz_gc_last_success_timestamp_seconds: {e}")),
        "dooz_gc_last_success_timestamp_seconds",
    ),
    errors: counter_vec(
        "dooz_gc_errors_total",
        "Collector runs aborted, by cause (backend, metadata, lease, keys)",
        &["cause"],
    ),
    relocated_reads: counter(
        "dooz_gc_relocated_reads_total",
        "GET reads that found their pack compacted away and followed the chunks",
    ),
});

/// Makes every `dooz_gc_*` series visible (at zero) before the first run.
pub fn init() {
    let m = &*GC;
    for result in ["ok", "error", "busy"] {
        m.runs.with_label_values(&[result]);
    }
    for reason in ["empty", "orphan", "staging"] {
        m.packs_deleted.with_label_values(&[reason]);
    }
    for cause in ["backend", "metadata", "lease", "keys"] {
        m.errors.with_label_values(&[cause]);
    }
}

/// Adds a finished (or aborted) run's work.
pub fn record(r: &GcReport) {
    let m = &*GC;
    m.reclaimed_bytes.inc_by(r.bytes_reclaimed());
    m.rewritten_bytes.inc_by(r.bytes_rewritten);
    m.chunks_collected.inc_by(r.chunks_collected);
    m.packs_compacted.inc_by(r.packs_compacted);
    m.packs_deleted
        .with_label_values(&["empty"])
        .inc_by(r.packs_deleted);
    m.packs_deleted
        .with_label_values(&["orphan"])
        .inc_by(r.orphans_deleted);
    m.packs_deleted
        .with_label_values(&["staging"])
        .inc_by(r.staging_deleted);
    m.duration.observe(r.duration_secs);
}

pub struct LifecycleMetrics {
    pub passes: IntCounterVec,
    pub actions: IntCounterVec,
    pub bytes_released: IntCounter,
    pub skipped_locked: IntCounter,
    pub duration: Histogram,
    pub backlog: IntGauge,
    pub last_success: IntGauge,
}

pub static LIFECYCLE: LazyLock<LifecycleMetrics> = LazyLock::new(|| LifecycleMetrics {
    passes: counter_vec(
        "dooz_lifecycle_passes_total",
        "Lifecycle passes by result (ok, error, busy: another gateway held the lease)",
        &["result"],
    ),
    actions: counter_vec(
        "dooz_lifecycle_actions_total",
        "Lifecycle actions: objects_expired, delete_markers_added, noncurrent_removed, \
         delete_markers_removed, uploads_aborted",
        &["action"],
    ),
    bytes_released: counter(
        "dooz_lifecycle_bytes_released_total",
        "Bytes of versions removed and of aborted uploads' parts (reclaimed by gc)",
    ),
    skipped_locked: counter(
        "dooz_lifecycle_skipped_locked_total",
        "Versions a rule selected that Object Lock kept",
    ),
    duration: registered(
        Histogram::with_opts(
            HistogramOpts::new(
                "dooz_lifecycle_pass_duration_seconds",
                "Duration of lifecycle passes",
            )
            .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0]),
        )
        .unwrap_or_else(|e| panic!("metric dooz_lifecycle_pass_duration_seconds: {e}")),
        "dooz_lifecycle_pass_duration_seconds",
    ),
    backlog: registered(
        IntGauge::new(
            "dooz_lifecycle_backlog",
            "Buckets whose lifecycle pass is unfinished (resumed by the next pass)",
        )
        .unwrap_or_else(|e| panic!("metric dooz_lifecycle_backlog: {e}")),
        "dooz_lifecycle_backlog",
    ),
    last_success: registered(
        IntGauge::new(
            "dooz_lifecycle_last_success_timestamp_seconds",
            "Unix time the last lifecycle pass completed",
        )
        .unwrap_or_else(|e| panic!("metric dooz_lifecycle_last_success_timestamp_seconds: {e}")),
        "dooz_lifecycle_last_success_timestamp_seconds",
    ),
});

const LIFECYCLE_ACTIONS: [&str; 5] = [
    "objects_expired",
    "delete_markers_added",
    "noncurrent_removed",
    "delete_markers_removed",
    "uploads_aborted",
];

/// Makes every `dooz_lifecycle_*` series visible (at zero) before the first pass.
pub fn init_lifecycle() {
    let m = &*LIFECYCLE;
    for result in ["ok", "error", "busy"] {
        m.passes.with_label_values(&[result]);
    }
    for action in LIFECYCLE_ACTIONS {
        m.actions.with_label_values(&[action]);
    }
}

/// Adds a finished (or stopped) pass's work; dry runs count nothing.
pub fn record_lifecycle(
    r: &super::lifecycle::LifecycleReport,
    error: Option<&super::lifecycle::LifecycleError>,
) {
    let m = &*LIFECYCLE;
    let result = match error {
        None => "ok",
        Some(super::lifecycle::LifecycleError::Busy(_)) => "busy",
        Some(_) => "error",
    };
    m.passes.with_label_values(&[result]).inc();
    if r.dry_run {
        return;
    }
    let counts = [
        r.objects_expired,
        r.delete_markers_added,
        r.noncurrent_versions_removed,
        r.delete_markers_removed,
        r.uploads_aborted,
    ];
    for (action, n) in LIFECYCLE_ACTIONS.iter().zip(counts) {
        m.actions.with_label_values(&[action]).inc_by(n);
    }
    m.bytes_released.inc_by(r.bytes_released);
    m.skipped_locked.inc_by(r.skipped_locked);
    m.duration.observe(r.duration_secs);
    if error.is_none() {
        m.last_success.set(crate::engine::now_millis() / 1000);
    }
}
