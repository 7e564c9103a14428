//! The admin endpoint: /metrics, /health/live, /health/ready and the admin
//! API under /admin/v1 (`api.rs`), behind [`AdminAuth`] (metrics and health
//! open on loopback; everything else needs the bearer token).

use std::convert::Infallible;

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::Body;

use super::api::{Api, PREFIX};
use super::auth::AdminAuth;
use crate::engine::Engine;
use crate::server::Context;

#[derive(Clone)]
pub struct AdminService {
    engine: Engine,
    auth: AdminAuth,
    api: Api,
}

impl AdminService {
    pub fn new(ctx: Context, auth: AdminAuth) -> Self {
        super::health::init_series(&ctx.engine);
        Self {
            engine: ctx.engine.clone(),
            auth,
            api: Api::new(ctx),
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

impl hyper::service::Service<Request<Incoming>> for AdminService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let engine = self.engine.clone();
        let api = self.api.clone();
        let allowed = self.auth.require(&req);
        Box::pin(async move {
            if let Err(refusal) = allowed {
                return Ok(*refusal);
            }
            let path = req.uri().path();
            if path == PREFIX || path.starts_with("/admin/v1/") {
                return Ok(api.handle(req).await);
            }
            let res = match path {
                "/metrics" => {
                    // Fresh dooz_ready / dooz_*_up gauges in every scrape.
                    super::health::readiness(&engine).await;
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
                    let (ok, body) = super::health::readiness(&engine).await;
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
