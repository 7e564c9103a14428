//! Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus and
//! Put/Get/DeletePublicAccessBlock. A bucket policy is parsed and checked
//! before it is stored (MalformedPolicy says where it is wrong), must name
//! only its own bucket's resources, and is refused while Block Public
//! Access's BlockPublicPolicy is on and the policy is public.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::errors::IntoS3;
use crate::meta::PublicAccessBlock;
use crate::policy::{Kind, PolicyDocument, is_public};

fn no_policy(bucket: &str) -> S3Error {
    s3_error!(
        NoSuchBucketPolicy,
        "The bucket policy does not exist: {bucket}"
    )
}

/// Every Resource / NotResource of a bucket policy names this bucket or
/// its objects (or is `*`).
fn check_resources(doc: &PolicyDocument, bucket: &str) -> S3Result<()> {
    let arn = format!("arn:aws:s3:::{bucket}");
    for (i, s) in doc.statements.iter().enumerate() {
        for r in &s.resource.values {
            let ours = r == "*"
                || r == &arn
                || r.strip_prefix(arn.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if !ours {
                return Err(s3_error!(
                    MalformedPolicy,
                    "Statement[{i}].Resource: Policy has invalid resource {r}: a bucket policy names only {arn} and {arn}/…"
                ));
            }
        }
    }
    Ok(())
}

pub async fn put_bucket_policy(
    s: &DoozS3,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let doc = PolicyDocument::parse(&i.policy, Kind::Bucket)
        .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
    check_resources(&doc, &i.bucket)?;
    let access = s.engine.bucket_access(&who, &i.bucket).await.s3()?;
    let block = access
        .public_access_block
        .unwrap_or_else(|| s.buckets.default_block());
    if block.block_public_policy && is_public(&doc) {
        return Err(s3_error!(
            AccessDenied,
            "Access Denied: Block Public Access (BlockPublicPolicy) refuses a public bucket policy"
        ));
    }
    s.engine
        .set_bucket_policy(&who, &i.bucket, Some(&i.policy))
        .await
        .s3()?;
    s.buckets.forget(&i.bucket);
    let mut resp = S3Response::new(PutBucketPolicyOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}

pub async fn get_bucket_policy(
    s: &DoozS3,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let who = s.principal(&req).await?;
    let bucket = &req.input.bucket;
    let access = s.engine.bucket_access(&who, bucket).await.s3()?;
    let policy = access.policy.ok_or_else(|| no_policy(bucket))?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

pub async fn delete_bucket_policy(
    s: &DoozS3,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let who = s.principal(&req).await?;
    let bucket = &req.input.bucket;
    s.engine.set_bucket_policy(&who, bucket, None).await.s3()?;
    s.buckets.forget(bucket);
    let mut resp = S3Response::new(DeleteBucketPolicyOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}

pub async fn get_bucket_policy_status(
    s: &DoozS3,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let who = s.principal(&req).await?;
    let bucket = &req.input.bucket;
    let access = s.engine.bucket_access(&who, bucket).await.s3()?;
    let text = access.policy.ok_or_else(|| no_policy(bucket))?;
    let doc = PolicyDocument::parse(&text, Kind::Bucket).map_err(|e| {
        s3_error!(
            InternalError,
            "the stored bucket policy does not parse: {e}"
        )
    })?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(is_public(&doc)),
        }),
    }))
}

fn to_config(p: PublicAccessBlock) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration {
        block_public_acls: Some(p.block_public_acls),
        block_public_policy: Some(p.block_public_policy),
        ignore_public_acls: Some(p.ignore_public_acls),
        restrict_public_buckets: Some(p.restrict_public_buckets),
    }
}

pub async fn put_public_access_block(
    s: &DoozS3,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let c = i.public_access_block_configuration;
    let pab = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    s.engine
        .set_public_access_block(&who, &i.bucket, Some(&pab))
        .await
        .s3()?;
    s.buckets.forget(&i.bucket);
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

/// The bucket's own configuration; without one, the gateway default when
/// it blocks anything (that is what applies), else
/// NoSuchPublicAccessBlockConfiguration as S3 answers.
pub async fn get_public_access_block(
    s: &DoozS3,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let who = s.principal(&req).await?;
    let bucket = &req.input.bucket;
    let access = s.engine.bucket_access(&who, bucket).await.s3()?;
    let default = s.buckets.default_block();
    let pab = match access.public_access_block {
        Some(p) => p,
        None if default != PublicAccessBlock::default() => default,
        None => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                format!("The public access block configuration was not found: {bucket}"),
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(e);
        }
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(to_config(pab)),
    }))
}

pub async fn delete_public_access_block(
    s: &DoozS3,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let who = s.principal(&req).await?;
    let bucket = &req.input.bucket;
    s.engine
        .set_public_access_block(&who, bucket, None)
        .await
        .s3()?;
    s.buckets.forget(bucket);
    let mut resp = S3Response::new(DeletePublicAccessBlockOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}
