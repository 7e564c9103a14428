//! POST Object: browser form uploads signed with a SigV4 POST policy,
//! served by the front door instead of s3s (which buffers the whole file
//! part). The fields before the file are read with a bounded buffer; the
//! signature, the policy's expiration and every condition are checked
//! before a byte of the file is read; the file part then streams through
//! the engine's PutObject path (its memory budget and size caps), with the
//! policy's content-length-range enforced as it flows. Anonymous forms are
//! refused before the file is read.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::Body;
use s3s::dto::ServerSideEncryption;
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use sha2::{Digest, Sha256};

use super::front::{FrontConfig, Target, error_response};
use super::post_form::{FormError, MAX_FIELDS_BYTES, boundary, read_form};
use crate::engine::{Engine, ExpectedChecksums, MAX_OBJECT_SIZE, Principal, PutRequest};
use crate::meta::{ObjectAttrs, WriteConditions};
use crate::net::body::{BodyFailure, BodyOutcome, GuardedBody};
use crate::tenancy::{Credential, CredentialCache};
use crate::throttle::{Direction, Paced, Throttle, ThrottleSlot};

/// What POST Object needs besides the request.
pub struct PostObject {
    pub engine: Engine,
    pub credentials: Arc<CredentialCache>,
    /// The S3 access check's bucket cache: a form's upload is decided by
    /// the same policies as a PutObject (`access::decide`).
    pub buckets: Arc<super::access::BucketAccessCache>,
    /// The listener serves TLS (aws:SecureTransport).
    pub secure: bool,
    /// Request and bandwidth limits, as for every other request.
    pub throttle: Arc<Throttle>,
}

/// A refusal: status, S3 code, message, and Retry-After seconds for a
/// throttled one.
struct Refusal(StatusCode, String, String, Option<u64>);

impl Refusal {
    fn new(status: StatusCode, code: &str, msg: impl Into<String>) -> Self {
        Self(status, code.to_owned(), msg.into(), None)
    }

    fn slow_down(retry_after: u64) -> Self {
        let mut r = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        );
        r.3 = Some(retry_after);
        r
    }

    fn from_s3(e: &s3s::S3Error) -> Self {
        Self::new(
            e.status_code().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.code().as_str(),
            e.message().unwrap_or_default(),
        )
    }

    fn from_body(f: BodyFailure) -> Self {
        match f {
            BodyFailure::Stalled => Self::new(
                StatusCode::BAD_REQUEST,
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within the timeout period.",
            ),
            BodyFailure::Aborted => Self::new(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body ended before the request was complete.",
            ),
            BodyFailure::NoMemory => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ),
            BodyFailure::BadDigest => Self::new(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                "The Content-MD5 or checksum you specified did not match what we received.",
            ),
        }
    }

    fn policy(msg: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("Invalid according to Policy: {}", msg.into()),
        )
    }

    fn from_form(e: FormError) -> Self {
        match e {
            FormError::FieldsTooLarge => Self::new(
                StatusCode::BAD_REQUEST,
                "MaxPostPreDataLengthExceeded",
                e.to_string(),
            ),
            FormError::Body(_) => {
                Self::new(StatusCode::BAD_REQUEST, "IncompleteBody", e.to_string())
            }
            FormError::NoFile => {
                Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", e.to_string())
            }
            FormError::Malformed => Self::new(
                StatusCode::BAD_REQUEST,
                "MalformedPOSTRequest",
                e.to_string(),
            ),
        }
    }

    fn response(self, id: &str) -> Response<Body> {
        let mut res = error_response(self.0, &self.1, &self.2, id);
        if let Some(secs) = self.3 {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// SigV4 of a POST policy: the base64 policy signed with the scope's key.
fn policy_signature(secret: &str, date: &str, region: &str, policy_b64: &str) -> String {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, b"s3");
    let k = hmac_sha256(&k, b"aws4_request");
    hex::encode(hmac_sha256(&k, policy_b64.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fields the policy need not name (S3's list).
fn exempt(name: &str) -> bool {
    matches!(name, "policy" | "x-amz-signature" | "file") || name.starts_with("x-ignore-")
}

/// The policy's conditions against the form: every condition holds and
/// every field is named by one. Returns the content-length range.
fn check_conditions(
    policy: &PostPolicy,
    fields: &[(String, String)],
    bucket: &str,
) -> Result<(u64, u64), Refusal> {
    let value = |name: &str| -> Option<&str> {
        if name == "bucket" {
            return Some(bucket);
        }
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut named = std::collections::BTreeSet::new();
    let mut range = (0, u64::MAX);
    for c in &policy.conditions {
        match c {
            PostPolicyCondition::Eq { field, value: want } => {
                named.insert(field.to_ascii_lowercase());
                if value(field) != Some(want.as_str()) {
                    return Err(Refusal::policy(format!(
                        "Policy Condition failed: [\"eq\", \"${field}\", \"{want}\"]"
                    )));
                }
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                named.insert(field.to_ascii_lowercase());
                // Content-Type may list several values.
                let ok = value(field).is_some_and(|v| {
                    if field.eq_ignore_ascii_case("content-type") {
                        v.split(',').all(|p| p.trim().starts_with(prefix.as_str()))
                    } else {
                        v.starts_with(prefix.as_str())
                    }
                });
                if !ok {
                    return Err(Refusal::policy(format!(
                        "Policy Condition failed: [\"starts-with\", \"${field}\", \"{prefix}\"]"
                    )));
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => range = (*min, *max),
        }
    }
    let extra: Vec<&str> = fields
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            let k = k.to_ascii_lowercase();
            !exempt(&k) && !named.contains(&k)
        })
        .collect();
    if !extra.is_empty() {
        return Err(Refusal::policy(format!(
            "Extra input fields: {}",
            extra.join(", ")
        )));
    }
    Ok(range)
}

/// The caller and the checks of the form's signature and policy.
async fn authenticate(
    p: &PostObject,
    fields: &[(String, String)],
    bucket: &str,
) -> Result<(Credential, (u64, u64)), Refusal> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if field("awsaccesskeyid").is_some() || field("signature").is_some() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    let (Some(policy_b64), Some(signature)) = (field("policy"), field("x-amz-signature")) else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Anonymous POST uploads are not allowed: sign the form's policy with SigV4",
        ));
    };
    if field("x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    let credential = field("x-amz-credential").unwrap_or_default();
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, "s3", "aws4_request"] = scope[..] else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            format!("Invalid credential scope: {credential}"),
        ));
    };
    if !field("x-amz-date").is_some_and(|d| d.starts_with(date)) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "x-amz-date must be given and fall on the credential's date",
        ));
    }
    let cred = match p.credentials.lookup(access_key).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            ));
        }
        Err(e) => return Err(Refusal::from_s3(&super::to_s3(e))),
    };
    let expected = policy_signature(cred.secret.as_str(), date, region, policy_b64);
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ));
    }
    let policy = PostPolicy::from_base64(policy_b64).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidPolicyDocument",
            format!("Invalid Policy: {e}"),
        )
    })?;
    let expires: time::OffsetDateTime = policy.expiration.clone().into();
    if time::OffsetDateTime::now_utc() >= expires {
        return Err(Refusal::policy("Policy expired."));
    }
    let range = check_conditions(&policy, fields, bucket)?;
    Ok((cred, range))
}

/// The user's and the bucket's policies decide s3:PutObject on the key, as
/// for a PutObject; the principal handed to the engine carries the grant.
async fn authorize(
    p: &PostObject,
    cred: &Credential,
    bucket: &str,
    key: &str,
    fields: &[(String, String)],
    peer: Option<std::net::SocketAddr>,
    slot: Option<&ThrottleSlot>,
) -> Result<Principal, Refusal> {
    let denied = || Refusal::new(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied");
    let info = p
        .buckets
        .get(bucket)
        .await
        .map_err(|e| Refusal::from_s3(&e))?;
    if let Some(b) = &info
        && b.tenant_id != cred.principal.tenant_id
    {
        // Sharing across tenants is not served yet (as in the access check).
        return Err(denied());
    }
    // Charged like any request, before a byte of the file is read.
    if p.throttle.is_active() {
        let who = super::access::throttle_subject(Some(cred), info.as_deref(), Some(bucket));
        p.throttle
            .admit(&who, slot)
            .map_err(|r| Refusal::slow_down(r.retry_after_secs()))?;
    }
    let context = super::access::form_context(cred, fields, peer, p.secure);
    let resource = crate::policy::resource_arn(bucket, Some(key));
    let d = super::access::decide(
        Some(cred),
        info.as_deref(),
        "s3:PutObject",
        &resource,
        &context,
    );
    if !d.allowed() {
        tracing::debug!(access_key = %cred.principal.access_key, %resource, %d, "POST Object denied");
        return Err(denied());
    }
    Ok(Principal {
        grant: Some(crate::engine::Grant {
            bypass_governance: false,
        }),
        ..cred.principal.clone()
    })
}

/// The object's attributes from the form's fields.
fn attrs_from(fields: &[(String, String)]) -> Result<ObjectAttrs, Refusal> {
    let mut a = ObjectAttrs::default();
    for (k, v) in fields {
        let k = k.to_ascii_lowercase();
        match k.as_str() {
            "content-type" => a.content_type = Some(v.clone()),
            "cache-control" => a.cache_control = Some(v.clone()),
            "content-disposition" => a.content_disposition = Some(v.clone()),
            "content-encoding" => a.content_encoding = Some(v.clone()),
            "content-language" => a.content_language = Some(v.clone()),
            "expires" => {
                a.expires =
                    super::convert::parse_http_date(v).and_then(|t| super::convert::http_date(&t));
            }
            "acl" if v != "private" => {
                return Err(Refusal::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "Dooz has no ACLs: only acl=private is accepted",
                ));
            }
            "tagging" => {
                use s3s::xml::Deserialize;
                let mut d = s3s::xml::Deserializer::new(v.as_bytes());
                let t = s3s::dto::Tagging::deserialize(&mut d).map_err(|_| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "MalformedXML",
                        "The XML you provided was not well-formed or did not validate against our published schema",
                    )
                })?;
                let pairs = t.tag_set.into_iter().map(|t| (t.key, t.value)).collect();
                a.tags = crate::engine::validate_tags(pairs, crate::engine::TagTarget::Object)
                    .map_err(|e| Refusal::from_s3(&super::to_s3(e)))?;
            }
            "x-amz-server-side-encryption" => {
                super::encryption::check_requested(
                    Some(&ServerSideEncryption::from(v.clone())),
                    None,
                )
                .map_err(|e| Refusal::from_s3(&e))?;
            }
            "x-amz-server-side-encryption-customer-key" => {
                return Err(Refusal::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "SSE-C is not supported yet",
                ));
            }
            _ => {
                if let Some(name) = k.strip_prefix("x-amz-meta-") {
                    a.user_metadata.insert(name.to_owned(), v.clone());
                }
            }
        }
    }
    Ok(a)
}

/// Why the file stream stopped early, when it was the policy's doing.
#[derive(Default)]
struct LimitHit(Mutex<Option<Refusal>>);

impl LimitHit {
    fn set(&self, r: Refusal) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(r);
        }
    }
    fn take(&self) -> Option<Refusal> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// The file's bytes with the content-length range and the object size cap
/// enforced as they pass.
fn limited<S>(
    file: S,
    (min, max): (u64, u64),
    hit: Arc<LimitHit>,
) -> impl Stream<Item = Result<Bytes, String>> + Send + Unpin
where
    S: Stream<Item = Result<Bytes, FormError>> + Send + Unpin,
{
    let cap = max.min(MAX_OBJECT_SIZE);
    Box::pin(futures::stream::unfold(
        (file, 0u64, false),
        move |(mut file, seen, done)| {
            let hit = hit.clone();
            async move {
                if done {
                    return None;
                }
                match file.next().await {
                    Some(Ok(b)) => {
                        let seen = seen + b.len() as u64;
                        if seen > cap {
                            let r = if seen > MAX_OBJECT_SIZE {
                                Refusal::new(
                                    StatusCode::BAD_REQUEST,
                                    "EntityTooLarge",
                                    format!(
                                        "Your proposed upload exceeds the maximum allowed size of {MAX_OBJECT_SIZE} bytes"
                                    ),
                                )
                            } else {
                                Refusal::new(
                                    StatusCode::BAD_REQUEST,
                                    "EntityTooLarge",
                                    "Your proposed upload exceeds the maximum allowed size",
                                )
                            };
                            hit.set(r);
                            return Some((Err("too large".to_owned()), (file, seen, true)));
                        }
                        Some((Ok(b), (file, seen, false)))
                    }
                    Some(Err(e)) => {
                        hit.set(Refusal::from_form(e));
                        Some((Err("form".to_owned()), (file, seen, true)))
                    }
                    None if seen < min => {
                        hit.set(Refusal::new(
                            StatusCode::BAD_REQUEST,
                            "EntityTooSmall",
                            "Your proposed upload is smaller than the minimum allowed size",
                        ));
                        Some((Err("too small".to_owned()), (file, seen, true)))
                    }
                    None => None,
                }
            }
        },
    ))
}

impl PostObject {
    /// Serves a multipart/form-data POST to a bucket.
    pub(crate) async fn serve(
        &self,
        req: Request<Incoming>,
        t: &Target,
        cfg: &FrontConfig,
        id: &str,
    ) -> Response<Body> {
        match self.upload(req, t, cfg).await {
            Ok(res) => res,
            Err(r) => r.response(id),
        }
    }

    async fn upload(
        &self,
        req: Request<Incoming>,
        t: &Target,
        cfg: &FrontConfig,
    ) -> Result<Response<Body>, Refusal> {
        if !t.raw_key.is_empty() {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            ));
        }
        let Some(boundary) = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(boundary)
        else {
            return Err(Refusal::from_form(FormError::Malformed));
        };
        let audit = req.extensions().get::<crate::audit::AuditSlot>().cloned();
        let peer = req.extensions().get::<crate::net::PeerAddr>().map(|p| p.0);
        // The fields' buffer is reserved while they are read.
        let fields_memory = cfg.budget.reserve(MAX_FIELDS_BYTES).await.map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            )
        })?;
        let slot = req.extensions().get::<ThrottleSlot>().cloned();
        let outcome = Arc::new(BodyOutcome::default());
        let guarded =
            GuardedBody::new(req.into_body(), cfg.body_stall, outcome.clone(), None, None);
        // Paced once admitted (the limits are known from the credential).
        let body = match &slot {
            Some(slot) => {
                Body::http_body_unsync(Paced::new(guarded, slot.clone(), Direction::Ingress))
            }
            None => Body::http_body_unsync(guarded),
        }
        .into_data_stream();
        let body = Box::pin(body.map(|r| r.map_err(|e| e.to_string())));
        let form = read_form(body, &boundary)
            .await
            .map_err(Refusal::from_form)?;
        drop(fields_memory);
        let (cred, range) = authenticate(self, &form.fields, &t.bucket).await?;
        if let Some(slot) = &audit {
            slot.set(&cred.principal);
        }
        let raw_key = form.field("key").ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
            )
        })?;
        let key = raw_key.replace("${filename}", form.filename.as_deref().unwrap_or_default());
        let who = authorize(
            self,
            &cred,
            &t.bucket,
            &key,
            &form.fields,
            peer,
            slot.as_ref(),
        )
        .await?;
        let attrs = attrs_from(&form.fields)?;
        let status = form.field("success_action_status").map(str::to_owned);
        let redirect = form
            .field("success_action_redirect")
            .or_else(|| form.field("redirect"))
            .map(str::to_owned);
        let hit = Arc::new(LimitHit::default());
        let file = limited(form.file.into_stream(), range, hit.clone());
        let request = PutRequest {
            bucket: t.bucket.clone(),
            key: key.clone(),
            attrs,
            conditions: WriteConditions::default(),
            expected: ExpectedChecksums::default(),
            content_length: None,
            lock: None,
        };
        let out = match self.engine.put_object(&who, request, file).await {
            Ok(o) => o,
            Err(e) => {
                if let Some(r) = hit.take() {
                    return Err(r);
                }
                if let Some(f) = outcome.failure() {
                    return Err(Refusal::from_body(f));
                }
                return Err(Refusal::from_s3(&super::to_s3(e)));
            }
        };
        // Stored ETags carry their quotes, as the header does.
        let etag = out.etag.clone();
        let location = format!("/{}/{}", t.bucket, super::convert::url_encode(&key));
        let mut res = match (redirect, status.as_deref()) {
            (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => {
                let query = serde_urlencoded::to_string([
                    ("bucket", t.bucket.as_str()),
                    ("key", key.as_str()),
                    ("etag", etag.as_str()),
                ])
                .unwrap_or_default();
                let sep = if url.contains('?') { '&' } else { '?' };
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::SEE_OTHER;
                if let Ok(v) = HeaderValue::from_str(&format!("{url}{sep}{query}")) {
                    r.headers_mut().insert(http::header::LOCATION, v);
                }
                r
            }
            (_, Some("201")) => {
                let esc = |s: &str| {
                    s.replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&quot;")
                };
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    esc(&location),
                    esc(&t.bucket),
                    esc(&key),
                    esc(&etag)
                );
                let mut r = Response::new(Body::from(xml));
                *r.status_mut() = StatusCode::CREATED;
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                r
            }
            (_, Some("200")) => Response::new(Body::empty()),
            _ => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
        };
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(http::header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(http::header::LOCATION, v);
        }
        h.insert(
            "x-amz-server-side-encryption",
            HeaderValue::from_static("AES256"),
        );
        if let Some(v) = out.version_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert("x-amz-version-id", v);
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn policy(json: &str) -> PostPolicy {
        PostPolicy::from_json(json).unwrap()
    }

    #[test]
    fn conditions_and_extra_fields() {
        let p = policy(
            r#"{"expiration":"2099-01-01T00:00:00.000Z","conditions":[{"bucket":"b"},["starts-with","$key","up/"],["content-length-range",1,100],{"x-amz-meta-who":"me"}]}"#,
        );
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let ok = f(&[("key", "up/a"), ("X-Amz-Meta-Who", "me"), ("policy", "p")]);
        assert_eq!(check_conditions(&p, &ok, "b").ok(), Some((1, 100)));
        assert!(check_conditions(&p, &ok, "other").is_err(), "bucket");
        let bad_key = f(&[("key", "down/a"), ("x-amz-meta-who", "me")]);
        assert!(check_conditions(&p, &bad_key, "b").is_err());
        let extra = f(&[
            ("key", "up/a"),
            ("x-amz-meta-who", "me"),
            ("x-amz-meta-x", "1"),
        ]);
        let Err(Refusal(_, code, msg, _)) = check_conditions(&p, &extra, "b") else {
            panic!("extra field accepted");
        };
        assert_eq!(code.as_str(), "AccessDenied");
        assert!(msg.contains("Extra input fields: x-amz-meta-x"), "{msg}");
        let ignored = f(&[
            ("key", "up/a"),
            ("x-amz-meta-who", "me"),
            ("x-ignore-me", "1"),
        ]);
        assert!(check_conditions(&p, &ignored, "b").is_ok());
    }
}
