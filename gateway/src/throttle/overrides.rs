//! Limits of one tenant, access key or bucket that differ from the `[limits]`
//! defaults, set at runtime (`dooz admin limits set`) and kept in the
//! metadata store; every gateway reloads them every `limits.refresh_secs`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::rate::{ByteRate, RateError, RequestRate};
use super::{Scope, ScopeLimits};

/// One limit of an override.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Setting<T> {
    /// The `[limits]` default of the scope.
    #[default]
    Default,
    /// No limit, whatever the default says.
    Unlimited,
    Limit(T),
}

impl<T> Setting<T> {
    pub fn is_default(&self) -> bool {
        matches!(self, Setting::Default)
    }

    fn apply(&self, base: Option<T>) -> Option<T>
    where
        T: Copy,
    {
        match self {
            Setting::Default => base,
            Setting::Unlimited => None,
            Setting::Limit(t) => Some(*t),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Setting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Default => f.write_str("default"),
            Setting::Unlimited => f.write_str("unlimited"),
            Setting::Limit(t) => t.fmt(f),
        }
    }
}

/// `unlimited`, `default`, or a rate.
fn parse_setting<T>(
    text: &str,
    rate: fn(&str) -> Result<T, RateError>,
) -> Result<Setting<T>, RateError> {
    match text.trim() {
        "default" => Ok(Setting::Default),
        "unlimited" | "none" => Ok(Setting::Unlimited),
        t => rate(t).map(Setting::Limit),
    }
}

impl FromStr for Setting<RequestRate> {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, RateError> {
        parse_setting(s, RequestRate::parse)
    }
}

impl FromStr for Setting<ByteRate> {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, RateError> {
        parse_setting(s, ByteRate::parse)
    }
}

impl<T: fmt::Display> Serialize for Setting<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, T> Deserialize<'de> for Setting<T>
where
    Setting<T>: FromStr<Err = RateError>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What an override changes; a field left at `default` follows `[limits]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverride {
    #[serde(skip_serializing_if = "Setting::is_default")]
    pub requests: Setting<RequestRate>,
    #[serde(skip_serializing_if = "Setting::is_default")]
    pub ingress: Setting<ByteRate>,
    #[serde(skip_serializing_if = "Setting::is_default")]
    pub egress: Setting<ByteRate>,
}

impl LimitOverride {
    /// Whether it changes nothing (and need not be stored).
    pub fn is_empty(&self) -> bool {
        self.requests.is_default() && self.ingress.is_default() && self.egress.is_default()
    }

    /// The limits of a member whose scope's defaults are `base`.
    pub fn apply(&self, base: &ScopeLimits) -> ScopeLimits {
        ScopeLimits {
            requests: self.requests.apply(base.requests),
            ingress: self.ingress.apply(base.ingress),
            egress: self.egress.apply(base.egress),
        }
    }

    /// This override with the fields `change` names replaced.
    pub fn merged(mut self, change: &LimitChange) -> Self {
        if let Some(r) = change.requests {
            self.requests = r;
        }
        if let Some(i) = change.ingress {
            self.ingress = i;
        }
        if let Some(e) = change.egress {
            self.egress = e;
        }
        self
    }
}

/// A change to an override: the fields given replace the stored ones
/// (`default` removes one); those left out stay as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<Setting<RequestRate>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Setting<ByteRate>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Setting<ByteRate>>,
}

impl LimitChange {
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.ingress.is_none() && self.egress.is_none()
    }
}

impl Scope {
    /// The scopes an override can name (the whole gateway has only its
    /// `[limits.global]`).
    pub fn parse_overridable(text: &str) -> Option<Self> {
        match text {
            "tenant" => Some(Scope::Tenant),
            "key" => Some(Scope::Key),
            "bucket" => Some(Scope::Bucket),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_what_it_names_and_keeps_the_rest() {
        let base = ScopeLimits {
            requests: Some(RequestRate::parse("100/s").unwrap()),
            ingress: Some(ByteRate::parse("10MiB/s").unwrap()),
            egress: None,
        };
        let o: LimitOverride =
            serde_json::from_str(r#"{"requests":"unlimited","egress":"1MiB/s"}"#).unwrap();
        let l = o.apply(&base);
        assert_eq!(l.requests, None);
        assert_eq!(l.ingress, base.ingress);
        assert_eq!(l.egress, Some(ByteRate(1 << 20)));
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"{"requests":"unlimited","egress":"1MiB/s"}"#
        );
        let change: LimitChange = serde_json::from_str(r#"{"requests":"default"}"#).unwrap();
        let o = o.merged(&change);
        assert_eq!(o.apply(&base).requests, base.requests);
        assert!(!o.is_empty());
        assert!(
            o.merged(&LimitChange {
                egress: Some(Setting::Default),
                ..Default::default()
            })
            .is_empty()
        );
        assert!(serde_json::from_str::<LimitChange>(r#"{"requests":"lots"}"#).is_err());
        assert!(serde_json::from_str::<LimitChange>(r#"{"weight":"2"}"#).is_err());
    }
}
