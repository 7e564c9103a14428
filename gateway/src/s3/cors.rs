//! CORS over HTTP: Put/Get/DeleteBucketCors, the OPTIONS preflight (no
//! signature: browsers send none) and the Access-Control-* headers added to
//! actual responses, errors and presigned requests included.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use s3s::dto::*;
use s3s::{Body, S3Request, S3Response, S3Result};

use super::DoozS3;
use super::errors::IntoS3;
use crate::engine::{BucketCors, CorsAnswer, Engine};

fn rule_from(r: CORSRule) -> crate::engine::CorsRule {
    crate::engine::CorsRule {
        id: r.id,
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: r.allowed_headers.unwrap_or_default(),
        expose_headers: r.expose_headers.unwrap_or_default(),
        max_age_seconds: r.max_age_seconds,
    }
}

fn rule_to(r: &crate::engine::CorsRule) -> CORSRule {
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    CORSRule {
        id: r.id.clone(),
        allowed_origins: r.allowed_origins.clone(),
        allowed_methods: r.allowed_methods.clone(),
        allowed_headers: list(&r.allowed_headers),
        expose_headers: list(&r.expose_headers),
        max_age_seconds: r.max_age_seconds,
    }
}

pub async fn put_bucket_cors(
    s: &DoozS3,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let rules = i
        .cors_configuration
        .cors_rules
        .into_iter()
        .map(rule_from)
        .collect();
    s.engine
        .set_bucket_cors(&who, &i.bucket, Some(BucketCors { rules }))
        .await
        .s3()?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub async fn get_bucket_cors(
    s: &DoozS3,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let who = s.principal(&req).await?;
    let config = s
        .engine
        .get_bucket_cors(&who, &req.input.bucket)
        .await
        .s3()?;
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(config.rules.iter().map(rule_to).collect()),
    }))
}

pub async fn delete_bucket_cors(
    s: &DoozS3,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let who = s.principal(&req).await?;
    s.engine
        .set_bucket_cors(&who, &req.input.bucket, None)
        .await
        .s3()?;
    let mut resp = S3Response::new(DeleteBucketCorsOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Sets the headers of an allowed CORS request on a response.
fn apply(res: &mut Response<Body>, a: &CorsAnswer) {
    let h = res.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("access-control-allow-origin", &a.allow_origin);
    set("access-control-allow-methods", &a.allow_methods);
    if let Some(v) = &a.allow_headers {
        set("access-control-allow-headers", v);
    }
    if let Some(v) = &a.expose_headers {
        set("access-control-expose-headers", v);
    }
    if let Some(n) = a.max_age {
        set("access-control-max-age", &n.to_string());
    }
    if a.allow_credentials() {
        set("access-control-allow-credentials", "true");
    }
    h.append(
        http::header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
}

/// A bucket's rules for a browser request; a bucket that does not exist or
/// whose rules cannot be read has none (logged, never fatal to the request).
async fn rules(engine: &Engine, bucket: &str) -> Option<BucketCors> {
    match engine.cors_of(bucket).await {
        Ok(c) => c,
        Err(crate::engine::EngineError::NoSuchBucket(_)) => None,
        Err(e) => {
            tracing::warn!(bucket, error = %e, "reading the bucket's CORS rules failed");
            None
        }
    }
}

/// Answers an OPTIONS preflight as S3 does: 400 without Origin or
/// Access-Control-Request-Method, 403 CORSResponse when no rule allows it,
/// 200 with the rule's headers when one does.
pub async fn preflight(
    engine: &Engine,
    bucket: &str,
    headers: &HeaderMap,
    id: &str,
) -> Response<Body> {
    use super::front::error_response;
    let Some(origin) = header(headers, "origin") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
            id,
        );
    };
    let Some(method) = header(headers, "access-control-request-method") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method: null",
            id,
        );
    };
    if Method::from_bytes(method.as_bytes()).is_err() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Invalid Access-Control-Request-Method: {method}"),
            id,
        );
    }
    let requested: Vec<String> = headers
        .get_all("access-control-request-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .collect();
    let cors = if bucket.is_empty() {
        None
    } else {
        rules(engine, bucket).await
    };
    let Some(cors) = cors else {
        return error_response(
            StatusCode::FORBIDDEN,
            "CORSResponse",
            "CORS is not enabled for this bucket.",
            id,
        );
    };
    match cors.preflight(origin, method, &requested) {
        Some(a) => {
            let mut res = Response::new(Body::empty());
            apply(&mut res, &a);
            res
        }
        None => error_response(
            StatusCode::FORBIDDEN,
            "CORSResponse",
            "This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            id,
        ),
    }
}

/// Adds the CORS headers to the response of an actual request that carried
/// an Origin, when a rule of its bucket allows it (errors included: a
/// browser shows the script nothing without them).
pub async fn decorate(
    engine: &Engine,
    bucket: &str,
    origin: &str,
    method: &Method,
    res: &mut Response<Body>,
) {
    if bucket.is_empty() {
        return;
    }
    let Some(cors) = rules(engine, bucket).await else {
        return;
    };
    if let Some(a) = cors.actual(origin, method.as_str()) {
        apply(res, &a);
    }
}
