//! Policy evaluation as AWS documents it for a request within one account:
//! an explicit Deny in any applicable policy wins; otherwise an Allow from
//! the caller's identity policies or from the bucket policy allows;
//! otherwise the request is implicitly denied.

use std::fmt;

use super::context::Context;
use super::document::{Effect, Patterns, PolicyDocument, Statement};
use super::wildcard::matches;

/// Who asks: a user (its ARN and its tenant's root ARN) or nobody.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    Anonymous,
    User { arn: &'a str, tenant_arn: &'a str },
}

/// One authorization question.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub caller: Caller<'a>,
    /// `s3:GetObject` (any case).
    pub action: &'a str,
    /// `arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket` or `*`.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// A policy attached to the caller, by name.
#[derive(Clone, Copy, Debug)]
pub struct Named<'a> {
    pub name: &'a str,
    pub doc: &'a PolicyDocument,
}

/// Where the deciding statement is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An identity policy attached to the user, by name.
    Identity(String),
    BucketPolicy,
}

/// The statement that decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decider {
    pub source: Source,
    pub index: usize,
    pub sid: Option<String>,
}

impl fmt::Display for Decider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Identity(n) => write!(f, "policy {n}")?,
            Source::BucketPolicy => write!(f, "bucket policy")?,
        }
        write!(f, " Statement[{}]", self.index)?;
        if let Some(sid) = &self.sid {
            write!(f, " (Sid {sid})")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Decider),
    ExplicitDeny(Decider),
    ImplicitDeny,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow(d) => write!(f, "allow by {d}"),
            Decision::ExplicitDeny(d) => write!(f, "explicit deny by {d}"),
            Decision::ImplicitDeny => write!(f, "implicit deny (no statement allows it)"),
        }
    }
}

/// The bucket policy as it applies to one request.
#[derive(Clone, Copy, Debug)]
pub struct BucketPolicy<'a> {
    pub doc: &'a PolicyDocument,
    /// Block Public Access's RestrictPublicBuckets for a caller outside the
    /// owning tenant: public Allow statements are ignored.
    pub ignore_public: bool,
}

/// Decides a request against the caller's identity policies (empty for
/// anonymous callers) and the bucket's policy.
pub fn evaluate(
    identity: &[Named<'_>],
    bucket: Option<BucketPolicy<'_>>,
    req: &Request<'_>,
) -> Decision {
    let mut allow: Option<Decider> = None;
    let mut consider = |source: &dyn Fn() -> Source,
                        i: usize,
                        s: &Statement,
                        skip_allow: bool|
     -> Option<Decider> {
        if !applies(s, req, source() == Source::BucketPolicy) {
            return None;
        }
        let d = || Decider {
            source: source(),
            index: i,
            sid: s.sid.clone(),
        };
        match s.effect {
            Effect::Deny => return Some(d()),
            Effect::Allow if allow.is_none() && !skip_allow => allow = Some(d()),
            Effect::Allow => {}
        }
        None
    };
    for p in identity {
        let src = || Source::Identity(p.name.to_owned());
        for (i, s) in p.doc.statements.iter().enumerate() {
            if let Some(d) = consider(&src, i, s, false) {
                return Decision::ExplicitDeny(d);
            }
        }
    }
    if let Some(b) = bucket {
        let src = || Source::BucketPolicy;
        for (i, s) in b.doc.statements.iter().enumerate() {
            let skip = b.ignore_public && statement_is_public(s);
            if let Some(d) = consider(&src, i, s, skip) {
                return Decision::ExplicitDeny(d);
            }
        }
    }
    match allow {
        Some(d) => Decision::Allow(d),
        None => Decision::ImplicitDeny,
    }
}

fn applies(s: &Statement, req: &Request<'_>, check_principal: bool) -> bool {
    if check_principal {
        match &s.principal {
            Some(p) if principal_matches(p, req.caller) => {}
            _ => return false,
        }
    }
    let action_hit = s
        .action
        .values
        .iter()
        .any(|a| a == "*" || matches(a, req.action, true));
    if action_hit == s.action.negated {
        return false;
    }
    if !resource_matches(&s.resource, req) {
        return false;
    }
    s.conditions.iter().all(|c| c.holds(req.context))
}

fn resource_matches(r: &Patterns, req: &Request<'_>) -> bool {
    let hit = r
        .values
        .iter()
        .any(|p| p == "*" || matches(&req.context.expand(p), req.resource, false));
    hit != r.negated
}

fn principal_matches(p: &Patterns, caller: Caller<'_>) -> bool {
    let hit = p.values.iter().any(|v| match caller {
        _ if v == "*" => true,
        Caller::Anonymous => false,
        Caller::User { arn, tenant_arn } => v == arn || v == tenant_arn,
    });
    hit != p.negated
}

/// An Allow statement anyone may satisfy: `*` (or NotPrincipal) without a
/// condition that pins the caller to fixed values.
pub fn statement_is_public(s: &Statement) -> bool {
    let Some(p) = &s.principal else {
        return false;
    };
    let anyone = p.negated || p.values.iter().any(|v| v == "*");
    s.effect == Effect::Allow && anyone && !s.conditions.iter().any(|c| c.restricts_caller())
}

/// Whether a bucket policy makes its bucket public (GetBucketPolicyStatus,
/// BlockPublicPolicy).
pub fn is_public(doc: &PolicyDocument) -> bool {
    doc.statements.iter().any(statement_is_public)
}
