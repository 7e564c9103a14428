//! CORS: a bucket's rules (PutBucketCors), validated as S3 validates them,
//! and how a browser's request is matched against them — the preflight
//! (OPTIONS) and the headers added to an actual response.

use serde::{Deserialize, Serialize};

use super::{Action, Engine, EngineError, EngineResult, Principal};
use crate::meta::{Bucket, ConfigKind};

/// S3 allows at most 100 rules in a CORS configuration.
pub const MAX_CORS_RULES: usize = 100;
/// The methods a CORS rule may allow.
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// S3 caps a rule's ID at 255 characters.
const MAX_RULE_ID: usize = 255;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCors {
    pub rules: Vec<CorsRule>,
}

/// How many `*` a pattern holds.
fn wildcards(p: &str) -> usize {
    p.matches('*').count()
}

/// `pattern` with at most one `*` matching any run of characters.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

impl CorsRule {
    fn validate(&self) -> EngineResult<()> {
        if self.allowed_origins.is_empty() || self.allowed_methods.is_empty() {
            return Err(EngineError::MalformedXml(
                "The XML you provided was not well-formed or did not validate against our published schema"
                    .into(),
            ));
        }
        if self.id.as_ref().is_some_and(|id| id.len() > MAX_RULE_ID) {
            return Err(EngineError::InvalidArgument(format!(
                "The ID of a CORS rule must be at most {MAX_RULE_ID} characters"
            )));
        }
        for m in &self.allowed_methods {
            if !CORS_METHODS.contains(&m.as_str()) {
                return Err(EngineError::InvalidRequest(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )));
            }
        }
        for o in &self.allowed_origins {
            if wildcards(o) > 1 {
                return Err(EngineError::InvalidRequest(format!(
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                )));
            }
        }
        for h in &self.allowed_headers {
            if wildcards(h) > 1 {
                return Err(EngineError::InvalidRequest(format!(
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                )));
            }
        }
        for h in &self.expose_headers {
            if h.contains('*') {
                return Err(EngineError::InvalidRequest(format!(
                    "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
                )));
            }
        }
        Ok(())
    }

    fn origin_matches(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|p| wildcard_match(p, origin))
    }

    fn method_allowed(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    /// Header names compare case-insensitively.
    fn header_allowed(&self, header: &str) -> bool {
        let h = header.to_ascii_lowercase();
        self.allowed_headers
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &h))
    }

    /// The origin to answer with: `*` when the rule allows every origin.
    fn allow_origin(&self, origin: &str) -> String {
        if self.allowed_origins.iter().any(|o| o == "*") {
            "*".to_owned()
        } else {
            origin.to_owned()
        }
    }
}

impl BucketCors {
    /// The configuration as S3 accepts it, or S3's error.
    pub fn validate(self) -> EngineResult<Self> {
        if self.rules.is_empty() || self.rules.len() > MAX_CORS_RULES {
            return Err(EngineError::MalformedXml(format!(
                "A CORS configuration holds 1 to {MAX_CORS_RULES} rules"
            )));
        }
        for r in &self.rules {
            r.validate()?;
        }
        Ok(self)
    }

    /// The first rule allowing a preflight: origin, the requested method,
    /// and every requested header.
    pub fn preflight(&self, origin: &str, method: &str, headers: &[String]) -> Option<CorsAnswer> {
        let rule = self.rules.iter().find(|r| {
            r.origin_matches(origin)
                && r.method_allowed(method)
                && headers.iter().all(|h| r.header_allowed(h))
        })?;
        Some(CorsAnswer {
            allow_origin: rule.allow_origin(origin),
            allow_methods: rule.allowed_methods.join(", "),
            allow_headers: (!headers.is_empty()).then(|| headers.join(", ")),
            expose_headers: (!rule.expose_headers.is_empty())
                .then(|| rule.expose_headers.join(", ")),
            max_age: rule.max_age_seconds,
        })
    }

    /// The first rule allowing an actual request from `origin` with `method`.
    pub fn actual(&self, origin: &str, method: &str) -> Option<CorsAnswer> {
        let rule = self
            .rules
            .iter()
            .find(|r| r.origin_matches(origin) && r.method_allowed(method))?;
        Some(CorsAnswer {
            allow_origin: rule.allow_origin(origin),
            allow_methods: rule.allowed_methods.join(", "),
            allow_headers: None,
            expose_headers: (!rule.expose_headers.is_empty())
                .then(|| rule.expose_headers.join(", ")),
            max_age: rule.max_age_seconds,
        })
    }
}

/// The Access-Control-* headers of an allowed CORS request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsAnswer {
    pub allow_origin: String,
    pub allow_methods: String,
    pub allow_headers: Option<String>,
    pub expose_headers: Option<String>,
    pub max_age: Option<i32>,
}

impl CorsAnswer {
    /// Credentials are allowed unless every origin is.
    pub fn allow_credentials(&self) -> bool {
        self.allow_origin != "*"
    }
}

impl Engine {
    /// A bucket's CORS rules, if it has any. Unauthenticated: browsers ask
    /// before (preflight) and beside (actual responses) any signature.
    pub async fn cors_of(&self, bucket: &str) -> EngineResult<Option<BucketCors>> {
        let Some(json) = self
            .inner
            .meta
            .bucket_config(bucket, ConfigKind::Cors)
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| EngineError::Corrupt(format!("CORS of bucket {bucket}: {e}")))
    }

    /// GetBucketCors.
    pub async fn get_bucket_cors(&self, who: &Principal, bucket: &str) -> EngineResult<BucketCors> {
        self.authorize(who, bucket, Action::Read).await?;
        self.cors_of(bucket)
            .await?
            .ok_or_else(|| EngineError::NoSuchCorsConfiguration(bucket.to_owned()))
    }

    /// PutBucketCors (Some, validated here) and DeleteBucketCors (None).
    pub async fn set_bucket_cors(
        &self,
        who: &Principal,
        bucket: &str,
        config: Option<BucketCors>,
    ) -> EngineResult<Bucket> {
        let b = self.authorize(who, bucket, Action::ManageBuckets).await?;
        let json = match config {
            Some(c) => {
                let json = serde_json::to_string(&c.validate()?)
                    .map_err(|e| EngineError::Internal(format!("encoding CORS: {e}")))?;
                Some(json)
            }
            None => None,
        };
        self.inner
            .meta
            .set_bucket_config(bucket, ConfigKind::Cors, json.as_deref())
            .await?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        CorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            ..Default::default()
        }
    }

    #[test]
    fn wildcards_match_one_run() {
        assert!(wildcard_match("*", "http://a"));
        assert!(wildcard_match(
            "http://*.example.com",
            "http://x.y.example.com"
        ));
        assert!(!wildcard_match(
            "http://*.example.com",
            "http://example.com"
        ));
        assert!(!wildcard_match(
            "http://*.example.com",
            "https://a.example.com"
        ));
        assert!(wildcard_match("x-amz-*", "x-amz-date"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("http://a", "http://a"));
    }

    #[test]
    fn validation_follows_s3() {
        let ok = BucketCors {
            rules: vec![rule(&["http://*.a.com"], &["GET", "PUT"], &["*"])],
        };
        assert!(ok.validate().is_ok());
        let code = |r: CorsRule| match (BucketCors { rules: vec![r] }).validate() {
            Err(EngineError::InvalidRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(code(rule(&["*"], &["PATCH"], &[])).contains("PATCH"));
        assert!(code(rule(&["http://*.*.com"], &["GET"], &[])).contains("more than one wildcard"));
        assert!(code(rule(&["*"], &["GET"], &["x-*-*"])).contains("AllowedHeader"));
        let mut expose = rule(&["*"], &["GET"], &[]);
        expose.expose_headers = vec!["*".into()];
        assert!(code(expose).contains("ExposeHeader"));
        assert!(matches!(
            BucketCors { rules: vec![] }.validate(),
            Err(EngineError::MalformedXml(_))
        ));
        assert!(matches!(
            BucketCors {
                rules: vec![rule(&[], &["GET"], &[])]
            }
            .validate(),
            Err(EngineError::MalformedXml(_))
        ));
    }

    #[test]
    fn first_matching_rule_answers() {
        let cors = BucketCors {
            rules: vec![
                rule(&["http://a.test"], &["PUT"], &["content-type"]),
                rule(&["*"], &["GET"], &[]),
            ],
        };
        let h = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let a = cors
            .preflight("http://a.test", "PUT", &h(&["Content-Type"]))
            .unwrap();
        assert_eq!(a.allow_origin, "http://a.test");
        assert!(a.allow_credentials());
        assert_eq!(a.allow_headers.as_deref(), Some("Content-Type"));
        // A header the rule does not allow: no rule matches.
        assert!(
            cors.preflight("http://a.test", "PUT", &h(&["x-other"]))
                .is_none()
        );
        let any = cors.preflight("http://b.test", "GET", &[]).unwrap();
        assert_eq!(any.allow_origin, "*");
        assert!(!any.allow_credentials());
        assert!(cors.actual("http://b.test", "PUT").is_none());
        assert!(cors.actual("http://a.test", "PUT").is_some());
    }
}
