//! Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, and the
//! tagging headers of writes (`x-amz-tagging`, `x-amz-tagging-directive`)
//! and reads (`x-amz-tagging-count`).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::errors::IntoS3;
use crate::engine::{TagTarget, parse_tagging_header, validate_tags};
use crate::meta::Tags;

/// The tag set of a Tagging document, checked.
fn tags_of(t: Tagging, target: TagTarget) -> S3Result<Tags> {
    let pairs = t.tag_set.into_iter().map(|t| (t.key, t.value)).collect();
    validate_tags(pairs, target).s3()
}

fn tag_set(tags: Tags) -> TagSet {
    tags.into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// The tags of an `x-amz-tagging` header (none without one).
pub(super) fn header_tags(h: Option<&str>) -> S3Result<Tags> {
    h.map(parse_tagging_header)
        .transpose()
        .s3()
        .map(Option::unwrap_or_default)
}

/// CopyObject's tags: None keeps the source's (COPY, the default), Some
/// replaces them with the request's `x-amz-tagging` (REPLACE).
pub(super) fn copy_tags(
    directive: Option<&TaggingDirective>,
    header: Option<&str>,
) -> S3Result<Option<Tags>> {
    match directive.map(TaggingDirective::as_str) {
        None | Some(TaggingDirective::COPY) => Ok(None),
        Some(TaggingDirective::REPLACE) => header_tags(header).map(Some),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Unknown tagging directive {other}: use COPY or REPLACE"
        )),
    }
}

/// `x-amz-tagging-count` of a GET or HEAD: only when the version has tags.
pub(super) fn tag_count(tags: &Tags) -> Option<i32> {
    (!tags.is_empty()).then(|| i32::try_from(tags.len()).unwrap_or(i32::MAX))
}

pub async fn put_object_tagging(
    s: &DoozS3,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let tags = tags_of(i.tagging, TagTarget::Object)?;
    let version_id = s
        .engine
        .set_object_tags(&who, &i.bucket, &i.key, i.version_id.as_deref(), &tags)
        .await
        .s3()?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub async fn get_object_tagging(
    s: &DoozS3,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let (version_id, tags) = s
        .engine
        .object_tags(&who, &i.bucket, &i.key, i.version_id.as_deref())
        .await
        .s3()?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(tags),
        version_id,
    }))
}

pub async fn delete_object_tagging(
    s: &DoozS3,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let version_id = s
        .engine
        .set_object_tags(
            &who,
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            &Tags::new(),
        )
        .await
        .s3()?;
    let mut resp = S3Response::new(DeleteObjectTaggingOutput { version_id });
    // S3 answers DeleteObjectTagging with 204 No Content.
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}

pub async fn put_bucket_tagging(
    s: &DoozS3,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let tags = tags_of(i.tagging, TagTarget::Bucket)?;
    s.engine
        .set_bucket_tags(&who, &i.bucket, Some(&tags))
        .await
        .s3()?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub async fn get_bucket_tagging(
    s: &DoozS3,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let who = s.principal(&req).await?;
    let tags = s.engine.bucket_tags(&who, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: tag_set(tags),
    }))
}

pub async fn delete_bucket_tagging(
    s: &DoozS3,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let who = s.principal(&req).await?;
    s.engine
        .set_bucket_tags(&who, &req.input.bucket, None)
        .await
        .s3()?;
    let mut resp = S3Response::new(DeleteBucketTaggingOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}
