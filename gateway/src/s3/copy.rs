//! CopyObject (and the copy-source parsing UploadPartCopy shares).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{etag, request_attrs, timestamp};
use super::errors::IntoS3;
use super::multipart::set_checksums;
use super::objects::read_conditions;
use crate::engine::{CopySource as EngineSource, MetadataDirective, ReadConditions};
use crate::meta::WriteConditions;

pub(super) fn source_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    read_conditions(
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    )
}

pub(super) fn copy_source(src: &CopySource, conditions: ReadConditions) -> S3Result<EngineSource> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok(EngineSource {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.as_ref().map(|v| v.to_string()),
            conditions,
        }),
        _ => Err(s3_error!(
            NotImplemented,
            "access point and outpost copy sources are not supported"
        )),
    }
}

pub async fn copy_object(
    s: &DoozS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    super::encryption::check_requested(
        i.server_side_encryption.as_ref(),
        i.ssekms_key_id.as_deref(),
    )?;
    let conditions = source_conditions(
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    );
    let src = copy_source(&i.copy_source, conditions)?;
    let directive = match i.metadata_directive.as_ref().map(|d| d.as_str()) {
        None | Some("COPY") => MetadataDirective::Copy,
        Some("REPLACE") => MetadataDirective::Replace(Box::new(request_attrs!(i))),
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown metadata directive {other}"
            ));
        }
    };
    let write = WriteConditions {
        if_match: req
            .headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        if_none_match: req
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let lock = super::object_lock::requested_lock(
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )?;
    let tagging = super::tagging::copy_tags(i.tagging_directive.as_ref(), i.tagging.as_deref())?;
    let out = s
        .engine
        .copy_object(
            &who, src, &i.bucket, &i.key, directive, write, lock, tagging,
        )
        .await
        .s3()?;
    let mut result = CopyObjectResult {
        e_tag: Some(etag(&out.etag)),
        last_modified: Some(timestamp(out.last_modified)),
        checksum_type: out.checksum_type.map(ChecksumType::from),
        ..Default::default()
    };
    set_checksums!(result, out.checksums);
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        copy_source_version_id: out.source_version,
        version_id: out.version_id,
        server_side_encryption: super::encryption::sse(),
        ..Default::default()
    }))
}
