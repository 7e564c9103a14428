//! Bounded retries with exponential backoff and jitter.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a provider retries transient failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (total attempts = `retries + 1`).
    pub retries: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Cap on a single backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (0-based): exponential, capped, with
    /// "equal jitter" — uniformly random in `[d/2, d]` — so that many gateway
    /// instances do not hammer a recovering KMS in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        let d = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = d / 2;
        let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_ns == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ns)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Upper bound of the total time spent sleeping between attempts.
    pub fn max_total_backoff(&self) -> Duration {
        (0..self.retries).fold(Duration::ZERO, |acc, r| {
            let factor = 1u32.checked_shl(r.min(20)).unwrap_or(u32::MAX);
            acc + self
                .initial_backoff
                .saturating_mul(factor)
                .min(self.max_backoff)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy {
            retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for r in 0..40 {
            let d = p.backoff(r);
            let cap = Duration::from_millis(100)
                .saturating_mul(1u32.checked_shl(r.min(20)).unwrap_or(u32::MAX))
                .min(Duration::from_millis(1000));
            assert!(d >= cap / 2 && d <= cap, "retry {r}: {d:?}");
        }
        assert_eq!(
            p.max_total_backoff(),
            Duration::from_millis(100 + 200 + 400 + 800 + 1000)
        );
    }
}
