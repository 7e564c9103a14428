//! `[gc]` in the config file: the collector's schedule, grace period,
//! compaction threshold, pace, and the lease timings every job shares.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::config::humantime_secs;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Run the collector in the background of `dooz serve` (one gateway at a
    /// time collects; the others skip while it holds the lease).
    pub enabled: bool,
    /// Seconds between background runs.
    #[serde(with = "humantime_secs")]
    pub interval: Duration,
    /// Seconds a zombie chunk, an unreferenced pack and a compacted pack are
    /// kept before they are deleted: what a reader that resolved a location
    /// just before a delete gets to finish. Uploads are protected by their
    /// leases, however long they take.
    #[serde(with = "humantime_secs")]
    pub grace: Duration,
    /// Packs whose live bytes are below this fraction of their size are
    /// rewritten (0 turns compaction off).
    pub compact_threshold: f64,
    /// Bytes per second compaction may copy (read and write); 0 = unlimited.
    pub max_rewrite_bytes_per_sec: u64,
    /// Backend deletions per second; 0 = unlimited.
    pub max_deletes_per_sec: u32,
    /// A lease not renewed for this many seconds is expired: a gateway that
    /// died stops protecting its uploads and stops collecting after this.
    #[serde(with = "humantime_secs")]
    pub lease_ttl: Duration,
    /// Largest clock difference between gateways, and between a gateway and
    /// its backends; subtracted from every time the collector compares.
    #[serde(with = "humantime_secs")]
    pub clock_skew: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(600),
            grace: Duration::from_secs(3600),
            compact_threshold: 0.5,
            max_rewrite_bytes_per_sec: 64 * 1024 * 1024,
            max_deletes_per_sec: 200,
            lease_ttl: Duration::from_secs(30),
            clock_skew: Duration::from_secs(2),
        }
    }
}

impl GcConfig {
    /// Checked by `Config::finish`.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.compact_threshold) {
            return Err("gc.compact_threshold must be between 0 and 1".into());
        }
        if self.lease_ttl < Duration::from_millis(300) {
            return Err("gc.lease_ttl must be at least 0.3 seconds".into());
        }
        if self.interval.is_zero() {
            return Err("gc.interval must be positive".into());
        }
        Ok(())
    }

    /// The threshold in thousandths, as the metadata compares it.
    pub fn threshold_permille(&self) -> u32 {
        (self.compact_threshold * 1000.0).round().clamp(0.0, 1000.0) as u32
    }
}

/// `[lifecycle]`: the lifecycle worker's schedule and batch sizes, and the
/// test-only day length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Run lifecycle passes in the background of `dooz serve` (one gateway
    /// at a time; the others skip while it holds the `lifecycle` lease).
    pub enabled: bool,
    /// Seconds between background passes.
    #[serde(with = "humantime_secs")]
    pub interval: Duration,
    /// Versions read per batch (one short read transaction each); the
    /// bucket's cursor is saved after every batch.
    pub batch_size: usize,
    /// Expirations and aborts per second; 0 = unlimited.
    pub max_actions_per_sec: u32,
    /// TESTING ONLY: the length of a lifecycle "day" in seconds, so that
    /// rules written in days act within a test (as Ceph RGW's
    /// rgw_lc_debug_interval). Unset in production: with it, every
    /// `Days` rule expires data that many *seconds* after it was written.
    pub debug_day_secs: Option<u64>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            batch_size: 1000,
            max_actions_per_sec: 0,
            debug_day_secs: None,
        }
    }
}

impl LifecycleConfig {
    /// Checked by `Config::finish`.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("lifecycle.interval must be positive".into());
        }
        if self.batch_size == 0 {
            return Err("lifecycle.batch_size must be at least 1".into());
        }
        if self.debug_day_secs == Some(0) {
            return Err("lifecycle.debug_day_secs must be at least 1 (or unset)".into());
        }
        Ok(())
    }

    /// Milliseconds in a lifecycle day.
    pub fn day_ms(&self) -> i64 {
        self.debug_day_secs.map_or(crate::engine::DAY_MS, |s| {
            i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
        })
    }
}
