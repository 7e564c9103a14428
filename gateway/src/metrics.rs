//! Prometheus metrics, named by Prometheus conventions (`dooz_` prefix,
//! `_total` counters, `_seconds` and `_bytes` units). One process-wide
//! registry; `/metrics` on the admin endpoint renders it.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 0.5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

pub struct Metrics {
    pub registry: Registry,
    pub s3_requests: IntCounterVec,
    pub s3_duration: HistogramVec,
    pub s3_in_flight: IntGauge,
    pub s3_received_bytes: IntCounter,
    pub s3_sent_bytes: IntCounter,
    pub logical_bytes: IntCounter,
    pub stored_bytes: IntCounter,
    pub chunks: IntCounterVec,
    pub healed_boundaries: IntCounter,
    pub healed_bytes: IntCounter,
    pub backend_requests: IntCounterVec,
    pub backend_duration: HistogramVec,
    pub backend_written_bytes: IntCounterVec,
    pub meta_duration: HistogramVec,
    pub meta_errors: IntCounterVec,
    pub meta_transaction_retries: IntCounterVec,
    pub meta_pool: IntGaugeVec,
    pub meta_pool_max: IntGaugeVec,
    pub backend_retries: IntCounterVec,
    pub commit_conflicts: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub memory_budget_wait: Histogram,
    pub memory_budget: IntGauge,
    pub memory_in_use: IntGauge,
    pub memory_refusals: IntCounter,
    pub connections: IntGaugeVec,
    pub connections_closed: IntCounterVec,
    pub credential_lookups: IntCounterVec,
    pub list_rows: IntCounter,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(c.clone()), name);
    c
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(h.clone()), name);
    h
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(g.clone()), name);
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(g.clone()), name);
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(c.clone()), name);
    c
}

// Metric definitions are static: a failure here is a programming error found
// by the first test that touches metrics, never a runtime condition.
fn register(r: &Registry, c: Box<dyn prometheus::core::Collector>, name: &str) {
    r.register(c)
        .unwrap_or_else(|e| panic!("register metric {name}: {e}"));
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let s3_in_flight = IntGauge::new(
        "dooz_s3_requests_in_flight",
        "S3 requests currently being served",
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    register(&r, Box::new(s3_in_flight.clone()), "in_flight");
    let build_info = IntGaugeVec::new(
        Opts::new("dooz_build_info", "Build information; always 1"),
        &["version"],
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    register(&r, Box::new(build_info.clone()), "build_info");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    let memory_budget_wait = Histogram::with_opts(
        HistogramOpts::new(
            "dooz_memory_wait_seconds",
            "Time requests waited for the data-path memory budget",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    register(&r, Box::new(memory_budget_wait.clone()), "memory_wait");
    // process_* (resident memory, CPU, open fds) as every exporter has them.
    register(
        &r,
        Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        "process",
    );
    Metrics {
        s3_requests: counter_vec(
            &r,
            "dooz_s3_requests_total",
            "S3 requests by operation and HTTP status",
            &["operation", "status"],
        ),
        s3_duration: histogram_vec(
            &r,
            "dooz_s3_request_duration_seconds",
            "S3 request latency by operation",
            &["operation"],
        ),
        s3_in_flight,
        s3_received_bytes: counter(
            &r,
            "dooz_s3_received_bytes_total",
            "Request body bytes received from S3 clients",
        ),
        s3_sent_bytes: counter(
            &r,
            "dooz_s3_sent_bytes_total",
            "Object bytes sent to S3 clients",
        ),
        logical_bytes: counter(
            &r,
            "dooz_logical_written_bytes_total",
            "Plaintext bytes of objects and parts written",
        ),
        stored_bytes: counter(
            &r,
            "dooz_stored_written_bytes_total",
            "Bytes of new chunk frames written to packs (after dedup, compression, encryption)",
        ),
        chunks: counter_vec(
            &r,
            "dooz_chunks_total",
            "Chunks written, by whether they were new or deduplicated",
            &["kind"],
        ),
        healed_boundaries: counter(
            &r,
            "dooz_multipart_healed_regions_total",
            "Regions around multipart part boundaries re-chunked at completion",
        ),
        healed_bytes: counter(
            &r,
            "dooz_multipart_healed_read_bytes_total",
            "Plaintext bytes read back to re-chunk part boundaries at completion",
        ),
        backend_requests: counter_vec(
            &r,
            "dooz_backend_requests_total",
            "Backend requests by backend, operation and result",
            &["backend", "operation", "result"],
        ),
        backend_duration: histogram_vec(
            &r,
            "dooz_backend_request_duration_seconds",
            "Backend request latency (retries included)",
            &["backend", "operation"],
        ),
        backend_written_bytes: counter_vec(
            &r,
            "dooz_backend_written_bytes_total",
            "Pack bytes written to each backend",
            &["backend"],
        ),
        meta_duration: histogram_vec(
            &r,
            "dooz_meta_operation_duration_seconds",
            "Metadata store operation latency",
            &["store", "operation"],
        ),
        meta_errors: counter_vec(
            &r,
            "dooz_meta_operation_errors_total",
            "Metadata store operations that failed (conditions refused included)",
            &["store", "operation"],
        ),
        meta_transaction_retries: counter_vec(
            &r,
            "dooz_meta_transaction_retries_total",
            "Transactions run again after a serialization failure or deadlock",
            &["store"],
        ),
        meta_pool: gauge_vec(
            &r,
            "dooz_meta_pool_connections",
            "Metadata store connections by state (in_use, idle)",
            &["store", "state"],
        ),
        meta_pool_max: gauge_vec(
            &r,
            "dooz_meta_pool_max_connections",
            "The metadata store's connection limit",
            &["store"],
        ),
        backend_retries: counter_vec(
            &r,
            "dooz_backend_retries_total",
            "Backend HTTP attempts beyond the first, by backend and operation",
            &["backend", "operation"],
        ),
        commit_conflicts: counter_vec(
            &r,
            "dooz_commit_conflicts_total",
            "Commits refused by a condition or a concurrent change",
            &["reason"],
        ),
        build_info,
        memory_budget_wait,
        memory_budget: gauge(
            &r,
            "dooz_memory_budget_bytes",
            "Size of the data-path memory budget",
        ),
        memory_in_use: gauge(
            &r,
            "dooz_memory_in_use_bytes",
            "Bytes of the data-path memory budget reserved by requests",
        ),
        memory_refusals: counter(
            &r,
            "dooz_memory_refusals_total",
            "Requests refused with 503 SlowDown after waiting for memory",
        ),
        connections: gauge_vec(
            &r,
            "dooz_connections",
            "Open client connections by endpoint",
            &["endpoint"],
        ),
        connections_closed: counter_vec(
            &r,
            "dooz_connections_closed_total",
            "Client connections closed by the gateway, by endpoint and reason",
            &["endpoint", "reason"],
        ),
        list_rows: counter(
            &r,
            "dooz_list_rows_read_total",
            "Object rows listings read from the metadata store",
        ),
        credential_lookups: counter_vec(
            &r,
            "dooz_credential_lookups_total",
            "Access-key lookups by outcome (hit, miss, negative_hit, unknown)",
            &["outcome"],
        ),
        registry: r,
    }
});

/// One backend operation: its result, latency (retries included) and the
/// HTTP attempts it took beyond the first.
pub fn backend_request(backend: &str, op: &str, started: Instant, ok: bool, attempts: u32) {
    let m = &*METRICS;
    m.backend_requests
        .with_label_values(&[backend, op, if ok { "ok" } else { "error" }])
        .inc();
    m.backend_duration
        .with_label_values(&[backend, op])
        .observe(started.elapsed().as_secs_f64());
    if attempts > 1 {
        m.backend_retries
            .with_label_values(&[backend, op])
            .inc_by(u64::from(attempts - 1));
    }
}

/// One metadata store operation (a transaction, retries included).
pub fn meta_operation(store: &str, op: &str, started: Instant, ok: bool) {
    let m = &*METRICS;
    m.meta_duration
        .with_label_values(&[store, op])
        .observe(started.elapsed().as_secs_f64());
    if !ok {
        m.meta_errors.with_label_values(&[store, op]).inc();
    }
}

/// Connection pool gauges, refreshed at scrape time.
pub fn meta_pool(store: &str, status: &crate::meta::PoolStatus) {
    let m = &*METRICS;
    m.meta_pool
        .with_label_values(&[store, "in_use"])
        .set(i64::try_from(status.in_use).unwrap_or(i64::MAX));
    m.meta_pool
        .with_label_values(&[store, "idle"])
        .set(i64::try_from(status.idle).unwrap_or(i64::MAX));
    if let Some(max) = status.max {
        m.meta_pool_max
            .with_label_values(&[store])
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }
}

pub fn backend_bytes_written(backend: &str, bytes: usize) {
    METRICS
        .backend_written_bytes
        .with_label_values(&[backend])
        .inc_by(bytes as u64);
}

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    let families = METRICS.registry.gather();
    if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
        tracing::error!(error = %e, "encoding metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}
