//! What the admin surfaces do, once: `dooz admin` (on the metadata store
//! directly) and the admin HTTP API (`api.rs`) both call these functions and
//! exchange their typed results, so a command prints the same thing
//! whichever way it travelled (`remote.rs` deserializes them).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::engine::{EngineError, now_millis};
use crate::jobs::{Collector, GcError, GcReport};
use crate::meta::{
    Bucket, BucketLock, MetaError, Policy, Tenant, TenantSpace, UsageStats, Versioning,
};
use crate::server::Context;
use crate::store::BackendConfig;
use crate::tenancy::{self, NewTenant};

/// An admin operation that did not happen, with the class of reason the
/// HTTP API turns into a status code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// The tenant, user or bucket named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The state forbids it: exists already, not empty, locked, busy (409).
    #[error("{0}")]
    Conflict(String),
    /// The metadata store or a backend does not answer (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// The `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Invalid(_) => "InvalidArgument",
            AdminError::NotFound(_) => "NotFound",
            AdminError::Conflict(_) => "Conflict",
            AdminError::Unavailable(_) => "ServiceUnavailable",
            AdminError::Internal(_) => "InternalError",
        }
    }
}

impl From<MetaError> for AdminError {
    fn from(e: MetaError) -> Self {
        let m = e.to_string();
        match e {
            MetaError::NoSuchBucket(_) | MetaError::NotFound { .. } => AdminError::NotFound(m),
            MetaError::AlreadyExists { .. }
            | MetaError::BucketAlreadyExists(_)
            | MetaError::BucketAlreadyOwnedByYou(_)
            | MetaError::BucketNotEmpty(_)
            | MetaError::Locked(_)
            | MetaError::InvalidBucketState(_) => AdminError::Conflict(m),
            MetaError::InvalidRequest(_) => AdminError::Invalid(m),
            MetaError::Unavailable(_) => AdminError::Unavailable(m),
            _ => AdminError::Internal(m),
        }
    }
}

impl From<EngineError> for AdminError {
    fn from(e: EngineError) -> Self {
        let m = e.to_string();
        match e {
            EngineError::NoSuchBucket(_) => AdminError::NotFound(m),
            EngineError::BucketAlreadyExists(_)
            | EngineError::BucketAlreadyOwnedByYou(_)
            | EngineError::BucketNotEmpty(_)
            | EngineError::ObjectLocked(_)
            | EngineError::InvalidBucketState(_) => AdminError::Conflict(m),
            EngineError::InvalidArgument(_)
            | EngineError::InvalidBucketName(_)
            | EngineError::InvalidRequest(_) => AdminError::Invalid(m),
            EngineError::Unavailable(_) | EngineError::SlowDown(_) => AdminError::Unavailable(m),
            _ => AdminError::Internal(m),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// A tenant by name or id; an unknown one is NotFound.
pub(crate) async fn tenant(ctx: &Context, name_or_id: &str) -> AdminResult<Tenant> {
    match tenancy::find_tenant(ctx.meta.as_ref(), name_or_id).await {
        Ok(t) => Ok(t),
        Err(EngineError::InvalidArgument(m)) => Err(AdminError::NotFound(m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantInfo {
    pub id: String,
    pub name: String,
    pub cipher: String,
    pub epoch: u32,
}

impl From<&Tenant> for TenantInfo {
    fn from(t: &Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            cipher: t.cipher.clone(),
            epoch: t.current_epoch,
        }
    }
}

/// `POST /admin/v1/tenants`, `dooz admin tenant create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantRequest {
    pub name: String,
    /// "local" or "openbao" [default: kms.default_provider].
    #[serde(default)]
    pub kek_provider: Option<String>,
    #[serde(default)]
    pub key_ref: Option<String>,
    #[serde(default)]
    pub cipher: Option<String>,
}

pub async fn create_tenant(ctx: &Context, req: &NewTenantRequest) -> AdminResult<TenantInfo> {
    if req.name.trim().is_empty() {
        return Err(AdminError::Invalid("a tenant needs a name".into()));
    }
    if ctx.meta.get_tenant_by_name(&req.name).await?.is_some() {
        return Err(AdminError::Conflict(format!(
            "tenant {} already exists",
            req.name
        )));
    }
    let provider = req
        .kek_provider
        .clone()
        .unwrap_or_else(|| ctx.cfg.kms.default_provider.clone());
    let key_ref = req.key_ref.clone().unwrap_or_else(|| ctx.default_key_ref());
    let cipher = req
        .cipher
        .clone()
        .unwrap_or_else(|| ctx.cfg.kms.default_cipher.clone());
    let t = tenancy::create_tenant(
        ctx.meta.as_ref(),
        ctx.engine.vault(),
        NewTenant {
            name: &req.name,
            provider: &provider,
            key_ref: &key_ref,
            cipher: &cipher,
        },
    )
    .await?;
    Ok(TenantInfo::from(&t))
}

pub async fn list_tenants(ctx: &Context) -> AdminResult<Vec<TenantInfo>> {
    Ok(ctx
        .meta
        .list_tenants()
        .await?
        .iter()
        .map(TenantInfo::from)
        .collect())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub access_key: String,
    pub name: String,
    pub tenant_id: String,
    pub policy: String,
}

/// `POST /admin/v1/users`, `dooz admin user create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// Tenant name or id.
    pub tenant: String,
    pub name: String,
    /// admin, read-write or read-only [default: read-write].
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<String>,
}

/// A created user with its secret: the only time the secret is shown.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewUser {
    pub access_key: String,
    pub secret_key: String,
    pub name: String,
    pub tenant: String,
    pub policy: String,
}

pub async fn create_user(ctx: &Context, req: &NewUserRequest) -> AdminResult<NewUser> {
    let policy_name = req.policy.as_deref().unwrap_or("read-write");
    let policy = Policy::parse(policy_name).ok_or_else(|| {
        AdminError::Invalid(format!(
            "unknown policy {policy_name}: use admin, read-write or read-only"
        ))
    })?;
    let keys = match (&req.access_key, &req.secret_key) {
        (Some(a), Some(s)) => Some((a.clone(), Zeroizing::new(s.clone()))),
        (None, None) => None,
        _ => {
            return Err(AdminError::Invalid(
                "access_key and secret_key go together".into(),
            ));
        }
    };
    let t = tenant(ctx, &req.tenant).await?;
    if let Some((a, _)) = &keys
        && ctx.meta.get_user(a).await?.is_some()
    {
        return Err(AdminError::Conflict(format!("access key {a} is taken")));
    }
    let (user, secret) = tenancy::create_user(
        ctx.meta.as_ref(),
        ctx.engine.vault(),
        &t,
        &req.name,
        policy,
        keys,
    )
    .await?;
    Ok(NewUser {
        access_key: user.access_key,
        secret_key: secret.as_str().to_owned(),
        name: req.name.clone(),
        tenant: t.name,
        policy: policy.as_str().to_owned(),
    })
}

pub async fn list_users(ctx: &Context, tenant_name: Option<&str>) -> AdminResult<Vec<UserInfo>> {
    let tenant_id = match tenant_name {
        Some(t) => Some(tenant(ctx, t).await?.id),
        None => None,
    };
    Ok(ctx
        .meta
        .list_users(tenant_id)
        .await?
        .into_iter()
        .map(|u| UserInfo {
            access_key: u.access_key,
            name: u.name,
            tenant_id: u.tenant_id.to_string(),
            policy: u.policy.as_str().to_owned(),
        })
        .collect())
}

/// Deletes an access key; gateways stop accepting it within the
/// credential cache's lifetime (30 s).
pub async fn delete_user(ctx: &Context, access_key: &str) -> AdminResult<()> {
    if ctx.meta.delete_user(access_key).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no user with access key {access_key}"
        )))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub description: String,
}

/// The fixed roles a user can hold.
pub fn policies() -> Vec<PolicyInfo> {
    [
        (Policy::Admin, "everything in the tenant, buckets included"),
        (
            Policy::ReadWrite,
            "read and write objects; cannot create or delete buckets",
        ),
        (Policy::ReadOnly, "list and read only"),
    ]
    .into_iter()
    .map(|(p, d)| PolicyInfo {
        name: p.as_str().to_owned(),
        description: d.to_owned(),
    })
    .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketInfo {
    pub name: String,
    pub tenant: String,
    pub backend: String,
    pub versioning: String,
    pub object_lock: bool,
}

fn bucket_info(tenant: &str, b: &Bucket) -> BucketInfo {
    BucketInfo {
        name: b.name.clone(),
        tenant: tenant.to_owned(),
        backend: b.backend.clone(),
        versioning: b.versioning.as_str().to_owned(),
        object_lock: b.object_lock.is_some(),
    }
}

/// `POST /admin/v1/buckets`, `dooz admin bucket create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBucketRequest {
    pub name: String,
    /// Tenant name or id.
    pub tenant: String,
    #[serde(default)]
    pub versioning: bool,
    /// Implies versioning; permanent.
    #[serde(default)]
    pub object_lock: bool,
}

pub async fn create_bucket(ctx: &Context, req: &NewBucketRequest) -> AdminResult<BucketInfo> {
    crate::engine::validate_bucket_name(&req.name)?;
    let t = tenant(ctx, &req.tenant).await?;
    let b = Bucket {
        name: req.name.clone(),
        tenant_id: t.id,
        backend: ctx.cfg.default_backend.clone(),
        created_at: now_millis(),
        versioning: if req.versioning || req.object_lock {
            Versioning::Enabled
        } else {
            Versioning::Unversioned
        },
        object_lock: req.object_lock.then(BucketLock::default),
    };
    ctx.meta.create_bucket(&b).await?;
    Ok(bucket_info(&t.name, &b))
}

pub async fn list_buckets(
    ctx: &Context,
    tenant_name: Option<&str>,
) -> AdminResult<Vec<BucketInfo>> {
    let tenants = match tenant_name {
        Some(t) => vec![tenant(ctx, t).await?],
        None => ctx.meta.list_tenants().await?,
    };
    let mut rows = Vec::new();
    for t in &tenants {
        for b in ctx.meta.list_buckets(t.id).await? {
            rows.push(bucket_info(&t.name, &b));
        }
    }
    Ok(rows)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketDeleted {
    pub bucket: String,
    pub versions_deleted: u64,
    pub uploads_aborted: u64,
}

/// An empty bucket, or with `force` every version, delete marker and
/// upload first. Versions under Object Lock stop it before anything is
/// deleted: no admin operation removes locked data.
pub async fn delete_bucket(ctx: &Context, name: &str, force: bool) -> AdminResult<BucketDeleted> {
    let meta = ctx.meta.as_ref();
    if meta.get_bucket(name).await?.is_none() {
        return Err(AdminError::NotFound(format!("no bucket {name}")));
    }
    let mut out = BucketDeleted {
        bucket: name.to_owned(),
        versions_deleted: 0,
        uploads_aborted: 0,
    };
    if force {
        let now = now_millis();
        let mut versions = Vec::new();
        let mut locked = Vec::new();
        // A plain loop over the pages rather than Engine::for_each_version:
        // its AsyncFnMut callback makes a future the HTTP API cannot hold
        // (not Send for every lifetime).
        let mut after: Option<(String, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(k, v)| (k.as_str(), Some(v.as_str())));
            let page = meta.list_versions(name, "", cursor, 1000).await?;
            for v in page.items {
                let full = meta.get_object(name, &v.key, Some(&v.version_id)).await?;
                if let Some(why) = full.and_then(|f| f.lock.deletion_blocked(now, false)) {
                    locked.push(format!("{} version {}: {why}", v.key, v.version_id));
                }
                after = Some((v.key.clone(), v.version_id.clone()));
                versions.push((v.key, v.version_id));
            }
            if !page.truncated {
                break;
            }
        }
        if !locked.is_empty() {
            let shown: Vec<&str> = locked.iter().take(10).map(String::as_str).collect();
            return Err(AdminError::Conflict(format!(
                "bucket {name} holds {} version(s) under Object Lock; nothing was deleted:\n  {}",
                locked.len(),
                shown.join("\n  ")
            )));
        }
        for (i, (key, version)) in versions.iter().enumerate() {
            meta.delete_object(name, key, Some(version), false)
                .await
                .map_err(|e| {
                    let mut a = AdminError::from(e);
                    if let AdminError::Internal(m) | AdminError::Unavailable(m) = &mut a {
                        *m = format!("deleting {key} version {version}: {m}");
                    }
                    a
                })?;
            out.versions_deleted += 1;
            if (i + 1) % 1000 == 0 {
                tracing::info!(
                    bucket = name,
                    deleted = i + 1,
                    total = versions.len(),
                    "bucket delete: versions deleted"
                );
            }
        }
        loop {
            let page = meta.list_multipart(name, "", None, 1000).await?;
            for u in &page.items {
                meta.abort_multipart(&u.upload_id).await?;
                out.uploads_aborted += 1;
            }
            if page.items.is_empty() {
                break;
            }
        }
    }
    meta.delete_bucket(name).await?;
    Ok(out)
}

/// One tenant's space, with its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantUsage {
    #[serde(flatten)]
    pub space: TenantSpace,
    pub name: Option<String>,
}

/// Logical vs stored totals, then space per tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    #[serde(flatten)]
    pub totals: UsageStats,
    pub tenants: Vec<TenantUsage>,
}

pub async fn usage(ctx: &Context, tenant_name: Option<&str>) -> AdminResult<UsageReport> {
    let meta = ctx.meta.as_ref();
    let id = match tenant_name {
        Some(t) => Some(tenant(ctx, t).await?.id),
        None => None,
    };
    let totals = meta.usage(id).await?;
    let names: std::collections::HashMap<_, _> = meta
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let tenants = meta
        .gc_space(ctx.cfg.gc.threshold_permille())
        .await?
        .into_iter()
        .filter(|s| id.is_none_or(|t| t == s.tenant))
        .map(|space| TenantUsage {
            name: names.get(&space.tenant).cloned(),
            space,
        })
        .collect();
    Ok(UsageReport { totals, tenants })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub name: String,
    /// "local", "s3" or "memory".
    pub kind: String,
    /// New buckets put their packs here.
    pub default: bool,
    /// Answered a probe just now.
    pub up: bool,
}

/// A backend that does not answer within this is reported down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn backends(ctx: &Context) -> AdminResult<Vec<BackendInfo>> {
    let stores: Vec<_> = ctx.engine.backends().iter().collect();
    let probes = futures::future::join_all(
        stores
            .iter()
            .map(|b| tokio::time::timeout(PROBE_TIMEOUT, b.probe())),
    )
    .await;
    Ok(stores
        .iter()
        .zip(probes)
        .map(|(b, probe)| BackendInfo {
            name: b.name().to_owned(),
            kind: match ctx.cfg.backends.get(b.name()) {
                Some(BackendConfig::Local { .. }) => "local",
                Some(BackendConfig::S3(_)) => "s3",
                Some(BackendConfig::Memory) => "memory",
                None => "unknown",
            }
            .to_owned(),
            default: b.name() == ctx.cfg.default_backend,
            up: matches!(probe, Ok(Ok(()))),
        })
        .collect())
}

/// What one collector run did (or, dry, would do).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GcRunInfo {
    pub dry_run: bool,
    /// Unix milliseconds.
    pub started_at: i64,
    /// "ok" or "error" (a busy lease is a Conflict, not a run).
    pub result: String,
    pub error: Option<String>,
    pub bytes_reclaimed: u64,
    /// The line `dooz gc` prints.
    pub summary: String,
    /// Every counter of the run (`dooz gc --json`).
    pub report: serde_json::Value,
}

/// Runs the collector once, in this process. Busy (another collector holds
/// the lease) is a Conflict; a run that aborted is reported, not an error.
pub async fn gc_run(ctx: &Context, dry_run: bool) -> AdminResult<GcRunInfo> {
    let collector = Collector::new(ctx.engine.clone(), ctx.cfg.gc.clone());
    let started_at = now_millis();
    let mut progress = |r: &GcReport| {
        tracing::info!(phase = r.phase, "gc: {}", r.summary());
    };
    let (report, failure) = match collector.run(dry_run, &mut progress).await {
        Ok(r) => (r, None),
        Err(f) => (f.report, Some(f.error)),
    };
    if let Some(e @ GcError::Busy(_)) = &failure {
        return Err(AdminError::Conflict(format!("{e}; try again later")));
    }
    Ok(GcRunInfo {
        dry_run,
        started_at,
        result: if failure.is_some() { "error" } else { "ok" }.to_owned(),
        error: failure.as_ref().map(ToString::to_string),
        bytes_reclaimed: report.bytes_reclaimed(),
        summary: report.summary(),
        report: serde_json::to_value(&report).map_err(|e| AdminError::Internal(e.to_string()))?,
    })
}

/// Who holds the collector's lease now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GcLeaseInfo {
    pub owner: String,
    pub acquired_at: i64,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GcStatus {
    /// `[gc] enabled`: this gateway runs the collector every `interval_secs`.
    pub enabled: bool,
    pub interval_secs: f64,
    pub grace_secs: f64,
    /// A collector (on any gateway of this metadata store) holds the lease.
    pub lease: Option<GcLeaseInfo>,
    /// Unix seconds of this process's last successful run (None before one).
    pub last_success: Option<i64>,
    /// This process's runs by result since it started.
    pub runs_ok: u64,
    pub runs_error: u64,
    pub runs_busy: u64,
    /// A run started through the API is going on in this gateway.
    pub running: bool,
    /// The last run started through the API on this gateway.
    pub last_run: Option<GcRunInfo>,
}

/// The collector's settings, its lease and this process's counters;
/// `running` and `last_run` are filled in by the HTTP API, which owns them.
pub async fn gc_status(ctx: &Context) -> AdminResult<GcStatus> {
    crate::jobs::metrics::init();
    let m = &*crate::jobs::metrics::GC;
    let lease = ctx
        .meta
        .list_leases(crate::jobs::gc::GC_LEASE)
        .await?
        .into_iter()
        .find(|l| l.name == crate::jobs::gc::GC_LEASE && l.expires_at > now_millis())
        .map(|l| GcLeaseInfo {
            owner: l.owner,
            acquired_at: l.acquired_at,
            expires_at: l.expires_at,
        });
    let last = m.last_success.get();
    let runs = |r: &str| m.runs.with_label_values(&[r]).get();
    Ok(GcStatus {
        enabled: ctx.cfg.gc.enabled,
        interval_secs: ctx.cfg.gc.interval.as_secs_f64(),
        grace_secs: ctx.cfg.gc.grace.as_secs_f64(),
        lease,
        last_success: (last > 0).then_some(last),
        runs_ok: runs("ok"),
        runs_error: runs("error"),
        runs_busy: runs("busy"),
        running: false,
        last_run: None,
    })
}
