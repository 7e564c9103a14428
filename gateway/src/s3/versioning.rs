//! PutBucketVersioning, GetBucketVersioning, ListObjectVersions.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{etag, timestamp, url_encode};
use super::errors::IntoS3;
use crate::engine::VersionListParams;
use crate::meta::Versioning;

const DEFAULT_MAX_KEYS: i32 = 1000;

pub async fn put_bucket_versioning(
    s: &DoozS3,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let c = &i.versioning_configuration;
    let status = match c.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        Some(other) => {
            return Err(s3_error!(
                MalformedXML,
                "versioning status must be Enabled or Suspended, not {other}"
            ));
        }
        None => {
            return Err(s3_error!(
                MalformedXML,
                "the versioning configuration needs a Status (Enabled or Suspended)"
            ));
        }
    };
    let mfa_delete = c
        .mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        || i.mfa.is_some();
    s.engine
        .put_bucket_versioning(&who, &i.bucket, status, mfa_delete)
        .await
        .s3()?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub async fn get_bucket_versioning(
    s: &DoozS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let who = s.principal(&req).await?;
    let v = s
        .engine
        .get_bucket_versioning(&who, &req.input.bucket)
        .await
        .s3()?;
    let status = match v {
        // A bucket that never had versioning answers without a Status.
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(BucketVersioningStatus::from_static),
        mfa_delete: None,
    }))
}

pub async fn list_object_versions(
    s: &DoozS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let url = super::list::url_mode(i.encoding_type.as_ref())?;
    let enc = |v: &str| if url { url_encode(v) } else { v.to_owned() };
    let params = VersionListParams {
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone(),
        key_marker: i.key_marker.clone().filter(|k| !k.is_empty()),
        version_id_marker: i.version_id_marker.clone().filter(|v| !v.is_empty()),
        max_keys: super::list::max_keys(i.max_keys)?,
    };
    let (_, out) = s
        .engine
        .list_object_versions(&who, &i.bucket, &params)
        .await
        .s3()?;
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in out.entries {
        // "null" shows as such in version listings, as in S3.
        let version_id = Some(v.version_id);
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(v.is_latest),
                key: Some(enc(&v.key)),
                last_modified: Some(timestamp(v.created_at)),
                owner: Some(owner(&who)),
                version_id,
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(etag(&v.etag)),
                is_latest: Some(v.is_latest),
                key: Some(enc(&v.key)),
                last_modified: Some(timestamp(v.created_at)),
                owner: Some(owner(&who)),
                size: i64::try_from(v.size).ok(),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id,
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(i.bucket.clone()),
        prefix: Some(enc(&params.prefix)),
        delimiter: i.delimiter.as_deref().map(enc),
        key_marker: Some(enc(i.key_marker.as_deref().unwrap_or_default())),
        version_id_marker: Some(i.version_id_marker.clone().unwrap_or_default()),
        max_keys: Some(i.max_keys.unwrap_or(DEFAULT_MAX_KEYS)),
        is_truncated: Some(out.truncated),
        next_key_marker: out.next_key_marker.as_deref().map(enc),
        next_version_id_marker: out.next_version_id_marker,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: Some(
            out.common_prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect(),
        ),
        encoding_type: i.encoding_type.clone(),
        ..Default::default()
    }))
}

fn owner(who: &crate::engine::Principal) -> Owner {
    Owner {
        id: Some(who.tenant_id.to_string()),
        display_name: Some(who.access_key.clone()),
    }
}
