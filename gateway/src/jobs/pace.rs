//! A run-long rate limit: `take(n)` sleeps until `n` more units fit the
//! configured rate since the run began.

use std::time::{Duration, Instant};

pub struct Pace {
    per_sec: u64,
    start: Instant,
    used: u64,
}

impl Pace {
    /// `per_sec` 0 means unlimited.
    pub fn new(per_sec: u64) -> Self {
        Self {
            per_sec,
            start: Instant::now(),
            used: 0,
        }
    }

    pub async fn take(&mut self, n: u64) {
        if self.per_sec == 0 {
            return;
        }
        self.used = self.used.saturating_add(n);
        let due = Duration::from_secs_f64(self.used as f64 / self.per_sec as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}
