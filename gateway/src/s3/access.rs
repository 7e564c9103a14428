//! Authorization of every S3 request, in one place: s3s's `S3Access` hook
//! runs after the signature check and before the request body is read. It
//! names the caller (a user, or anonymous), maps the operation to its IAM
//! action and resource ARN (`policy::action_for`), gathers the condition
//! keys, and asks the policy evaluator with the user's attached policies
//! and the bucket's policy (Block Public Access applied). A refusal is S3's
//! AccessDenied; an allowed request carries the resolved [`Principal`]
//! (with its [`Grant`]) to the handler in the request extensions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use crate::engine::{Engine, Grant, Principal};
use crate::meta::{MetaError, MetaResult, MetaStore, Policy, PublicAccessBlock, TenantId};
use crate::net::PeerAddr;
use crate::policy::{
    AccessConfig, BucketPolicy, Caller, Context, Decision, Kind, Level, Named, PolicyDocument,
    Request, action_for, evaluate, resource_arn, tenant_arn, user_arn,
};
use crate::tenancy::{Credential, CredentialCache};

use super::to_s3;

/// How long a bucket's owner, policy and Block Public Access flags are
/// reused without asking the store. Changes made through this gateway
/// apply at once (the entry is dropped); another gateway's after this.
const BUCKET_TTL: Duration = Duration::from_secs(2);
const BUCKET_CACHE_LIMIT: usize = 10_000;

/// What authorization needs to know about a bucket.
#[derive(Clone, Debug)]
pub struct BucketInfo {
    pub tenant_id: TenantId,
    pub policy: Option<Arc<PolicyDocument>>,
    /// The bucket's own configuration, or the gateway default.
    pub public_access_block: PublicAccessBlock,
    /// Whether the bucket has a configuration of its own.
    pub own_public_access_block: bool,
}

impl BucketInfo {
    /// Reads a bucket's owner, policy and flags; None when it does not exist.
    pub async fn load(
        meta: &dyn MetaStore,
        bucket: &str,
        default_block: PublicAccessBlock,
    ) -> MetaResult<Option<Self>> {
        let Some(b) = meta.get_bucket(bucket).await? else {
            return Ok(None);
        };
        let access = match meta.bucket_access(bucket).await {
            Ok(a) => a,
            Err(MetaError::NoSuchBucket(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let policy = match access.policy {
            None => None,
            Some(text) => Some(Arc::new(
                PolicyDocument::parse(&text, Kind::Bucket).map_err(|e| {
                    MetaError::Corrupt(format!("the policy of bucket {bucket} does not parse: {e}"))
                })?,
            )),
        };
        Ok(Some(Self {
            tenant_id: b.tenant_id,
            policy,
            public_access_block: access.public_access_block.unwrap_or(default_block),
            own_public_access_block: access.public_access_block.is_some(),
        }))
    }
}

/// Bucket name → [`BucketInfo`], briefly cached.
pub struct BucketAccessCache {
    engine: Engine,
    default_block: PublicAccessBlock,
    entries: Mutex<HashMap<String, (Instant, Arc<BucketInfo>)>>,
}

impl BucketAccessCache {
    pub fn new(engine: Engine, cfg: &AccessConfig) -> Self {
        Self {
            engine,
            default_block: if cfg.block_public_access {
                PublicAccessBlock::ALL
            } else {
                PublicAccessBlock::default()
            },
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<BucketInfo>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gateway default for buckets without their own configuration.
    pub fn default_block(&self) -> PublicAccessBlock {
        self.default_block
    }

    /// Drops what is known about a bucket (after its policy changed).
    pub fn forget(&self, bucket: &str) {
        self.lock().remove(bucket);
    }

    /// None when the bucket does not exist.
    pub async fn get(&self, bucket: &str) -> S3Result<Option<Arc<BucketInfo>>> {
        if let Some((at, info)) = self.lock().get(bucket)
            && at.elapsed() < BUCKET_TTL
        {
            return Ok(Some(info.clone()));
        }
        let info =
            match BucketInfo::load(self.engine.meta().as_ref(), bucket, self.default_block).await {
                Ok(Some(i)) => Arc::new(i),
                Ok(None) => return Ok(None),
                Err(e) => return Err(to_s3(e.into())),
            };
        let mut entries = self.lock();
        if entries.len() >= BUCKET_CACHE_LIMIT {
            entries.retain(|_, (at, _)| at.elapsed() < BUCKET_TTL);
            if entries.len() >= BUCKET_CACHE_LIMIT {
                entries.clear();
            }
        }
        entries.insert(bucket.to_owned(), (Instant::now(), info.clone()));
        Ok(Some(info))
    }
}

/// The outcome of the check, for the handler and the per-operation hooks.
#[derive(Clone)]
pub struct Checked {
    pub principal: Principal,
    caller: Option<Credential>,
    context: Arc<Context>,
    bucket: Option<Arc<BucketInfo>>,
}

/// The keys (and version ids) of a DeleteObjects request the caller may
/// not delete.
#[derive(Clone, Debug, Default)]
pub struct DeniedDeletes(pub std::collections::HashSet<(String, Option<String>)>);

impl DeniedDeletes {
    pub fn contains(&self, key: &str, version_id: Option<&str>) -> bool {
        self.0
            .contains(&(key.to_owned(), version_id.map(str::to_owned)))
    }
}

/// The S3Access hook.
pub struct Access {
    pub(crate) credentials: Arc<CredentialCache>,
    pub(crate) buckets: Arc<BucketAccessCache>,
    /// The S3 listener serves TLS (aws:SecureTransport).
    pub(crate) secure: bool,
    pub(crate) throttle: Arc<crate::throttle::Throttle>,
}

/// The access key anonymous requests are audited under.
pub const ANONYMOUS: &str = "anonymous";

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The condition keys every request has: the time, the transport and who
/// the caller is.
fn base_context(caller: Option<&Credential>, secure: bool) -> Context {
    let mut c = Context::new();
    let now = time::OffsetDateTime::now_utc();
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        c.set("aws:CurrentTime", t);
    }
    c.set("aws:EpochTime", now.unix_timestamp().to_string());
    c.set("aws:SecureTransport", secure.to_string());
    if let Some(cred) = caller {
        c.set("aws:username", cred.user_name.to_string());
        c.set("aws:userid", cred.principal.access_key.clone());
        c.set("aws:PrincipalAccount", cred.tenant_name.to_string());
        c.set(
            "aws:PrincipalArn",
            user_arn(&cred.tenant_name, &cred.user_name),
        );
        c.set("aws:PrincipalType", "User");
    } else {
        c.set("aws:PrincipalType", "Anonymous");
    }
    c
}

/// The condition keys known when a request arrives.
fn request_context(cx: &S3AccessContext<'_>, caller: Option<&Credential>, secure: bool) -> Context {
    let mut c = base_context(caller, secure);
    let headers = cx.headers();
    let query: Vec<(String, String)> = cx
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    for (key, param) in [
        ("s3:prefix", "prefix"),
        ("s3:delimiter", "delimiter"),
        ("s3:max-keys", "max-keys"),
        ("s3:VersionId", "versionId"),
    ] {
        if let Some(v) = q(param) {
            c.set(key, v);
        }
    }
    for (key, name) in [
        ("s3:x-amz-acl", "x-amz-acl"),
        ("s3:x-amz-copy-source", "x-amz-copy-source"),
        ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
        (
            "s3:x-amz-server-side-encryption",
            "x-amz-server-side-encryption",
        ),
        ("s3:x-amz-storage-class", "x-amz-storage-class"),
        ("s3:x-amz-content-sha256", "x-amz-content-sha256"),
        ("s3:object-lock-mode", "x-amz-object-lock-mode"),
        ("s3:object-lock-legal-hold", "x-amz-object-lock-legal-hold"),
    ] {
        if let Some(v) = header(headers, name) {
            c.set(key, v);
        }
    }
    if let Some(tagging) = header(headers, "x-amz-tagging") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(tagging).unwrap_or_default();
        c.set_many(
            "s3:RequestObjectTagKeys",
            pairs.iter().map(|(k, _)| k.clone()).collect(),
        );
        for (k, v) in pairs {
            c.set(&format!("s3:RequestObjectTag/{k}"), v);
        }
    }
    if caller.is_some() {
        let presigned = q("X-Amz-Signature").is_some();
        c.set(
            "s3:authType",
            if presigned {
                "REST-QUERY-STRING"
            } else {
                "REST-HEADER"
            },
        );
        c.set("s3:signatureversion", "AWS4-HMAC-SHA256");
        let date = q("X-Amz-Date").or_else(|| header(headers, "x-amz-date"));
        let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        if let Some(signed) = date.and_then(|d| time::PrimitiveDateTime::parse(d, &fmt).ok()) {
            let age = (time::OffsetDateTime::now_utc() - signed.assume_utc())
                .whole_milliseconds()
                .max(0);
            c.set("s3:signatureAge", age.to_string());
        }
    }
    c
}

/// The condition keys of a POST Object upload: the caller's, the peer's
/// address, and what the form's fields say (acl, storage class, tagging).
pub fn form_context(
    caller: &Credential,
    fields: &[(String, String)],
    peer: Option<std::net::SocketAddr>,
    secure: bool,
) -> Context {
    let mut c = base_context(Some(caller), secure);
    c.set("s3:authType", "POST");
    c.set("s3:signatureversion", "AWS4-HMAC-SHA256");
    if let Some(p) = peer {
        c.set("aws:SourceIp", p.ip().to_canonical().to_string());
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    for (key, name) in [
        ("s3:x-amz-acl", "acl"),
        ("s3:x-amz-storage-class", "x-amz-storage-class"),
        (
            "s3:x-amz-server-side-encryption",
            "x-amz-server-side-encryption",
        ),
    ] {
        if let Some(v) = field(name) {
            c.set(key, v);
        }
    }
    c
}

/// Decides one action on one resource for a caller (None: anonymous) on a
/// bucket (None: no bucket, or one not created yet). A user's own policies
/// speak only inside its tenant; the bucket policy always speaks, with
/// RestrictPublicBuckets applied to callers outside the owning tenant.
pub fn decide(
    caller: Option<&Credential>,
    bucket: Option<&BucketInfo>,
    action: &str,
    resource: &str,
    context: &Context,
) -> Decision {
    let (arn, root);
    let who = match caller {
        Some(c) => {
            arn = user_arn(&c.tenant_name, &c.user_name);
            root = tenant_arn(&c.tenant_name);
            Caller::User {
                arn: &arn,
                tenant_arn: &root,
            }
        }
        None => Caller::Anonymous,
    };
    let owner = match (caller, bucket) {
        (Some(c), Some(b)) => c.principal.tenant_id == b.tenant_id,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let named: Vec<Named<'_>> = match caller {
        Some(c) if owner => c
            .policies
            .iter()
            .map(|(name, doc)| Named { name, doc })
            .collect(),
        _ => Vec::new(),
    };
    let bucket_policy = bucket.and_then(|b| {
        b.policy.as_deref().map(|doc| BucketPolicy {
            doc,
            ignore_public: b.public_access_block.restrict_public_buckets && !owner,
        })
    });
    evaluate(
        &named,
        bucket_policy,
        &Request {
            caller: who,
            action,
            resource,
            context,
        },
    )
}

impl Access {
    /// Charges the request to its key, bucket, tenant and the gateway; over
    /// a request rate it is refused here, before its body is read.
    fn admit(
        &self,
        cx: &mut S3AccessContext<'_>,
        caller: Option<&Credential>,
        bucket: Option<&BucketInfo>,
        bucket_name: Option<&str>,
    ) -> S3Result<()> {
        if !self.throttle.is_active() {
            return Ok(());
        }
        let who = throttle_subject(caller, bucket, bucket_name);
        let slot = cx
            .extensions_mut()
            .get::<crate::throttle::ThrottleSlot>()
            .cloned();
        self.throttle.admit(&who, slot.as_ref()).map_err(|r| {
            let mut e = s3_error!(SlowDown, "Please reduce your request rate.");
            let mut h = http::HeaderMap::new();
            h.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(r.retry_after_secs()),
            );
            e.set_headers(h);
            e
        })
    }

    async fn caller(&self, cx: &S3AccessContext<'_>) -> S3Result<Option<Credential>> {
        let Some(creds) = cx.credentials() else {
            return Ok(None);
        };
        match self.credentials.lookup(&creds.access_key).await {
            Ok(Some(c)) => Ok(Some(c)),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => Err(to_s3(e)),
        }
    }
}

/// Whom a request is charged to: its key and tenant (the bucket's tenant
/// for an anonymous one), and its bucket when that exists — a flood of
/// made-up names adds no limiter.
pub(super) fn throttle_subject<'a>(
    caller: Option<&'a Credential>,
    bucket: Option<&BucketInfo>,
    bucket_name: Option<&'a str>,
) -> crate::throttle::Subject<'a> {
    let tenant = caller
        .map(|c| c.principal.tenant_id)
        .or(bucket.map(|b| b.tenant_id));
    crate::throttle::Subject {
        tenant: tenant.map(|t| t.to_string()),
        key: caller.map(|c| c.principal.access_key.as_str()),
        bucket: bucket.and(bucket_name),
    }
}

fn log_refusal(decision: &Decision, action: &str, resource: &str, who: Option<&Credential>) {
    tracing::debug!(
        access_key = who.map_or(ANONYMOUS, |c| c.principal.access_key.as_str()),
        action,
        resource,
        %decision,
        "request denied"
    );
}

fn refuse(
    decision: &Decision,
    action: &str,
    resource: &str,
    who: Option<&Credential>,
) -> s3s::S3Error {
    log_refusal(decision, action, resource, who);
    denied()
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        let op = op.as_str();
        let caller = self.caller(cx).await?;
        // The audit record names the verified caller, refused or not.
        if let (Some(c), Some(slot)) = (
            &caller,
            cx.extensions_mut().get::<crate::audit::AuditSlot>(),
        ) {
            slot.set(&c.principal);
        }
        let (bucket_name, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        // A bucket about to be created has no owner yet: only the caller's
        // own policies speak (the engine answers for a taken name).
        let bucket = match &bucket_name {
            Some(b) if op != "CreateBucket" => self.buckets.get(b).await?,
            _ => None,
        };
        if let (Some(c), Some(b)) = (&caller, &bucket)
            && c.principal.tenant_id != b.tenant_id
        {
            // Sharing across tenants is not served yet.
            return Err(denied());
        }
        self.admit(
            cx,
            caller.as_ref(),
            bucket.as_deref(),
            bucket_name.as_deref(),
        )?;
        let mut context = request_context(cx, caller.as_ref(), self.secure);
        if let Some(p) = cx.extensions_mut().get::<PeerAddr>() {
            context.set("aws:SourceIp", p.0.ip().to_canonical().to_string());
        }
        let versioned = cx
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("versionId=")));
        let (action, level) = action_for(op, versioned);
        let resource = match level {
            Level::Service => "*".to_owned(),
            Level::Bucket => resource_arn(bucket_name.as_deref().unwrap_or_default(), None),
            Level::Object => resource_arn(
                bucket_name.as_deref().unwrap_or_default(),
                Some(key.as_deref().unwrap_or_default()),
            ),
        };
        if caller.is_none() && bucket.is_none() {
            return Err(denied());
        }
        // DeleteObjects is decided key by key once its body is read.
        if op != "DeleteObjects" {
            let d = decide(
                caller.as_ref(),
                bucket.as_deref(),
                action,
                &resource,
                &context,
            );
            if !d.allowed() {
                return Err(refuse(&d, action, &resource, caller.as_ref()));
            }
        }
        let bypass = header(cx.headers(), "x-amz-bypass-governance-retention")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let bypass_governance = bypass
            && decide(
                caller.as_ref(),
                bucket.as_deref(),
                "s3:BypassGovernanceRetention",
                &resource,
                &context,
            )
            .allowed();
        let grant = Some(Grant { bypass_governance });
        let principal = match (&caller, &bucket) {
            (Some(c), _) => Principal {
                grant,
                ..c.principal.clone()
            },
            (None, Some(b)) => Principal {
                access_key: ANONYMOUS.to_owned(),
                tenant_id: b.tenant_id,
                policy: Policy::ReadOnly,
                grant,
            },
            (None, None) => return Err(denied()),
        };
        cx.extensions_mut().insert(Checked {
            principal,
            caller,
            context: Arc::new(context),
            bucket,
        });
        Ok(())
    }

    /// Each key is decided on its own: a denied key becomes an AccessDenied
    /// entry in the result (the handler reads [`DeniedDeletes`]) and the
    /// others are deleted, as S3 does.
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let checked = req.extensions.get::<Checked>().ok_or_else(denied)?;
        let mut refused = DeniedDeletes::default();
        for o in &req.input.delete.objects {
            let action = if o.version_id.is_some() {
                "s3:DeleteObjectVersion"
            } else {
                "s3:DeleteObject"
            };
            let resource = resource_arn(&req.input.bucket, Some(&o.key));
            let d = decide(
                checked.caller.as_ref(),
                checked.bucket.as_deref(),
                action,
                &resource,
                &checked.context,
            );
            if !d.allowed() {
                // Logged like any refusal; answered in the key's entry.
                log_refusal(&d, action, &resource, checked.caller.as_ref());
                refused.0.insert((o.key.clone(), o.version_id.clone()));
            }
        }
        if !refused.0.is_empty() {
            req.extensions.insert(refused);
        }
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.copy_source(&req.extensions, &req.input.copy_source)
            .await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.copy_source(&req.extensions, &req.input.copy_source)
            .await
    }
}

impl Access {
    /// A copy also reads its source: s3:GetObject (or GetObjectVersion) on
    /// it, decided against the source bucket's policy.
    async fn copy_source(&self, ext: &http::Extensions, src: &CopySource) -> S3Result<()> {
        let checked = ext.get::<Checked>().ok_or_else(denied)?;
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = src
        else {
            return Err(s3_error!(NotImplemented, "copy from an access point"));
        };
        let Some(info) = self.buckets.get(bucket).await? else {
            // The engine answers NoSuchBucket for the caller's own request.
            return match &checked.caller {
                Some(_) => Ok(()),
                None => Err(denied()),
            };
        };
        if let Some(c) = &checked.caller
            && c.principal.tenant_id != info.tenant_id
        {
            return Err(denied());
        }
        if checked.bucket.as_ref().map(|b| b.tenant_id) != Some(info.tenant_id)
            && checked.caller.is_none()
        {
            return Err(denied());
        }
        let action = if version_id.is_some() {
            "s3:GetObjectVersion"
        } else {
            "s3:GetObject"
        };
        let resource = resource_arn(bucket, Some(key));
        let d = decide(
            checked.caller.as_ref(),
            Some(&*info),
            action,
            &resource,
            &checked.context,
        );
        if !d.allowed() {
            return Err(refuse(&d, action, &resource, checked.caller.as_ref()));
        }
        Ok(())
    }
}
