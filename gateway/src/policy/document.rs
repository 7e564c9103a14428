//! IAM policy documents (Version 2012-10-17) parsed into typed statements.
//! Every refusal names where in the document it is (`Statement[1].Action`),
//! as S3's MalformedPolicy message does.

use serde_json::Value;

use super::condition::{Condition, parse_conditions};

/// The only policy language version S3 accepts with conditions and
/// variables; `2008-10-17` is accepted too (it has neither variables nor
/// anything else we treat differently).
pub const VERSION: &str = "2012-10-17";
const OLD_VERSION: &str = "2008-10-17";
/// S3 caps a bucket policy at 20 KB.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct MalformedPolicy(pub String);

fn bad(at: &str, msg: impl std::fmt::Display) -> MalformedPolicy {
    if at.is_empty() {
        MalformedPolicy(msg.to_string())
    } else {
        MalformedPolicy(format!("{at}: {msg}"))
    }
}

/// Where a document is used: identity policies (attached to users) name no
/// principal; bucket policies must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Identity,
    Bucket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or its complement (`NotAction`, `NotResource`,
/// `NotPrincipal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patterns {
    pub negated: bool,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// None in identity policies. `values` holds `*` or principal ARNs
    /// (a bare tenant name is stored as its root ARN).
    pub principal: Option<Patterns>,
    /// Action patterns, lower-cased (`s3:getobject`, `s3:get*`, `*`).
    pub action: Patterns,
    /// Resource ARN patterns; None only in identity policies that name none
    /// (which S3 refuses; kept for the error), never after parsing.
    pub resource: Patterns,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PolicyDocument {
    pub version: String,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// `arn:dooz:iam::TENANT:root`: every user of a tenant.
pub fn tenant_arn(tenant: &str) -> String {
    format!("arn:dooz:iam::{tenant}:root")
}

/// `arn:dooz:iam::TENANT:user/NAME`: one user.
pub fn user_arn(tenant: &str, user: &str) -> String {
    format!("arn:dooz:iam::{tenant}:user/{user}")
}

impl PolicyDocument {
    /// Parses and checks a document for its use.
    pub fn parse(text: &str, kind: Kind) -> Result<Self, MalformedPolicy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(bad(
                "",
                format!("Policies must be at most {MAX_POLICY_BYTES} bytes"),
            ));
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| bad("", format!("Policies must be valid JSON ({e})")))?;
        Self::from_value(&v, kind)
    }

    pub fn from_value(v: &Value, kind: Kind) -> Result<Self, MalformedPolicy> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad("", "The policy must be a JSON object"))?;
        let mut version = None;
        let mut id = None;
        let mut statements = None;
        for (k, val) in obj {
            match k.as_str() {
                "Version" => {
                    let s = val
                        .as_str()
                        .ok_or_else(|| bad("Version", "must be a string"))?;
                    if s != VERSION && s != OLD_VERSION {
                        return Err(bad(
                            "Version",
                            format!(
                                "The policy language version {s} is not supported; use {VERSION}"
                            ),
                        ));
                    }
                    version = Some(s.to_owned());
                }
                "Id" => {
                    id = Some(
                        val.as_str()
                            .ok_or_else(|| bad("Id", "must be a string"))?
                            .to_owned(),
                    )
                }
                "Statement" => statements = Some(val),
                other => return Err(bad("", format!("Unknown field {other}"))),
            }
        }
        let statements = statements.ok_or_else(|| bad("", "Missing required field Statement"))?;
        let list: Vec<&Value> = match statements {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![statements],
            _ => return Err(bad("Statement", "must be an object or a list of objects")),
        };
        if list.is_empty() {
            return Err(bad("Statement", "must hold at least one statement"));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            out.push(parse_statement(s, &format!("Statement[{i}]"), kind)?);
        }
        let mut sids: Vec<&str> = out.iter().filter_map(|s| s.sid.as_deref()).collect();
        sids.sort_unstable();
        if let Some(w) = sids.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(
                "Statement",
                format!("Statement ids (Sid) must be unique: {} repeats", w[0]),
            ));
        }
        Ok(Self {
            version: version.unwrap_or_else(|| OLD_VERSION.to_owned()),
            id,
            statements: out,
        })
    }
}

fn parse_statement(v: &Value, at: &str, kind: Kind) -> Result<Statement, MalformedPolicy> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad(at, "a statement must be a JSON object"))?;
    let mut sid = None;
    let mut effect = None;
    let mut principal = None;
    let mut action = None;
    let mut resource = None;
    let mut conditions = Vec::new();
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        match k.as_str() {
            "Sid" => {
                let s = val.as_str().ok_or_else(|| bad(&here, "must be a string"))?;
                if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
                    return Err(bad(&here, "a Sid holds only letters, digits and spaces"));
                }
                sid = Some(s.to_owned());
            }
            "Effect" => {
                effect = Some(match val.as_str() {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return Err(bad(&here, "must be \"Allow\" or \"Deny\"")),
                })
            }
            "Principal" | "NotPrincipal" => {
                if principal.is_some() {
                    return Err(bad(at, "Principal and NotPrincipal are exclusive"));
                }
                principal = Some(Patterns {
                    negated: k == "NotPrincipal",
                    values: parse_principal(val, &here)?,
                });
            }
            "Action" | "NotAction" => {
                if action.is_some() {
                    return Err(bad(at, "Action and NotAction are exclusive"));
                }
                let values = strings(val, &here)?
                    .into_iter()
                    .map(|a| check_action(&a, &here))
                    .collect::<Result<_, _>>()?;
                action = Some(Patterns {
                    negated: k == "NotAction",
                    values,
                });
            }
            "Resource" | "NotResource" => {
                if resource.is_some() {
                    return Err(bad(at, "Resource and NotResource are exclusive"));
                }
                let values = strings(val, &here)?;
                for r in &values {
                    check_resource(r, &here)?;
                }
                resource = Some(Patterns {
                    negated: k == "NotResource",
                    values,
                });
            }
            "Condition" => conditions = parse_conditions(val, &here)?,
            other => return Err(bad(at, format!("Unknown field {other}"))),
        }
    }
    let effect = effect.ok_or_else(|| bad(at, "Missing required field Effect"))?;
    let action = action.ok_or_else(|| bad(at, "Missing required field Action"))?;
    let resource = resource.ok_or_else(|| bad(at, "Missing required field Resource"))?;
    match (kind, &principal) {
        (Kind::Identity, Some(_)) => {
            return Err(bad(
                at,
                "Policies attached to users must not name a Principal",
            ));
        }
        (Kind::Bucket, None) => {
            return Err(bad(at, "Missing required field Principal"));
        }
        _ => {}
    }
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// A string or a non-empty list of strings.
pub(super) fn strings(v: &Value, at: &str) -> Result<Vec<String>, MalformedPolicy> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(&format!("{at}[{i}]"), "must be a string"))
            })
            .collect(),
        Value::Array(_) => Err(bad(at, "must not be empty")),
        _ => Err(bad(at, "must be a string or a list of strings")),
    }
}

/// `"*"`, `{"AWS": "*"}` or `{"AWS": [ARN or tenant name, …]}`.
fn parse_principal(v: &Value, at: &str) -> Result<Vec<String>, MalformedPolicy> {
    if let Value::String(s) = v {
        if s == "*" {
            return Ok(vec!["*".into()]);
        }
        return Err(bad(
            at,
            "must be \"*\" or an object such as {\"AWS\": [...]}",
        ));
    }
    let obj = v
        .as_object()
        .ok_or_else(|| bad(at, "must be \"*\" or an object such as {\"AWS\": [...]}"))?;
    let mut out = Vec::new();
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        if k != "AWS" {
            return Err(bad(
                &here,
                "Dooz knows only AWS-style principals (\"AWS\": ARN)",
            ));
        }
        for (i, p) in strings(val, &here)?.into_iter().enumerate() {
            out.push(normalize_principal(&p, &format!("{here}[{i}]"))?);
        }
    }
    if out.is_empty() {
        return Err(bad(at, "must name at least one principal"));
    }
    Ok(out)
}

/// `*`, `arn:dooz:iam::TENANT:root`, `arn:dooz:iam::TENANT:user/NAME`, or a
/// bare tenant name (short for its root ARN).
fn normalize_principal(p: &str, at: &str) -> Result<String, MalformedPolicy> {
    if p == "*" {
        return Ok(p.to_owned());
    }
    if let Some(rest) = p.strip_prefix("arn:dooz:iam::") {
        let (tenant, what) = rest
            .split_once(':')
            .ok_or_else(|| bad(at, format!("Invalid principal {p}")))?;
        let ok = !tenant.is_empty()
            && (what == "root"
                || what
                    .strip_prefix("user/")
                    .is_some_and(|u| !u.is_empty() && !u.contains('/')));
        if !ok {
            return Err(bad(
                at,
                format!(
                    "Invalid principal {p}: use arn:dooz:iam::TENANT:root or arn:dooz:iam::TENANT:user/NAME"
                ),
            ));
        }
        return Ok(p.to_owned());
    }
    if p.starts_with("arn:") || p.contains([':', '/', '*', '?']) || p.is_empty() {
        return Err(bad(
            at,
            format!(
                "Invalid principal {p}: use arn:dooz:iam::TENANT:root or arn:dooz:iam::TENANT:user/NAME"
            ),
        ));
    }
    Ok(tenant_arn(p))
}

/// Lower-cases an action pattern after checking its form (`*` or
/// `s3:Name` with wildcards).
fn check_action(a: &str, at: &str) -> Result<String, MalformedPolicy> {
    if a == "*" {
        return Ok(a.to_owned());
    }
    let Some((service, name)) = a.split_once(':') else {
        return Err(bad(at, format!("Invalid action {a}: expected s3:Name")));
    };
    if !service.eq_ignore_ascii_case("s3") {
        return Err(bad(
            at,
            format!("Invalid action {a}: Dooz serves only s3 actions"),
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
    {
        return Err(bad(at, format!("Invalid action {a}")));
    }
    Ok(a.to_ascii_lowercase())
}

/// `*` or `arn:aws:s3:::bucket[/key]` (wildcards and policy variables
/// allowed).
fn check_resource(r: &str, at: &str) -> Result<(), MalformedPolicy> {
    if r == "*" || r.starts_with("arn:aws:s3:::") && r.len() > "arn:aws:s3:::".len() {
        return Ok(());
    }
    Err(bad(
        at,
        format!("Invalid resource {r}: expected arn:aws:s3:::bucket or arn:aws:s3:::bucket/key"),
    ))
}

/// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
pub fn resource_arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}
