//! PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{
    checksum_fields, etag, etag_condition, millis, parse_http_date, request_attrs, timestamp,
};
use super::errors::{IntoS3, to_s3};
use super::object_lock::{lock_headers, requested_lock};
use crate::engine::{
    ByteRange, ChecksumAlgorithm, EngineError, ExpectedChecksums, GetOutcome, GetRequest,
    PutRequest, ReadConditions, parse_part_number, part_span, shown_version_id,
};
use crate::meta::{DeleteOutcome, ObjectVersion, WriteConditions};

/// DeleteObjects accepts at most this many keys, as S3 does.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) fn expected_checksums<T>(
    req: &S3Request<T>,
    content_md5: Option<String>,
    headers: [(ChecksumAlgorithm, Option<String>); 5],
) -> S3Result<ExpectedChecksums> {
    let mut announced = Vec::new();
    if let Some(t) = req.headers.get("x-amz-trailer") {
        let t = t
            .to_str()
            .map_err(|_| s3_error!(InvalidArgument, "x-amz-trailer is not ASCII"))?;
        for name in t.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let alg = name
                .strip_prefix("x-amz-checksum-")
                .and_then(ChecksumAlgorithm::parse)
                .ok_or_else(|| s3_error!(InvalidArgument, "unsupported trailer {name}"))?;
            announced.push(alg);
        }
    }
    let trailer = req.trailing_headers.clone().map(|th| {
        Box::new(move || {
            let mut out = BTreeMap::new();
            if let Some(map) = th.take() {
                for alg in ChecksumAlgorithm::ALL {
                    if let Some(v) = map.get(alg.header()).and_then(|v| v.to_str().ok()) {
                        out.insert(alg, v.to_owned());
                    }
                }
            }
            out
        }) as Box<dyn FnOnce() -> BTreeMap<ChecksumAlgorithm, String> + Send>
    });
    Ok(ExpectedChecksums {
        content_md5,
        headers: headers
            .into_iter()
            .filter_map(|(a, v)| v.map(|v| (a, v)))
            .collect(),
        announced,
        trailer,
    })
}

pub async fn put_object(
    s: &DoozS3,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let who = s.principal(&req).await?;
    let expected = expected_checksums(
        &req,
        req.input.content_md5.clone(),
        checksum_fields!(req.input),
    )?;
    if req.input.sse_customer_key.is_some() {
        return Err(s3_error!(NotImplemented, "SSE-C is not supported yet"));
    }
    super::encryption::check_requested(
        req.input.server_side_encryption.as_ref(),
        req.input.ssekms_key_id.as_deref(),
    )?;
    let mut attrs = request_attrs!(req.input);
    attrs.tags = super::tagging::header_tags(req.input.tagging.as_deref())?;
    let lock = requested_lock(
        req.input.object_lock_mode.as_ref(),
        req.input.object_lock_retain_until_date.as_ref(),
        req.input.object_lock_legal_hold_status.as_ref(),
    )?;
    let PutObjectInput {
        body,
        bucket,
        key,
        content_length,
        if_match,
        if_none_match,
        ..
    } = req.input;
    let request = PutRequest {
        bucket,
        key,
        attrs,
        conditions: WriteConditions {
            if_match: if_match.as_ref().map(etag_condition),
            if_none_match: if_none_match.as_ref().map(etag_condition),
        },
        expected,
        content_length: content_length.and_then(|l| u64::try_from(l).ok()),
        lock,
    };
    let body = body.ok_or_else(|| s3_error!(IncompleteBody, "a request body is required"))?;
    let (bucket, key, tags) = (
        request.bucket.clone(),
        request.key.clone(),
        request.attrs.tags.clone(),
    );
    let out = s.engine.put_object(&who, request, body).await.s3()?;
    let expiry = s
        .engine
        .expiry_of(&bucket, &key, out.size, &tags, crate::engine::now_millis())
        .await;
    let mut output = PutObjectOutput {
        e_tag: Some(etag(&out.etag)),
        size: i64::try_from(out.size).ok(),
        expiration: super::lifecycle::expiration_value(expiry),
        version_id: out.version_id,
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    };
    super::multipart::set_checksums!(output, out.checksums);
    Ok(S3Response::new(output))
}

pub(super) fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(etag_condition),
        if_none_match: if_none_match.map(etag_condition),
        if_modified_since: if_modified_since.map(millis),
        if_unmodified_since: if_unmodified_since.map(millis),
    }
}

pub(super) fn range(r: Option<Range>) -> Option<ByteRange> {
    r.map(|r| match r {
        Range::Int { first, last } => ByteRange::FromTo { first, last },
        Range::Suffix { length } => ByteRange::Suffix { len: length },
    })
}

/// Headers common to GET and HEAD, from the stored version.
struct Representation {
    content_type: Option<String>,
    metadata: Option<Metadata>,
    expires: Option<Timestamp>,
}

fn representation(v: &ObjectVersion) -> Representation {
    let a = &v.attrs;
    Representation {
        content_type: Some(
            a.content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".to_owned()),
        ),
        metadata: (!a.user_metadata.is_empty())
            .then(|| a.user_metadata.clone().into_iter().collect()),
        expires: a.expires.as_deref().and_then(parse_http_date),
    }
}

fn checksum_mode_on(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"))
}

/// `x-amz-expiration` of a current version a lifecycle rule will expire.
async fn expiration(s: &DoozS3, v: &ObjectVersion) -> Option<String> {
    if !v.is_latest {
        return None;
    }
    let expiry = s
        .engine
        .expiry_of(&v.bucket, &v.key, v.attrs.size, &v.attrs.tags, v.created_at)
        .await;
    super::lifecycle::expiration_value(expiry)
}

pub async fn get_object(
    s: &DoozS3,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    if i.sse_customer_key.is_some() {
        return Err(s3_error!(NotImplemented, "SSE-C is not supported yet"));
    }
    let part_number = i.part_number.map(parse_part_number).transpose().s3()?;
    let conditions = read_conditions(
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    );
    let GetOutcome {
        bucket,
        version,
        parts_count,
        range: span,
        content_length,
        body,
    } = s
        .engine
        .get_object(
            &who,
            &GetRequest {
                bucket: &i.bucket,
                key: &i.key,
                version_id: i.version_id.as_deref(),
                range: range(i.range),
                part_number,
                conditions,
            },
        )
        .await
        .s3()?;
    let rep = representation(&version);
    let lock = lock_headers(&version.lock);
    let a = &version.attrs;
    let expiration = expiration(s, &version).await;
    // Whole-object checksums describe whole objects: not sent for ranges.
    let with_checksums = checksum_mode_on(i.checksum_mode.as_ref()) && span.is_none();
    let body = body.map_err(|e: EngineError| std::io::Error::other(e.to_string()));
    let mut output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(sync_wrapper::SyncStream::new(body))),
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(content_length).ok(),
        content_range: span.map(|(a0, b)| format!("bytes {a0}-{b}/{}", a.size)),
        content_type: i.response_content_type.clone().or(rep.content_type),
        content_encoding: i
            .response_content_encoding
            .clone()
            .or(a.content_encoding.clone()),
        content_disposition: i
            .response_content_disposition
            .clone()
            .or(a.content_disposition.clone()),
        content_language: i
            .response_content_language
            .clone()
            .or(a.content_language.clone()),
        cache_control: i.response_cache_control.clone().or(a.cache_control.clone()),
        expires: i.response_expires.clone().or(rep.expires),
        e_tag: Some(etag(&a.etag)),
        last_modified: Some(timestamp(version.created_at)),
        metadata: rep.metadata,
        version_id: shown_version_id(&bucket, &version.version_id),
        parts_count: parts_count.and_then(|n| i32::try_from(n).ok()),
        object_lock_mode: lock.mode,
        object_lock_retain_until_date: lock.until,
        object_lock_legal_hold_status: lock.legal_hold,
        tag_count: super::tagging::tag_count(&a.tags),
        expiration,
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    };
    if with_checksums {
        super::multipart::set_checksums!(output, a.checksums.clone());
        output.checksum_type = a.checksum_type.clone().map(ChecksumType::from);
    }
    Ok(S3Response::new(output))
}

pub async fn head_object(
    s: &DoozS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let part_number = i.part_number.map(parse_part_number).transpose().s3()?;
    let conditions = read_conditions(
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    );
    let (bucket, version, _) = s
        .engine
        .head_object(
            &who,
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            &conditions,
        )
        .await
        .s3()?;
    let a = &version.attrs;
    let (span, parts_count) = match (range(i.range), part_number) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter"
            ));
        }
        (Some(r), None) => (Some(r.resolve(a.size).map_err(to_s3)?), None),
        (None, Some(n)) => {
            let (span, count) = part_span(&version, n).map_err(to_s3)?;
            (Some(span), count)
        }
        (None, None) => (None, None),
    };
    let rep = representation(&version);
    let lock = lock_headers(&version.lock);
    let with_checksums = checksum_mode_on(i.checksum_mode.as_ref()) && span.is_none();
    let expiration = expiration(s, &version).await;
    let mut output = HeadObjectOutput {
        expiration,
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(span.map_or(a.size, |(x, y)| y - x + 1)).ok(),
        content_range: span.map(|(x, y)| format!("bytes {x}-{y}/{}", a.size)),
        content_type: i.response_content_type.clone().or(rep.content_type),
        content_encoding: a.content_encoding.clone(),
        content_disposition: a.content_disposition.clone(),
        content_language: a.content_language.clone(),
        cache_control: a.cache_control.clone(),
        expires: rep.expires,
        e_tag: Some(etag(&a.etag)),
        last_modified: Some(timestamp(version.created_at)),
        metadata: rep.metadata,
        version_id: shown_version_id(&bucket, &version.version_id),
        parts_count: parts_count.and_then(|n| i32::try_from(n).ok()),
        object_lock_mode: lock.mode,
        object_lock_retain_until_date: lock.until,
        object_lock_legal_hold_status: lock.legal_hold,
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    };
    if with_checksums {
        super::multipart::set_checksums!(output, a.checksums.clone());
        output.checksum_type = a.checksum_type.clone().map(ChecksumType::from);
    }
    let mut resp = S3Response::new(output);
    // HeadObjectOutput has no field for it; S3 sends it on HEAD too.
    if let Some(n) = super::tagging::tag_count(&a.tags) {
        resp.headers
            .insert("x-amz-tagging-count", http::HeaderValue::from(n));
    }
    Ok(resp)
}

pub async fn delete_object(
    s: &DoozS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let (bucket, out) = s
        .engine
        .delete_object(
            &who,
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            i.bypass_governance_retention.unwrap_or(false),
        )
        .await
        .s3()?;
    let (delete_marker, version_id) = deleted(&bucket, &out);
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: delete_marker.then_some(true),
        version_id,
        ..Default::default()
    }))
}

/// What a delete answers: whether a delete marker is involved (created, or
/// the version removed was one) and the version id concerned.
fn deleted(bucket: &crate::meta::Bucket, out: &DeleteOutcome) -> (bool, Option<String>) {
    match (&out.created_marker, &out.deleted_version) {
        (Some(marker), _) => (true, shown_version_id(bucket, marker)),
        (None, Some(v)) => (out.delete_marker, shown_version_id(bucket, v)),
        (None, None) => (false, None),
    }
}

pub async fn delete_objects(
    s: &DoozS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let who = s.principal(&req).await?;
    // As S3: the body's integrity must be declared (the front door checks
    // the value against the body as it arrives).
    let has_checksum = req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-checksum-") && k.as_str() != "x-amz-checksum-type");
    // s3s's DeleteObjectsInput has no Content-MD5 field; the header is there.
    if !req.headers.contains_key("content-md5") && !has_checksum {
        return Err(s3_error!(
            InvalidRequest,
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*"
        ));
    }
    let i = &req.input;
    if i.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "DeleteObjects accepts at most {MAX_DELETE_KEYS} keys"
        ));
    }
    let quiet = i.delete.quiet.unwrap_or(false);
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    let mut deleted_objects = Vec::new();
    let mut errors = Vec::new();
    let denied = req.extensions.get::<super::access::DeniedDeletes>();
    for obj in &i.delete.objects {
        if denied.is_some_and(|d| d.contains(&obj.key, obj.version_id.as_deref())) {
            errors.push(Error {
                key: Some(obj.key.clone()),
                version_id: obj.version_id.clone(),
                code: Some("AccessDenied".to_owned()),
                message: Some("Access Denied".to_owned()),
            });
            continue;
        }
        match s
            .engine
            .delete_object(&who, &i.bucket, &obj.key, obj.version_id.as_deref(), bypass)
            .await
        {
            Ok(_) if quiet => {}
            Ok((bucket, out)) => {
                let (marker, _) = deleted(&bucket, &out);
                deleted_objects.push(DeletedObject {
                    key: Some(obj.key.clone()),
                    version_id: obj.version_id.clone(),
                    delete_marker: marker.then_some(true),
                    delete_marker_version_id: match (&out.created_marker, obj.version_id.as_ref()) {
                        (Some(m), _) => shown_version_id(&bucket, m),
                        (None, Some(v)) if out.delete_marker => Some(v.clone()),
                        _ => None,
                    },
                })
            }
            // A missing bucket or no permission fails the whole request; a
            // locked version fails its own entry.
            Err(e @ (EngineError::NoSuchBucket(_) | EngineError::AccessDenied(_))) => {
                return Err(to_s3(e));
            }
            Err(e) => {
                let err = to_s3(e);
                errors.push(Error {
                    key: Some(obj.key.clone()),
                    version_id: obj.version_id.clone(),
                    code: Some(err.code().as_str().to_owned()),
                    message: err.message().map(str::to_owned),
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted_objects),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
