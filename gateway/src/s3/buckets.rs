//! CreateBucket, DeleteBucket, HeadBucket, ListBuckets, GetBucketLocation.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::DoozS3;
use super::convert::timestamp;
use super::errors::IntoS3;

pub async fn create_bucket(
    s: &DoozS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    if let Some(lc) = i
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        && lc.as_str() != s.region
        && !(lc.as_str().is_empty() && s.region == "us-east-1")
    {
        return Err(s3_error!(
            InvalidLocationConstraint,
            "this endpoint serves region {}, not {}",
            s.region,
            lc.as_str()
        ));
    }
    let object_lock = i.object_lock_enabled_for_bucket.unwrap_or(false);
    s.engine
        .create_bucket(&who, &i.bucket, object_lock)
        .await
        .s3()?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", i.bucket)),
    }))
}

pub async fn delete_bucket(
    s: &DoozS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let who = s.principal(&req).await?;
    s.engine.delete_bucket(&who, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub async fn head_bucket(
    s: &DoozS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let who = s.principal(&req).await?;
    s.engine.head_bucket(&who, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(s.region.clone()),
        ..Default::default()
    }))
}

/// S3's bounds on `max-buckets`; without it a page holds the most.
const MAX_BUCKETS: i32 = 10_000;

pub async fn list_buckets(
    s: &DoozS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let limit = match i.max_buckets {
        None => MAX_BUCKETS,
        Some(n) if (1..=MAX_BUCKETS).contains(&n) => n,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and {MAX_BUCKETS}"
            ));
        }
    };
    let after = match &i.continuation_token {
        Some(t) => Some(
            B64.decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?,
        ),
        None => None,
    };
    let prefix = i.prefix.clone().unwrap_or_default();
    let page = s
        .engine
        .list_buckets(&who, &prefix, after.as_deref(), limit as usize)
        .await
        .s3()?;
    let next = page
        .truncated
        .then(|| page.items.last().map(|b| B64.encode(&b.name)))
        .flatten();
    Ok(S3Response::new(ListBucketsOutput {
        continuation_token: next,
        buckets: Some(
            page.items
                .into_iter()
                .map(|b| Bucket {
                    name: Some(b.name),
                    creation_date: Some(timestamp(b.created_at)),
                    bucket_region: Some(s.region.clone()),
                })
                .collect(),
        ),
        owner: Some(Owner {
            id: Some(who.tenant_id.to_string()),
            display_name: Some(who.access_key.clone()),
        }),
        prefix: req.input.prefix.clone(),
    }))
}

pub async fn get_bucket_location(
    s: &DoozS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let who = s.principal(&req).await?;
    s.engine.head_bucket(&who, &req.input.bucket).await.s3()?;
    // S3 reports us-east-1 as an empty constraint.
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: (s.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(s.region.clone())),
    }))
}
