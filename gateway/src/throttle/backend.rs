//! Caps towards one backend (`[limits.backends.NAME]`): requests per second
//! and bytes per second over the link, pack writes and reads together, to
//! protect a link shared with other systems or a backend that bills per
//! request. Backend work waits for room; it is never refused, so uploads,
//! downloads and the collector slow down rather than fail.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ByteRate, ByteSize, CELL, Direction, Limiter, RequestRate, Scope, THROTTLE};

/// One backend's caps; a cap left out is no cap.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackendLimits {
    /// Backend requests per period (every PUT, GET, HEAD, DELETE, LIST).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestRate>,
    /// Pack bytes per second, written and read together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<ByteRate>,
}

/// The limiters of one backend.
pub struct BackendThrottle {
    requests: Option<Limiter>,
    bandwidth: Option<Limiter>,
    /// Cells a single wait may ask for (the burst).
    burst_cells: u32,
}

impl BackendThrottle {
    /// None when the backend has no cap.
    pub fn new(limits: &BackendLimits, burst: ByteSize) -> Option<Arc<Self>> {
        if limits.requests.is_none() && limits.bandwidth.is_none() {
            return None;
        }
        Some(Arc::new(Self {
            requests: limits.requests.map(super::request_limiter),
            bandwidth: limits.bandwidth.map(|b| super::bandwidth_limiter(b, burst)),
            burst_cells: super::burst_cells(burst),
        }))
    }

    /// Waits until one more request may go to the backend.
    pub async fn request(&self, dir: Direction) {
        if let Some(l) = &self.requests {
            wait(l, NonZeroU32::MIN, dir).await;
        }
    }

    /// Waits until `bytes` more may cross the link.
    pub async fn bytes(&self, bytes: u64, dir: Direction) {
        let Some(l) = &self.bandwidth else {
            return;
        };
        let mut cells = bytes.div_ceil(CELL);
        while cells > 0 {
            let n = cells.min(u64::from(self.burst_cells));
            cells -= n;
            let n =
                NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
            wait(l, n, dir).await;
        }
    }
}

async fn wait(l: &Limiter, cells: NonZeroU32, dir: Direction) {
    let mut since = None;
    loop {
        match l.check_n(cells) {
            // More than the burst cannot be asked for (callers split).
            Ok(Ok(())) | Err(_) => break,
            Ok(Err(not_until)) => {
                since.get_or_insert_with(Instant::now);
                tokio::time::sleep(not_until.wait_time_from(Instant::now())).await;
            }
        }
    }
    if let Some(s) = since {
        THROTTLE.delayed(Scope::Backend, dir, s.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_capped_backend_link_waits_and_never_fails() {
        let limits = BackendLimits {
            requests: Some(RequestRate::parse("20/s").unwrap()),
            bandwidth: Some(ByteRate::parse("1MiB/s").unwrap()),
        };
        let t = BackendThrottle::new(&limits, ByteSize::parse("128KiB").unwrap()).unwrap();
        let started = Instant::now();
        // 40 requests at 20/s with a burst of 20: at least ~1 s.
        for _ in 0..40 {
            t.request(Direction::Egress).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(900));
        let started = Instant::now();
        // 1.5 MiB at 1 MiB/s with a 128 KiB burst, asked for at once.
        t.bytes(3 << 19, Direction::Egress).await;
        assert!(started.elapsed() >= Duration::from_millis(1300));
        assert!(BackendThrottle::new(&BackendLimits::default(), ByteSize(1 << 20)).is_none());
    }
}
