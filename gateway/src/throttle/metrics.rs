//! `dooz_throttle*` and `dooz_limit_*`: refusals, pacing delays and the
//! configured limits, registered in the process registry
//! (`crate::metrics::METRICS`) when the throttle is built.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

use super::{Direction, LimitsConfig, Scope};

pub struct ThrottleMetrics {
    refused: IntCounterVec,
    delay: HistogramVec,
    request_limit: GaugeVec,
    bandwidth_limit: GaugeVec,
    overrides: IntGauge,
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(c: C, name: &str) -> C {
    // Static definitions: a failure is a programming error the first test finds.
    crate::metrics::METRICS
        .registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("register metric {name}: {e}"));
    c
}

/// Pacing waits: from a millisecond to a minute.
const DELAY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

pub static THROTTLE: LazyLock<ThrottleMetrics> = LazyLock::new(|| {
    let name = "dooz_throttled_requests_total";
    let refused = IntCounterVec::new(
        Opts::new(
            name,
            "Requests refused with 503 SlowDown by a request-rate limit, by scope",
        ),
        &["scope"],
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let name = "dooz_throttle_delay_seconds";
    let delay = HistogramVec::new(
        HistogramOpts::new(
            name,
            "Time a piece of a request or response body waited for a bandwidth limit, by scope and direction",
        )
        .buckets(DELAY_BUCKETS.to_vec()),
        &["scope", "direction"],
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let name = "dooz_limit_requests_per_second";
    let request_limit = GaugeVec::new(
        Opts::new(
            name,
            "Configured request-rate limit of each member of a scope (absent: none)",
        ),
        &["scope"],
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let name = "dooz_limit_bytes_per_second";
    let bandwidth_limit = GaugeVec::new(
        Opts::new(
            name,
            "Configured bandwidth limit of each member of a scope (absent: none)",
        ),
        &["scope", "direction"],
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let name = "dooz_limit_overrides";
    let overrides = IntGauge::new(
        name,
        "Tenants, access keys and buckets with limits of their own (dooz admin limits), as this gateway last loaded them",
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    ThrottleMetrics {
        overrides: registered(overrides, "dooz_limit_overrides"),
        refused: registered(refused, "dooz_throttled_requests_total"),
        delay: registered(delay, "dooz_throttle_delay_seconds"),
        request_limit: registered(request_limit, "dooz_limit_requests_per_second"),
        bandwidth_limit: registered(bandwidth_limit, "dooz_limit_bytes_per_second"),
    }
});

impl ThrottleMetrics {
    pub(super) fn refused(&self, scope: Scope) {
        self.refused.with_label_values(&[scope.label()]).inc();
    }

    pub(super) fn delayed(&self, scope: Scope, dir: Direction, wait: Duration) {
        self.delay
            .with_label_values(&[scope.label(), dir.label()])
            .observe(wait.as_secs_f64());
    }
}

/// The configured limits as gauges; a scope without a limit has no series.
/// The refusal and delay series start at zero, so that dashboards and
/// alerts see them before the first event.
pub(super) fn publish_limits(cfg: &LimitsConfig) {
    let m = &*THROTTLE;
    for scope in [
        Scope::Global,
        Scope::Tenant,
        Scope::Key,
        Scope::Bucket,
        Scope::Backend,
    ] {
        if scope != Scope::Backend {
            m.refused.with_label_values(&[scope.label()]).inc_by(0);
        }
        for dir in [Direction::Ingress, Direction::Egress] {
            let _ = m.delay.with_label_values(&[scope.label(), dir.label()]);
        }
    }
    for (scope, limits) in [
        (Scope::Global, &cfg.global),
        (Scope::Tenant, &cfg.tenant),
        (Scope::Key, &cfg.key),
        (Scope::Bucket, &cfg.bucket),
    ] {
        let s = scope.label();
        match limits.requests {
            Some(r) => m.request_limit.with_label_values(&[s]).set(r.per_second()),
            None => {
                let _ = m.request_limit.remove_label_values(&[s]);
            }
        }
        for (dir, rate) in [
            (Direction::Ingress, limits.ingress),
            (Direction::Egress, limits.egress),
        ] {
            match rate {
                Some(r) => m
                    .bandwidth_limit
                    .with_label_values(&[s, dir.label()])
                    .set(r.0 as f64),
                None => {
                    let _ = m.bandwidth_limit.remove_label_values(&[s, dir.label()]);
                }
            }
        }
    }
}

/// How many overrides the gateway holds.
pub(super) fn publish_overrides(n: usize) {
    THROTTLE.overrides.set(i64::try_from(n).unwrap_or(i64::MAX));
}
