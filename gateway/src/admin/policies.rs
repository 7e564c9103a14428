//! `dooz admin policy …` (a tenant's named policies), `dooz admin user
//! policy …` (what a user holds) and `dooz admin user can …` (what a key
//! may do, and the statement that decides): the typed operations the CLI
//! (`commands.rs`, locally or through the API) and the admin API share.
//! Gateways see changes within their credential cache's lifetime.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ops::{AdminError, AdminResult, tenant};
use crate::engine::Principal;
use crate::meta::StoredPolicy;
use crate::policy::{
    Context as PolicyContext, Decision, Kind, PolicyDocument, builtin, is_builtin, user_arn,
    valid_policy_name,
};
use crate::s3::access::{BucketInfo, decide};
use crate::server::Context;
use crate::tenancy::{Credential, attached_policies};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a tenant's named policy from an IAM JSON document
    /// (Version 2012-10-17; no Principal). Checked before it is stored.
    Create {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        name: String,
        /// The document: a file, or `-` for standard input.
        #[arg(long)]
        file: String,
    },
    /// The tenant's policies and the built-in ones.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a policy document.
    Show {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Delete a tenant's policy (refused while a user holds it).
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum UserPolicyCommand {
    /// Attach a built-in or tenant policy to a user.
    Attach { access_key: String, policy: String },
    /// Detach a policy from a user (detaching its role leaves only what
    /// else is attached).
    Detach { access_key: String, policy: String },
    /// The policies a user holds.
    List {
        access_key: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedPolicyInfo {
    pub name: String,
    pub builtin: bool,
    pub document: String,
}

pub fn read_document(file: &str) -> AdminResult<String> {
    use std::io::Read;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| AdminError::Invalid(format!("reading standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| AdminError::Invalid(format!("reading {file}: {e}")))?;
    }
    Ok(text)
}

pub async fn put_policy(
    ctx: &Context,
    tenant_name: &str,
    name: &str,
    text: &str,
) -> AdminResult<()> {
    if !valid_policy_name(name) {
        return Err(AdminError::Invalid(format!(
            "invalid policy name {name:?}: 1 to 128 letters, digits and +=,.@_-"
        )));
    }
    if is_builtin(name) {
        return Err(AdminError::Invalid(format!("{name} is a built-in policy")));
    }
    PolicyDocument::parse(text, Kind::Identity)
        .map_err(|e| AdminError::Invalid(format!("MalformedPolicy: {e}")))?;
    let t = tenant(ctx, tenant_name).await?;
    ctx.meta
        .put_policy(&StoredPolicy {
            tenant_id: t.id,
            name: name.to_owned(),
            document: text.to_owned(),
            created_at: crate::engine::now_millis(),
        })
        .await?;
    Ok(())
}

pub async fn list_policies(ctx: &Context, tenant_name: &str) -> AdminResult<Vec<NamedPolicyInfo>> {
    let t = tenant(ctx, tenant_name).await?;
    let mut out: Vec<NamedPolicyInfo> = builtin::BUILTIN
        .iter()
        .map(|(n, _, d)| NamedPolicyInfo {
            name: (*n).to_owned(),
            builtin: true,
            document: (*d).to_owned(),
        })
        .collect();
    out.extend(
        ctx.meta
            .list_policies(t.id)
            .await?
            .into_iter()
            .map(|p| NamedPolicyInfo {
                name: p.name,
                builtin: false,
                document: p.document,
            }),
    );
    Ok(out)
}

pub async fn show_policy(ctx: &Context, tenant_name: &str, name: &str) -> AdminResult<String> {
    if let Some((_, _, d)) = builtin::BUILTIN.iter().find(|(n, _, _)| *n == name) {
        return Ok((*d).to_owned());
    }
    let t = tenant(ctx, tenant_name).await?;
    ctx.meta
        .get_policy(t.id, name)
        .await?
        .map(|p| p.document)
        .ok_or_else(|| AdminError::NotFound(format!("no policy {name} in tenant {}", t.name)))
}

pub async fn delete_policy(ctx: &Context, tenant_name: &str, name: &str) -> AdminResult<()> {
    if is_builtin(name) {
        return Err(AdminError::Invalid(format!(
            "{name} is a built-in policy and cannot be deleted"
        )));
    }
    let t = tenant(ctx, tenant_name).await?;
    if ctx.meta.delete_policy(t.id, name).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no policy {name} in tenant {}",
            t.name
        )))
    }
}

/// What `user can` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanAnswer {
    pub access_key: String,
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub allowed: bool,
    /// allow, explicit-deny or implicit-deny.
    pub decision: String,
    /// The deciding statement (none for an implicit deny).
    pub statement: Option<String>,
}

/// `arn:aws:s3:::bucket[/key]` → the bucket name.
fn bucket_of(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    let b = rest.split('/').next().unwrap_or(rest);
    (!b.is_empty()).then_some(b)
}

/// Decides as the gateway would for `access_key` doing `action` on
/// `resource`, with the given extra condition keys.
pub async fn can(
    ctx: &Context,
    access_key: &str,
    action: &str,
    resource: &str,
    extra: &[(String, String)],
) -> AdminResult<CanAnswer> {
    let user = ctx
        .meta
        .get_user(access_key)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no user with access key {access_key}")))?;
    let t = tenant(ctx, &user.tenant_id.to_string()).await?;
    let policies = attached_policies(ctx.meta.as_ref(), &user).await?;
    let cred = Credential {
        principal: Principal {
            access_key: access_key.to_owned(),
            tenant_id: t.id,
            policy: user.policy,
            grant: None,
        },
        secret: Arc::new(Zeroizing::new(String::new())),
        user_name: Arc::from(user.name.as_str()),
        tenant_name: Arc::from(t.name.as_str()),
        policies: Arc::new(policies),
    };
    let default_block = if ctx.cfg.access.block_public_access {
        crate::meta::PublicAccessBlock::ALL
    } else {
        crate::meta::PublicAccessBlock::default()
    };
    let bucket = match bucket_of(resource) {
        Some(b) => BucketInfo::load(ctx.meta.as_ref(), b, default_block).await?,
        None => None,
    };
    let principal = user_arn(&t.name, &user.name);
    let mut cx = PolicyContext::new();
    cx.set("aws:username", user.name.clone())
        .set("aws:userid", access_key)
        .set("aws:PrincipalAccount", t.name.clone())
        .set("aws:PrincipalArn", principal.clone())
        .set("aws:PrincipalType", "User")
        .set("aws:SecureTransport", "false");
    let now = time::OffsetDateTime::now_utc();
    if let Ok(s) = now.format(&time::format_description::well_known::Rfc3339) {
        cx.set("aws:CurrentTime", s);
    }
    for (k, v) in extra {
        cx.set(k, v.clone());
    }
    let cross_tenant = bucket.as_ref().is_some_and(|b| b.tenant_id != t.id);
    let d = if cross_tenant {
        Decision::ImplicitDeny
    } else {
        decide(Some(&cred), bucket.as_ref(), action, resource, &cx)
    };
    let (decision, statement) = match &d {
        Decision::Allow(s) => ("allow", Some(s.to_string())),
        Decision::ExplicitDeny(s) => ("explicit-deny", Some(s.to_string())),
        Decision::ImplicitDeny => ("implicit-deny", None),
    };
    Ok(CanAnswer {
        access_key: access_key.to_owned(),
        principal,
        action: action.to_owned(),
        resource: resource.to_owned(),
        allowed: d.allowed(),
        decision: decision.to_owned(),
        statement: statement
            .or_else(|| cross_tenant.then(|| "the bucket belongs to another tenant".to_owned())),
    })
}

/// A tenant's policy and its document (`GET …/policies/{name}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyDocumentInfo {
    pub name: String,
    pub document: serde_json::Value,
}

pub async fn attach(ctx: &Context, access_key: &str, policy: &str) -> AdminResult<()> {
    Ok(ctx.meta.attach_user_policy(access_key, policy).await?)
}

pub async fn detach(ctx: &Context, access_key: &str, policy: &str) -> AdminResult<()> {
    if ctx.meta.detach_user_policy(access_key, policy).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "{policy} is not attached to {access_key}"
        )))
    }
}

pub async fn user_policies(ctx: &Context, access_key: &str) -> AdminResult<Vec<String>> {
    if ctx.meta.get_user(access_key).await?.is_none() {
        return Err(AdminError::NotFound(format!(
            "no user with access key {access_key}"
        )));
    }
    Ok(ctx.meta.user_policies(access_key).await?)
}

type CliResult = Result<ExitCode, String>;

/// `KEY=VALUE` condition keys for `user can --context`.
pub fn parse_context_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| k.contains(':'))
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE with KEY like aws:SourceIp"))
}

/// `dooz admin user can`: prints the decision and the deciding statement;
/// exit status 0 when allowed, 1 when denied.
pub fn print_can(a: &CanAnswer, json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string(a).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{}: {} {} {} on {}",
            a.decision.to_uppercase(),
            a.principal,
            if a.allowed { "may" } else { "may not" },
            a.action,
            a.resource
        );
        match &a.statement {
            Some(s) => println!("decided by {s}"),
            None => println!("no statement allows it"),
        }
    }
    Ok(if a.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
