//! The HTTP layer in front of s3s: request ids, the checks s3s 0.14 lacks
//! (SigV2 refused, presigned expiry capped at 7 days, 5 GiB body cap), one
//! structured log line and the metrics of every request.

use std::convert::Infallible;
use std::time::Instant;

use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::Body;
use s3s::service::S3Service;

use crate::audit::{AuditLog, S3Call, S3Mode};
use crate::engine::MAX_OBJECT_SIZE;
use crate::metrics::METRICS;
use crate::server::PeerAddr;

/// Seven days: the longest validity S3 allows a presigned URL.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

#[derive(Clone)]
pub struct Front {
    s3: S3Service,
    audit: Option<AuditLog>,
}

impl Front {
    pub fn new(s3: S3Service) -> Self {
        Self { s3, audit: None }
    }

    /// Records every request that can change something in the audit log.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }
}

pub fn request_id() -> String {
    hex::encode_upper(rand::random::<[u8; 8]>())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An S3 error document for requests refused before s3s sees them.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>{request_id}</RequestId></Error>",
        xml_escape(message)
    );
    let mut res = Response::new(Body::from(xml));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    res
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Why a request is refused before it reaches s3s, if it is.
fn precheck<B>(req: &Request<B>) -> Option<(StatusCode, &'static str, String)> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let query = req.uri().query().unwrap_or("");
    let sigv2_query = query_pairs(query).any(|(k, _)| k == "AWSAccessKeyId");
    if auth.starts_with("AWS ") || sigv2_query {
        return Some((
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.".into(),
        ));
    }
    if let Some((_, v)) = query_pairs(query).find(|(k, _)| *k == "X-Amz-Expires") {
        match v.parse::<u64>() {
            Ok(secs) if secs <= MAX_PRESIGNED_EXPIRY_SECS => {}
            Ok(_) => {
                return Some((
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800".into(),
                ));
            }
            Err(_) => {
                return Some((
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires should be a number".into(),
                ));
            }
        }
    }
    if req.method() == Method::PUT {
        let declared = req
            .headers()
            .get("x-amz-decoded-content-length")
            .or_else(|| req.headers().get("content-length"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_OBJECT_SIZE) {
            return Some((
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                format!(
                    "Your proposed upload exceeds the maximum allowed size of {MAX_OBJECT_SIZE} bytes"
                ),
            ));
        }
    }
    None
}

/// A stable operation name for logs and metrics, from method and query.
pub fn operation<B>(req: &Request<B>) -> &'static str {
    let path = req.uri().path().trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, k)| !k.is_empty());
    let has_bucket = !path.is_empty();
    let q = req.uri().query().unwrap_or("");
    let has = |name: &str| query_pairs(q).any(|(k, _)| k == name);
    let copy = req.headers().contains_key("x-amz-copy-source");
    match (req.method().clone(), has_bucket, has_key) {
        (Method::GET, false, _) => "ListBuckets",
        (Method::GET, true, false) if has("location") => "GetBucketLocation",
        (Method::GET, true, false) if has("uploads") => "ListMultipartUploads",
        (Method::GET, true, false) if has("versions") => "ListObjectVersions",
        (Method::GET, true, false) if q.contains("list-type=2") => "ListObjectsV2",
        (Method::GET, true, false) => "ListObjects",
        (Method::GET, true, true) if has("uploadId") => "ListParts",
        (Method::GET, true, true) => "GetObject",
        (Method::HEAD, true, false) => "HeadBucket",
        (Method::HEAD, true, true) => "HeadObject",
        (Method::PUT, true, false) => "CreateBucket",
        (Method::PUT, true, true) if has("partNumber") && copy => "UploadPartCopy",
        (Method::PUT, true, true) if has("partNumber") => "UploadPart",
        (Method::PUT, true, true) if copy => "CopyObject",
        (Method::PUT, true, true) => "PutObject",
        (Method::POST, true, false) if has("delete") => "DeleteObjects",
        (Method::POST, true, true) if has("uploads") => "CreateMultipartUpload",
        (Method::POST, true, true) if has("uploadId") => "CompleteMultipartUpload",
        (Method::DELETE, true, false) => "DeleteBucket",
        (Method::DELETE, true, true) if has("uploadId") => "AbortMultipartUpload",
        (Method::DELETE, true, true) => "DeleteObject",
        _ => "Other",
    }
}

/// The access key named in a SigV4 header or presigned query (never a secret).
fn access_key<B>(req: &Request<B>) -> Option<String> {
    let from = |s: &str| {
        s.split("Credential=")
            .nth(1)
            .and_then(|c| c.split(['/', '%']).next())
            .map(str::to_owned)
    };
    if let Some(a) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        return from(a);
    }
    query_pairs(req.uri().query().unwrap_or(""))
        .find(|(k, _)| *k == "X-Amz-Credential")
        .and_then(|(_, v)| v.split(['/', '%']).next().map(str::to_owned))
}

fn content_length(r: &http::HeaderMap) -> u64 {
    r.get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let s3 = self.s3.clone();
        let audit = self.audit.clone().filter(|a| a.s3_mode() != S3Mode::Off);
        Box::pin(async move {
            let started = Instant::now();
            let id = request_id();
            let op = operation(&req);
            let method = req.method().clone();
            let bucket = req
                .uri()
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("")
                .to_owned();
            let who = access_key(&req);
            let bytes_in = content_length(req.headers());
            let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
            let audited = audit
                .as_ref()
                .and_then(|_| S3Call::begin(&mut req, op, who.clone(), bytes_in, peer));
            METRICS.s3_in_flight.inc();
            let mut res = match precheck(&req) {
                Some((status, code, msg)) => error_response(status, code, &msg, &id),
                None => match s3.call(req.map(Body::from)).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(request_id = %id, error = ?e, "s3 service failed");
                        error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            "We encountered an internal error. Please try again.",
                            &id,
                        )
                    }
                },
            };
            METRICS.s3_in_flight.dec();
            // An error may be answered before the request body was read;
            // hyper then cannot reuse the connection, so say so rather than
            // let the client's next request on it fail.
            if bytes_in > 0 && (res.status().is_client_error() || res.status().is_server_error()) {
                res.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut().insert("x-amz-request-id", v.clone());
                res.headers_mut().insert("x-amz-id-2", v);
            }
            // Answered only once the record is committed (audit.s3 = "sync").
            if let (Some(log), Some(call)) = (&audit, audited) {
                log.record(call.finish(&res, &id)).await;
            }
            let status = res.status().as_u16();
            let bytes_out = content_length(res.headers());
            let secs = started.elapsed().as_secs_f64();
            METRICS
                .s3_requests
                .with_label_values(&[op, &status.to_string()])
                .inc();
            METRICS.s3_duration.with_label_values(&[op]).observe(secs);
            METRICS.s3_received_bytes.inc_by(bytes_in);
            tracing::info!(
                target: "dooz::access",
                request_id = %id,
                method = %method,
                operation = op,
                bucket = %bucket,
                access_key = who.as_deref().unwrap_or("-"),
                peer = %peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                status,
                bytes_in,
                bytes_out,
                latency_ms = (secs * 1000.0).round() as u64,
                "request"
            );
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn sigv2_and_long_presigns_are_refused() {
        let v2 = req(Method::GET, "/b/k", &[("authorization", "AWS AKID:sig")]);
        assert_eq!(precheck(&v2).unwrap().1, "InvalidRequest");
        let v2q = req(
            Method::GET,
            "/b/k?AWSAccessKeyId=A&Signature=x&Expires=1",
            &[],
        );
        assert_eq!(precheck(&v2q).unwrap().1, "InvalidRequest");
        let long = req(
            Method::GET,
            "/b/k?X-Amz-Expires=604801&X-Amz-Credential=A",
            &[],
        );
        assert_eq!(
            precheck(&long).unwrap().1,
            "AuthorizationQueryParametersError"
        );
        let week = req(Method::GET, "/b/k?X-Amz-Expires=604800", &[]);
        assert!(precheck(&week).is_none());
        let big = req(Method::PUT, "/b/k", &[("content-length", "5368709121")]);
        assert_eq!(precheck(&big).unwrap().1, "EntityTooLarge");
        let ok = req(Method::PUT, "/b/k", &[("content-length", "5368709120")]);
        assert!(precheck(&ok).is_none());
    }

    #[test]
    fn operations_are_named() {
        assert_eq!(operation(&req(Method::GET, "/", &[])), "ListBuckets");
        assert_eq!(
            operation(&req(Method::GET, "/b?list-type=2&prefix=x", &[])),
            "ListObjectsV2"
        );
        assert_eq!(
            operation(&req(Method::PUT, "/b/k?partNumber=1&uploadId=u", &[])),
            "UploadPart"
        );
        assert_eq!(
            operation(&req(Method::POST, "/b?delete", &[])),
            "DeleteObjects"
        );
        assert_eq!(
            operation(&req(Method::PUT, "/b/k", &[("x-amz-copy-source", "/a/b")])),
            "CopyObject"
        );
    }

    #[test]
    fn access_key_is_read_but_nothing_else() {
        let r = req(
            Method::GET,
            "/b",
            &[(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=DZKEY/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc",
            )],
        );
        assert_eq!(access_key(&r).as_deref(), Some("DZKEY"));
        let p = req(
            Method::GET,
            "/b/k?X-Amz-Credential=DZP%2F2026%2Fus-east-1",
            &[],
        );
        assert_eq!(access_key(&p).as_deref(), Some("DZP"));
    }
}
