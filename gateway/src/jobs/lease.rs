//! The jobs layer's one lease mechanism: a named row in the metadata store
//! (`meta::LeaseStore`) with a holder token and an expiry, renewed in the
//! background while its holder works, lost by a holder that stops renewing.
//! The collector holds `gc`; every gateway holds `uploads/<id>` for its
//! uploads in flight (`uploads.rs`); later jobs (lifecycle, scrub, repair)
//! take leases of their own names the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::now_millis;
use crate::meta::{LeaseFence, LeaseGrant, LeaseRecord, LeaseRequest, MetaResult, MetaStore};

/// How long leases live and how much clocks may differ.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTimings {
    pub ttl: Duration,
    pub skew: Duration,
}

impl LeaseTimings {
    pub fn from_config(cfg: &super::GcConfig) -> Self {
        Self {
            ttl: cfg.lease_ttl,
            skew: cfg.clock_skew,
        }
    }

    pub(crate) fn ttl_ms(&self) -> i64 {
        millis(self.ttl)
    }

    pub(crate) fn skew_ms(&self) -> i64 {
        millis(self.skew)
    }

    /// Renewals come every second (three times per TTL if that is
    /// shorter): an upload lease's renewal publishes its low-water mark, and
    /// how old that mark is decides how soon another gateway's collector
    /// may take what this gateway's finished uploads left behind.
    pub(crate) fn renew_every(&self) -> Duration {
        (self.ttl / 3).min(RENEW_AT_LEAST_EVERY)
    }
}

const RENEW_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Who holds a lease, for people reading `leases`: host and process id.
pub fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}/pid {}", std::process::id())
}

/// A fresh holder token: acquisitions never share one.
pub(crate) fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The acquisition of `name` by a new holder, now.
pub(crate) fn request(name: &str, t: LeaseTimings, low_water: Option<i64>) -> LeaseRequest {
    let now = now_millis();
    LeaseRequest {
        name: name.to_owned(),
        holder: token(),
        owner: owner(),
        now,
        expires_at: now.saturating_add(t.ttl_ms()),
        low_water,
        // A row is someone else's until it is expired by more than the skew.
        expired_before: now.saturating_sub(t.skew_ms()),
    }
}

/// A lease this process holds, renewed in the background until released.
pub struct HeldLease {
    meta: Arc<dyn MetaStore>,
    fence: LeaseFence,
    state: Arc<Renewal>,
    stop: watch::Sender<bool>,
    renewer: Option<JoinHandle<()>>,
}

struct Renewal {
    /// The row was gone at a renewal: taken over or revoked.
    lost: AtomicBool,
    /// Until when the last successful renewal holds, by our clock.
    expires_at: AtomicI64,
}

impl HeldLease {
    /// Takes `name` if it is free or expired; otherwise returns its holder.
    pub async fn try_acquire(
        meta: Arc<dyn MetaStore>,
        name: &str,
        t: LeaseTimings,
    ) -> MetaResult<Result<HeldLease, Option<LeaseRecord>>> {
        let req = request(name, t, None);
        let record = match meta.acquire_lease(&req).await? {
            LeaseGrant::Acquired(r) => r,
            LeaseGrant::Busy(holder) => return Ok(Err(holder)),
        };
        let fence = record.fence();
        let state = Arc::new(Renewal {
            lost: AtomicBool::new(false),
            expires_at: AtomicI64::new(record.expires_at),
        });
        let (stop, stop_rx) = watch::channel(false);
        let renewer = tokio::spawn(renew_loop(
            meta.clone(),
            fence.clone(),
            t,
            state.clone(),
            stop_rx,
        ));
        Ok(Ok(HeldLease {
            meta,
            fence,
            state,
            stop,
            renewer: Some(renewer),
        }))
    }

    pub fn fence(&self) -> &LeaseFence {
        &self.fence
    }

    /// True once the lease is known lost, or its last renewal has run out:
    /// work that is not fenced by a transaction should stop.
    pub fn is_lost(&self) -> bool {
        self.state.lost.load(Ordering::Relaxed)
            || now_millis() > self.state.expires_at.load(Ordering::Relaxed)
    }

    /// Stops renewing and deletes the row (if it is still ours).
    pub async fn release(mut self) {
        let _ = self.stop.send(true);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
        if let Err(e) = self.meta.release_lease(&self.fence).await {
            tracing::warn!(lease = %self.fence.name, error = %e, "releasing a lease failed; it expires by itself");
        }
    }
}

impl Drop for HeldLease {
    /// A lease dropped without `release` (its run was abandoned) stops being
    /// renewed and expires after its TTL.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn renew_loop(
    meta: Arc<dyn MetaStore>,
    fence: LeaseFence,
    t: LeaseTimings,
    state: Arc<Renewal>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(t.renew_every()) => {}
        }
        let expires_at = now_millis().saturating_add(t.ttl_ms());
        match meta.renew_lease(&fence, expires_at, None).await {
            Ok(true) => state.expires_at.store(expires_at, Ordering::Relaxed),
            Ok(false) => {
                tracing::warn!(lease = %fence.name, "lease lost: another holder took it over");
                state.lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(lease = %fence.name, error = %e, "renewing a lease failed"),
        }
    }
}
