//! Shared pieces of the gateway's integration tests: real peers and clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use dooz_conformance::Seaweed;

pub mod gateway;
pub mod pg;

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
        secret_access_key: sw.secret_key.clone(),
        prefix: String::new(),
        virtual_hosted: false,
        retry: dooz_gateway::store::RetrySettings {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(3),
            connect_timeout: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(60),
        },
        create_only: true,
    })
}
