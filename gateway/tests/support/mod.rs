//! Shared pieces of the gateway's integration tests: real peers and clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use dooz_conformance::Seaweed;

pub mod fuzz;
pub mod gateway;
pub mod metrics;
pub mod pg;
pub mod raw;

/// An aws-sdk-s3 client for a local endpoint (path style, static keys).
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let creds = Credentials::new(access_key, secret_key, None, None, "dooz-tests");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

/// A running SeaweedFS with one bucket created for packs.
pub async fn seaweed_with_bucket(bucket: &str) -> Seaweed {
    let sw = tokio::task::spawn_blocking(Seaweed::start)
        .await
        .expect("join")
        .expect("SeaweedFS starts");
    let client = s3_client(&sw.endpoint(), &sw.access_key, &sw.secret_key);
    let mut last = None;
    for _ in 0..50 {
        match client.create_bucket().bucket(bucket).send().await {
            Ok(_) => return sw,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("creating bucket {bucket} on SeaweedFS: {last:?}");
}

pub fn seaweed_backend(sw: &Seaweed, bucket: &str) -> dooz_gateway::store::BackendConfig {
    dooz_gateway::store::BackendConfig::S3(dooz_gateway::store::S3BackendConfig {
        endpoint: sw.endpoint(),
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        access_key_id: sw.access_key.clone(),
        secret_access_key: sw.secret_key.clone().into(),
        prefix: String::new(),
        virtual_hosted: false,
        retry: dooz_gateway::store::RetrySettings {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(3),
            connect_timeout: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(60),
        },
        create_only: true,
        ca_file: None,
    })
}

/// The S3 error code of a failed SDK call, or `<status>` when the answer has
/// no code (HEAD, 304).
pub fn code<E, R>(r: Result<R, aws_sdk_s3::error::SdkError<E>>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => match e.as_service_error() {
            Some(s) if s.code().is_some() => s.code().unwrap_or_default().to_owned(),
            _ => format!(
                "<{}>",
                e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
            ),
        },
    }
}

/// PutBucketVersioning with this status.
pub async fn put_versioning(
    c: &Client,
    bucket: &str,
    status: aws_sdk_s3::types::BucketVersioningStatus,
) -> Result<
    aws_sdk_s3::operation::put_bucket_versioning::PutBucketVersioningOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::put_bucket_versioning::PutBucketVersioningError,
    >,
> {
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(status)
                .build(),
        )
        .send()
        .await
}

/// PUTs a body; returns the ETag.
pub async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) -> String {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .unwrap_or_default()
}

/// GETs a whole object.
pub async fn get(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .to_vec()
}

/// GETs part `n` of an object (`?partNumber=`).
pub async fn get_part(c: &Client, bucket: &str, key: &str, n: i32) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .part_number(n)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} part {n}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .to_vec()
}

/// Starts a multipart upload and uploads `body` in parts of `part_size`
/// bytes; returns the upload id and the parts to complete it with. Errors
/// are text, for callers that expect them (a server killed under them).
pub async fn upload_parts(
    c: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    part_size: usize,
) -> Result<(String, Vec<aws_sdk_s3::types::CompletedPart>), String> {
    let id = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("create upload for {key}: {e:?}"))?
        .upload_id
        .ok_or("no upload id")?;
    let mut parts = Vec::new();
    for (i, piece) in body.chunks(part_size).enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(aws_sdk_s3::primitives::ByteStream::from(piece.to_vec()))
            .send()
            .await
            .map_err(|e| format!("part {n} of {key}: {e:?}"))?;
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag)
                .build(),
        );
    }
    Ok((id, parts))
}

/// Completes an upload with these parts.
pub async fn complete_upload(
    c: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
) -> Result<(), String> {
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("complete {key}: {e:?}"))
}

/// `body` as a multipart upload in parts of `part_size` bytes.
pub async fn put_in_parts(
    c: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    part_size: usize,
) -> Result<(), String> {
    let (id, parts) = upload_parts(c, bucket, key, body, part_size).await?;
    complete_upload(c, bucket, key, &id, parts).await
}

/// Incompressible bytes, reproducible from a seed (xorshift).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
