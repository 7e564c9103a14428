//! The admin HTTP API, `/admin/v1/…` on the admin listener: JSON in and
//! out, the operations of `ops.rs` (the ones `dooz admin` runs), each
//! recorded in the audit log like a command (actor `api:token`, source the
//! client's address). [`super::auth::AdminAuth`] has already checked the
//! bearer token. The routes are listed in `openapi.rs`, served at
//! `/admin/v1/openapi.json`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::buckets;
use super::ops::{self, AdminError, AdminResult, GcRunInfo};
use super::remote::OPERATOR_HEADER;
use super::{limits, policies};
use crate::audit::cli::{CommandAudit, record_operator};
use crate::server::Context;

pub const PREFIX: &str = "/admin/v1";
/// Request bodies are small JSON objects.
const MAX_BODY: usize = 64 * 1024;

/// Collector runs started through the API on this gateway.
#[derive(Default)]
struct GcRuns {
    running: AtomicBool,
    last: Mutex<Option<GcRunInfo>>,
}

impl GcRuns {
    fn set_last(&self, r: GcRunInfo) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    fn last(&self) -> Option<GcRunInfo> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Clears `running` however the run ends.
struct RunningFlag(Arc<GcRuns>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

#[derive(Clone)]
pub struct Api {
    ctx: Arc<Context>,
    gc: Arc<GcRuns>,
}

/// The JSON error body every refusal carries.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    // Answers may carry a secret (user create) or change with every call.
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn error_response(e: &AdminError) -> Response<Body> {
    let status = match e {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_response(status, error_body(e.code(), &e.to_string()))
}

/// Where a request went: the operation, and what its audit record says.
enum Route {
    OpenApi,
    ListTenants,
    CreateTenant,
    ListUsers,
    CreateUser,
    DeleteUser(String),
    ListPolicies,
    ListBuckets,
    CreateBucket,
    DeleteBucket(String),
    ListObjects(String),
    RestoreBucket(String),
    LifecycleStatus,
    Usage,
    Backends,
    GcStatus,
    GcRun,
    TenantPolicies(String),
    TenantPolicy(Method, String, String),
    UserPolicies(String),
    UserPolicy(Method, String, String),
    UserCan(String),
    ListLimits,
    /// PUT (set) or DELETE (unset); scope, subject.
    Limit(Method, String, String),
}

/// Decodes %XX in a path segment (clients encode what is not plain ASCII).
fn decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The route for a method and a path below [`PREFIX`]; `Err` carries the
/// methods the path allows (empty: no such path).
fn route(method: &Method, rest: &str) -> Result<Route, &'static str> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let one = |m: &Method, get: Option<Route>, post: Option<Route>, allow: &'static str| match (
        m, get, post,
    ) {
        (&Method::GET, Some(r), _) | (&Method::POST, _, Some(r)) => Ok(r),
        _ => Err(allow),
    };
    match segs.as_slice() {
        ["openapi.json"] => one(method, Some(Route::OpenApi), None, "GET"),
        ["tenants"] => one(
            method,
            Some(Route::ListTenants),
            Some(Route::CreateTenant),
            "GET, POST",
        ),
        ["users"] => one(
            method,
            Some(Route::ListUsers),
            Some(Route::CreateUser),
            "GET, POST",
        ),
        ["users", key] if !key.is_empty() => match (method, decode(key)) {
            (&Method::DELETE, Some(k)) => Ok(Route::DeleteUser(k)),
            _ => Err("DELETE"),
        },
        ["policies"] => one(method, Some(Route::ListPolicies), None, "GET"),
        ["tenants", t, "policies"] if !t.is_empty() => match decode(t) {
            Some(t) => one(method, Some(Route::TenantPolicies(t)), None, "GET"),
            None => Err(""),
        },
        ["tenants", t, "policies", n] if !t.is_empty() && !n.is_empty() => {
            match (method, decode(t), decode(n)) {
                (&Method::GET | &Method::PUT | &Method::DELETE, Some(t), Some(n)) => {
                    Ok(Route::TenantPolicy(method.clone(), t, n))
                }
                _ => Err("GET, PUT, DELETE"),
            }
        }
        ["users", key, "policies"] if !key.is_empty() => match decode(key) {
            Some(k) => one(method, Some(Route::UserPolicies(k)), None, "GET"),
            None => Err(""),
        },
        ["users", key, "policies", n] if !key.is_empty() && !n.is_empty() => {
            match (method, decode(key), decode(n)) {
                (&Method::PUT | &Method::DELETE, Some(k), Some(n)) => {
                    Ok(Route::UserPolicy(method.clone(), k, n))
                }
                _ => Err("PUT, DELETE"),
            }
        }
        ["users", key, "can"] if !key.is_empty() => match decode(key) {
            Some(k) => one(method, Some(Route::UserCan(k)), None, "GET"),
            None => Err(""),
        },
        ["buckets"] => one(
            method,
            Some(Route::ListBuckets),
            Some(Route::CreateBucket),
            "GET, POST",
        ),
        ["buckets", name] if !name.is_empty() => match (method, decode(name)) {
            (&Method::DELETE, Some(n)) => Ok(Route::DeleteBucket(n)),
            _ => Err("DELETE"),
        },
        ["buckets", name, "objects"] if !name.is_empty() => match decode(name) {
            Some(n) => one(method, Some(Route::ListObjects(n)), None, "GET"),
            None => Err(""),
        },
        ["buckets", name, "restore"] if !name.is_empty() => match decode(name) {
            Some(n) => one(method, None, Some(Route::RestoreBucket(n)), "POST"),
            None => Err(""),
        },
        ["lifecycle"] => one(method, Some(Route::LifecycleStatus), None, "GET"),
        ["limits"] => one(method, Some(Route::ListLimits), None, "GET"),
        ["limits", scope, name] if !name.is_empty() => {
            match (method, decode(scope), decode(name)) {
                (&Method::PUT | &Method::DELETE, Some(s), Some(n)) => {
                    Ok(Route::Limit(method.clone(), s, n))
                }
                (_, Some(_), Some(_)) => Err("PUT, DELETE"),
                _ => Err(""),
            }
        }
        ["usage"] => one(method, Some(Route::Usage), None, "GET"),
        ["backends"] => one(method, Some(Route::Backends), None, "GET"),
        ["gc"] => one(method, Some(Route::GcStatus), None, "GET"),
        ["gc", "run"] => one(method, None, Some(Route::GcRun), "POST"),
        _ => Err(""),
    }
}

/// The query string's parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> AdminResult<Self> {
        serde_urlencoded::from_str(q.unwrap_or(""))
            .map(Query)
            .map_err(|e| AdminError::Invalid(format!("query string: {e}")))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter.
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> AdminResult<bool> {
        match self.get(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1" | "") => Ok(true),
            Some(v) => Err(AdminError::Invalid(format!(
                "{name}={v}: use true or false"
            ))),
        }
    }
}

async fn read_json<T: DeserializeOwned>(body: Incoming) -> AdminResult<T> {
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| AdminError::Invalid(format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| AdminError::Invalid(format!("request body is not the JSON expected: {e}")))
}

fn to_json(v: &impl Serialize) -> AdminResult<String> {
    serde_json::to_string(v).map_err(|e| AdminError::Internal(e.to_string()))
}

/// Runs an operation on a blocking thread of its own, for the ones whose
/// future is not `Send`: the engine's version walks take `AsyncFnMut`
/// callbacks, and stable Rust cannot declare the futures those return
/// `Send`, while the admin listener's tasks must be. The future is made
/// and polled on that thread, so it never has to move.
async fn off_thread<T, F>(ctx: Arc<Context>, op: F) -> AdminResult<T>
where
    T: Send + 'static,
    F: AsyncFnOnce(Arc<Context>) -> AdminResult<T> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(op(ctx)))
        .await
        .map_err(|e| AdminError::Internal(format!("admin operation stopped: {e}")))?
}

/// What an action returned: its status and body, or its error.
type Answer = AdminResult<(StatusCode, String)>;

fn ok(v: &impl Serialize) -> Answer {
    Ok((StatusCode::OK, to_json(v)?))
}

fn created(v: &impl Serialize) -> Answer {
    Ok((StatusCode::CREATED, to_json(v)?))
}

fn ok_of(r: AdminResult<impl Serialize>) -> Answer {
    ok(&r?)
}

fn created_of(r: AdminResult<impl Serialize>) -> Answer {
    created(&r?)
}

fn audit(
    action: &'static str,
    target: impl Into<String>,
    tenant: Option<String>,
    detail: serde_json::Value,
) -> CommandAudit {
    CommandAudit {
        action,
        target: target.into(),
        tenant,
        detail,
    }
}

impl Api {
    pub fn new(ctx: Context) -> Self {
        Self {
            ctx: Arc::new(ctx),
            gc: Arc::default(),
        }
    }

    /// Answers a request whose path starts with [`PREFIX`].
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or("");
        let route = match route(&parts.method, rest) {
            Ok(r) => r,
            Err("") => {
                return json_response(
                    StatusCode::NOT_FOUND,
                    error_body(
                        "NoSuchRoute",
                        &format!(
                            "no admin API route {}; see {PREFIX}/openapi.json",
                            parts.uri.path()
                        ),
                    ),
                );
            }
            Err(allow) => {
                let mut r = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    error_body(
                        "MethodNotAllowed",
                        &format!(
                            "{} {} is not a route; allowed: {allow}",
                            parts.method,
                            parts.uri.path()
                        ),
                    ),
                );
                r.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static(allow));
                return r;
            }
        };
        if let Route::OpenApi = route {
            return json_response(StatusCode::OK, super::openapi::document().to_string());
        }
        let query = match Query::parse(parts.uri.query()) {
            Ok(q) => q,
            Err(e) => return error_response(&e),
        };
        let (record, answer) = self.run(route, &query, body).await;
        let source = parts
            .extensions
            .get::<crate::net::PeerAddr>()
            .map_or_else(|| "-".to_owned(), |p| p.0.to_string());
        let mut record = record;
        if let Some(op) = parts
            .headers
            .get(OPERATOR_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            record.detail["operator"] = serde_json::json!(op.chars().take(64).collect::<String>());
        }
        let result = match &answer {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let recorded = record_operator(&self.ctx, record, "api:token".into(), source, result).await;
        match (answer, recorded) {
            (Ok((status, body)), Ok(())) => json_response(status, body),
            // The action took effect but the trail has a hole: the
            // operator must know (as with `dooz admin`).
            (Ok(_), Err(e)) => error_response(&AdminError::Internal(e)),
            (Err(e), recorded) => {
                if let Err(r) = recorded {
                    tracing::error!(error = %r, "admin API: audit record lost");
                }
                error_response(&e)
            }
        }
    }

    /// Runs a route; returns its audit record and its answer.
    async fn run(&self, route: Route, q: &Query, body: Incoming) -> (CommandAudit, Answer) {
        let ctx = &*self.ctx;
        let none = serde_json::json!({});
        let tenant = q.get("tenant").map(str::to_owned);
        match route {
            // Answered before any record is made (reading the document is no action).
            Route::OpenApi => (
                audit("admin:openapi", "-", None, none),
                ok(&super::openapi::document()),
            ),
            Route::ListTenants => (
                audit("admin:tenant.list", "-", None, none),
                ok_of(ops::list_tenants(ctx).await),
            ),
            Route::CreateTenant => match read_json::<ops::NewTenantRequest>(body).await {
                Ok(req) => (
                    audit(
                        "admin:tenant.create",
                        req.name.clone(),
                        Some(req.name.clone()),
                        serde_json::json!({"kek_provider": req.kek_provider, "key_ref": req.key_ref, "cipher": req.cipher}),
                    ),
                    created_of(ops::create_tenant(ctx, &req).await),
                ),
                Err(e) => (audit("admin:tenant.create", "-", None, none), Err(e)),
            },
            Route::ListUsers => (
                audit("admin:user.list", "-", tenant.clone(), none),
                ok_of(ops::list_users(ctx, tenant.as_deref()).await),
            ),
            Route::CreateUser => match read_json::<ops::NewUserRequest>(body).await {
                Ok(req) => (
                    audit(
                        "admin:user.create",
                        req.access_key.clone().unwrap_or_else(|| req.name.clone()),
                        Some(req.tenant.clone()),
                        serde_json::json!({"name": req.name, "policy": req.policy, "chosen_access_key": req.access_key.is_some()}),
                    ),
                    created_of(ops::create_user(ctx, &req).await),
                ),
                Err(e) => (audit("admin:user.create", "-", None, none), Err(e)),
            },
            Route::DeleteUser(key) => (
                audit("admin:user.delete", key.clone(), None, none),
                match ops::delete_user(ctx, &key).await {
                    Ok(()) => ok(&serde_json::json!({"deleted": key})),
                    Err(e) => Err(e),
                },
            ),
            Route::ListLimits => (
                audit("admin:limits.list", "-", None, none),
                ok_of(limits::list(ctx).await),
            ),
            Route::Limit(m, scope, name) if m == Method::PUT => {
                let record =
                    |detail| audit("admin:limits.set", format!("{scope}:{name}"), None, detail);
                match read_json::<crate::throttle::LimitChange>(body).await {
                    Ok(change) => (
                        record(serde_json::to_value(change).unwrap_or_default()),
                        ok_of(limits::set(ctx, &scope, &name, &change).await),
                    ),
                    Err(e) => (record(none), Err(e)),
                }
            }
            Route::Limit(_, scope, name) => (
                audit("admin:limits.unset", format!("{scope}:{name}"), None, none),
                match limits::unset(ctx, &scope, &name).await {
                    Ok(()) => ok(&serde_json::json!({"deleted": format!("{scope}:{name}")})),
                    Err(e) => Err(e),
                },
            ),
            Route::ListPolicies => (
                audit("admin:policy.list", "-", None, none),
                ok(&ops::policies()),
            ),
            Route::TenantPolicies(t) => (
                audit("admin:policy.list", "-", Some(t.clone()), none),
                ok_of(policies::list_policies(ctx, &t).await),
            ),
            Route::TenantPolicy(m, t, name) if m == Method::GET => (
                audit("admin:policy.show", name.clone(), Some(t.clone()), none),
                policies::show_policy(ctx, &t, &name)
                    .await
                    .and_then(|text| {
                        let document = serde_json::from_str(&text)
                            .map_err(|e| AdminError::Internal(e.to_string()))?;
                        ok(&policies::PolicyDocumentInfo { name, document })
                    }),
            ),
            Route::TenantPolicy(m, t, name) if m == Method::PUT => {
                let record = audit("admin:policy.create", name.clone(), Some(t.clone()), none);
                match read_json::<serde_json::Value>(body).await {
                    Ok(doc) => {
                        let text = doc.to_string();
                        (
                            record,
                            match policies::put_policy(ctx, &t, &name, &text).await {
                                Ok(()) => ok(&policies::PolicyDocumentInfo {
                                    name,
                                    document: doc,
                                }),
                                Err(e) => Err(e),
                            },
                        )
                    }
                    Err(e) => (record, Err(e)),
                }
            }
            Route::TenantPolicy(_, t, name) => (
                audit("admin:policy.delete", name.clone(), Some(t.clone()), none),
                match policies::delete_policy(ctx, &t, &name).await {
                    Ok(()) => ok(&serde_json::json!({"deleted": name})),
                    Err(e) => Err(e),
                },
            ),
            Route::UserPolicies(key) => (
                audit("admin:user.policy.list", key.clone(), None, none),
                ok_of(policies::user_policies(ctx, &key).await),
            ),
            Route::UserPolicy(m, key, name) if m == Method::PUT => (
                audit(
                    "admin:user.policy.attach",
                    key.clone(),
                    None,
                    serde_json::json!({"policy": name}),
                ),
                match policies::attach(ctx, &key, &name).await {
                    Ok(()) => ok(&serde_json::json!({"attached": name})),
                    Err(e) => Err(e),
                },
            ),
            Route::UserPolicy(_, key, name) => (
                audit(
                    "admin:user.policy.detach",
                    key.clone(),
                    None,
                    serde_json::json!({"policy": name}),
                ),
                match policies::detach(ctx, &key, &name).await {
                    Ok(()) => ok(&serde_json::json!({"detached": name})),
                    Err(e) => Err(e),
                },
            ),
            Route::UserCan(key) => {
                let action = q.get("action").unwrap_or_default().to_owned();
                let resource = q.get("resource").unwrap_or_default().to_owned();
                (
                    audit(
                        "admin:user.can",
                        key.clone(),
                        None,
                        serde_json::json!({"action": action, "resource": resource}),
                    ),
                    match (
                        action.is_empty() || resource.is_empty(),
                        q.all("context")
                            .map(policies::parse_context_pair)
                            .collect::<Result<Vec<_>, _>>(),
                    ) {
                        (true, _) => Err(AdminError::Invalid(
                            "action and resource are required query parameters".into(),
                        )),
                        (_, Err(m)) => Err(AdminError::Invalid(format!("context: {m}"))),
                        (false, Ok(extra)) => {
                            ok_of(policies::can(ctx, &key, &action, &resource, &extra).await)
                        }
                    },
                )
            }
            Route::ListBuckets => (
                audit("admin:bucket.list", "-", tenant.clone(), none),
                ok_of(ops::list_buckets(ctx, tenant.as_deref()).await),
            ),
            Route::CreateBucket => match read_json::<ops::NewBucketRequest>(body).await {
                Ok(req) => (
                    audit(
                        "admin:bucket.create",
                        req.name.clone(),
                        Some(req.tenant.clone()),
                        serde_json::json!({"versioning": req.versioning, "object_lock": req.object_lock}),
                    ),
                    created_of(ops::create_bucket(ctx, &req).await),
                ),
                Err(e) => (audit("admin:bucket.create", "-", None, none), Err(e)),
            },
            Route::DeleteBucket(name) => {
                let force = q.flag("force");
                (
                    audit(
                        "admin:bucket.delete",
                        name.clone(),
                        None,
                        serde_json::json!({"force": force.as_ref().ok()}),
                    ),
                    match force {
                        Ok(force) => ok_of(ops::delete_bucket(ctx, &name, force).await),
                        Err(e) => Err(e),
                    },
                )
            }
            Route::ListObjects(name) => {
                let at = q.get("at").map(str::to_owned);
                let prefix = q.get("prefix").unwrap_or("").to_owned();
                let detail = serde_json::json!({"at": at, "prefix": prefix});
                let answer = off_thread(self.ctx.clone(), {
                    let name = name.clone();
                    async move |ctx: Arc<Context>| {
                        buckets::list_objects(&ctx, &name, at.as_deref(), &prefix).await
                    }
                })
                .await;
                (audit("admin:bucket.ls", name, None, detail), ok_of(answer))
            }
            Route::RestoreBucket(name) => match read_json::<buckets::RestoreRequest>(body).await {
                Ok(req) => {
                    let detail = serde_json::json!({"at": req.at, "prefix": req.prefix, "dry_run": req.dry_run});
                    let answer = off_thread(self.ctx.clone(), {
                        let name = name.clone();
                        async move |ctx: Arc<Context>| {
                            buckets::restore(&ctx, &name, &req, &mut |_| {}).await
                        }
                    })
                    .await;
                    (
                        audit("admin:bucket.restore", name, None, detail),
                        ok_of(answer),
                    )
                }
                Err(e) => (audit("admin:bucket.restore", name, None, none), Err(e)),
            },
            Route::LifecycleStatus => (
                audit("admin:lifecycle.status", "-", None, none),
                ok_of(super::lifecycle::status(ctx).await),
            ),
            Route::Usage => (
                audit("admin:usage", "-", tenant.clone(), none),
                ok_of(ops::usage(ctx, tenant.as_deref()).await),
            ),
            Route::Backends => (
                audit("admin:backend.list", "-", None, none),
                ok_of(ops::backends(ctx).await),
            ),
            Route::GcStatus => (
                audit("admin:gc.status", "-", None, none),
                match ops::gc_status(ctx).await {
                    Ok(mut s) => {
                        s.running = self.gc.running.load(Ordering::SeqCst);
                        s.last_run = self.gc.last();
                        ok(&s)
                    }
                    Err(e) => Err(e),
                },
            ),
            Route::GcRun => {
                let flags = q.flag("dry_run").and_then(|d| Ok((d, q.flag("wait")?)));
                let detail = serde_json::json!({"dry_run": flags.as_ref().ok().map(|f| f.0), "wait": flags.as_ref().ok().map(|f| f.1)});
                (
                    audit("admin:gc.run", "-", None, detail),
                    match flags {
                        Ok((dry_run, wait)) => self.gc_run(dry_run, wait).await,
                        Err(e) => Err(e),
                    },
                )
            }
        }
    }

    /// One collector run in this gateway: waited for (200 with its report),
    /// or started in the background (202; `GET /gc` shows how it ended).
    /// One API-started run at a time per gateway; across gateways the `gc`
    /// lease decides (a Conflict when another collector holds it).
    async fn gc_run(&self, dry_run: bool, wait: bool) -> Answer {
        if self
            .gc
            .running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(AdminError::Conflict(
                "a collector run started through the admin API is still going on; see GET /admin/v1/gc".into(),
            ));
        }
        let flag = RunningFlag(self.gc.clone());
        let ctx = self.ctx.clone();
        let runs = self.gc.clone();
        let run = async move {
            let _flag = flag;
            let r = ops::gc_run(&ctx, dry_run).await;
            if let Ok(info) = &r {
                runs.set_last(info.clone());
            }
            r
        };
        if wait {
            ok(&run.await?)
        } else {
            tokio::spawn(async move {
                if let Err(e) = run.await {
                    tracing::warn!(error = %e, "gc run started through the admin API did not run");
                }
            });
            Ok((
                StatusCode::ACCEPTED,
                to_json(&serde_json::json!({"started": true, "dry_run": dry_run}))?,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_methods_and_segments() {
        assert!(matches!(
            route(&Method::GET, "/tenants"),
            Ok(Route::ListTenants)
        ));
        assert!(matches!(
            route(&Method::POST, "/tenants"),
            Ok(Route::CreateTenant)
        ));
        assert_eq!(route(&Method::PUT, "/tenants").err(), Some("GET, POST"));
        assert!(matches!(
            route(&Method::DELETE, "/buckets/a%2Fb"),
            Ok(Route::DeleteBucket(n)) if n == "a/b"
        ));
        assert_eq!(
            route(&Method::DELETE, "/buckets/bad%zz").err(),
            Some("DELETE")
        );
        assert_eq!(route(&Method::GET, "/buckets/x/y").err(), Some(""));
        assert!(matches!(
            route(&Method::GET, "/buckets/a%2Fb/objects"),
            Ok(Route::ListObjects(n)) if n == "a/b"
        ));
        assert!(matches!(
            route(&Method::POST, "/buckets/logs/restore"),
            Ok(Route::RestoreBucket(n)) if n == "logs"
        ));
        assert_eq!(
            route(&Method::GET, "/buckets/logs/restore").err(),
            Some("POST")
        );
        assert_eq!(
            route(&Method::POST, "/buckets/logs/objects").err(),
            Some("GET")
        );
        assert!(matches!(
            route(&Method::GET, "/lifecycle"),
            Ok(Route::LifecycleStatus)
        ));
        assert_eq!(route(&Method::GET, "/users/").err(), Some(""));
        assert_eq!(route(&Method::GET, "/gc/run").err(), Some("POST"));
        assert_eq!(route(&Method::GET, "").err(), Some(""));
    }

    #[test]
    fn flags_are_true_or_false() {
        let q = Query::parse(Some("force=true&dry_run=0&wait&x=maybe")).unwrap();
        assert!(q.flag("force").unwrap());
        assert!(!q.flag("dry_run").unwrap());
        assert!(q.flag("wait").unwrap());
        assert!(!q.flag("absent").unwrap());
        assert!(matches!(q.flag("x"), Err(AdminError::Invalid(_))));
    }
}
