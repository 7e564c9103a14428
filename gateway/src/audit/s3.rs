//! Audit records of S3 requests, taken at the front door: every request that
//! can change something (any method but GET, HEAD and OPTIONS), refused ones
//! included. One record per object changed: a DeleteObjects request gives one
//! record per key in its answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Request, Response};
use s3s::Body;

use super::record;
use crate::engine::Principal;
use crate::meta::{AuditRecord, TenantId};
use crate::s3::front::Target;

/// Where the S3 layer leaves the caller it verified, for the request's
/// audit record (the front door only sees the access key a request claims).
#[derive(Clone, Debug, Default)]
pub struct AuditSlot(Arc<Mutex<Option<(String, TenantId)>>>);

impl AuditSlot {
    pub fn set(&self, p: &Principal) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some((p.access_key.clone(), p.tenant_id));
        }
    }

    fn get(&self) -> Option<(String, TenantId)> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// An S3 request as it arrived, kept until it is answered.
pub struct S3Call {
    method: Method,
    op: &'static str,
    bucket: String,
    key: String,
    query: String,
    claimed_key: Option<String>,
    source: String,
    detail: serde_json::Map<String, serde_json::Value>,
    slot: AuditSlot,
}

/// Subresources whose PUT/DELETE/POST change configuration, and the S3
/// name of what they change (bucket-level, object-level).
const SUBRESOURCES: &[(&str, &str, &str)] = &[
    ("policy", "BucketPolicy", "BucketPolicy"),
    ("acl", "BucketAcl", "ObjectAcl"),
    ("versioning", "BucketVersioning", "BucketVersioning"),
    (
        "lifecycle",
        "BucketLifecycleConfiguration",
        "BucketLifecycleConfiguration",
    ),
    ("tagging", "BucketTagging", "ObjectTagging"),
    ("cors", "BucketCors", "BucketCors"),
    ("encryption", "BucketEncryption", "BucketEncryption"),
    (
        "object-lock",
        "ObjectLockConfiguration",
        "ObjectLockConfiguration",
    ),
    ("retention", "ObjectRetention", "ObjectRetention"),
    ("legal-hold", "ObjectLegalHold", "ObjectLegalHold"),
    ("replication", "BucketReplication", "BucketReplication"),
    ("website", "BucketWebsite", "BucketWebsite"),
    (
        "notification",
        "BucketNotificationConfiguration",
        "BucketNotificationConfiguration",
    ),
    (
        "ownershipControls",
        "BucketOwnershipControls",
        "BucketOwnershipControls",
    ),
    (
        "publicAccessBlock",
        "PublicAccessBlock",
        "PublicAccessBlock",
    ),
    ("logging", "BucketLogging", "BucketLogging"),
    (
        "accelerate",
        "BucketAccelerateConfiguration",
        "BucketAccelerateConfiguration",
    ),
    (
        "requestPayment",
        "BucketRequestPayment",
        "BucketRequestPayment",
    ),
    ("restore", "RestoreObject", "RestoreObject"),
];

fn query_names(query: &str) -> impl Iterator<Item = &str> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
}

fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The S3 action name: the front door's operation, or the subresource
/// changed (PutBucketPolicy, DeleteObjectTagging, ...).
fn action_name(method: &Method, op: &str, query: &str, has_key: bool) -> String {
    for (sub, bucket_level, object_level) in SUBRESOURCES {
        if query_names(query).any(|n| n == *sub) {
            let what = if has_key { object_level } else { bucket_level };
            if what.starts_with("Restore") {
                return format!("s3:{what}");
            }
            let verb = match *method {
                Method::DELETE => "Delete",
                _ => "Put",
            };
            return format!("s3:{verb}{what}");
        }
    }
    if op == "Other" {
        format!("s3:{method}")
    } else {
        format!("s3:{op}")
    }
}

/// `%XX` sequences decoded; `+` stays `+` (S3 paths are not form-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

impl S3Call {
    /// None for requests that change nothing. Otherwise the call, with the
    /// slot for the verified caller put into the request.
    pub(crate) fn begin<B>(
        req: &mut Request<B>,
        op: &'static str,
        claimed_key: Option<String>,
        bytes_in: u64,
        peer: Option<SocketAddr>,
        target: &Target,
    ) -> Option<Self> {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        // Path-style or virtual-hosted: the front door already told them apart.
        let (bucket, key) = (target.bucket.clone(), percent_decode(&target.raw_key));
        let mut detail = serde_json::Map::new();
        // aws-chunked bodies declare their payload size separately.
        let payload = header(req.headers(), "x-amz-decoded-content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(bytes_in);
        detail.insert("bytes_in".into(), payload.into());
        for (name, field) in [
            ("x-amz-copy-source", "copy_source"),
            ("x-forwarded-for", "forwarded_for"),
            ("host", "host"),
            ("user-agent", "user_agent"),
        ] {
            if let Some(v) = header(req.headers(), name) {
                detail.insert(field.into(), v.into());
            }
        }
        let query = req.uri().query().unwrap_or("").to_owned();
        for (name, field) in [
            ("uploadId", "upload_id"),
            ("partNumber", "part_number"),
            ("versionId", "version_id"),
        ] {
            if let Some(v) = query_value(&query, name) {
                detail.insert(field.into(), percent_decode(v).into());
            }
        }
        let slot = AuditSlot::default();
        req.extensions_mut().insert(slot.clone());
        Some(Self {
            method: req.method().clone(),
            op,
            bucket,
            key,
            query,
            claimed_key,
            source: peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            detail,
            slot,
        })
    }

    /// The records of the answered request.
    pub fn finish(mut self, res: &Response<Body>, request_id: &str) -> Vec<AuditRecord> {
        let status = res.status();
        let body = res.body().bytes();
        let xml = body.as_deref().map(String::from_utf8_lossy);
        if let Some(v) = header(res.headers(), "x-amz-version-id") {
            self.detail.insert("new_version_id".into(), v.into());
        }
        if !status.is_success() {
            if let Some(code) = xml.as_deref().and_then(|x| tag(x, "Code")) {
                self.detail.insert("error".into(), code.into());
            }
        } else if self.op == "CreateMultipartUpload"
            && let Some(id) = xml.as_deref().and_then(|x| tag(x, "UploadId"))
        {
            self.detail.insert("upload_id".into(), id.into());
        }
        let verified = self.slot.get();
        let actor = verified
            .as_ref()
            .map(|(a, _)| a.clone())
            .or_else(|| self.claimed_key.clone())
            .unwrap_or_else(|| "-".to_owned());
        if verified.is_none() && self.claimed_key.is_some() {
            // No handler resolved the caller (the request was refused before
            // one ran): the access key is the one the request claims.
            self.detail.insert("actor_verified".into(), false.into());
        }
        let base = |target: String, result: String, detail: &serde_json::Map<_, _>| {
            let mut r = record(
                actor.clone(),
                self.source.clone(),
                action_name(&self.method, self.op, &self.query, !self.key.is_empty()),
                target,
            );
            r.tenant_id = verified.as_ref().map(|(_, t)| t.to_string());
            r.result = result;
            r.request_id = Some(request_id.to_owned());
            r.detail = Some(serde_json::Value::Object(detail.clone()).to_string());
            r
        };
        if self.op == "DeleteObjects"
            && status.is_success()
            && let Some(entries) = xml.as_deref().map(delete_results).filter(|e| !e.is_empty())
        {
            return entries
                .into_iter()
                .map(|e| {
                    let mut d = self.detail.clone();
                    if let Some(v) = e.version_id {
                        d.insert("version_id".into(), v.into());
                    }
                    let result = match e.error {
                        Some(code) => {
                            d.insert("error".into(), code.into());
                            "error".to_owned()
                        }
                        None => status.as_u16().to_string(),
                    };
                    base(format!("{}/{}", self.bucket, e.key), result, &d)
                })
                .collect();
        }
        let target = if self.key.is_empty() {
            self.bucket.clone()
        } else {
            format!("{}/{}", self.bucket, self.key)
        };
        vec![base(target, status.as_u16().to_string(), &self.detail)]
    }
}

/// The text of the first `<name>` element.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml_unescape(&xml[start..end]))
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

struct DeleteResult {
    key: String,
    version_id: Option<String>,
    error: Option<String>,
}

/// The `<Deleted>` and `<Error>` entries of a DeleteObjects answer.
fn delete_results(xml: &str) -> Vec<DeleteResult> {
    let mut out = Vec::new();
    for (element, is_error) in [("Deleted", false), ("Error", true)] {
        let open = format!("<{element}>");
        let close = format!("</{element}>");
        let mut rest = xml;
        while let Some(i) = rest.find(&open) {
            let body_start = i + open.len();
            let Some(j) = rest[body_start..].find(&close) else {
                break;
            };
            let body = &rest[body_start..body_start + j];
            if let Some(key) = tag(body, "Key") {
                out.push(DeleteResult {
                    key,
                    version_id: tag(body, "VersionId"),
                    error: if is_error { tag(body, "Code") } else { None },
                });
            }
            rest = &rest[body_start + j + close.len()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_subresources() {
        let a = |m: Method, op: &str, q: &str, k: bool| action_name(&m, op, q, k);
        assert_eq!(
            a(Method::PUT, "CreateBucket", "policy", false),
            "s3:PutBucketPolicy"
        );
        assert_eq!(
            a(Method::DELETE, "DeleteBucket", "policy", false),
            "s3:DeleteBucketPolicy"
        );
        assert_eq!(a(Method::PUT, "PutObject", "acl", true), "s3:PutObjectAcl");
        assert_eq!(
            a(Method::PUT, "CreateBucket", "acl", false),
            "s3:PutBucketAcl"
        );
        assert_eq!(
            a(Method::DELETE, "DeleteObject", "tagging&versionId=x", true),
            "s3:DeleteObjectTagging"
        );
        assert_eq!(
            a(Method::POST, "Other", "restore", true),
            "s3:RestoreObject"
        );
        assert_eq!(a(Method::PUT, "PutObject", "", true), "s3:PutObject");
        assert_eq!(a(Method::POST, "Other", "", false), "s3:POST");
    }

    #[test]
    fn keys_are_decoded() {
        assert_eq!(percent_decode("a%20b%2Fc+d"), "a b/c+d");
        assert_eq!(percent_decode("%E2%82%AC%"), "€%");
        assert_eq!(percent_decode("x%4"), "x%4");
        assert_eq!(
            xml_unescape("a&amp;b&lt;&#x41;&#66;&bogus;"),
            "a&b<AB&bogus;"
        );
    }

    #[test]
    fn delete_objects_answers_are_read_per_key() {
        let xml = "<?xml version=\"1.0\"?><DeleteResult><Deleted><Key>a&amp;b</Key></Deleted>\
                   <Deleted><Key>c</Key><VersionId>v1</VersionId></Deleted>\
                   <Error><Key>d</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>";
        let r = delete_results(xml);
        let got: Vec<_> = r
            .iter()
            .map(|e| (e.key.as_str(), e.version_id.as_deref(), e.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a&b", None, None),
                ("c", Some("v1"), None),
                ("d", None, Some("AccessDenied"))
            ]
        );
    }
}
