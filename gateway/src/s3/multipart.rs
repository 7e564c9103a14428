//! CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{checksum_fields, etag, etag_condition, request_attrs, timestamp};
use super::copy::{copy_source, source_conditions};
use super::errors::IntoS3;
use super::objects::{expected_checksums, range};
use crate::engine::{
    ChecksumAlgorithm, CompleteRequest, CompletedPart, CreateMultipart, parse_part_number,
};
use crate::meta::WriteConditions;

const DEFAULT_MAX_PARTS: usize = 1000;
const DEFAULT_MAX_UPLOADS: usize = 1000;

fn algorithm(a: Option<&s3s::dto::ChecksumAlgorithm>) -> S3Result<Option<ChecksumAlgorithm>> {
    match a {
        None => Ok(None),
        Some(a) => ChecksumAlgorithm::parse(a.as_str())
            .map(Some)
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "unsupported checksum algorithm {}",
                    a.as_str()
                )
            }),
    }
}

/// Checksum fields of an output struct, filled from algorithm -> value.
macro_rules! set_checksums {
    ($out:expr, $map:expr) => {
        for (alg, v) in $map {
            use $crate::engine::ChecksumAlgorithm as A;
            match A::parse(&alg) {
                Some(A::Crc32) => $out.checksum_crc32 = Some(v),
                Some(A::Crc32c) => $out.checksum_crc32c = Some(v),
                Some(A::Crc64Nvme) => $out.checksum_crc64nvme = Some(v),
                Some(A::Sha1) => $out.checksum_sha1 = Some(v),
                Some(A::Sha256) => $out.checksum_sha256 = Some(v),
                None => {}
            }
        }
    };
}
pub(super) use set_checksums;

pub async fn create_multipart_upload(
    s: &DoozS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    if i.sse_customer_key.is_some() {
        return Err(s3_error!(NotImplemented, "SSE-C is not supported yet"));
    }
    super::encryption::check_requested(
        i.server_side_encryption.as_ref(),
        i.ssekms_key_id.as_deref(),
    )?;
    let checksum_algorithm = algorithm(i.checksum_algorithm.as_ref())?;
    let lock = super::object_lock::requested_lock(
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )?;
    let mut attrs = request_attrs!(i);
    // Kept with the upload, applied to the object at completion.
    attrs.tags = super::tagging::header_tags(i.tagging.as_deref())?;
    let upload = s
        .engine
        .create_multipart(
            &who,
            CreateMultipart {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                attrs,
                checksum_algorithm,
                checksum_type: i.checksum_type.map(|t| t.as_str().to_owned()),
                lock,
            },
        )
        .await
        .s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(upload.upload_id),
        checksum_algorithm: i.checksum_algorithm,
        checksum_type: upload.attrs.checksum_type.map(ChecksumType::from),
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    }))
}

pub async fn upload_part(
    s: &DoozS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let who = s.principal(&req).await?;
    let expected = expected_checksums(
        &req,
        req.input.content_md5.clone(),
        checksum_fields!(req.input),
    )?;
    let i = req.input;
    let part_number = parse_part_number(i.part_number).s3()?;
    let body = i
        .body
        .ok_or_else(|| s3_error!(IncompleteBody, "a request body is required"))?;
    let out = s
        .engine
        .upload_part(
            &who,
            &i.bucket,
            &i.key,
            &i.upload_id,
            part_number,
            expected,
            i.content_length.and_then(|l| u64::try_from(l).ok()),
            body,
        )
        .await
        .s3()?;
    let mut output = UploadPartOutput {
        e_tag: Some(etag(&out.etag)),
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    };
    set_checksums!(output, out.checksums);
    Ok(S3Response::new(output))
}

pub async fn upload_part_copy(
    s: &DoozS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let part_number = parse_part_number(i.part_number).s3()?;
    let conditions = source_conditions(
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    );
    let src = copy_source(&i.copy_source, conditions)?;
    let byte_range = match &i.copy_source_range {
        None => None,
        Some(r) => {
            let parsed = Range::parse(r).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "The x-amz-copy-source-range value must be of the form bytes=first-last"
                )
            })?;
            match parsed {
                Range::Int { last: Some(_), .. } => range(Some(parsed)),
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last"
                    ));
                }
            }
        }
    };
    let out = s
        .engine
        .upload_part_copy(
            &who,
            src,
            byte_range,
            &i.bucket,
            &i.key,
            &i.upload_id,
            part_number,
        )
        .await
        .s3()?;
    let mut result = CopyPartResult {
        e_tag: Some(etag(&out.etag)),
        last_modified: Some(timestamp(out.last_modified)),
        ..Default::default()
    };
    set_checksums!(result, out.checksums);
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(result),
        copy_source_version_id: out.source_version,
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    }))
}

fn part_checksums(p: &s3s::dto::CompletedPart) -> BTreeMap<String, String> {
    checksum_fields!(p)
        .into_iter()
        .filter_map(|(alg, v)| v.map(|v| (alg.as_str().to_owned(), v)))
        .collect()
}

pub async fn complete_multipart_upload(
    s: &DoozS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let parts = i
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            Ok(CompletedPart {
                part_number: parse_part_number(p.part_number.unwrap_or(0)).s3()?,
                etag: p
                    .e_tag
                    .as_ref()
                    .map(|e| e.value().to_owned())
                    .ok_or_else(|| s3_error!(InvalidPart, "every part needs its ETag"))?,
                checksums: part_checksums(p),
            })
        })
        .collect::<S3Result<Vec<_>>>()?;
    let object_checksum = checksum_fields!(i)
        .into_iter()
        .find_map(|(a, v)| v.map(|v| (a, v)));
    let out = s
        .engine
        .complete_multipart(
            &who,
            CompleteRequest {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                upload_id: i.upload_id,
                parts,
                conditions: WriteConditions {
                    if_match: i.if_match.as_ref().map(etag_condition),
                    if_none_match: i.if_none_match.as_ref().map(etag_condition),
                },
                object_checksum,
                object_size: i.mpu_object_size.and_then(|n| u64::try_from(n).ok()),
            },
        )
        .await
        .s3()?;
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        e_tag: Some(etag(&out.etag)),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        checksum_type: out.checksum_type.map(ChecksumType::from),
        version_id: out.version_id,
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    };
    set_checksums!(output, out.checksums);
    Ok(S3Response::new(output))
}

pub async fn abort_multipart_upload(
    s: &DoozS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    s.engine
        .abort_multipart(&who, &i.bucket, &i.key, &i.upload_id)
        .await
        .s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    s: &DoozS3,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let max = match i.max_parts {
        Some(n) if n < 0 => {
            return Err(s3_error!(InvalidArgument, "max-parts must not be negative"));
        }
        Some(n) => (n as usize).min(DEFAULT_MAX_PARTS),
        None => DEFAULT_MAX_PARTS,
    };
    let after = u32::try_from(i.part_number_marker.unwrap_or(0)).unwrap_or(0);
    let (upload, page) = s
        .engine
        .list_parts(&who, &i.bucket, &i.key, &i.upload_id, after, max)
        .await
        .s3()?;
    let next = page.items.last().map(|p| p.part_number as i32);
    let parts = page
        .items
        .into_iter()
        .map(|p| {
            let mut part = Part {
                part_number: Some(p.part_number as i32),
                e_tag: Some(etag(&p.etag)),
                size: i64::try_from(p.size).ok(),
                last_modified: Some(timestamp(p.created_at)),
                ..Default::default()
            };
            set_checksums!(part, p.checksums);
            part
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        upload_id: Some(i.upload_id.clone()),
        max_parts: Some(max as i32),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: if page.truncated { next } else { None },
        is_truncated: Some(page.truncated),
        parts: Some(parts),
        checksum_algorithm: upload
            .checksum_algorithm
            .map(s3s::dto::ChecksumAlgorithm::from),
        checksum_type: upload.attrs.checksum_type.map(ChecksumType::from),
        ..Default::default()
    }))
}

pub async fn list_multipart_uploads(
    s: &DoozS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let max = match i.max_uploads {
        Some(n) if n < 0 => {
            return Err(s3_error!(
                InvalidArgument,
                "max-uploads must not be negative"
            ));
        }
        Some(n) => (n as usize).min(DEFAULT_MAX_UPLOADS),
        None => DEFAULT_MAX_UPLOADS,
    };
    let prefix = i.prefix.clone().unwrap_or_default();
    let key_marker = i.key_marker.clone().unwrap_or_default();
    // Without an upload-id marker, S3 resumes after every upload of the key marker.
    let id_marker = i
        .upload_id_marker
        .clone()
        .unwrap_or_else(|| "\u{10FFFF}".to_owned());
    let after = (!key_marker.is_empty()).then_some((key_marker.as_str(), id_marker.as_str()));
    let page = s
        .engine
        .list_multipart_uploads(&who, &i.bucket, &prefix, after, max)
        .await
        .s3()?;
    let last = page
        .items
        .last()
        .map(|u| (u.key.clone(), u.upload_id.clone()));
    let uploads = page
        .items
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp(u.created_at)),
            checksum_algorithm: u.checksum_algorithm.map(s3s::dto::ChecksumAlgorithm::from),
            checksum_type: u.attrs.checksum_type.map(ChecksumType::from),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket.clone()),
        prefix: i.prefix.clone(),
        key_marker: i.key_marker.clone(),
        upload_id_marker: i.upload_id_marker.clone(),
        max_uploads: Some(max as i32),
        is_truncated: Some(page.truncated),
        next_key_marker: page
            .truncated
            .then(|| last.as_ref().map(|l| l.0.clone()))
            .flatten(),
        next_upload_id_marker: page
            .truncated
            .then(|| last.as_ref().map(|l| l.1.clone()))
            .flatten(),
        uploads: Some(uploads),
        ..Default::default()
    }))
}
