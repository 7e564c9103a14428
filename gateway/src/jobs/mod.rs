//! Background work over the engine's stores (no HTTP): the collector
//! (garbage collection, compaction, orphan sweep) and the leases that keep
//! jobs and uploads of several gateway processes apart. Later jobs
//! (lifecycle, scrub, repair) take their own named leases through `lease.rs`.

mod compact;
mod config;
pub mod gc;
pub mod lease;
pub mod lifecycle;
pub mod metrics;
mod pace;
mod sweep;
pub mod uploads;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{GcConfig, LifecycleConfig};
pub use gc::{Collector, GcError, GcFailure, GcReport};
pub use lifecycle::{LifecycleError, LifecycleFailure, LifecycleReport, LifecycleWorker};

use crate::engine::Engine;
use crate::meta::MetaResult;
use lease::LeaseTimings;

/// What `dooz serve` runs in the background; stopped with [`Jobs::stop`].
pub struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Takes this gateway's upload lease (before any upload can start) and
    /// starts its renewal, the periodic collector (`[gc] enabled`) and the
    /// periodic lifecycle pass (`[lifecycle] enabled`).
    pub async fn start(
        engine: &Engine,
        cfg: &GcConfig,
        lifecycle_cfg: &LifecycleConfig,
    ) -> MetaResult<Self> {
        metrics::init();
        metrics::init_lifecycle();
        let timings = LeaseTimings::from_config(cfg);
        let meta = engine.meta().clone();
        uploads::acquire(&meta, engine.uploads(), timings).await?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(uploads::hold(
            meta,
            engine.uploads().clone(),
            timings,
            stop_rx.clone(),
        ))];
        if cfg.enabled {
            let collector = Collector::new(engine.clone(), cfg.clone());
            tasks.push(tokio::spawn(collect_periodically(
                collector,
                stop_rx.clone(),
            )));
        }
        if lifecycle_cfg.enabled {
            let worker = LifecycleWorker::new(engine.clone(), lifecycle_cfg.clone(), timings);
            tasks.push(tokio::spawn(lifecycle::run_periodically(worker, stop_rx)));
        }
        Ok(Self { stop, tasks })
    }

    /// Stops the collector (a run in progress is abandoned: what it did not
    /// finish is picked up by the next run) and releases the upload lease.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Runs the collector every `interval` (with up to 10% jitter, so gateways
/// sharing a database do not all try at once); a run another gateway holds
/// the lease for is skipped.
async fn collect_periodically(collector: Collector, mut stop: watch::Receiver<bool>) {
    let interval = collector.config().interval;
    loop {
        let jitter = interval.mul_f64(rand::random::<f64>() * 0.1);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval + jitter) => {}
        }
        let mut quiet = |_: &GcReport| {};
        tokio::select! {
            _ = stop.changed() => return,
            // The run logs its own line and counts itself in the metrics.
            _ = collector.run(false, &mut quiet) => {}
        }
    }
}
