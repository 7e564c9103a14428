//! Server-side encryption in S3's terms: every object is encrypted at rest
//! (SSE-S3), so writes and reads answer `x-amz-server-side-encryption:
//! AES256`; Put/Get/DeleteBucketEncryption accept SSE-S3 and refuse SSE-KMS
//! with NotImplemented.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::errors::IntoS3;
use crate::engine::BucketEncryption;

/// What every object answers.
pub(super) fn sse() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

fn kms_refused() -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "SSE-KMS is not supported: every object is encrypted at rest with its tenant's keys (SSE-S3, AES256)"
    )
}

/// A write's `x-amz-server-side-encryption`: AES256 (or none) is what Dooz
/// does anyway; aws:kms is refused before anything is stored.
pub(super) fn check_requested(
    sse: Option<&ServerSideEncryption>,
    kms_key: Option<&str>,
) -> S3Result<()> {
    match sse.map(ServerSideEncryption::as_str) {
        None if kms_key.is_some() => Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        )),
        None => Ok(()),
        Some(ServerSideEncryption::AES256) if kms_key.is_some() => Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-aws-kms-key-id is only applicable with aws:kms"
        )),
        Some(ServerSideEncryption::AES256) => Ok(()),
        Some(ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE) => {
            Err(kms_refused())
        }
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "The encryption method specified is not supported: {other}"
        )),
    }
}

fn malformed() -> s3s::S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

pub async fn put_bucket_encryption(
    s: &DoozS3,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let [rule] =
        <[ServerSideEncryptionRule; 1]>::try_from(i.server_side_encryption_configuration.rules)
            .map_err(|_| malformed())?;
    let by_default = rule
        .apply_server_side_encryption_by_default
        .ok_or_else(malformed)?;
    match by_default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 if by_default.kms_master_key_id.is_some() => {
            return Err(s3_error!(
                InvalidArgument,
                "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
            ));
        }
        ServerSideEncryption::AES256 => {}
        ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => {
            return Err(kms_refused());
        }
        _ => return Err(malformed()),
    }
    let config = BucketEncryption {
        bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
    };
    s.engine
        .set_bucket_encryption(&who, &i.bucket, Some(config))
        .await
        .s3()?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub async fn get_bucket_encryption(
    s: &DoozS3,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let who = s.principal(&req).await?;
    let c = s
        .engine
        .get_bucket_encryption(&who, &req.input.bucket)
        .await
        .s3()?;
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
            kms_master_key_id: None,
        }),
        bucket_key_enabled: Some(c.bucket_key_enabled),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![rule],
        }),
    }))
}

pub async fn delete_bucket_encryption(
    s: &DoozS3,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let who = s.principal(&req).await?;
    s.engine
        .set_bucket_encryption(&who, &req.input.bucket, None)
        .await
        .s3()?;
    let mut resp = S3Response::new(DeleteBucketEncryptionOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}
