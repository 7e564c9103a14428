//! ListObjects (v1) and ListObjectsV2.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{etag, timestamp, url_encode};
use super::errors::IntoS3;
use crate::engine::{ListOutcome, ListParams};

const DEFAULT_MAX_KEYS: i32 = 1000;

pub(super) fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(DEFAULT_MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(n.min(DEFAULT_MAX_KEYS) as usize),
    }
}

pub(super) fn url_mode(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(other) => Err(s3_error!(InvalidArgument, "invalid encoding type {other}")),
    }
}

fn enc(url: bool, s: String) -> String {
    if url { url_encode(&s) } else { s }
}

fn contents(out: &ListOutcome, url: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let objects = out
        .objects
        .iter()
        .map(|o| Object {
            key: Some(enc(url, o.key.clone())),
            size: i64::try_from(o.size).ok(),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.created_at)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let prefixes = out
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(url, p.clone())),
        })
        .collect();
    (objects, prefixes)
}

pub async fn list_objects_v2(
    s: &DoozS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let url = url_mode(i.encoding_type.as_ref())?;
    let token_key = match &i.continuation_token {
        Some(t) => {
            let raw = B64
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?;
            Some(raw)
        }
        None => None,
    };
    let params = ListParams {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone(),
        // The token wins over start-after, as in S3.
        after: token_key.or_else(|| i.start_after.clone()),
        max_keys: max_keys(i.max_keys)?,
    };
    let out = s.engine.list_objects(&who, &i.bucket, &params).await.s3()?;
    let (objects, prefixes) = contents(&out, url);
    let key_count = (objects.len() + prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket.clone()),
        prefix: Some(enc(url, params.prefix.clone())),
        delimiter: i.delimiter.clone().map(|d| enc(url, d)),
        max_keys: Some(i.max_keys.unwrap_or(DEFAULT_MAX_KEYS)),
        key_count: Some(key_count),
        continuation_token: i.continuation_token.clone(),
        next_continuation_token: out
            .truncated
            .then(|| out.next_marker.as_ref().map(|m| B64.encode(m)))
            .flatten(),
        is_truncated: Some(out.truncated),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        encoding_type: i.encoding_type.clone(),
        start_after: i.start_after.clone().map(|s| enc(url, s)),
        ..Default::default()
    }))
}

pub async fn list_objects(
    s: &DoozS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let url = url_mode(i.encoding_type.as_ref())?;
    let params = ListParams {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone(),
        after: i.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(i.max_keys)?,
    };
    let out = s.engine.list_objects(&who, &i.bucket, &params).await.s3()?;
    let (objects, prefixes) = contents(&out, url);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket.clone()),
        prefix: Some(enc(url, params.prefix.clone())),
        delimiter: i.delimiter.clone().map(|d| enc(url, d)),
        marker: Some(enc(url, i.marker.clone().unwrap_or_default())),
        max_keys: Some(i.max_keys.unwrap_or(DEFAULT_MAX_KEYS)),
        is_truncated: Some(out.truncated),
        // v1 returns NextMarker only with a delimiter; without one clients use the last key.
        next_marker: (out.truncated && params.delimiter.is_some())
            .then(|| out.next_marker.clone().map(|m| enc(url, m)))
            .flatten(),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        encoding_type: i.encoding_type.clone(),
        ..Default::default()
    }))
}
