//! `dooz admin limits …`: limits of one tenant, access key or bucket that
//! differ from the `[limits]` defaults, kept in the metadata store and taken
//! up by every running gateway within `limits.refresh_secs`. The typed
//! operations the CLI (locally or through the API) and the admin API share.

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::ops::{AdminError, AdminResult, tenant};
use crate::server::Context;
use crate::throttle::{LimitChange, LimitOverride, Scope, ScopeLimits, Setting};

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Give one tenant, access key or bucket limits of its own. Each of
    /// --requests (e.g. 200/s, 6000/min), --ingress and --egress (e.g.
    /// 50MiB/s) is a rate, `unlimited` (none, whatever [limits] says) or
    /// `default` (back to [limits]); those left out keep their setting.
    /// Running gateways take it up within limits.refresh_secs.
    Set {
        #[command(flatten)]
        who: Who,
        #[arg(long)]
        requests: Option<String>,
        #[arg(long)]
        ingress: Option<String>,
        #[arg(long)]
        egress: Option<String>,
    },
    /// Remove one tenant's, key's or bucket's own limits ([limits] applies).
    Unset {
        #[command(flatten)]
        who: Who,
    },
    /// The [limits] defaults and every override.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Exactly one of a tenant, an access key or a bucket.
#[derive(Args, Clone, Debug)]
#[group(required = true, multiple = false)]
pub struct Who {
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Access key.
    #[arg(long)]
    pub key: Option<String>,
    /// Bucket name.
    #[arg(long)]
    pub bucket: Option<String>,
}

impl Who {
    /// (scope, name as given).
    pub fn parts(&self) -> (&'static str, &str) {
        match (&self.tenant, &self.key, &self.bucket) {
            (Some(t), _, _) => ("tenant", t),
            (_, Some(k), _) => ("key", k),
            (_, _, Some(b)) => ("bucket", b),
            // clap's group makes one of them required.
            _ => ("tenant", ""),
        }
    }
}

/// One override, as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideInfo {
    /// tenant, key or bucket.
    pub scope: String,
    /// Tenant id, access key or bucket name.
    pub subject: String,
    /// The tenant's name (tenant overrides), when it still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "override")]
    pub limits: LimitOverride,
}

/// `[limits]` of the gateway that answers, and every override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitsReport {
    pub defaults: Defaults,
    pub overrides: Vec<OverrideInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Defaults {
    pub global: ScopeLimits,
    pub tenant: ScopeLimits,
    pub key: ScopeLimits,
    pub bucket: ScopeLimits,
}

fn scope_of(text: &str) -> AdminResult<Scope> {
    Scope::parse_overridable(text).ok_or_else(|| {
        AdminError::Invalid(format!(
            "scope {text:?}: limits of their own are set for a tenant, key or bucket"
        ))
    })
}

/// The stored subject of an override: a tenant's id, an access key or a
/// bucket name that exist.
async fn subject(ctx: &Context, scope: Scope, name: &str) -> AdminResult<String> {
    match scope {
        Scope::Tenant => Ok(tenant(ctx, name).await?.id.to_string()),
        Scope::Key => match ctx.meta.get_user(name).await? {
            Some(u) => Ok(u.access_key),
            None => Err(AdminError::NotFound(format!(
                "no user with access key {name}"
            ))),
        },
        Scope::Bucket => match ctx.meta.get_bucket(name).await? {
            Some(b) => Ok(b.name),
            None => Err(AdminError::NotFound(format!("no bucket named {name}"))),
        },
        Scope::Global | Scope::Backend => Err(AdminError::Invalid(
            "gateway-wide and backend limits are [limits.global] and [limits.backends] in the configuration".into(),
        )),
    }
}

/// Reads `--requests`/`--ingress`/`--egress` values.
pub fn change_of(
    requests: Option<&str>,
    ingress: Option<&str>,
    egress: Option<&str>,
) -> AdminResult<LimitChange> {
    let bad = |what: &str, e: crate::throttle::rate::RateError| {
        AdminError::Invalid(format!("{what}: {e}"))
    };
    Ok(LimitChange {
        requests: requests
            .map(str::parse::<Setting<_>>)
            .transpose()
            .map_err(|e| bad("requests", e))?,
        ingress: ingress
            .map(str::parse::<Setting<_>>)
            .transpose()
            .map_err(|e| bad("ingress", e))?,
        egress: egress
            .map(str::parse::<Setting<_>>)
            .transpose()
            .map_err(|e| bad("egress", e))?,
    })
}

async fn stored(ctx: &Context, scope: Scope, subject: &str) -> AdminResult<Option<LimitOverride>> {
    let rows = ctx.meta.limit_overrides().await?;
    let Some(row) = rows
        .into_iter()
        .find(|r| r.scope == scope.label() && r.subject == subject)
    else {
        return Ok(None);
    };
    serde_json::from_str(&row.body)
        .map(Some)
        .map_err(|e| AdminError::Internal(format!("a stored limit override does not parse: {e}")))
}

async fn describe(
    ctx: &Context,
    scope: Scope,
    subject: String,
    limits: LimitOverride,
) -> OverrideInfo {
    let name = match scope {
        Scope::Tenant => match subject.parse() {
            Ok(id) => ctx.meta.get_tenant(id).await.ok().flatten().map(|t| t.name),
            Err(_) => None,
        },
        _ => None,
    };
    OverrideInfo {
        scope: scope.label().to_owned(),
        subject,
        name,
        limits,
    }
}

/// Merges `change` into a member's override (creating it), or removes the
/// override when nothing is left in it.
pub async fn set(
    ctx: &Context,
    scope: &str,
    name: &str,
    change: &LimitChange,
) -> AdminResult<OverrideInfo> {
    let scope = scope_of(scope)?;
    if change.is_empty() {
        return Err(AdminError::Invalid(
            "say what to limit: --requests, --ingress and/or --egress".into(),
        ));
    }
    let subject = subject(ctx, scope, name).await?;
    let now = stored(ctx, scope, &subject)
        .await?
        .unwrap_or_default()
        .merged(change);
    let body = if now.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&now).map_err(|e| AdminError::Internal(e.to_string()))?)
    };
    ctx.meta
        .set_limit_override(scope.label(), &subject, body.as_deref())
        .await?;
    Ok(describe(ctx, scope, subject, now).await)
}

/// Removes a member's override; NotFound when it has none.
pub async fn unset(ctx: &Context, scope: &str, name: &str) -> AdminResult<()> {
    let scope = scope_of(scope)?;
    // A tenant deleted since still has its override under its id.
    let subject = match subject(ctx, scope, name).await {
        Ok(s) => s,
        Err(AdminError::NotFound(_)) => name.to_owned(),
        Err(e) => return Err(e),
    };
    if ctx
        .meta
        .set_limit_override(scope.label(), &subject, None)
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "{} {name} has no limits of its own",
            scope.label()
        )))
    }
}

pub async fn list(ctx: &Context) -> AdminResult<LimitsReport> {
    let l = &ctx.cfg.limits;
    let mut overrides = Vec::new();
    for row in ctx.meta.limit_overrides().await? {
        let (Some(scope), Ok(o)) = (
            Scope::parse_overridable(&row.scope),
            serde_json::from_str::<LimitOverride>(&row.body),
        ) else {
            continue;
        };
        overrides.push(describe(ctx, scope, row.subject, o).await);
    }
    Ok(LimitsReport {
        defaults: Defaults {
            global: l.global,
            tenant: l.tenant,
            key: l.key,
            bucket: l.bucket,
        },
        overrides,
    })
}

fn text<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The table `dooz admin limits list` prints.
pub fn print(report: &LimitsReport) {
    println!(
        "{:<8} {:<38} {:<14} {:<14} EGRESS",
        "SCOPE", "SUBJECT", "REQUESTS", "INGRESS"
    );
    let d = &report.defaults;
    for (scope, l) in [
        ("global", &d.global),
        ("tenant", &d.tenant),
        ("key", &d.key),
        ("bucket", &d.bucket),
    ] {
        println!(
            "{scope:<8} {:<38} {:<14} {:<14} {}",
            "(default)",
            text(l.requests),
            text(l.ingress),
            text(l.egress)
        );
    }
    for o in &report.overrides {
        let who = match &o.name {
            Some(n) => format!("{n} ({})", o.subject),
            None => o.subject.clone(),
        };
        println!(
            "{:<8} {who:<38} {:<14} {:<14} {}",
            o.scope, o.limits.requests, o.limits.ingress, o.limits.egress
        );
    }
}
