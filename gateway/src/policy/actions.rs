//! Which IAM action each S3 operation needs, and on what: the bucket ARN,
//! the object ARN, or `*` (ListBuckets). Follows AWS's "Actions, resources
//! and condition keys for Amazon S3"; the `…Version…` actions apply when the
//! request names a version.

/// What an action is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// No bucket: `*`.
    Service,
    Bucket,
    Object,
}

/// The action an s3s operation (by its name) needs; `versioned` when the
/// request carries `versionId`.
pub fn action_for(op: &str, versioned: bool) -> (&'static str, Level) {
    use Level::*;
    let v = |plain: &'static str, version: &'static str| if versioned { version } else { plain };
    match op {
        "ListBuckets" => ("s3:ListAllMyBuckets", Service),
        "CreateBucket" => ("s3:CreateBucket", Bucket),
        "DeleteBucket" => ("s3:DeleteBucket", Bucket),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => ("s3:ListBucket", Bucket),
        "ListObjectVersions" => ("s3:ListBucketVersions", Bucket),
        "ListMultipartUploads" => ("s3:ListBucketMultipartUploads", Bucket),
        "GetBucketLocation" => ("s3:GetBucketLocation", Bucket),
        "GetBucketVersioning" => ("s3:GetBucketVersioning", Bucket),
        "PutBucketVersioning" => ("s3:PutBucketVersioning", Bucket),
        "GetBucketTagging" => ("s3:GetBucketTagging", Bucket),
        "PutBucketTagging" | "DeleteBucketTagging" => ("s3:PutBucketTagging", Bucket),
        "GetBucketLifecycleConfiguration" | "GetBucketLifecycle" => {
            ("s3:GetLifecycleConfiguration", Bucket)
        }
        "PutBucketLifecycleConfiguration" | "PutBucketLifecycle" | "DeleteBucketLifecycle" => {
            ("s3:PutLifecycleConfiguration", Bucket)
        }
        "GetObjectLockConfiguration" => ("s3:GetBucketObjectLockConfiguration", Bucket),
        "PutObjectLockConfiguration" => ("s3:PutBucketObjectLockConfiguration", Bucket),
        "GetBucketPolicy" => ("s3:GetBucketPolicy", Bucket),
        "PutBucketPolicy" => ("s3:PutBucketPolicy", Bucket),
        "DeleteBucketPolicy" => ("s3:DeleteBucketPolicy", Bucket),
        "GetBucketPolicyStatus" => ("s3:GetBucketPolicyStatus", Bucket),
        "GetPublicAccessBlock" => ("s3:GetBucketPublicAccessBlock", Bucket),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
            ("s3:PutBucketPublicAccessBlock", Bucket)
        }
        "GetBucketAcl" => ("s3:GetBucketAcl", Bucket),
        "PutBucketAcl" => ("s3:PutBucketAcl", Bucket),
        "GetBucketCors" => ("s3:GetBucketCORS", Bucket),
        "PutBucketCors" | "DeleteBucketCors" => ("s3:PutBucketCORS", Bucket),
        "GetBucketEncryption" => ("s3:GetEncryptionConfiguration", Bucket),
        "PutBucketEncryption" | "DeleteBucketEncryption" => {
            ("s3:PutEncryptionConfiguration", Bucket)
        }
        "GetBucketOwnershipControls" => ("s3:GetBucketOwnershipControls", Bucket),
        "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => {
            ("s3:PutBucketOwnershipControls", Bucket)
        }
        "DeleteObjects" => ("s3:DeleteObject", Bucket),
        "GetObject" | "HeadObject" | "GetObjectAttributes" => {
            (v("s3:GetObject", "s3:GetObjectVersion"), Object)
        }
        "PutObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "PostObject" => ("s3:PutObject", Object),
        "AbortMultipartUpload" => ("s3:AbortMultipartUpload", Object),
        "ListParts" => ("s3:ListMultipartUploadParts", Object),
        "DeleteObject" => (v("s3:DeleteObject", "s3:DeleteObjectVersion"), Object),
        "GetObjectTagging" => (
            v("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
            Object,
        ),
        "PutObjectTagging" => (
            v("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
            Object,
        ),
        "DeleteObjectTagging" => (
            v("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
            Object,
        ),
        "GetObjectRetention" => ("s3:GetObjectRetention", Object),
        "PutObjectRetention" => ("s3:PutObjectRetention", Object),
        "GetObjectLegalHold" => ("s3:GetObjectLegalHold", Object),
        "PutObjectLegalHold" => ("s3:PutObjectLegalHold", Object),
        "GetObjectAcl" => (v("s3:GetObjectAcl", "s3:GetObjectVersionAcl"), Object),
        "PutObjectAcl" => (v("s3:PutObjectAcl", "s3:PutObjectVersionAcl"), Object),
        "RestoreObject" => ("s3:RestoreObject", Object),
        // Operations Dooz does not serve answer NotImplemented after this
        // check; they need a permission no built-in read policy grants.
        _ => ("s3:Unsupported", Bucket),
    }
}
