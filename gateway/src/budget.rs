//! The memory budget of the data path: one pool of bytes that uploads (pack
//! buffers, chunking, lookup and sealing batches), downloads (read-ahead,
//! decrypted chunks) and buffered request bodies (XML, large aws-chunked
//! chunks) reserve from before they allocate.
//!
//! The rule that keeps it deadlock-free: a request *waits* only for the
//! minimum it needs to make progress, and only while it holds nothing else
//! from the pool (`reserve`). Anything beyond that minimum — a second pack in
//! flight, read-ahead — is taken only if it is free right now
//! (`try_reserve`). What a request holds is given back by progress that does
//! not depend on anyone waiting (a backend write finishing, the client
//! reading), or by the stall timeouts. The one exception, an aws-chunked
//! chunk larger than the body allowance, waits while its upload holds its
//! reservation; that wait is bounded like every other (`memory_wait`), so it
//! cannot deadlock either, it fails with 503 SlowDown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::METRICS;

/// The pool counts in units of this many bytes.
pub const UNIT: usize = 64 * 1024;

/// Why memory could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The request waited `memory_wait` without the memory becoming free.
    #[error("the gateway's memory budget stayed exhausted for {0:?}; reduce your request rate")]
    Exhausted(Duration),
}

/// A share of the pool, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Bytes this reservation holds (a multiple of [`UNIT`]).
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits() * UNIT)
    }

    /// Splits off a reservation of `bytes` (rounded up to units); None when
    /// this one holds less.
    pub fn split(&mut self, bytes: usize) -> Option<Reservation> {
        let units = units(bytes);
        if units == 0 {
            return Some(Reservation { permit: None });
        }
        let permit = self.permit.as_mut()?.split(units as usize)?;
        Some(Reservation {
            permit: Some(permit),
        })
    }

    /// Adds another reservation's share to this one.
    pub fn merge(&mut self, mut other: Reservation) {
        match (&mut self.permit, other.permit.take()) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// A reservation of nothing (for callers that account only conditionally).
    pub fn none() -> Self {
        Reservation { permit: None }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(p) = &self.permit {
            METRICS.memory_in_use.sub((p.num_permits() * UNIT) as i64);
        }
    }
}

/// Units needed for `bytes`, rounded up.
pub fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

#[derive(Clone)]
pub struct MemoryBudget {
    sem: Arc<Semaphore>,
    total: u32,
    wait: Duration,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("total_bytes", &self.total_bytes())
            .field("in_use_bytes", &self.in_use_bytes())
            .finish()
    }
}

impl MemoryBudget {
    /// A pool of `bytes` (at least `min_bytes`, so the largest single
    /// reservation always fits); requests wait at most `wait` for memory.
    pub fn new(bytes: usize, min_bytes: usize, wait: Duration) -> Self {
        let total = units(bytes.max(min_bytes)).max(1);
        METRICS.memory_budget.set(i64::from(total) * UNIT as i64);
        Self {
            sem: Arc::new(Semaphore::new(total as usize)),
            total,
            wait,
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.total as usize * UNIT
    }

    /// Bytes currently reserved; 0 when the gateway is idle (a test's
    /// check that nothing leaked).
    pub fn in_use_bytes(&self) -> usize {
        (self.total as usize).saturating_sub(self.sem.available_permits()) * UNIT
    }

    fn granted(&self, permit: OwnedSemaphorePermit) -> Reservation {
        METRICS
            .memory_in_use
            .add((permit.num_permits() * UNIT) as i64);
        Reservation {
            permit: Some(permit),
        }
    }

    /// Waits (up to the configured bound) until `bytes` are free. Call it
    /// only while holding nothing else from this pool, or accept that the
    /// bound is what breaks a cycle. More than the whole pool is clamped to
    /// the whole pool: such a request runs alone.
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation, BudgetError> {
        let n = units(bytes).min(self.total);
        if n == 0 {
            return Ok(Reservation::none());
        }
        let started = Instant::now();
        let acquired =
            tokio::time::timeout(self.wait, self.sem.clone().acquire_many_owned(n)).await;
        METRICS
            .memory_budget_wait
            .observe(started.elapsed().as_secs_f64());
        match acquired {
            Ok(Ok(permit)) => Ok(self.granted(permit)),
            // The semaphore is never closed; treat it like exhaustion.
            Ok(Err(_)) | Err(_) => {
                METRICS.memory_refusals.inc();
                Err(BudgetError::Exhausted(self.wait))
            }
        }
    }

    /// Waits without a bound until `bytes` are free: for work whose client
    /// already has its answer's status (a GET in the middle of its body),
    /// which can no longer be refused with 503 and holds nothing while it
    /// waits. The semaphore is fair, so the wait ends as others finish.
    pub async fn reserve_patiently(&self, bytes: usize) -> Reservation {
        let n = units(bytes).min(self.total);
        if n == 0 {
            return Reservation::none();
        }
        let started = Instant::now();
        let acquired = self.sem.clone().acquire_many_owned(n).await;
        METRICS
            .memory_budget_wait
            .observe(started.elapsed().as_secs_f64());
        match acquired {
            Ok(permit) => self.granted(permit),
            // Never closed; were it, reading on unaccounted beats failing.
            Err(_) => Reservation::none(),
        }
    }

    /// `bytes` if they are free right now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = units(bytes);
        if n == 0 {
            return Some(Reservation::none());
        }
        self.sem
            .clone()
            .try_acquire_many_owned(n)
            .ok()
            .map(|p| self.granted(p))
    }
}

/// Bytes whose memory is accounted: the reservation goes back to the pool
/// when the last clone (or slice) of the returned `Bytes` is dropped — for a
/// GET, once the HTTP stack has written it to the socket.
pub fn accounted(buf: Vec<u8>, reservation: Reservation) -> Bytes {
    Bytes::from_owner(Accounted {
        buf,
        _reservation: reservation,
    })
}

struct Accounted {
    buf: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Accounted {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_come_back_when_dropped_and_waits_are_bounded() {
        let b = MemoryBudget::new(4 * UNIT, UNIT, Duration::from_millis(50));
        let mut r = b.reserve(3 * UNIT).await.unwrap();
        assert_eq!(b.in_use_bytes(), 3 * UNIT);
        assert!(b.try_reserve(2 * UNIT).is_none());
        let part = r.split(UNIT + 1).unwrap();
        assert_eq!(part.bytes(), 2 * UNIT);
        assert!(r.split(2 * UNIT).is_none(), "only one unit left");
        let bytes = accounted(vec![7; 10], part);
        let slice = bytes.slice(2..4);
        drop(bytes);
        assert_eq!(b.in_use_bytes(), 3 * UNIT, "a slice keeps it alive");
        drop(slice);
        assert_eq!(b.in_use_bytes(), UNIT);
        assert_eq!(
            b.reserve(4 * UNIT).await.unwrap_err(),
            BudgetError::Exhausted(Duration::from_millis(50))
        );
        drop(r);
        assert_eq!(b.in_use_bytes(), 0);
        // More than the pool runs alone rather than never.
        let all = b.reserve(100 * UNIT).await.unwrap();
        assert_eq!(all.bytes(), 4 * UNIT);
    }
}
