//! The admin endpoint: /metrics, /health/live, /health/ready, behind
//! [`AdminAuth`] (open on loopback, a bearer token otherwise).

use std::convert::Infallible;

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::Body;

use super::auth::AdminAuth;
use crate::engine::Engine;

#[derive(Clone)]
pub struct AdminService {
    engine: Engine,
    auth: AdminAuth,
}

impl AdminService {
    pub fn new(engine: Engine, auth: AdminAuth) -> Self {
        Self { engine, auth }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

/// Ready = the metadata store answers and every backend answers. The body
/// names what failed ("unavailable"); the reason, which may carry hosts,
/// paths or driver messages, goes to the log only.
async fn readiness(engine: &Engine) -> (bool, serde_json::Value) {
    let state = |ok: bool| if ok { "ok" } else { "unavailable" };
    let meta = engine.meta().ping().await;
    if let Err(e) = &meta {
        tracing::warn!(dependency = "meta", error = %e, "readiness check failed");
    }
    let mut ok = meta.is_ok();
    let mut backends = serde_json::Map::new();
    for b in engine.backends().iter() {
        let r = b.probe().await;
        if let Err(e) = &r {
            tracing::warn!(dependency = "backend", backend = b.name(), error = %e, "readiness check failed");
        }
        ok &= r.is_ok();
        backends.insert(b.name().to_owned(), serde_json::json!(state(r.is_ok())));
    }
    let body = serde_json::json!({
        "ready": ok,
        "meta": state(meta.is_ok()),
        "backends": backends,
    });
    (ok, body)
}

impl hyper::service::Service<Request<Incoming>> for AdminService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let engine = self.engine.clone();
        let allowed = self.auth.require(&req);
        Box::pin(async move {
            if let Err(refusal) = allowed {
                return Ok(*refusal);
            }
            let res = match req.uri().path() {
                "/metrics" => {
                    let meta = engine.meta();
                    crate::metrics::meta_pool(meta.kind(), &meta.pool_status());
                    text(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        crate::metrics::render(),
                    )
                }
                "/health/live" => text(StatusCode::OK, "text/plain", "ok\n".into()),
                "/health/ready" => {
                    let (ok, body) = readiness(&engine).await;
                    let status = if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    text(status, "application/json", format!("{body}\n"))
                }
                _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
            };
            Ok(res)
        })
    }
}
