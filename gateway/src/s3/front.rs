//! The HTTP layer in front of s3s: request ids, the checks s3s 0.14 lacks
//! (every SigV2 form refused, presigned expiry capped at 7 days, 5 GiB body
//! cap, POST Object and unknown POSTs refused before their body is read,
//! XML bodies capped and their memory reserved), the request body's stall
//! timeout, one structured log line and the metrics of every request.
//!
//! Query parameter names are decoded exactly as s3s decodes them
//! (`serde_urlencoded`), so `AWS%41ccessKeyId` is `AWSAccessKeyId` here too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::Body;
use s3s::service::S3Service;

use crate::audit::{AuditLog, S3Call, S3Mode};
use crate::budget::MemoryBudget;
use crate::engine::{ChecksumAlgorithm, EngineError, ExpectedChecksums, MAX_OBJECT_SIZE};
use crate::metrics::METRICS;
use crate::net::PeerAddr;
use crate::net::body::{BodyFailure, BodyOutcome, GuardedBody};
use crate::throttle::{Direction, Paced, Throttle, ThrottleSlot};

/// Seven days: the longest validity S3 allows a presigned URL.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// The largest XML request body a valid request needs: DeleteObjects with
/// 1,000 keys of 1,024 bytes, every byte written as a 6-byte entity
/// (`&quot;`), plus version ids and tags, is ~7.3 MB; a
/// CompleteMultipartUpload of 10,000 parts with every checksum is ~4 MB.
pub const MAX_XML_BODY: usize = 8 * 1024 * 1024;

/// What the front door needs besides s3s.
pub struct FrontConfig {
    /// Buffered request bodies reserve their memory here.
    pub budget: MemoryBudget,
    /// A request body that delivers nothing for this long fails.
    pub body_stall: Duration,
    /// Base domains of virtual-hosted-style requests.
    pub domains: Vec<String>,
}

#[derive(Clone)]
pub struct Front {
    s3: S3Service,
    cfg: Arc<FrontConfig>,
    audit: Option<AuditLog>,
    /// Where bucket CORS rules are read (preflights, actual responses).
    cors: Option<crate::engine::Engine>,
    /// Serves browser form uploads (POST Object); without it they are refused.
    post: Option<Arc<super::PostObject>>,
    /// While any limit is set, requests carry a [`ThrottleSlot`] and their
    /// bodies are paced.
    throttle: Option<Arc<Throttle>>,
}

impl Front {
    pub fn new(s3: S3Service, cfg: FrontConfig) -> Self {
        Self {
            s3,
            cfg: Arc::new(cfg),
            audit: None,
            cors: None,
            post: None,
            throttle: None,
        }
    }

    /// Paces request and response bodies by the `[limits]` bandwidth limits
    /// (request rates are checked by the access check, after the signature).
    pub fn with_throttle(mut self, throttle: Arc<Throttle>) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Serves POST Object (browser form uploads) instead of refusing them.
    pub fn with_post_object(mut self, post: super::PostObject) -> Self {
        self.post = Some(Arc::new(post));
        self
    }

    /// Answers CORS preflights and adds CORS headers from bucket rules.
    pub fn with_cors(mut self, engine: crate::engine::Engine) -> Self {
        self.cors = Some(engine);
        self
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

/// A request refused by the front door: status, S3 code, message.
type Refusal = (StatusCode, &'static str, String);

/// The request's target and decoded query, as s3s will see them.
pub(crate) struct Target {
    pub(crate) bucket: String,
    /// The key as it appears in the path (percent-encoded).
    pub(crate) raw_key: String,
    has_key: bool,
    /// Names and values percent-decoded like s3s does.
    query: Vec<(String, String)>,
}

impl Target {
    fn of<B>(req: &Request<B>, domains: &[String]) -> Result<Self, Refusal> {
        let query = match req.uri().query() {
            None => Vec::new(),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q).map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "InvalidURI",
                    "Couldn't parse the specified URI.".to_owned(),
                )
            })?,
        };
        let path = req.uri().path().trim_start_matches('/');
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let (bucket, raw_key) = match host.and_then(|h| super::virtual_bucket(h, domains)) {
            Some((_, bucket)) => (bucket, path.to_owned()),
            None => match path.split_once('/') {
                Some((b, k)) => (b.to_owned(), k.to_owned()),
                None => (path.to_owned(), String::new()),
            },
        };
        Ok(Self {
            bucket,
            has_key: !raw_key.is_empty(),
            raw_key,
            query,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_bucket(&self) -> bool {
        !self.bucket.is_empty()
    }
}

fn header_values<'a>(h: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn has_body(h: &HeaderMap) -> bool {
    declared_length(h).is_some_and(|n| n > 0) || h.contains_key(http::header::TRANSFER_ENCODING)
}

/// PutObject and UploadPart stream their bodies; every other PUT or POST
/// with a body is read whole by s3s (an XML document).
fn streams_body<B>(req: &Request<B>, t: &Target) -> bool {
    req.method() == Method::PUT
        && t.has_key
        && !req.headers().contains_key("x-amz-copy-source")
        && t.query.iter().all(|(k, _)| {
            matches!(k.as_str(), "partNumber" | "uploadId" | "x-id")
                || k.to_ascii_lowercase().starts_with("x-amz-")
        })
}

/// A browser form upload (POST Object): a multipart POST.
fn is_form_post<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST
        && header_values(req.headers(), "content-type")
            .any(|c| c.to_ascii_lowercase().contains("multipart/"))
}

/// Why a request is refused before it reaches s3s, if it is.
fn precheck<B>(req: &Request<B>, t: &Target) -> Option<Refusal> {
    // NUL has no place in a key or a parameter, and PostgreSQL text cannot
    // hold it: refuse it here rather than fail in the database. (It can only
    // arrive percent-encoded; a raw NUL is not valid in a request line.)
    let nul_in_path = req.uri().path().to_ascii_lowercase().contains("%00");
    let nul_in_query = t
        .query
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'));
    let nul_in_copy = header_values(req.headers(), "x-amz-copy-source")
        .any(|v| v.to_ascii_lowercase().contains("%00"));
    if nul_in_path || nul_in_query || nul_in_copy {
        return Some((
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Object keys and request parameters must not contain the NUL character".into(),
        ));
    }
    // SigV2 in every form s3s would accept: the Authorization header (any
    // of them), the query (s3s looks for `Signature`), a POST form (refused
    // below with every POST Object).
    let sigv2_header = header_values(req.headers(), "authorization").any(|a| a.starts_with("AWS "));
    if sigv2_header || t.has("Signature") || t.has("AWSAccessKeyId") {
        return Some((
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.".into(),
        ));
    }
    for v in t.values("X-Amz-Expires") {
        // s3s reads it as a u32.
        match v.parse::<u32>() {
            Ok(secs) if u64::from(secs) <= MAX_PRESIGNED_EXPIRY_SECS => {}
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
    // The service root answers ListBuckets only; s3s would say 501 to the rest.
    if !t.has_bucket() && req.method() != Method::GET {
        return Some((
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.".into(),
        ));
    }
    if req.method() == Method::POST {
        let form = header_values(req.headers(), "content-type")
            .any(|c| c.to_ascii_lowercase().contains("multipart/"));
        if form {
            return Some((
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "POST Object (HTML form uploads) is not supported; use PUT or a presigned PUT URL"
                    .into(),
            ));
        }
        let supported = (t.has_bucket() && !t.has_key && t.has("delete"))
            || (t.has_key && (t.has("uploads") || t.has("uploadId")));
        if !supported {
            return Some((
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.".into(),
            ));
        }
    }
    if req.method() == Method::PUT || req.method() == Method::POST {
        let h = req.headers();
        if streams_body(req, t) {
            let declared = h
                .get("x-amz-decoded-content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| declared_length(h));
            if declared.is_some_and(|len| len > MAX_OBJECT_SIZE) {
                return Some((
                    StatusCode::BAD_REQUEST,
                    "EntityTooLarge",
                    format!(
                        "Your proposed upload exceeds the maximum allowed size of {MAX_OBJECT_SIZE} bytes"
                    ),
                ));
            }
        } else if declared_length(h).is_some_and(|len| len > MAX_XML_BODY as u64) {
            return Some((
                StatusCode::BAD_REQUEST,
                "MaxMessageLengthExceeded",
                format!(
                    "Your request was too big: request bodies here are at most {MAX_XML_BODY} bytes"
                ),
            ));
        }
    }
    None
}

/// A stable operation name for logs and metrics, from method and query.
fn operation<B>(req: &Request<B>, t: &Target) -> &'static str {
    let (has_bucket, has_key) = (t.has_bucket(), t.has_key);
    let has = |name: &str| t.has(name);
    let copy = req.headers().contains_key("x-amz-copy-source");
    match (req.method().clone(), has_bucket, has_key) {
        (Method::GET, false, _) => "ListBuckets",
        (Method::GET, true, false) if has("location") => "GetBucketLocation",
        (Method::GET, true, false) if has("uploads") => "ListMultipartUploads",
        (Method::GET, true, false) if has("versions") => "ListObjectVersions",
        (Method::GET, true, false) if has("versioning") => "GetBucketVersioning",
        (Method::GET, true, false) if has("object-lock") => "GetObjectLockConfiguration",
        (Method::GET, true, true) if has("retention") => "GetObjectRetention",
        (Method::GET, true, true) if has("legal-hold") => "GetObjectLegalHold",
        (Method::PUT, true, false) if has("versioning") => "PutBucketVersioning",
        (Method::PUT, true, false) if has("object-lock") => "PutObjectLockConfiguration",
        (Method::PUT, true, true) if has("retention") => "PutObjectRetention",
        (Method::PUT, true, true) if has("legal-hold") => "PutObjectLegalHold",
        (Method::GET, true, false) if has("tagging") => "GetBucketTagging",
        (Method::PUT, true, false) if has("tagging") => "PutBucketTagging",
        (Method::DELETE, true, false) if has("tagging") => "DeleteBucketTagging",
        (Method::GET, true, true) if has("tagging") => "GetObjectTagging",
        (Method::PUT, true, true) if has("tagging") => "PutObjectTagging",
        (Method::DELETE, true, true) if has("tagging") => "DeleteObjectTagging",
        (Method::GET, true, false) if has("lifecycle") => "GetBucketLifecycleConfiguration",
        (Method::PUT, true, false) if has("lifecycle") => "PutBucketLifecycleConfiguration",
        (Method::DELETE, true, false) if has("lifecycle") => "DeleteBucketLifecycle",
        (Method::GET, true, false) if has("cors") => "GetBucketCors",
        (Method::PUT, true, false) if has("cors") => "PutBucketCors",
        (Method::DELETE, true, false) if has("cors") => "DeleteBucketCors",
        (Method::OPTIONS, true, _) => "PreflightRequest",
        (Method::GET, true, false) if has("encryption") => "GetBucketEncryption",
        (Method::PUT, true, false) if has("encryption") => "PutBucketEncryption",
        (Method::DELETE, true, false) if has("encryption") => "DeleteBucketEncryption",
        (Method::GET, true, false) if t.values("list-type").any(|v| v == "2") => "ListObjectsV2",
        (Method::GET, true, false) => "ListObjects",
        (Method::GET, true, true) if has("uploadId") => "ListParts",
        (Method::GET, true, true) if has("attributes") => "GetObjectAttributes",
        (Method::GET, true, true) => "GetObject",
        (Method::HEAD, true, false) => "HeadBucket",
        (Method::HEAD, true, true) => "HeadObject",
        (Method::PUT, true, false) => "CreateBucket",
        (Method::PUT, true, true) if has("partNumber") && copy => "UploadPartCopy",
        (Method::PUT, true, true) if has("partNumber") => "UploadPart",
        (Method::PUT, true, true) if copy => "CopyObject",
        (Method::PUT, true, true) => "PutObject",
        (Method::POST, true, false) if has("delete") => "DeleteObjects",
        (Method::POST, true, false) if is_form_post(req) => "PostObject",
        (Method::POST, true, true) if has("uploads") => "CreateMultipartUpload",
        (Method::POST, true, true) if has("uploadId") => "CompleteMultipartUpload",
        (Method::DELETE, true, false) => "DeleteBucket",
        (Method::DELETE, true, true) if has("uploadId") => "AbortMultipartUpload",
        (Method::DELETE, true, true) => "DeleteObject",
        _ => "Other",
    }
}

/// The access key named in a SigV4 header or presigned query (never a secret).
fn access_key<B>(req: &Request<B>, t: &Target) -> Option<String> {
    let first = |c: &str| c.split('/').next().map(str::to_owned);
    if let Some(a) = header_values(req.headers(), "authorization").next() {
        return a
            .split("Credential=")
            .nth(1)
            .and_then(|c| first(c.split([',', ' ']).next().unwrap_or(c)));
    }
    t.values("X-Amz-Credential").next().and_then(first)
}

fn content_length(r: &http::HeaderMap) -> u64 {
    declared_length(r).unwrap_or(0)
}

/// The Content-MD5 and x-amz-checksum-* headers of a request, if any.
fn claimed_digest(
    h: &HeaderMap,
    checksum_headers: bool,
) -> Result<Option<ExpectedChecksums>, EngineError> {
    let content_md5 = h
        .get("content-md5")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers: std::collections::BTreeMap<_, _> = ChecksumAlgorithm::ALL
        .into_iter()
        .filter(|_| checksum_headers)
        .filter_map(|a| {
            h.get(a.header())
                .and_then(|v| v.to_str().ok())
                .map(|v| (a, v.to_owned()))
        })
        .collect();
    if content_md5.is_none() && headers.is_empty() {
        return Ok(None);
    }
    let e = ExpectedChecksums {
        content_md5,
        headers,
        ..Default::default()
    };
    e.validate()?;
    Ok(Some(e))
}

/// Replaces an error s3s or the engine gave for a body that failed in the
/// front door's hands with what actually happened.
fn body_failure_response(f: BodyFailure, id: &str) -> Response<Body> {
    match f {
        BodyFailure::Stalled => error_response(
            StatusCode::BAD_REQUEST,
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the timeout period.",
            id,
        ),
        BodyFailure::Aborted => error_response(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "The request body ended before the request was complete.",
            id,
        ),
        BodyFailure::NoMemory => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
            id,
        ),
        BodyFailure::BadDigest => error_response(
            StatusCode::BAD_REQUEST,
            "BadDigest",
            "The Content-MD5 or checksum you specified did not match what we received.",
            id,
        ),
    }
}

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let s3 = self.s3.clone();
        let cfg = self.cfg.clone();
        let audit = self.audit.clone().filter(|a| a.s3_mode() != S3Mode::Off);
        let cors = self.cors.clone();
        let post = self.post.clone();
        let slot = self
            .throttle
            .as_ref()
            .filter(|t| t.is_active())
            .map(|_| ThrottleSlot::default());
        if let Some(slot) = &slot {
            req.extensions_mut().insert(slot.clone());
        }
        Box::pin(async move {
            let started = Instant::now();
            let id = request_id();
            let method = req.method().clone();
            let origin = header_values(req.headers(), "origin")
                .next()
                .map(str::to_owned);
            let bytes_in = content_length(req.headers());
            let body_sent = has_body(req.headers());
            let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
            let mut audited = None;
            METRICS.s3_in_flight.inc();
            let (op, bucket, who, mut res) = match Target::of(&req, &cfg.domains) {
                Err((status, code, msg)) => (
                    "Other",
                    String::new(),
                    None,
                    error_response(status, code, &msg, &id),
                ),
                Ok(t) => {
                    let op = operation(&req, &t);
                    let who = access_key(&req, &t);
                    if audit.is_some() {
                        audited = S3Call::begin(&mut req, op, who.clone(), bytes_in, peer, &t);
                    }
                    let form = post.as_ref().filter(|_| is_form_post(&req));
                    let res = match (&cors, form, precheck(&req, &t)) {
                        // A preflight carries no signature and is answered
                        // from the bucket's CORS rules alone.
                        (Some(engine), _, _) if method == Method::OPTIONS => {
                            super::cors::preflight(engine, &t.bucket, req.headers(), &id).await
                        }
                        // POST Object: precheck refuses forms only for
                        // want of this handler.
                        (_, Some(p), None | Some((StatusCode::NOT_IMPLEMENTED, _, _))) => {
                            p.serve(req, &t, &cfg, &id).await
                        }
                        (_, _, Some((status, code, msg))) => {
                            error_response(status, code, &msg, &id)
                        }
                        (_, _, None) if op == "GetObjectAttributes" => {
                            let res = serve(&s3, &cfg, req, &t, &id, slot.as_ref()).await;
                            super::attributes::unquote_etag(res).await
                        }
                        (_, _, None) => serve(&s3, &cfg, req, &t, &id, slot.as_ref()).await,
                    };
                    (op, t.bucket, who, res)
                }
            };
            METRICS.s3_in_flight.dec();
            if let (Some(engine), Some(origin)) = (&cors, &origin)
                && method != Method::OPTIONS
            {
                super::cors::decorate(engine, &bucket, origin, &method, &mut res).await;
            }
            // An error may be answered before the request body was read;
            // hyper then cannot reuse the connection, so say so rather than
            // let the client's next request on it fail.
            if body_sent && (res.status().is_client_error() || res.status().is_server_error()) {
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
                throttle = %slot.as_ref().map_or_else(|| "-".to_owned(), ThrottleSlot::outcome),
                "request"
            );
            Ok(res)
        })
    }
}

/// Hands a request that passed the checks to s3s, its body guarded and,
/// when s3s will buffer it whole, its memory reserved first.
async fn serve(
    s3: &S3Service,
    cfg: &FrontConfig,
    req: Request<Incoming>,
    t: &Target,
    id: &str,
    slot: Option<&ThrottleSlot>,
) -> Response<Body> {
    let buffered = (req.method() == Method::PUT || req.method() == Method::POST)
        && has_body(req.headers())
        && !streams_body(&req, t);
    let _memory = if buffered {
        let len =
            declared_length(req.headers()).map_or(MAX_XML_BODY, |n| (n as usize).min(MAX_XML_BODY));
        match cfg.budget.reserve(len).await {
            Ok(r) => Some(r),
            Err(_) => return body_failure_response(BodyFailure::NoMemory, id),
        }
    } else {
        None
    };
    let aws_chunked =
        header_values(req.headers(), "x-amz-content-sha256").any(|v| v.starts_with("STREAMING-"));
    // s3s checks no digest; an XML body's is checked as it streams by.
    // CompleteMultipartUpload's x-amz-checksum-* headers are the object's
    // checksum, not its XML body's; only Content-MD5 covers that body.
    let completes_upload = req.method() == Method::POST && t.has("uploadId");
    let digest = if buffered && !aws_chunked {
        match claimed_digest(req.headers(), !completes_upload) {
            Ok(d) => d,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "InvalidDigest",
                    &e.to_string(),
                    id,
                );
            }
        }
    } else {
        None
    };
    let outcome = Arc::new(BodyOutcome::default());
    let guarded = {
        let outcome = outcome.clone();
        let budget = aws_chunked.then(|| cfg.budget.clone());
        let stall = cfg.body_stall;
        let slot = slot.cloned();
        req.map(move |b| {
            let guarded = GuardedBody::new(b, stall, outcome, budget, digest);
            match slot {
                Some(slot) => Body::http_body_unsync(Paced::new(guarded, slot, Direction::Ingress)),
                None => Body::http_body_unsync(guarded),
            }
        })
    };
    let res = match s3.call(guarded).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id = %id, error = ?e, "s3 service failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
                id,
            )
        }
    };
    match outcome.failure() {
        Some(f) if !res.status().is_success() => body_failure_response(f, id),
        _ => match slot.filter(|s| s.pacer().is_some_and(|p| p.paces(Direction::Egress))) {
            Some(slot) => {
                let slot = slot.clone();
                res.map(move |b| Body::http_body_unsync(Paced::new(b, slot, Direction::Egress)))
            }
            None => res,
        },
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

    fn check(r: &Request<()>) -> Option<&'static str> {
        let t = Target::of(r, &["dooz.test".to_owned()]).unwrap();
        precheck(r, &t).map(|(_, code, _)| code)
    }

    #[test]
    fn sigv2_and_long_presigns_are_refused_however_encoded() {
        let v2 = req(Method::GET, "/b/k", &[("authorization", "AWS AKID:sig")]);
        assert_eq!(check(&v2), Some("InvalidRequest"));
        for q in [
            "AWSAccessKeyId=A&Signature=x&Expires=1",
            "AWS%41ccessKeyId=A&Expires=1",
            "%53ignature=x",
            "Sig%6Eature=x&AWSAccessKeyId=A",
        ] {
            let r = req(Method::GET, &format!("/b/k?{q}"), &[]);
            assert_eq!(check(&r), Some("InvalidRequest"), "{q}");
        }
        // A second Authorization header carrying SigV2.
        let mut two = req(
            Method::GET,
            "/b/k",
            &[("authorization", "AWS4-HMAC-SHA256 Credential=A/x")],
        );
        two.headers_mut()
            .append("authorization", HeaderValue::from_static("AWS A:sig"));
        assert_eq!(check(&two), Some("InvalidRequest"));
        for q in [
            "X-Amz-Expires=604801",
            "X-Amz-%45xpires=604801",
            "X%2DAmz%2DExpires=999999",
            "X-Amz-Expires=60&X-Amz-Expires=604801",
            "X-Amz-Expires=4294967296",
        ] {
            let r = req(Method::GET, &format!("/b/k?{q}&X-Amz-Credential=A"), &[]);
            assert_eq!(check(&r), Some("AuthorizationQueryParametersError"), "{q}");
        }
        let week = req(Method::GET, "/b/k?X-Amz-Expires=604800", &[]);
        assert_eq!(check(&week), None);
    }

    #[test]
    fn size_caps_by_operation() {
        let big = req(Method::PUT, "/b/k", &[("content-length", "5368709121")]);
        assert_eq!(check(&big), Some("EntityTooLarge"));
        let ok = req(Method::PUT, "/b/k", &[("content-length", "5368709120")]);
        assert_eq!(check(&ok), None);
        let chunked = req(
            Method::PUT,
            "/b/k?partNumber=1&uploadId=u",
            &[
                ("content-length", "100"),
                ("x-amz-decoded-content-length", "5368709121"),
            ],
        );
        assert_eq!(check(&chunked), Some("EntityTooLarge"));
        let xml = req(
            Method::POST,
            "/b?delete",
            &[("content-length", &(MAX_XML_BODY + 1).to_string())],
        );
        assert_eq!(check(&xml), Some("MaxMessageLengthExceeded"));
        let tagging = req(
            Method::PUT,
            "/b/k?tagging",
            &[("content-length", &(MAX_XML_BODY + 1).to_string())],
        );
        assert_eq!(check(&tagging), Some("MaxMessageLengthExceeded"));
    }

    #[test]
    fn posts_other_than_s3_operations_are_refused() {
        let form = req(
            Method::POST,
            "/b",
            &[("content-type", "multipart/form-data; boundary=x")],
        );
        assert_eq!(check(&form), Some("NotImplemented"));
        let form_on_delete = req(
            Method::POST,
            "/b?delete",
            &[("content-type", "Multipart/Form-Data; boundary=x")],
        );
        assert_eq!(check(&form_on_delete), Some("NotImplemented"));
        for uri in ["/", "/b", "/b/k", "/b/k?select&select-type=2", "/b?uploads"] {
            let r = req(Method::POST, uri, &[]);
            assert_eq!(check(&r), Some("MethodNotAllowed"), "{uri}");
        }
        for uri in [
            "/b?delete",
            "/b/k?uploads",
            "/b/k?uploadId=x",
            "/b?%64elete",
        ] {
            let r = req(Method::POST, uri, &[]);
            assert_eq!(check(&r), None, "{uri}");
        }
        let nul = req(Method::GET, "/b/a%00b", &[]);
        assert_eq!(check(&nul), Some("InvalidArgument"));
        let nul_q = req(Method::GET, "/b?prefix=%00", &[]);
        assert_eq!(check(&nul_q), Some("InvalidArgument"));
        let nul_copy = req(Method::PUT, "/b/k", &[("x-amz-copy-source", "/b/x%00")]);
        assert_eq!(check(&nul_copy), Some("InvalidArgument"));
        // Virtual-hosted style: the bucket is in the Host header.
        let vh = req(Method::POST, "/?delete", &[("host", "bkt.dooz.test:9000")]);
        assert_eq!(check(&vh), None);
        let vh_obj = req(Method::POST, "/k?uploads", &[("host", "bkt.dooz.test")]);
        assert_eq!(check(&vh_obj), None);
    }

    #[test]
    fn operations_are_named() {
        let name = |r: &Request<()>| operation(r, &Target::of(r, &[]).unwrap());
        assert_eq!(name(&req(Method::GET, "/", &[])), "ListBuckets");
        assert_eq!(
            name(&req(Method::GET, "/b?list-type=2&prefix=x", &[])),
            "ListObjectsV2"
        );
        assert_eq!(
            name(&req(Method::PUT, "/b/k?partNumber=1&uploadId=u", &[])),
            "UploadPart"
        );
        assert_eq!(name(&req(Method::POST, "/b?delete", &[])), "DeleteObjects");
        assert_eq!(
            name(&req(Method::PUT, "/b/k", &[("x-amz-copy-source", "/a/b")])),
            "CopyObject"
        );
        assert_eq!(
            name(&req(Method::PUT, "/b?versioning", &[])),
            "PutBucketVersioning"
        );
        assert_eq!(
            name(&req(Method::GET, "/b/k?retention&versionId=v", &[])),
            "GetObjectRetention"
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
        let t = Target::of(&r, &[]).unwrap();
        assert_eq!(access_key(&r, &t).as_deref(), Some("DZKEY"));
        let p = req(
            Method::GET,
            "/b/k?X-Amz-Credential=DZP%2F2026%2Fus-east-1",
            &[],
        );
        let t = Target::of(&p, &[]).unwrap();
        assert_eq!(access_key(&p, &t).as_deref(), Some("DZP"));
    }
}
