//! `dooz admin …`: each command asks [`Via`] for a typed result — `ops.rs`
//! on the metadata store, or the same operation through a gateway's admin
//! API (`remote.rs`) — and prints it one way. Locally run commands are
//! recorded in the audit log here; through the API, the gateway records them.

use std::process::ExitCode;

use zeroize::Zeroizing;

use super::buckets;
use super::cli::{
    AdminCommand, BucketCommand, GcCommand, LifecycleAdminCommand, RemoteArgs, TenantCommand,
    UserCommand,
};
use super::lifecycle::{self, LifecycleBucketStatus};
use super::limits::{self, LimitsCommand, LimitsReport, OverrideInfo};
use super::ops::{
    self, AdminError, AdminResult, BackendInfo, BucketDeleted, BucketInfo, GcRunInfo, GcStatus,
    NewBucketRequest, NewTenantRequest, NewUser, NewUserRequest, PolicyInfo, TenantInfo,
    UsageReport, UserInfo,
};
use super::policies::{self, PolicyCommand, UserPolicyCommand};
use super::remote::{Remote, segment};
use crate::audit::cli::{CommandAudit, finish_command};
use crate::config::Config;
use crate::server::Context;

type CliResult = Result<ExitCode, String>;

/// Where the operations run.
enum Via {
    Local(Box<Context>),
    Remote(Remote),
}

fn tenant_query(tenant: Option<&str>) -> Vec<(&'static str, String)> {
    tenant
        .map(|t| ("tenant", t.to_owned()))
        .into_iter()
        .collect()
}

impl Via {
    async fn create_tenant(&self, req: &NewTenantRequest) -> AdminResult<TenantInfo> {
        match self {
            Via::Local(ctx) => ops::create_tenant(ctx, req).await,
            Via::Remote(r) => r.post("/tenants", &[], req).await,
        }
    }

    async fn list_tenants(&self) -> AdminResult<Vec<TenantInfo>> {
        match self {
            Via::Local(ctx) => ops::list_tenants(ctx).await,
            Via::Remote(r) => r.get("/tenants", &[]).await,
        }
    }

    async fn create_user(&self, req: &NewUserRequest) -> AdminResult<NewUser> {
        match self {
            Via::Local(ctx) => ops::create_user(ctx, req).await,
            Via::Remote(r) => r.post("/users", &[], req).await,
        }
    }

    async fn list_users(&self, tenant: Option<&str>) -> AdminResult<Vec<UserInfo>> {
        match self {
            Via::Local(ctx) => ops::list_users(ctx, tenant).await,
            Via::Remote(r) => r.get("/users", &tenant_query(tenant)).await,
        }
    }

    async fn delete_user(&self, access_key: &str) -> AdminResult<()> {
        match self {
            Via::Local(ctx) => ops::delete_user(ctx, access_key).await,
            Via::Remote(r) => {
                let _: serde_json::Value = r
                    .delete(&format!("/users/{}", segment(access_key)), &[])
                    .await?;
                Ok(())
            }
        }
    }

    async fn policies(&self) -> AdminResult<Vec<PolicyInfo>> {
        match self {
            Via::Local(_) => Ok(ops::policies()),
            Via::Remote(r) => r.get("/policies", &[]).await,
        }
    }

    async fn create_bucket(&self, req: &NewBucketRequest) -> AdminResult<BucketInfo> {
        match self {
            Via::Local(ctx) => ops::create_bucket(ctx, req).await,
            Via::Remote(r) => r.post("/buckets", &[], req).await,
        }
    }

    async fn list_buckets(&self, tenant: Option<&str>) -> AdminResult<Vec<BucketInfo>> {
        match self {
            Via::Local(ctx) => ops::list_buckets(ctx, tenant).await,
            Via::Remote(r) => r.get("/buckets", &tenant_query(tenant)).await,
        }
    }

    async fn delete_bucket(&self, name: &str, force: bool) -> AdminResult<BucketDeleted> {
        match self {
            Via::Local(ctx) => ops::delete_bucket(ctx, name, force).await,
            Via::Remote(r) => {
                r.delete(
                    &format!("/buckets/{}", segment(name)),
                    &[("force", force.to_string())],
                )
                .await
            }
        }
    }

    async fn usage(&self, tenant: Option<&str>) -> AdminResult<UsageReport> {
        match self {
            Via::Local(ctx) => ops::usage(ctx, tenant).await,
            Via::Remote(r) => r.get("/usage", &tenant_query(tenant)).await,
        }
    }

    async fn backends(&self) -> AdminResult<Vec<BackendInfo>> {
        match self {
            Via::Local(ctx) => ops::backends(ctx).await,
            Via::Remote(r) => r.get("/backends", &[]).await,
        }
    }

    async fn list_objects(
        &self,
        bucket: &str,
        at: Option<&str>,
        prefix: &str,
    ) -> AdminResult<buckets::ObjectListing> {
        match self {
            Via::Local(ctx) => buckets::list_objects(ctx, bucket, at, prefix).await,
            Via::Remote(r) => {
                let mut q = vec![("prefix", prefix.to_owned())];
                q.extend(at.map(|t| ("at", t.to_owned())));
                r.get(&format!("/buckets/{}/objects", segment(bucket)), &q)
                    .await
            }
        }
    }

    /// Locally the progress goes to stderr as the restore runs; through
    /// the API the answer comes when it is done.
    async fn restore(
        &self,
        bucket: &str,
        req: &buckets::RestoreRequest,
    ) -> AdminResult<buckets::RestoreResult> {
        match self {
            Via::Local(ctx) => {
                let mut progress = |r: &crate::engine::RestoreReport| {
                    eprintln!("{}", buckets::restore_progress(r));
                };
                buckets::restore(ctx, bucket, req, &mut progress).await
            }
            Via::Remote(r) => {
                r.post(&format!("/buckets/{}/restore", segment(bucket)), &[], req)
                    .await
            }
        }
    }

    async fn lifecycle_status(&self) -> AdminResult<Vec<LifecycleBucketStatus>> {
        match self {
            Via::Local(ctx) => lifecycle::status(ctx).await,
            Via::Remote(r) => r.get("/lifecycle", &[]).await,
        }
    }

    async fn list_limits(&self) -> AdminResult<LimitsReport> {
        match self {
            Via::Local(ctx) => limits::list(ctx).await,
            Via::Remote(r) => r.get("/limits", &[]).await,
        }
    }

    async fn set_limit(
        &self,
        scope: &str,
        name: &str,
        change: &crate::throttle::LimitChange,
    ) -> AdminResult<OverrideInfo> {
        match self {
            Via::Local(ctx) => limits::set(ctx, scope, name, change).await,
            Via::Remote(r) => {
                let path = format!("/limits/{scope}/{}", segment(name));
                let body =
                    serde_json::to_vec(change).map_err(|e| AdminError::Internal(e.to_string()))?;
                r.put_json(&path, body).await
            }
        }
    }

    async fn unset_limit(&self, scope: &str, name: &str) -> AdminResult<()> {
        match self {
            Via::Local(ctx) => limits::unset(ctx, scope, name).await,
            Via::Remote(r) => {
                let path = format!("/limits/{scope}/{}", segment(name));
                r.delete::<serde_json::Value>(&path, &[]).await.map(|_| ())
            }
        }
    }

    async fn put_policy(&self, tenant: &str, name: &str, text: &str) -> AdminResult<()> {
        match self {
            Via::Local(ctx) => policies::put_policy(ctx, tenant, name, text).await,
            Via::Remote(r) => {
                let path = format!("/tenants/{}/policies/{}", segment(tenant), segment(name));
                r.put_json::<serde_json::Value>(&path, text.as_bytes().to_vec())
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn list_policies(&self, tenant: &str) -> AdminResult<Vec<policies::NamedPolicyInfo>> {
        match self {
            Via::Local(ctx) => policies::list_policies(ctx, tenant).await,
            Via::Remote(r) => {
                r.get(&format!("/tenants/{}/policies", segment(tenant)), &[])
                    .await
            }
        }
    }

    /// The document as stored (locally) or as the API returns it (JSON,
    /// pretty-printed).
    async fn show_policy(&self, tenant: &str, name: &str) -> AdminResult<String> {
        match self {
            Via::Local(ctx) => policies::show_policy(ctx, tenant, name).await,
            Via::Remote(r) => {
                let path = format!("/tenants/{}/policies/{}", segment(tenant), segment(name));
                let info: policies::PolicyDocumentInfo = r.get(&path, &[]).await?;
                serde_json::to_string_pretty(&info.document)
                    .map_err(|e| AdminError::Internal(e.to_string()))
            }
        }
    }

    async fn delete_policy(&self, tenant: &str, name: &str) -> AdminResult<()> {
        match self {
            Via::Local(ctx) => policies::delete_policy(ctx, tenant, name).await,
            Via::Remote(r) => {
                let path = format!("/tenants/{}/policies/{}", segment(tenant), segment(name));
                r.delete::<serde_json::Value>(&path, &[]).await.map(|_| ())
            }
        }
    }

    async fn attach_policy(&self, access_key: &str, policy: &str) -> AdminResult<()> {
        match self {
            Via::Local(ctx) => policies::attach(ctx, access_key, policy).await,
            Via::Remote(r) => {
                let path = format!(
                    "/users/{}/policies/{}",
                    segment(access_key),
                    segment(policy)
                );
                r.put_json::<serde_json::Value>(&path, b"{}".to_vec())
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn detach_policy(&self, access_key: &str, policy: &str) -> AdminResult<()> {
        match self {
            Via::Local(ctx) => policies::detach(ctx, access_key, policy).await,
            Via::Remote(r) => {
                let path = format!(
                    "/users/{}/policies/{}",
                    segment(access_key),
                    segment(policy)
                );
                r.delete::<serde_json::Value>(&path, &[]).await.map(|_| ())
            }
        }
    }

    async fn user_policies(&self, access_key: &str) -> AdminResult<Vec<String>> {
        match self {
            Via::Local(ctx) => policies::user_policies(ctx, access_key).await,
            Via::Remote(r) => {
                r.get(&format!("/users/{}/policies", segment(access_key)), &[])
                    .await
            }
        }
    }

    async fn can(
        &self,
        access_key: &str,
        action: &str,
        resource: &str,
        context: &[(String, String)],
    ) -> AdminResult<policies::CanAnswer> {
        match self {
            Via::Local(ctx) => policies::can(ctx, access_key, action, resource, context).await,
            Via::Remote(r) => {
                let mut q = vec![
                    ("action", action.to_owned()),
                    ("resource", resource.to_owned()),
                ];
                q.extend(context.iter().map(|(k, v)| ("context", format!("{k}={v}"))));
                r.get(&format!("/users/{}/can", segment(access_key)), &q)
                    .await
            }
        }
    }

    async fn gc_status(&self) -> AdminResult<GcStatus> {
        match self {
            Via::Local(ctx) => ops::gc_status(ctx).await,
            Via::Remote(r) => r.get("/gc", &[]).await,
        }
    }

    async fn gc_run(&self, dry_run: bool) -> AdminResult<GcRunInfo> {
        match self {
            Via::Local(ctx) => ops::gc_run(ctx, dry_run).await,
            Via::Remote(r) => {
                r.post(
                    "/gc/run",
                    &[("dry_run", dry_run.to_string()), ("wait", "true".into())],
                    &serde_json::json!({}),
                )
                .await
            }
        }
    }
}

/// What an admin command does, for its audit record (never its secrets).
/// The admin API records the same actions (`api.rs`).
fn describe(cmd: &AdminCommand) -> CommandAudit {
    let none = serde_json::json!({});
    let (action, target, tenant, detail) = match cmd {
        AdminCommand::Tenant(TenantCommand::Create {
            name,
            kek_provider,
            key_ref,
            cipher,
        }) => (
            "admin:tenant.create",
            name.clone(),
            Some(name.clone()),
            serde_json::json!({"kek_provider": kek_provider, "key_ref": key_ref, "cipher": cipher}),
        ),
        AdminCommand::Tenant(TenantCommand::List { .. }) => {
            ("admin:tenant.list", "-".into(), None, none)
        }
        AdminCommand::User(UserCommand::Create {
            tenant,
            name,
            policy,
            access_key,
            ..
        }) => (
            "admin:user.create",
            access_key.clone().unwrap_or_else(|| name.clone()),
            Some(tenant.clone()),
            serde_json::json!({"name": name, "policy": policy, "chosen_access_key": access_key.is_some()}),
        ),
        AdminCommand::User(UserCommand::List { tenant, .. }) => {
            ("admin:user.list", "-".into(), tenant.clone(), none)
        }
        AdminCommand::User(UserCommand::Delete { access_key }) => {
            ("admin:user.delete", access_key.clone(), None, none)
        }
        AdminCommand::User(UserCommand::Policies { .. }) => {
            ("admin:policy.list", "-".into(), None, none)
        }
        AdminCommand::User(UserCommand::Policy(c)) => {
            use super::policies::UserPolicyCommand as U;
            match c {
                U::Attach { access_key, policy } => (
                    "admin:user.policy.attach",
                    access_key.clone(),
                    None,
                    serde_json::json!({"policy": policy}),
                ),
                U::Detach { access_key, policy } => (
                    "admin:user.policy.detach",
                    access_key.clone(),
                    None,
                    serde_json::json!({"policy": policy}),
                ),
                U::List { access_key, .. } => {
                    ("admin:user.policy.list", access_key.clone(), None, none)
                }
            }
        }
        AdminCommand::User(UserCommand::Can {
            access_key,
            action,
            resource,
            ..
        }) => (
            "admin:user.can",
            access_key.clone(),
            None,
            serde_json::json!({"action": action, "resource": resource}),
        ),
        AdminCommand::Policy(c) => {
            use super::policies::PolicyCommand as P;
            match c {
                P::Create { tenant, name, .. } => (
                    "admin:policy.create",
                    name.clone(),
                    Some(tenant.clone()),
                    none,
                ),
                P::List { tenant, .. } => {
                    ("admin:policy.list", "-".into(), Some(tenant.clone()), none)
                }
                P::Show { tenant, name } => (
                    "admin:policy.show",
                    name.clone(),
                    Some(tenant.clone()),
                    none,
                ),
                P::Delete { tenant, name } => (
                    "admin:policy.delete",
                    name.clone(),
                    Some(tenant.clone()),
                    none,
                ),
            }
        }
        AdminCommand::Bucket(BucketCommand::Create {
            name,
            tenant,
            versioning,
            object_lock,
        }) => (
            "admin:bucket.create",
            name.clone(),
            Some(tenant.clone()),
            serde_json::json!({"versioning": versioning, "object_lock": object_lock}),
        ),
        AdminCommand::Bucket(BucketCommand::List { tenant, .. }) => {
            ("admin:bucket.list", "-".into(), tenant.clone(), none)
        }
        AdminCommand::Bucket(BucketCommand::Delete { bucket, force }) => (
            "admin:bucket.delete",
            bucket.clone(),
            None,
            serde_json::json!({"force": force}),
        ),
        AdminCommand::Bucket(BucketCommand::Restore {
            bucket,
            at,
            prefix,
            dry_run,
            ..
        }) => (
            "admin:bucket.restore",
            bucket.clone(),
            None,
            serde_json::json!({"at": at, "prefix": prefix, "dry_run": dry_run}),
        ),
        AdminCommand::Bucket(BucketCommand::Ls {
            bucket, at, prefix, ..
        }) => (
            "admin:bucket.ls",
            bucket.clone(),
            None,
            serde_json::json!({"at": at, "prefix": prefix}),
        ),
        AdminCommand::Lifecycle(LifecycleAdminCommand::Status { .. }) => {
            ("admin:lifecycle.status", "-".into(), None, none)
        }
        AdminCommand::Usage { tenant, .. } => ("admin:usage", "-".into(), tenant.clone(), none),
        AdminCommand::Gc(GcCommand::Status { .. }) => ("admin:gc.status", "-".into(), None, none),
        AdminCommand::Gc(GcCommand::Run { dry_run, .. }) => (
            "admin:gc.run",
            "-".into(),
            None,
            serde_json::json!({"dry_run": dry_run}),
        ),
        AdminCommand::Backends { .. } => ("admin:backend.list", "-".into(), None, none),
        AdminCommand::Limits(LimitsCommand::Set {
            who,
            requests,
            ingress,
            egress,
        }) => {
            let (scope, name) = who.parts();
            (
                "admin:limits.set",
                format!("{scope}:{name}"),
                who.tenant.clone(),
                serde_json::json!({"requests": requests, "ingress": ingress, "egress": egress}),
            )
        }
        AdminCommand::Limits(LimitsCommand::Unset { who }) => {
            let (scope, name) = who.parts();
            (
                "admin:limits.unset",
                format!("{scope}:{name}"),
                who.tenant.clone(),
                none,
            )
        }
        AdminCommand::Limits(LimitsCommand::List { .. }) => {
            ("admin:limits.list", "-".into(), None, none)
        }
    };
    CommandAudit {
        action,
        target,
        tenant,
        detail,
    }
}

/// Runs an admin command on the metadata store and records it in the audit
/// log, whatever its result.
pub async fn admin(cfg: Config, cmd: AdminCommand) -> CliResult {
    let ctx = Context::open(cfg).await.map_err(|e| e.to_string())?;
    let audit = describe(&cmd);
    let via = Via::Local(Box::new(ctx.clone()));
    let outcome = run(&via, cmd).await;
    finish_command(&ctx, audit, outcome).await
}

/// Runs an admin command through a gateway's admin API (which records it).
pub async fn admin_remote(remote: RemoteArgs, cmd: AdminCommand) -> CliResult {
    let Some(endpoint) = remote.endpoint else {
        return Err("--endpoint is required here".into());
    };
    let token = remote
        .token
        .map(Zeroizing::new)
        .ok_or("--endpoint needs --token or DOOZ_ADMIN_TOKEN (the gateway's [admin] token)")?;
    let remote =
        Remote::new(&endpoint, token, remote.ca_file.as_deref()).map_err(|e| e.to_string())?;
    run(&Via::Remote(remote), cmd).await
}

async fn run_policy(via: &Via, cmd: PolicyCommand) -> CliResult {
    let e = |e: AdminError| e.to_string();
    match cmd {
        PolicyCommand::Create { tenant, name, file } => {
            let text = policies::read_document(&file).map_err(e)?;
            via.put_policy(&tenant, &name, &text).await.map_err(e)?;
            println!("policy {name} stored in tenant {tenant}");
        }
        PolicyCommand::List { tenant, json } => {
            let list = via.list_policies(&tenant).await.map_err(e)?;
            if json {
                json_line(&list)?;
            } else {
                println!("{:<32} KIND", "NAME");
                for p in list {
                    let kind = if p.builtin { "built-in" } else { "tenant" };
                    println!("{:<32} {kind}", p.name);
                }
            }
        }
        PolicyCommand::Show { tenant, name } => {
            println!("{}", via.show_policy(&tenant, &name).await.map_err(e)?);
        }
        PolicyCommand::Delete { tenant, name } => {
            via.delete_policy(&tenant, &name).await.map_err(e)?;
            println!("policy {name} deleted from tenant {tenant}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_limits(via: &Via, cmd: LimitsCommand) -> CliResult {
    let e = |e: AdminError| e.to_string();
    match cmd {
        LimitsCommand::Set {
            who,
            requests,
            ingress,
            egress,
        } => {
            let (scope, name) = who.parts();
            let change =
                limits::change_of(requests.as_deref(), ingress.as_deref(), egress.as_deref())
                    .map_err(e)?;
            let o = via.set_limit(scope, name, &change).await.map_err(e)?;
            println!(
                "{scope} {name}: requests {}, ingress {}, egress {} (running gateways take it up within limits.refresh_secs)",
                o.limits.requests, o.limits.ingress, o.limits.egress
            );
        }
        LimitsCommand::Unset { who } => {
            let (scope, name) = who.parts();
            via.unset_limit(scope, name).await.map_err(e)?;
            println!("{scope} {name}: back to the [limits] defaults");
        }
        LimitsCommand::List { json } => {
            let report = via.list_limits().await.map_err(e)?;
            if json {
                json_line(&report)?;
            } else {
                limits::print(&report);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_user_policy(via: &Via, cmd: UserPolicyCommand) -> CliResult {
    let e = |e: AdminError| e.to_string();
    match cmd {
        UserPolicyCommand::Attach { access_key, policy } => {
            via.attach_policy(&access_key, &policy).await.map_err(e)?;
            println!("{policy} attached to {access_key}");
        }
        UserPolicyCommand::Detach { access_key, policy } => {
            via.detach_policy(&access_key, &policy).await.map_err(e)?;
            println!("{policy} detached from {access_key}");
        }
        UserPolicyCommand::List { access_key, json } => {
            let names = via.user_policies(&access_key).await.map_err(e)?;
            if json {
                json_line(&names)?;
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_line(v: &impl serde::Serialize) -> Result<(), String> {
    println!("{}", serde_json::to_string(v).map_err(|e| e.to_string())?);
    Ok(())
}

async fn run(via: &Via, cmd: AdminCommand) -> CliResult {
    let e = |e: AdminError| e.to_string();
    match cmd {
        AdminCommand::Tenant(TenantCommand::Create {
            name,
            kek_provider,
            key_ref,
            cipher,
        }) => {
            let t = via
                .create_tenant(&NewTenantRequest {
                    name,
                    kek_provider,
                    key_ref,
                    cipher,
                })
                .await
                .map_err(e)?;
            println!("tenant {} created (id {})", t.name, t.id);
        }
        AdminCommand::Tenant(TenantCommand::List { json }) => {
            let tenants = via.list_tenants().await.map_err(e)?;
            if json {
                json_line(&tenants)?;
            } else {
                println!("{:<38} {:<24} {:<18} EPOCH", "ID", "NAME", "CIPHER");
                for t in tenants {
                    println!("{:<38} {:<24} {:<18} {}", t.id, t.name, t.cipher, t.epoch);
                }
            }
        }
        AdminCommand::User(UserCommand::Create {
            tenant,
            name,
            policy,
            access_key,
            secret_key,
            json,
        }) => {
            let u = via
                .create_user(&NewUserRequest {
                    tenant,
                    name,
                    policy: Some(policy),
                    access_key,
                    secret_key,
                })
                .await
                .map_err(e)?;
            if json {
                json_line(&u)?;
            } else {
                println!(
                    "user {} created in tenant {} (shown once, store it now):\n  access key: {}\n  secret key: {}",
                    u.name, u.tenant, u.access_key, u.secret_key
                );
            }
        }
        AdminCommand::User(UserCommand::List { tenant, json }) => {
            let users = via.list_users(tenant.as_deref()).await.map_err(e)?;
            if json {
                json_line(&users)?;
            } else {
                println!(
                    "{:<24} {:<20} {:<38} POLICY",
                    "ACCESS KEY", "NAME", "TENANT"
                );
                for u in users {
                    println!(
                        "{:<24} {:<20} {:<38} {}",
                        u.access_key, u.name, u.tenant_id, u.policy
                    );
                }
            }
        }
        AdminCommand::User(UserCommand::Delete { access_key }) => {
            via.delete_user(&access_key).await.map_err(e)?;
            println!("user {access_key} deleted");
        }
        AdminCommand::User(UserCommand::Policies { json }) => {
            let policies = via.policies().await.map_err(e)?;
            if json {
                json_line(&policies)?;
            } else {
                for p in policies {
                    println!("{:<12} {}", p.name, p.description);
                }
            }
        }
        AdminCommand::Bucket(BucketCommand::Create {
            name,
            tenant,
            versioning,
            object_lock,
        }) => {
            let b = via
                .create_bucket(&NewBucketRequest {
                    name,
                    tenant,
                    versioning,
                    object_lock,
                })
                .await
                .map_err(e)?;
            println!("bucket {} created for tenant {}", b.name, b.tenant);
        }
        AdminCommand::Bucket(BucketCommand::Delete { bucket, force }) => {
            let d = via.delete_bucket(&bucket, force).await.map_err(e)?;
            if force {
                eprintln!(
                    "delete: {} versions deleted, {} uploads aborted",
                    d.versions_deleted, d.uploads_aborted
                );
            }
            println!("bucket {} deleted", d.bucket);
        }
        AdminCommand::Bucket(BucketCommand::List { tenant, json }) => {
            let rows = via.list_buckets(tenant.as_deref()).await.map_err(e)?;
            if json {
                json_line(&rows)?;
            } else {
                println!(
                    "{:<40} {:<24} {:<12} {:<12} BACKEND",
                    "BUCKET", "TENANT", "VERSIONING", "OBJECT LOCK"
                );
                for b in rows {
                    println!(
                        "{:<40} {:<24} {:<12} {:<12} {}",
                        b.name,
                        b.tenant,
                        b.versioning,
                        if b.object_lock { "enabled" } else { "-" },
                        b.backend
                    );
                }
            }
        }
        AdminCommand::Bucket(BucketCommand::Ls {
            bucket,
            at,
            prefix,
            json,
        }) => {
            let listing = via
                .list_objects(&bucket, at.as_deref(), &prefix)
                .await
                .map_err(e)?;
            if json {
                json_line(&listing.objects)?;
            } else {
                for o in &listing.objects {
                    println!("{}", buckets::object_line(o));
                }
                eprintln!(
                    "{} objects in {} as of {}",
                    listing.objects.len(),
                    listing.bucket,
                    listing.at
                );
            }
        }
        AdminCommand::Bucket(BucketCommand::Restore {
            bucket,
            at,
            prefix,
            dry_run,
            json,
        }) => {
            let req = buckets::RestoreRequest {
                at,
                prefix,
                dry_run,
            };
            let r = via.restore(&bucket, &req).await.map_err(e)?;
            if json {
                json_line(&r)?;
            } else {
                for a in &r.actions {
                    println!("{}", buckets::action_line(a, dry_run));
                }
                println!("{}", buckets::restore_summary(&r.report));
            }
        }
        AdminCommand::Lifecycle(LifecycleAdminCommand::Status { json }) => {
            let rows = via.lifecycle_status().await.map_err(e)?;
            lifecycle::print_status(&rows, json)?;
        }
        AdminCommand::Policy(c) => return run_policy(via, c).await,
        AdminCommand::Limits(c) => return run_limits(via, c).await,
        AdminCommand::User(UserCommand::Policy(c)) => return run_user_policy(via, c).await,
        AdminCommand::User(UserCommand::Can {
            access_key,
            action,
            resource,
            context,
            json,
        }) => {
            let a = via
                .can(&access_key, &action, &resource, &context)
                .await
                .map_err(e)?;
            return policies::print_can(&a, json);
        }
        AdminCommand::Usage { tenant, json } => {
            let u = via.usage(tenant.as_deref()).await.map_err(e)?;
            if json {
                json_line(&u)?;
            } else {
                print_usage(&u);
            }
        }
        AdminCommand::Backends { json } => {
            let list = via.backends().await.map_err(e)?;
            if json {
                json_line(&list)?;
            } else {
                println!("{:<20} {:<8} {:<8} DEFAULT", "BACKEND", "KIND", "UP");
                for b in list {
                    println!(
                        "{:<20} {:<8} {:<8} {}",
                        b.name,
                        b.kind,
                        if b.up { "yes" } else { "NO" },
                        if b.default { "yes" } else { "-" }
                    );
                }
            }
        }
        AdminCommand::Gc(GcCommand::Status { json }) => {
            let s = via.gc_status().await.map_err(e)?;
            if json {
                json_line(&s)?;
            } else {
                print_gc_status(&s);
            }
        }
        AdminCommand::Gc(GcCommand::Run { dry_run, json }) => {
            let r = match via.gc_run(dry_run).await {
                Ok(r) => r,
                Err(AdminError::Conflict(m)) => {
                    eprintln!("dooz gc: {m}");
                    return Ok(ExitCode::from(3));
                }
                Err(other) => return Err(other.to_string()),
            };
            if json {
                json_line(&r)?;
            } else {
                println!("{}", r.summary);
            }
            if let Some(err) = &r.error {
                eprintln!("dooz gc: run aborted: {err}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_usage(r: &UsageReport) {
    let u = &r.totals;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    println!("objects              {}", u.objects);
    println!("logical bytes        {}", u.logical_bytes);
    println!("unique chunks        {}", u.chunks);
    println!("unique chunk bytes   {}", u.chunk_plain_bytes);
    println!("stored chunk bytes   {}", u.chunk_stored_bytes);
    println!("packs                {} ({} bytes)", u.packs, u.pack_bytes);
    println!(
        "dedup ratio          {:.2}",
        ratio(u.logical_bytes, u.chunk_plain_bytes)
    );
    println!(
        "compression ratio    {:.2}",
        ratio(u.chunk_plain_bytes, u.chunk_stored_bytes)
    );
    println!();
    println!(
        "{:<24} {:>15} {:>15} {:>15} {:>15} {:>8}",
        "TENANT", "LIVE BYTES", "DEAD BYTES", "OF WHICH ZOMBIE", "RECLAIMABLE", "PACKS"
    );
    for t in &r.tenants {
        let s = &t.space;
        println!(
            "{:<24} {:>15} {:>15} {:>15} {:>15} {:>8}",
            t.name.as_deref().unwrap_or("?"),
            s.live_bytes,
            s.dead_bytes,
            s.zombie_bytes,
            s.reclaimable_bytes,
            s.packs
        );
    }
}

fn print_gc_status(s: &GcStatus) {
    let when = |secs: i64| crate::meta::lock::rfc3339(secs.saturating_mul(1000));
    println!(
        "periodic collector   {}",
        if s.enabled {
            format!("every {:.0} s", s.interval_secs)
        } else {
            "disabled".to_owned()
        }
    );
    println!("grace                {:.0} s", s.grace_secs);
    match &s.lease {
        Some(l) => println!(
            "running now          yes: lease held by {} until {}",
            l.owner,
            crate::meta::lock::rfc3339(l.expires_at)
        ),
        None => println!("running now          no"),
    }
    println!(
        "last success         {}",
        s.last_success
            .map_or_else(|| "never (this process)".to_owned(), when)
    );
    println!(
        "runs                 {} ok, {} error, {} busy",
        s.runs_ok, s.runs_error, s.runs_busy
    );
    if let Some(r) = &s.last_run {
        println!(
            "last API run         {} at {}: {}",
            r.result,
            crate::meta::lock::rfc3339(r.started_at),
            r.summary
        );
    }
}
