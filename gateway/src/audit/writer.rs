//! The per-gateway audit writer: S3 requests hand it their records, it
//! appends whatever is waiting in one transaction (group commit), and a
//! request in sync mode is answered only once its records are committed.
//!
//! What a crash can lose: in sync mode, nothing that was acknowledged — a
//! request whose mutation committed but whose record had not yet been
//! appended was never answered either (the client saw the connection drop).
//! In async mode, the records still queued: at most `audit.queue` records,
//! typically the last few milliseconds of requests.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{APPEND_RETRIES, AuditConfig, S3Mode};
use crate::meta::{AuditRecord, ChainKey, MetaError, MetaStore};

struct AuditMetrics {
    records: IntCounterVec,
    append: Histogram,
}

// Registered on first use; `AuditLog::start` uses them before the gateway
// serves, so every scrape carries them.
static METRICS: LazyLock<AuditMetrics> = LazyLock::new(|| {
    let registry = &crate::metrics::METRICS.registry;
    let records = IntCounterVec::new(
        Opts::new(
            "dooz_audit_records_total",
            "Audit records appended (ok) or lost after retries (error)",
        ),
        &["result"],
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    let append = Histogram::with_opts(
        HistogramOpts::new(
            "dooz_audit_append_duration_seconds",
            "One audit append transaction (a batch of records)",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]),
    )
    .unwrap_or_else(|e| panic!("metric: {e}"));
    for c in [
        Box::new(records.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(append.clone()),
    ] {
        registry
            .register(c)
            .unwrap_or_else(|e| panic!("register audit metric: {e}"));
    }
    AuditMetrics { records, append }
});

struct Job {
    records: Vec<AuditRecord>,
    done: Option<oneshot::Sender<bool>>,
}

/// A handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    mode: S3Mode,
}

impl AuditLog {
    /// Starts the writer task; it ends once every handle is dropped and the
    /// queue is drained.
    pub fn start(
        meta: Arc<dyn MetaStore>,
        key: ChainKey,
        cfg: &AuditConfig,
    ) -> (Self, JoinHandle<()>) {
        let m = &*METRICS;
        m.records.with_label_values(&["ok"]).inc_by(0);
        m.records.with_label_values(&["error"]).inc_by(0);
        // Capacity in jobs: a job is one request's records (DeleteObjects
        // has up to 1000), so this bounds memory, not just a count.
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let task = tokio::spawn(run(meta, key, rx, cfg.max_batch.max(1)));
        (Self { tx, mode: cfg.s3 }, task)
    }

    pub fn s3_mode(&self) -> S3Mode {
        self.mode
    }

    /// Queues records; in sync mode returns once they are committed (or
    /// given up on, which is logged and counted). Waits while the queue is
    /// full.
    pub async fn record(&self, records: Vec<AuditRecord>) {
        if records.is_empty() || self.mode == S3Mode::Off {
            return;
        }
        let (done, committed) = match self.mode {
            S3Mode::Sync => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        if let Err(e) = self.tx.send(Job { records, done }).await {
            lost(&e.0.records, "the audit writer has stopped");
            return;
        }
        if let Some(rx) = committed {
            let _ = rx.await;
        }
    }
}

/// Appends records now, in one transaction, retrying transient failures
/// (operator commands, which run without a writer task).
pub async fn append_now(
    meta: &dyn MetaStore,
    key: &ChainKey,
    records: Vec<AuditRecord>,
) -> Result<u64, MetaError> {
    let started = Instant::now();
    let n = records.len() as u64;
    let mut attempt = 0;
    let result = loop {
        match meta.audit().audit_append(key, records.clone()).await {
            Err(MetaError::Unavailable(e)) if attempt < APPEND_RETRIES.len() => {
                tracing::warn!(target: "dooz::audit", error = %e, "audit append failed; retrying");
                tokio::time::sleep(APPEND_RETRIES[attempt]).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    let m = &*METRICS;
    m.append.observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => m.records.with_label_values(&["ok"]).inc_by(n),
        Err(e) => lost(&records, &e.to_string()),
    }
    result
}

/// Records that could not be appended go to the log in full, at error level,
/// so an operator can still account for them.
fn lost(records: &[AuditRecord], why: &str) {
    METRICS
        .records
        .with_label_values(&["error"])
        .inc_by(records.len() as u64);
    for r in records {
        tracing::error!(
            target: "dooz::audit",
            error = why,
            record = %serde_json::to_string(r).unwrap_or_default(),
            "audit record NOT appended"
        );
    }
}

async fn run(meta: Arc<dyn MetaStore>, key: ChainKey, mut rx: mpsc::Receiver<Job>, max: usize) {
    while let Some(first) = rx.recv().await {
        // Everything that queued while the last append ran goes into this one.
        let mut jobs = vec![first];
        let mut n = jobs[0].records.len();
        while n < max {
            match rx.try_recv() {
                Ok(job) => {
                    n += job.records.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(n);
        for job in &mut jobs {
            records.append(&mut job.records);
        }
        let ok = append_now(meta.as_ref(), &key, records).await.is_ok();
        for job in jobs {
            if let Some(done) = job.done {
                let _ = done.send(ok);
            }
        }
    }
}
