//! Readiness: the metadata store answers and every backend answers. Checked
//! by /health/ready and before every /metrics scrape, whose gauges
//! (dooz_ready, dooz_meta_up, dooz_backend_up) let alerts say which
//! dependency is down.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{IntGauge, IntGaugeVec, Opts};

use crate::engine::Engine;

/// A dependency that does not answer within this is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

struct Gauges {
    ready: IntGauge,
    meta_up: IntGaugeVec,
    backend_up: IntGaugeVec,
}

static GAUGES: LazyLock<Gauges> = LazyLock::new(|| {
    let registry = &crate::metrics::METRICS.registry;
    let ready = IntGauge::new(
        "dooz_ready",
        "1 when the metadata store and every backend answer (/health/ready)",
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    let meta_up = IntGaugeVec::new(
        Opts::new(
            "dooz_meta_up",
            "1 when the metadata store answered the last readiness check",
        ),
        &["store"],
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    let backend_up = IntGaugeVec::new(
        Opts::new(
            "dooz_backend_up",
            "1 when the backend answered the last readiness check",
        ),
        &["backend"],
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    for c in [
        Box::new(ready.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(meta_up.clone()),
        Box::new(backend_up.clone()),
    ] {
        registry
            .register(c)
            .unwrap_or_else(|e| panic!("register health metric: {e}"));
    }
    Gauges {
        ready,
        meta_up,
        backend_up,
    }
});

/// Series every gateway exports from its start, at zero, so that rates and
/// alerts over them work before the first event (Prometheus practice).
pub fn init_series(engine: &Engine) {
    let m = &*crate::metrics::METRICS;
    for b in engine.backends().iter() {
        for op in ["put", "get", "head", "delete"] {
            for result in ["ok", "error"] {
                m.backend_requests
                    .with_label_values(&[b.name(), op, result])
                    .inc_by(0);
            }
            m.backend_retries
                .with_label_values(&[b.name(), op])
                .inc_by(0);
        }
    }
    m.commit_conflicts
        .with_label_values(&["precondition"])
        .inc_by(0);
    LazyLock::force(&GAUGES);
}

async fn within<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// Probes every dependency (concurrently), updates the gauges, and returns
/// whether all answered, with a JSON body naming what failed
/// ("unavailable"). The reason, which may carry hosts, paths or driver
/// messages, goes to the log only.
pub async fn readiness(engine: &Engine) -> (bool, serde_json::Value) {
    let g = &*GAUGES;
    let state = |ok: bool| if ok { "ok" } else { "unavailable" };
    let meta = engine.meta();
    let backends: Vec<_> = engine.backends().iter().collect();
    let (meta_result, backend_results) = tokio::join!(
        within(meta.ping()),
        futures::future::join_all(backends.iter().map(|b| within(b.probe())))
    );
    if let Err(e) = &meta_result {
        tracing::warn!(dependency = "meta", error = %e, "readiness check failed");
    }
    let mut ok = meta_result.is_ok();
    g.meta_up
        .with_label_values(&[meta.kind()])
        .set(i64::from(meta_result.is_ok()));
    let mut report = serde_json::Map::new();
    for (b, r) in backends.iter().zip(backend_results) {
        if let Err(e) = &r {
            tracing::warn!(dependency = "backend", backend = b.name(), error = %e, "readiness check failed");
        }
        ok &= r.is_ok();
        g.backend_up
            .with_label_values(&[b.name()])
            .set(i64::from(r.is_ok()));
        report.insert(b.name().to_owned(), serde_json::json!(state(r.is_ok())));
    }
    g.ready.set(i64::from(ok));
    let body = serde_json::json!({
        "ready": ok,
        "meta": state(meta_result.is_ok()),
        "backends": report,
    });
    (ok, body)
}
