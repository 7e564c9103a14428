//! Upload leases: how the collector learns how far back the uploads still in
//! flight reach, on every gateway, without a write per upload.
//!
//! Each gateway process keeps its uploads in flight in memory (`begin` at the
//! start of a PUT, part, or copy; the guard ends it) and holds one lease row,
//! `uploads/<gateway id>`, whose `low_water` it renews with the start time
//! of its oldest upload in flight (or the time of the renewal when idle).
//! Every upload that starts after a renewal starts later than the value it
//! published, so the smallest `low_water` over the live rows is a lower bound
//! of the start of every upload in flight anywhere. The collector deletes a
//! zombie or an orphan pack only when it is older than that bound: an upload
//! saw its chunks live (or touched them) and wrote its packs after it began.
//!
//! A gateway that stops renewing (crashed, or cut off for a lease TTL) loses
//! its row to the collector, which then stops honouring its uploads; those
//! uploads' packs carry the lost lease as their fence (`NewPack::fence`), so
//! their commits fail instead of pointing at packs the sweep may delete.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::lease::{LeaseTimings, request};
use crate::engine::now_millis;
use crate::meta::{LeaseFence, LeaseGrant, MetaError, MetaResult, MetaStore, Millis};

/// Name prefix of every gateway's upload lease.
pub const UPLOAD_LEASE_PREFIX: &str = "uploads/";

/// This process's uploads in flight and the lease that publishes them.
pub struct UploadLeases {
    name: String,
    state: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    /// (start, id) of every upload in flight.
    active: BTreeSet<(Millis, u64)>,
    /// Start times never go backwards, even if the wall clock does.
    last_start: Millis,
    fence: Option<LeaseFence>,
}

/// One upload in flight; ends when dropped.
pub struct InFlight {
    leases: Arc<UploadLeases>,
    key: (Millis, u64),
    fence: Option<LeaseFence>,
}

impl InFlight {
    /// The lease the upload's packs are written under.
    pub fn fence(&self) -> Option<LeaseFence> {
        self.fence.clone()
    }

    pub fn started_at(&self) -> Millis {
        self.key.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.leases.lock().active.remove(&self.key);
    }
}

impl UploadLeases {
    /// A registry under a fresh gateway id; its lease row is held by
    /// [`hold`] (in `dooz serve`).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            name: format!("{UPLOAD_LEASE_PREFIX}{}", uuid::Uuid::new_v4()),
            state: Mutex::new(Registry::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This gateway's lease name.
    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// Registers an upload starting now.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let mut r = self.lock();
        let start = now_millis().max(r.last_start);
        r.last_start = start;
        r.next += 1;
        let key = (start, r.next);
        r.active.insert(key);
        InFlight {
            leases: self.clone(),
            key,
            fence: r.fence.clone(),
        }
    }

    /// The start of the oldest upload in flight, or now when there is none:
    /// every upload registered later starts no earlier.
    pub fn low_water(&self) -> Millis {
        let mut r = self.lock();
        let now = now_millis().max(r.last_start);
        r.last_start = now;
        r.active.first().map_or(now, |(start, _)| *start)
    }

    /// Uploads in flight right now.
    pub fn in_flight(&self) -> usize {
        self.lock().active.len()
    }

    pub fn fence(&self) -> Option<LeaseFence> {
        self.lock().fence.clone()
    }

    fn set_fence(&self, fence: LeaseFence) {
        self.lock().fence = Some(fence);
    }
}

/// Takes this gateway's upload lease; call before serving, so that no
/// upload runs unpublished.
pub async fn acquire(
    meta: &Arc<dyn MetaStore>,
    leases: &UploadLeases,
    t: LeaseTimings,
) -> MetaResult<()> {
    let req = request(leases.lease_name(), t, Some(leases.low_water()));
    match meta.acquire_lease(&req).await? {
        LeaseGrant::Acquired(r) => {
            leases.set_fence(r.fence());
            Ok(())
        }
        // The name is random per process: only a clash of UUIDs gets here.
        LeaseGrant::Busy(_) => Err(MetaError::Internal(format!(
            "upload lease {} is held by someone else",
            leases.lease_name()
        ))),
    }
}

/// Renews the upload lease (publishing the low-water mark) until `stop`,
/// then deletes it. A lease found lost is acquired again under a new token;
/// uploads that began under the old one fail at commit.
pub async fn hold(
    meta: Arc<dyn MetaStore>,
    leases: Arc<UploadLeases>,
    t: LeaseTimings,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(t.renew_every()) => {}
        }
        let Some(fence) = leases.fence() else {
            if let Err(e) = acquire(&meta, &leases, t).await {
                tracing::warn!(error = %e, "acquiring the upload lease failed");
            }
            continue;
        };
        let expires_at = now_millis().saturating_add(t.ttl_ms());
        match meta
            .renew_lease(&fence, expires_at, Some(leases.low_water()))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    lease = %fence.name, in_flight = leases.in_flight(),
                    "upload lease lost (not renewed within its TTL); uploads in flight will fail and must be retried"
                );
                // Until the new lease is held, new uploads keep the old
                // fence and fail: never an unfenced upload.
                if let Err(e) = acquire(&meta, &leases, t).await {
                    tracing::warn!(error = %e, "acquiring the upload lease again failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing the upload lease failed"),
        }
    }
    if let Some(fence) = leases.fence()
        && let Err(e) = meta.release_lease(&fence).await
    {
        tracing::warn!(error = %e, "releasing the upload lease failed; it expires by itself");
    }
}
