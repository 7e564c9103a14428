//! Throttling: request-rate and bandwidth limits at four scopes — the whole
//! gateway, a tenant, an access key, a bucket — from `[limits]`.
//!
//! A request is admitted by the S3 access check (after the signature is
//! verified, before any body is read), so a limit is charged to the caller
//! who really sent the request, never to a key someone merely claimed. Over
//! a request rate it is refused with 503 SlowDown and `Retry-After`; over a
//! bandwidth limit its body (either way) is paced, never failed. Scopes are
//! charged most specific first, so a caller refused by its own key limit
//! does not use up the tenant's or the gateway's rate.
//!
//! Each gateway enforces the whole configured limit on its own: limits are
//! per gateway process, not shared across a deployment (see
//! docs/OPERATIONS.md, "Throttling", for why).

mod backend;
mod metrics;
mod overrides;
mod paced;
pub mod rate;

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

pub use backend::{BackendLimits, BackendThrottle};
pub use metrics::THROTTLE;
pub use overrides::{LimitChange, LimitOverride, Setting};
pub use paced::Paced;
pub use rate::{ByteRate, ByteSize, RequestRate};

type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<Instant>>;

/// Bandwidth is counted in cells of this many bytes: governor's quota
/// intervals are whole nanoseconds, too coarse for single bytes at GiB/s.
const CELL: u64 = 1024;

/// One scope's limits; a limit left out is no limit.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeLimits {
    /// Requests per period, e.g. `200/s`; bursts up to one period's worth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestRate>,
    /// Request body bytes per second, e.g. `50MiB/s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ByteRate>,
    /// Response body bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<ByteRate>,
}

impl ScopeLimits {
    fn is_empty(&self) -> bool {
        self.requests.is_none() && self.ingress.is_none() && self.egress.is_none()
    }
}

/// `[limits]`: each scope's limits apply to every member of the scope on
/// its own (`[limits.key] requests = "100/s"` is 100/s for each key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The most bytes a bandwidth limit lets through at once; large bodies
    /// are paced in pieces of at most this size.
    pub burst: ByteSize,
    /// Limiter state unused for this long is dropped (a returning caller
    /// starts with a full burst).
    pub idle_secs: u64,
    /// At most this many tenants, keys and buckets are tracked at once.
    pub max_tracked: usize,
    /// Seconds between two reloads of the overrides `dooz admin limits`
    /// keeps in the metadata store.
    pub refresh_secs: u64,
    /// The whole gateway.
    pub global: ScopeLimits,
    /// Each tenant.
    pub tenant: ScopeLimits,
    /// Each access key.
    pub key: ScopeLimits,
    /// Each bucket.
    pub bucket: ScopeLimits,
    /// Caps towards each named backend (`[limits.backends.NAME]`).
    pub backends: BTreeMap<String, BackendLimits>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            global: ScopeLimits::default(),
            tenant: ScopeLimits::default(),
            key: ScopeLimits::default(),
            bucket: ScopeLimits::default(),
            backends: BTreeMap::new(),
            burst: ByteSize(256 * 1024),
            idle_secs: 60,
            max_tracked: 100_000,
            refresh_secs: 5,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.burst.0 < CELL || self.burst.0 / CELL > u64::from(u32::MAX) {
            return Err(format!(
                "limits.burst must be between 1KiB and 4TiB (is {})",
                self.burst
            ));
        }
        if self.max_tracked == 0 {
            return Err("limits.max_tracked must be at least 1".into());
        }
        if self.refresh_secs == 0 {
            return Err("limits.refresh_secs must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Tenant,
    Key,
    Bucket,
    /// Towards one backend (waits only; see `backend.rs`).
    Backend,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Tenant => "tenant",
            Scope::Key => "key",
            Scope::Bucket => "bucket",
            Scope::Backend => "backend",
        }
    }
}

/// What a scope without limits has.
const NO_LIMITS: ScopeLimits = ScopeLimits {
    requests: None,
    ingress: None,
    egress: None,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The limiters of one member of a scope (one tenant, key or bucket).
struct Limiters {
    scope: Scope,
    requests: Option<Limiter>,
    ingress: Option<Limiter>,
    egress: Option<Limiter>,
    /// Milliseconds since the throttle started, at the last admission.
    last_used: AtomicU64,
}

/// A request-rate limiter; one period's worth in a burst (`10/min` admits
/// 10 at once).
fn request_limiter(r: RequestRate) -> Limiter {
    let burst = NonZeroU32::new(r.count).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(r.interval())
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    Limiter::direct_with_clock(quota, MonotonicClock)
}

/// Whole cells in `burst` (at least one).
fn burst_cells(burst: ByteSize) -> u32 {
    u32::try_from(burst.0 / CELL).unwrap_or(u32::MAX).max(1)
}

/// A bandwidth limiter counting KiB cells, bursting up to `burst`.
fn bandwidth_limiter(rate: ByteRate, burst: ByteSize) -> Limiter {
    let cells = u32::try_from((rate.0 / CELL).max(1)).unwrap_or(u32::MAX);
    let quota = Quota::per_second(NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst_cells(burst)).unwrap_or(NonZeroU32::MIN));
    Limiter::direct_with_clock(quota, MonotonicClock)
}

impl Limiters {
    fn new(scope: Scope, limits: &ScopeLimits, burst: ByteSize) -> Self {
        Self {
            scope,
            requests: limits.requests.map(request_limiter),
            ingress: limits.ingress.map(|r| bandwidth_limiter(r, burst)),
            egress: limits.egress.map(|r| bandwidth_limiter(r, burst)),
            last_used: AtomicU64::new(0),
        }
    }

    fn bandwidth(&self, d: Direction) -> Option<&Limiter> {
        match d {
            Direction::Ingress => self.ingress.as_ref(),
            Direction::Egress => self.egress.as_ref(),
        }
    }
}

/// Who a request is charged to. Ids, not names: a renamed tenant keeps
/// its state, and an anonymous request is charged to the bucket owner.
#[derive(Debug, Default)]
pub struct Subject<'a> {
    pub tenant: Option<String>,
    pub key: Option<&'a str>,
    pub bucket: Option<&'a str>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub scope: Scope,
    /// When the scope would admit the request (never below 1 s for the
    /// `Retry-After` header, which counts whole seconds).
    pub retry_after: Duration,
}

/// The bandwidth limiters a request's bodies pass through.
pub struct Pacer {
    limiters: Vec<Arc<Limiters>>,
    /// Largest piece a body is cut into, in bytes.
    piece: usize,
}

impl Pacer {
    pub fn paces(&self, d: Direction) -> bool {
        self.limiters.iter().any(|l| l.bandwidth(d).is_some())
    }
}

/// Shared between the front door (which wraps the bodies and writes the
/// access log) and the access check (which admits the request).
#[derive(Clone, Default)]
pub struct ThrottleSlot(Arc<SlotState>);

#[derive(Default)]
struct SlotState {
    pacer: OnceLock<Arc<Pacer>>,
    refused: OnceLock<Scope>,
    paced: AtomicBool,
}

impl ThrottleSlot {
    pub fn pacer(&self) -> Option<&Arc<Pacer>> {
        self.0.pacer.get()
    }

    /// What the access log says: `refused:<scope>`, `paced` or `-`.
    pub fn outcome(&self) -> String {
        match (self.0.refused.get(), self.0.paced.load(Ordering::Relaxed)) {
            (Some(s), _) => format!("refused:{}", s.label()),
            (None, true) => "paced".to_owned(),
            (None, false) => "-".to_owned(),
        }
    }

    pub(crate) fn mark_paced(&self) {
        self.0.paced.store(true, Ordering::Relaxed);
    }
}

/// Every limiter of a gateway.
pub struct Throttle {
    cfg: LimitsConfig,
    global: Option<Arc<Limiters>>,
    /// The limits of members with an override (defaults applied).
    overrides: RwLock<Arc<HashMap<(Scope, String), ScopeLimits>>>,
    /// Whether any limit, default or override, is set.
    active: AtomicBool,
    members: Mutex<Members>,
    started: Instant,
}

#[derive(Default)]
struct Members {
    map: HashMap<(Scope, String), Arc<Limiters>>,
    last_sweep_ms: u64,
}

impl Throttle {
    pub fn new(cfg: &LimitsConfig) -> Self {
        metrics::publish_limits(cfg);
        let t = Self {
            global: (!cfg.global.is_empty())
                .then(|| Arc::new(Limiters::new(Scope::Global, &cfg.global, cfg.burst))),
            cfg: cfg.clone(),
            overrides: RwLock::new(Arc::new(HashMap::new())),
            active: AtomicBool::new(false),
            members: Mutex::new(Members::default()),
            started: Instant::now(),
        };
        t.active.store(t.defaults_set(), Ordering::Relaxed);
        t
    }

    fn defaults_set(&self) -> bool {
        [Scope::Global, Scope::Tenant, Scope::Key, Scope::Bucket]
            .iter()
            .any(|s| !self.limits(*s).is_empty())
    }

    /// Seconds between reloads of the overrides.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.cfg.refresh_secs)
    }

    /// The `[limits]` defaults of a scope.
    pub fn defaults(&self, scope: Scope) -> ScopeLimits {
        *self.limits(scope)
    }

    /// Takes up a new set of overrides (scope, subject, override). When they
    /// differ from the current ones, limiter state starts over, so a changed
    /// limit applies from the next request. Whether anything changed.
    pub fn set_overrides(&self, list: Vec<(Scope, String, LimitOverride)>) -> bool {
        let map: HashMap<(Scope, String), ScopeLimits> = list
            .into_iter()
            .filter(|(scope, _, _)| *scope != Scope::Global)
            .map(|(scope, subject, o)| {
                let limits = o.apply(self.limits(scope));
                ((scope, subject), limits)
            })
            .collect();
        {
            let current = self.overrides.read().unwrap_or_else(|p| p.into_inner());
            if **current == map {
                return false;
            }
        }
        let any = !map.is_empty();
        metrics::publish_overrides(map.len());
        *self.overrides.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .clear();
        self.active
            .store(any || self.defaults_set(), Ordering::Relaxed);
        true
    }

    /// Reloads the overrides from the metadata store; a row that does not
    /// parse (written by a newer gateway, say) is skipped with a warning.
    pub async fn refresh(
        &self,
        meta: &dyn crate::meta::MetaStore,
    ) -> crate::meta::MetaResult<bool> {
        let rows = meta.limit_overrides().await?;
        let mut list = Vec::with_capacity(rows.len());
        for row in rows {
            let scope = Scope::parse_overridable(&row.scope);
            let parsed = serde_json::from_str::<LimitOverride>(&row.body);
            match (scope, parsed) {
                (Some(scope), Ok(o)) => list.push((scope, row.subject, o)),
                (_, Err(e)) => tracing::warn!(
                    scope = %row.scope, subject = %row.subject, error = %e,
                    "throttle: a limit override does not parse; ignored"
                ),
                (None, _) => tracing::warn!(
                    scope = %row.scope, subject = %row.subject,
                    "throttle: a limit override names an unknown scope; ignored"
                ),
            }
        }
        Ok(self.set_overrides(list))
    }

    fn limits(&self, scope: Scope) -> &ScopeLimits {
        match scope {
            Scope::Global => &self.cfg.global,
            Scope::Tenant => &self.cfg.tenant,
            Scope::Key => &self.cfg.key,
            Scope::Bucket => &self.cfg.bucket,
            Scope::Backend => &NO_LIMITS,
        }
    }

    /// Whether any limit is set (with none, admission is free).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The limiters of a scope's member, made on first use. Idle members are
    /// dropped now and then; past `max_tracked` members the table starts
    /// over (every member gets a fresh burst) rather than grow.
    fn member(&self, scope: Scope, id: &str) -> Option<Arc<Limiters>> {
        let limits = {
            let overrides = self.overrides.read().unwrap_or_else(|p| p.into_inner());
            match overrides.get(&(scope, id.to_owned())) {
                Some(l) => *l,
                None => *self.limits(scope),
            }
        };
        if limits.is_empty() {
            return None;
        }
        let now = self.now_ms();
        let idle_ms = self.cfg.idle_secs.saturating_mul(1000);
        let mut m = self.members.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_sub(m.last_sweep_ms) >= idle_ms / 2 {
            m.map
                .retain(|_, l| now.saturating_sub(l.last_used.load(Ordering::Relaxed)) < idle_ms);
            m.last_sweep_ms = now;
        }
        let key = (scope, id.to_owned());
        if !m.map.contains_key(&key) && m.map.len() >= self.cfg.max_tracked {
            tracing::warn!(
                tracked = m.map.len(),
                "throttle: more members than limits.max_tracked; limiter state starts over"
            );
            m.map.clear();
        }
        let l = m
            .map
            .entry(key)
            .or_insert_with(|| Arc::new(Limiters::new(scope, &limits, self.cfg.burst)))
            .clone();
        l.last_used.store(now, Ordering::Relaxed);
        Some(l)
    }

    /// How many tenants, keys and buckets have limiter state now.
    pub fn tracked(&self) -> usize {
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Admits a request or refuses it; an admitted request's bodies are
    /// paced by what `slot` then holds.
    pub fn admit(&self, who: &Subject<'_>, slot: Option<&ThrottleSlot>) -> Result<(), Refused> {
        if !self.is_active() {
            return Ok(());
        }
        let mut chain: Vec<Arc<Limiters>> = Vec::with_capacity(4);
        let members = [
            (Scope::Key, who.key),
            (Scope::Bucket, who.bucket),
            (Scope::Tenant, who.tenant.as_deref()),
        ];
        for (scope, id) in members {
            if let Some(l) = id.and_then(|id| self.member(scope, id)) {
                chain.push(l);
            }
        }
        if let Some(g) = &self.global {
            chain.push(g.clone());
        }
        for l in &chain {
            let Some(requests) = &l.requests else {
                continue;
            };
            if let Err(not_until) = requests.check() {
                let wait = not_until.wait_time_from(Instant::now());
                THROTTLE.refused(l.scope);
                if let Some(slot) = slot {
                    let _ = slot.0.refused.set(l.scope);
                }
                return Err(Refused {
                    scope: l.scope,
                    retry_after: wait,
                });
            }
        }
        chain.retain(|l| l.ingress.is_some() || l.egress.is_some());
        if let Some(slot) = slot
            && !chain.is_empty()
        {
            // Whole cells, so that a piece never needs more than the burst.
            let piece = usize::try_from(u64::from(burst_cells(self.cfg.burst)) * CELL)
                .unwrap_or(usize::MAX);
            let _ = slot.0.pacer.set(Arc::new(Pacer {
                limiters: chain,
                piece,
            }));
        }
        Ok(())
    }
}

impl Refused {
    /// The `Retry-After` value: whole seconds, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(f: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
        let mut c = LimitsConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn nothing_configured_admits_everything_and_tracks_nothing() {
        let t = Throttle::new(&LimitsConfig::default());
        assert!(!t.is_active());
        let slot = ThrottleSlot::default();
        for i in 0..1000 {
            let key = format!("K{i}");
            let who = Subject {
                tenant: Some("t".into()),
                key: Some(&key),
                bucket: Some("b"),
            };
            assert!(t.admit(&who, Some(&slot)).is_ok());
        }
        assert_eq!(t.tracked(), 0);
        assert!(slot.pacer().is_none());
    }

    #[test]
    fn a_key_over_its_rate_is_refused_and_others_are_not() {
        let t = Throttle::new(&cfg(|c| {
            c.key.requests = Some(RequestRate::parse("2/min").unwrap())
        }));
        let who = |k| Subject {
            tenant: Some("t".into()),
            key: Some(k),
            bucket: None,
        };
        assert!(t.admit(&who("A"), None).is_ok());
        assert!(t.admit(&who("A"), None).is_ok());
        let slot = ThrottleSlot::default();
        let r = t.admit(&who("A"), Some(&slot)).unwrap_err();
        assert_eq!(r.scope, Scope::Key);
        // The next token is ~30 s away (2/min).
        assert!(r.retry_after > Duration::from_secs(20), "{r:?}");
        assert!(r.retry_after_secs() >= 20);
        assert_eq!(slot.outcome(), "refused:key");
        assert!(t.admit(&who("B"), None).is_ok());
    }

    #[test]
    fn a_refusal_by_the_key_does_not_use_up_the_global_rate() {
        let t = Throttle::new(&cfg(|c| {
            c.key.requests = Some(RequestRate::parse("1/min").unwrap());
            c.global.requests = Some(RequestRate::parse("3/min").unwrap());
        }));
        let who = |k| Subject {
            key: Some(k),
            ..Default::default()
        };
        assert!(t.admit(&who("A"), None).is_ok());
        for _ in 0..10 {
            assert_eq!(t.admit(&who("A"), None).unwrap_err().scope, Scope::Key);
        }
        assert!(t.admit(&who("B"), None).is_ok());
        assert!(t.admit(&who("C"), None).is_ok());
        assert_eq!(t.admit(&who("D"), None).unwrap_err().scope, Scope::Global);
    }

    #[test]
    fn state_stays_bounded_under_a_flood_of_members() {
        let t = Throttle::new(&cfg(|c| {
            c.bucket.requests = Some(RequestRate::parse("100/s").unwrap());
            c.max_tracked = 500;
        }));
        for i in 0..20_000 {
            let b = format!("bucket-{i}");
            let who = Subject {
                bucket: Some(&b),
                ..Default::default()
            };
            let _ = t.admit(&who, None);
            assert!(t.tracked() <= 500);
        }
    }

    #[test]
    fn bandwidth_limits_hand_a_pacer_to_the_request() {
        let t = Throttle::new(&cfg(|c| {
            c.tenant.egress = Some(ByteRate::parse("1MiB/s").unwrap())
        }));
        let slot = ThrottleSlot::default();
        let who = Subject {
            tenant: Some("t".into()),
            ..Default::default()
        };
        t.admit(&who, Some(&slot)).unwrap();
        let p = slot.pacer().unwrap();
        assert!(p.paces(Direction::Egress));
        assert!(!p.paces(Direction::Ingress));
        assert_eq!(slot.outcome(), "-");
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let r = |ms| Refused {
            scope: Scope::Global,
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(r(0).retry_after_secs(), 1);
        assert_eq!(r(10).retry_after_secs(), 1);
        assert_eq!(r(1000).retry_after_secs(), 1);
        assert_eq!(r(1001).retry_after_secs(), 2);
        assert_eq!(r(29_500).retry_after_secs(), 30);
    }
}
