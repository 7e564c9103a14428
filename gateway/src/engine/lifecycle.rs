//! Lifecycle rules: a bucket's configuration as Dooz stores it, its S3
//! validation, and the one question both the worker and `x-amz-expiration`
//! ask: when is this version due? The worker that acts lives in
//! `jobs::lifecycle`.

use serde::{Deserialize, Serialize};

use super::{Action, Engine, EngineError, EngineResult, Principal};
use crate::meta::{Bucket, Millis, Tags};

/// S3's limit on rules per configuration.
pub const MAX_RULES: usize = 1000;
/// A real lifecycle day.
pub const DAY_MS: i64 = 86_400_000;

/// A bucket's lifecycle configuration, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLifecycle {
    pub rules: Vec<LifecycleRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    pub filter: RuleFilter,
    pub expiration: Option<Expiration>,
    pub noncurrent: Option<NoncurrentExpiration>,
    /// AbortIncompleteMultipartUpload DaysAfterInitiation.
    pub abort_after_days: Option<u32>,
}

/// What a rule selects: every condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFilter {
    pub prefix: String,
    pub tags: Tags,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
    /// Given as the rule's top-level `<Prefix>` (the pre-Filter form);
    /// shown back the same way.
    #[serde(default)]
    pub legacy_prefix: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// Current versions this many days after their creation.
    Days(u32),
    /// Current versions from this instant (midnight UTC) on.
    Date(Millis),
    /// A delete marker that is its key's only version.
    ExpiredObjectDeleteMarker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// Days after a version stopped being current.
    pub days: u32,
    /// This many newest noncurrent versions are kept whatever their age.
    pub newer_versions: Option<u32>,
}

impl RuleFilter {
    pub fn matches(&self, key: &str, size: u64, tags: &Tags) -> bool {
        key.starts_with(&self.prefix)
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
            && self.size_greater_than.is_none_or(|n| size > n)
            && self.size_less_than.is_none_or(|n| size < n)
    }

    fn has_conditions_beyond_prefix(&self) -> bool {
        !self.tags.is_empty() || self.size_greater_than.is_some() || self.size_less_than.is_some()
    }
}

/// When something `days` lifecycle days after `from` is due. With real days
/// S3 rounds up to the next midnight UTC; a shortened test day does not.
pub fn due_after(from: Millis, days: u32, day_ms: i64) -> Millis {
    let t = from.saturating_add(i64::from(days).saturating_mul(day_ms));
    if day_ms == DAY_MS && t % DAY_MS != 0 {
        (t / DAY_MS + 1) * DAY_MS
    } else {
        t
    }
}

fn invalid(msg: &str) -> EngineError {
    EngineError::InvalidArgument(msg.to_owned())
}

fn malformed() -> EngineError {
    EngineError::MalformedXml(
        "The XML you provided was not well-formed or did not validate against our published schema"
            .into(),
    )
}

impl BucketLifecycle {
    /// S3's checks of a whole configuration (the front door has already
    /// refused what the XML form cannot express).
    pub fn validate(mut self) -> EngineResult<Self> {
        if self.rules.is_empty() {
            return Err(malformed());
        }
        if self.rules.len() > MAX_RULES {
            return Err(invalid(
                "The number of lifecycle rules must not exceed the allowed limit of 1000 rules",
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for r in &mut self.rules {
            if r.id.is_empty() {
                // S3 names rules it was given without an ID.
                r.id = uuid::Uuid::new_v4().simple().to_string();
            }
            if r.id.chars().count() > 255 {
                return Err(invalid("ID length should not exceed allowed limit of 255"));
            }
            if !ids.insert(r.id.clone()) {
                return Err(invalid(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
            r.check()?;
        }
        Ok(self)
    }

    /// `x-amz-expiration` of a current version: the earliest expiry an
    /// enabled Expiration rule gives it, with that rule's ID.
    pub fn current_expiry(
        &self,
        key: &str,
        size: u64,
        tags: &Tags,
        created_at: Millis,
        day_ms: i64,
    ) -> Option<(Millis, &str)> {
        self.rules
            .iter()
            .filter(|r| r.enabled && r.filter.matches(key, size, tags))
            .filter_map(|r| {
                let at = match r.expiration? {
                    Expiration::Days(d) => due_after(created_at, d, day_ms),
                    Expiration::Date(t) => t,
                    Expiration::ExpiredObjectDeleteMarker => return None,
                };
                Some((at, r.id.as_str()))
            })
            .min_by_key(|(at, _)| *at)
    }
}

impl LifecycleRule {
    fn check(&self) -> EngineResult<()> {
        if self.expiration.is_none() && self.noncurrent.is_none() && self.abort_after_days.is_none()
        {
            return Err(EngineError::InvalidRequest(
                "At least one action needs to be specified in a rule".into(),
            ));
        }
        let f = &self.filter;
        if let (Some(gt), Some(lt)) = (f.size_greater_than, f.size_less_than)
            && gt >= lt
        {
            return Err(invalid(
                "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
            ));
        }
        match self.expiration {
            Some(Expiration::Days(0)) => {
                return Err(invalid(
                    "'Days' for Expiration action must be a positive integer",
                ));
            }
            Some(Expiration::Date(t)) if t % DAY_MS != 0 => {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            Some(Expiration::ExpiredObjectDeleteMarker) if f.has_conditions_beyond_prefix() => {
                return Err(EngineError::InvalidRequest(
                    "ExpiredObjectDeleteMarker cannot be specified with tags or object size filters"
                        .into(),
                ));
            }
            _ => {}
        }
        if let Some(n) = self.noncurrent {
            if n.days == 0 {
                return Err(invalid(
                    "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
                ));
            }
            if n.newer_versions.is_some_and(|v| !(1..=100).contains(&v)) {
                return Err(invalid(
                    "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer up to 100",
                ));
            }
        }
        match self.abort_after_days {
            Some(0) => Err(invalid(
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )),
            Some(_) if f.has_conditions_beyond_prefix() => Err(EngineError::InvalidRequest(
                "AbortIncompleteMultipartUpload cannot be specified with tags or object size filters"
                    .into(),
            )),
            _ => Ok(()),
        }
    }
}

impl Engine {
    /// A bucket's lifecycle configuration, if it has one.
    pub async fn lifecycle_of(&self, bucket: &str) -> EngineResult<Option<BucketLifecycle>> {
        let Some(json) = self.inner.meta.bucket_lifecycle(bucket).await? else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| EngineError::Corrupt(format!("lifecycle of bucket {bucket}: {e}")))
    }

    /// GetBucketLifecycleConfiguration.
    pub async fn get_bucket_lifecycle(
        &self,
        who: &Principal,
        bucket: &str,
    ) -> EngineResult<BucketLifecycle> {
        self.authorize(who, bucket, Action::Read).await?;
        self.lifecycle_of(bucket)
            .await?
            .ok_or_else(|| EngineError::NoSuchLifecycleConfiguration(bucket.to_owned()))
    }

    /// PutBucketLifecycleConfiguration (Some, validated here) and
    /// DeleteBucketLifecycle (None).
    pub async fn set_bucket_lifecycle(
        &self,
        who: &Principal,
        bucket: &str,
        config: Option<BucketLifecycle>,
    ) -> EngineResult<Bucket> {
        let b = self.authorize(who, bucket, Action::ManageBuckets).await?;
        let json = match config {
            Some(c) => Some(
                serde_json::to_string(&c.validate()?)
                    .map_err(|e| EngineError::Internal(format!("encoding lifecycle: {e}")))?,
            ),
            None => None,
        };
        self.inner
            .meta
            .set_bucket_lifecycle(bucket, json.as_deref())
            .await?;
        Ok(b)
    }

    /// When a rule will expire a bucket's current version, and that rule's
    /// ID (`x-amz-expiration`). A configuration that cannot be read only
    /// costs the header (and is logged): reads and writes go on.
    pub async fn expiry_of(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
        tags: &Tags,
        created_at: Millis,
    ) -> Option<(Millis, String)> {
        let config = match self.lifecycle_of(bucket).await {
            Ok(c) => c?,
            Err(e) => {
                tracing::warn!(bucket, error = %e, "reading the lifecycle configuration failed");
                return None;
            }
        };
        config
            .current_expiry(key, size, tags, created_at, self.inner.cfg.lifecycle_day_ms)
            .map(|(at, id)| (at, id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str) -> LifecycleRule {
        LifecycleRule {
            id: id.into(),
            enabled: true,
            expiration: Some(Expiration::Days(1)),
            ..Default::default()
        }
    }

    #[test]
    fn real_days_round_up_to_midnight_test_days_do_not() {
        let noon = 10 * DAY_MS + DAY_MS / 2;
        assert_eq!(due_after(noon, 1, DAY_MS), 12 * DAY_MS);
        assert_eq!(due_after(10 * DAY_MS, 1, DAY_MS), 11 * DAY_MS);
        assert_eq!(due_after(noon, 3, 1000), noon + 3000);
    }

    #[test]
    fn filters_need_every_condition() {
        let mut tags = Tags::new();
        tags.insert("a".into(), "1".into());
        let f = RuleFilter {
            prefix: "logs/".into(),
            tags: tags.clone(),
            size_greater_than: Some(10),
            size_less_than: Some(100),
            legacy_prefix: false,
        };
        assert!(f.matches("logs/x", 50, &tags));
        assert!(!f.matches("log/x", 50, &tags));
        assert!(!f.matches("logs/x", 10, &tags));
        assert!(!f.matches("logs/x", 100, &tags));
        assert!(!f.matches("logs/x", 50, &Tags::new()));
    }

    #[test]
    fn validation_follows_s3() {
        assert!(BucketLifecycle::default().validate().is_err());
        let dup = BucketLifecycle {
            rules: vec![rule("a"), rule("a")],
        };
        assert!(matches!(
            dup.validate(),
            Err(EngineError::InvalidArgument(_))
        ));
        let many = BucketLifecycle {
            rules: (0..1001).map(|i| rule(&i.to_string())).collect(),
        };
        assert!(many.validate().is_err());
        let mut none = rule("n");
        none.expiration = None;
        assert!(matches!(
            BucketLifecycle { rules: vec![none] }.validate(),
            Err(EngineError::InvalidRequest(_))
        ));
        let mut unnamed = rule("");
        unnamed.expiration = Some(Expiration::Date(20_000 * DAY_MS));
        let named = BucketLifecycle {
            rules: vec![unnamed],
        }
        .validate();
        assert!(named.is_ok_and(|c| !c.rules[0].id.is_empty()));
        let mut noon = rule("d");
        noon.expiration = Some(Expiration::Date(20_000 * DAY_MS + 1));
        assert!(BucketLifecycle { rules: vec![noon] }.validate().is_err());
    }

    #[test]
    fn the_earliest_enabled_rule_names_the_expiry() {
        let mut late = rule("late");
        late.expiration = Some(Expiration::Days(5));
        let mut off = rule("off");
        off.enabled = false;
        let c = BucketLifecycle {
            rules: vec![late, rule("soon"), off],
        };
        let got = c.current_expiry("k", 1, &Tags::new(), 0, 1000);
        assert_eq!(got, Some((1000, "soon")));
    }
}
