//! Object Lock as records and rules: a version's retention and legal hold, a
//! bucket's default retention, and the pure decisions S3 makes about them
//! (may this version go? may this retention change?). The transactions in
//! `versions.rs` and `objects.rs` apply the rules while they hold the row.

use serde::{Deserialize, Serialize};

use super::model::Millis;

const DAY_MS: i64 = 86_400_000;

/// S3's two retention modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetentionMode {
    /// Yields to a privileged caller who asks to bypass it.
    Governance,
    /// Yields to nobody before the retain-until date; can only be extended.
    Compliance,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GOVERNANCE" => Some(RetentionMode::Governance),
            "COMPLIANCE" => Some(RetentionMode::Compliance),
            _ => None,
        }
    }
}

/// A retention period on one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    /// Retain-until date, milliseconds since the epoch.
    pub until: Millis,
}

/// The Object Lock state of a version, or what a write asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
}

impl ObjectLock {
    /// Retention still running at `now`.
    pub fn active_retention(&self, now: Millis) -> Option<Retention> {
        self.retention.filter(|r| r.until > now)
    }

    /// Why this version may not be removed at `now`, if it may not. A
    /// governance retention yields when the caller bypasses it.
    pub fn deletion_blocked(&self, now: Millis, bypass_governance: bool) -> Option<String> {
        if self.legal_hold {
            return Some("the object version is under a legal hold".into());
        }
        match self.active_retention(now) {
            Some(r) if r.mode == RetentionMode::Compliance => Some(format!(
                "the object version is under COMPLIANCE retention until {}",
                rfc3339(r.until)
            )),
            Some(r) if !bypass_governance => Some(format!(
                "the object version is under GOVERNANCE retention until {} \
                 (x-amz-bypass-governance-retention with the permission to bypass it lifts that)",
                rfc3339(r.until)
            )),
            _ => None,
        }
    }
}

/// Whether a retention may replace the current one at `now`: extending (a
/// later date, or GOVERNANCE → COMPLIANCE) always may; shortening, removing
/// or weakening only a GOVERNANCE retention with the bypass; a running
/// COMPLIANCE retention never. Err is the reason (S3 answers AccessDenied).
pub fn retention_change_allowed(
    current: Option<Retention>,
    new: Option<Retention>,
    now: Millis,
    bypass_governance: bool,
) -> Result<(), String> {
    let Some(cur) = current.filter(|r| r.until > now) else {
        return Ok(());
    };
    let extends = new.is_some_and(|n| {
        n.until >= cur.until && (n.mode == cur.mode || n.mode == RetentionMode::Compliance)
    });
    if extends {
        return Ok(());
    }
    match cur.mode {
        RetentionMode::Compliance => Err(format!(
            "the object version is under COMPLIANCE retention until {}: it can only be extended",
            rfc3339(cur.until)
        )),
        RetentionMode::Governance if bypass_governance => Ok(()),
        RetentionMode::Governance => Err(format!(
            "the object version is under GOVERNANCE retention until {}: shortening or removing it \
             needs x-amz-bypass-governance-retention and the permission to bypass it",
            rfc3339(cur.until)
        )),
    }
}

/// How long a bucket's default retention lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPeriod {
    Days(u32),
    /// S3 counts a year as 365 days.
    Years(u32),
}

/// A bucket's default retention, applied to new versions that ask for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    pub period: RetentionPeriod,
}

impl DefaultRetention {
    /// The retention a version created at `created_at` gets.
    pub fn starting_at(&self, created_at: Millis) -> Retention {
        let days = match self.period {
            RetentionPeriod::Days(d) => i64::from(d),
            RetentionPeriod::Years(y) => i64::from(y) * 365,
        };
        Retention {
            mode: self.mode,
            until: created_at.saturating_add(days.saturating_mul(DAY_MS)),
        }
    }
}

/// Object Lock of a bucket; its presence means Object Lock is enabled (which
/// is permanent, and implies versioning stays enabled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketLock {
    pub default_retention: Option<DefaultRetention>,
}

impl BucketLock {
    /// The lock a new version gets: what the request asked for, with the
    /// bucket's default retention when it asked for no retention.
    pub fn for_new_version(&self, requested: Option<ObjectLock>, created_at: Millis) -> ObjectLock {
        let requested = requested.unwrap_or_default();
        ObjectLock {
            retention: requested
                .retention
                .or_else(|| self.default_retention.map(|d| d.starting_at(created_at))),
            legal_hold: requested.legal_hold,
        }
    }
}

/// A change to one version's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockUpdate {
    /// PutObjectRetention; None removes the retention.
    Retention {
        retention: Option<Retention>,
        bypass_governance: bool,
    },
    /// PutObjectLegalHold.
    LegalHold(bool),
}

/// RFC 3339 text of a millisecond time, for messages.
pub fn rfc3339(ms: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    fn r(mode: RetentionMode, until: Millis) -> Option<Retention> {
        Some(Retention { mode, until })
    }

    #[test]
    fn deletion_follows_mode_hold_and_expiry() {
        use RetentionMode::*;
        let lock = |ret, hold| ObjectLock {
            retention: ret,
            legal_hold: hold,
        };
        assert!(lock(None, false).deletion_blocked(NOW, false).is_none());
        assert!(lock(None, true).deletion_blocked(NOW, true).is_some());
        assert!(
            lock(r(Compliance, NOW + 1), false)
                .deletion_blocked(NOW, true)
                .is_some()
        );
        assert!(
            lock(r(Compliance, NOW), false)
                .deletion_blocked(NOW, false)
                .is_none()
        );
        assert!(
            lock(r(Governance, NOW + 1), false)
                .deletion_blocked(NOW, false)
                .is_some()
        );
        assert!(
            lock(r(Governance, NOW + 1), false)
                .deletion_blocked(NOW, true)
                .is_none()
        );
    }

    #[test]
    fn retention_only_extends_without_bypass() {
        use RetentionMode::*;
        let later = NOW + 10 * DAY_MS;
        let sooner = NOW + DAY_MS;
        let ok = |c, n, b| retention_change_allowed(c, n, NOW, b).is_ok();
        // Nothing running: anything goes.
        assert!(ok(None, r(Governance, sooner), false));
        assert!(ok(r(Compliance, NOW - 1), None, false));
        // Extending, or strengthening to COMPLIANCE.
        assert!(ok(r(Compliance, sooner), r(Compliance, later), false));
        assert!(ok(r(Governance, sooner), r(Compliance, later), false));
        assert!(ok(r(Governance, sooner), r(Governance, sooner), false));
        // COMPLIANCE never shortens, weakens or goes, bypass or not.
        assert!(!ok(r(Compliance, later), r(Compliance, sooner), true));
        assert!(!ok(r(Compliance, later), r(Governance, later), true));
        assert!(!ok(r(Compliance, later), None, true));
        // GOVERNANCE shortens or goes only with the bypass.
        assert!(!ok(r(Governance, later), r(Governance, sooner), false));
        assert!(ok(r(Governance, later), r(Governance, sooner), true));
        assert!(!ok(r(Governance, later), None, false));
        assert!(ok(r(Governance, later), None, true));
    }

    #[test]
    fn default_retention_counts_days_and_365_day_years() {
        let d = DefaultRetention {
            mode: RetentionMode::Governance,
            period: RetentionPeriod::Days(2),
        };
        assert_eq!(d.starting_at(NOW).until, NOW + 2 * DAY_MS);
        let y = DefaultRetention {
            mode: RetentionMode::Compliance,
            period: RetentionPeriod::Years(1),
        };
        assert_eq!(y.starting_at(NOW).until, NOW + 365 * DAY_MS);
        let bucket = BucketLock {
            default_retention: Some(d),
        };
        let asked = ObjectLock {
            retention: r(RetentionMode::Compliance, NOW + 5),
            legal_hold: true,
        };
        assert_eq!(bucket.for_new_version(Some(asked), NOW), asked);
        let held = ObjectLock {
            retention: None,
            legal_hold: true,
        };
        let got = bucket.for_new_version(Some(held), NOW);
        assert_eq!(got.retention, Some(d.starting_at(NOW)));
        assert!(got.legal_hold);
        assert_eq!(
            BucketLock::default().for_new_version(None, NOW),
            ObjectLock::default()
        );
    }
}
