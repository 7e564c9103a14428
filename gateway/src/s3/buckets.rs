//! CreateBucket, DeleteBucket, HeadBucket, ListBuckets, GetBucketLocation.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

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

pub async fn list_buckets(
    s: &DoozS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let who = s.principal(&req).await?;
    let buckets = s.engine.list_buckets(&who).await.s3()?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(
            buckets
                .into_iter()
                .filter(|b| b.name.starts_with(&prefix))
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
        ..Default::default()
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
