//! GetObjectAttributes: an object's ETag, checksum, parts (paged with
//! max-parts / part-number-marker), storage class and size, each only when
//! asked for in `x-amz-object-attributes`.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::timestamp;
use super::errors::IntoS3;
use crate::engine::{ReadConditions, shown_version_id};

/// S3 lists at most 1,000 parts per page.
const MAX_PARTS: i32 = 1000;

pub async fn get_object_attributes(
    s: &DoozS3,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    if i.sse_customer_key.is_some() {
        return Err(s3_error!(NotImplemented, "SSE-C is not supported yet"));
    }
    let mut want = std::collections::BTreeSet::new();
    for a in &i.object_attributes {
        for name in a.as_str().split(',').map(str::trim) {
            match name {
                ObjectAttributes::CHECKSUM
                | ObjectAttributes::ETAG
                | ObjectAttributes::OBJECT_PARTS
                | ObjectAttributes::OBJECT_SIZE
                | ObjectAttributes::STORAGE_CLASS => {
                    want.insert(name.to_owned());
                }
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Invalid attribute name specified."
                    ));
                }
            }
        }
    }
    if want.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "Invalid attribute name specified."
        ));
    }
    let max = match i.max_parts {
        None => MAX_PARTS,
        Some(n) if n < 0 => {
            return Err(s3_error!(
                InvalidArgument,
                "Argument max-parts must be an integer between 0 and 2147483647"
            ));
        }
        Some(n) => n.min(MAX_PARTS),
    };
    let marker = match i.part_number_marker {
        None => 0,
        Some(n) if n < 0 => {
            return Err(s3_error!(
                InvalidArgument,
                "Argument part-number-marker must be an integer between 0 and 2147483647"
            ));
        }
        Some(n) => n,
    };
    let (bucket, version, _) = s
        .engine
        .head_object(
            &who,
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            &ReadConditions::default(),
        )
        .await
        .s3()?;
    let a = &version.attrs;
    let has = |n: &str| want.contains(n);
    let mut out = GetObjectAttributesOutput {
        last_modified: Some(timestamp(version.created_at)),
        version_id: shown_version_id(&bucket, &version.version_id),
        ..Default::default()
    };
    if has(ObjectAttributes::ETAG) {
        out.e_tag = Some(super::convert::etag(&a.etag));
    }
    if has(ObjectAttributes::OBJECT_SIZE) {
        out.object_size = i64::try_from(a.size).ok();
    }
    if has(ObjectAttributes::STORAGE_CLASS) {
        out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    if has(ObjectAttributes::CHECKSUM) && !a.checksums.is_empty() {
        let mut c = Checksum {
            checksum_type: a.checksum_type.clone().map(ChecksumType::from),
            ..Default::default()
        };
        super::multipart::set_checksums!(c, a.checksums.clone());
        out.checksum = Some(c);
    }
    // Single-part objects have no parts to list, as in S3.
    let parts = &version.manifest.parts;
    if has(ObjectAttributes::OBJECT_PARTS) && !parts.is_empty() {
        let after: Vec<_> = parts
            .iter()
            .filter(|p| i64::from(p.part_number) > i64::from(marker))
            .collect();
        let page: Vec<_> = after.iter().take(max as usize).collect();
        let truncated = after.len() > page.len();
        out.object_parts = Some(GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max),
            part_number_marker: Some(marker),
            next_part_number_marker: page.last().and_then(|p| i32::try_from(p.part_number).ok()),
            total_parts_count: i32::try_from(parts.len()).ok(),
            parts: Some(
                page.iter()
                    .map(|p| ObjectPart {
                        part_number: i32::try_from(p.part_number).ok(),
                        size: i64::try_from(p.size).ok(),
                        ..Default::default()
                    })
                    .collect(),
            ),
        });
    }
    Ok(S3Response::new(out))
}

/// GetObjectAttributes answers the ETag without quotes (unlike every other
/// ETag S3 sends); s3s always quotes it, so its small XML body is rewritten.
pub(super) async fn unquote_etag(res: http::Response<s3s::Body>) -> http::Response<s3s::Body> {
    use http_body_util::BodyExt;
    let (parts, body) = res.into_parts();
    let Ok(collected) = body.collect().await else {
        return http::Response::from_parts(parts, s3s::Body::empty());
    };
    let bytes = collected.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let fixed = ["&quot;", "\""].iter().fold(text.into_owned(), |t, q| {
        match (t.find("<ETag>"), t.find("</ETag>")) {
            (Some(a), Some(b)) if a < b => {
                let inner = &t[a + 6..b];
                let bare = inner.strip_prefix(q).and_then(|i| i.strip_suffix(q));
                match bare {
                    Some(v) => format!("{}<ETag>{v}</ETag>{}", &t[..a], &t[b + 7..]),
                    None => t,
                }
            }
            _ => t,
        }
    });
    let mut parts = parts;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, s3s::Body::from(fixed))
}
