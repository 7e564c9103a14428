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
        super::health::init_series(&engine);
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
