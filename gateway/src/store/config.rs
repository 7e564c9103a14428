//! Backend definitions as they appear in the config file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// One named backend. `[backends.NAME]` in the config file.
// Built once from the config; the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendConfig {
    /// A directory on this machine; every pack is fsynced before a write is acknowledged.
    Local { path: PathBuf },
    /// Any S3 endpoint (AWS, SeaweedFS, MinIO, ...).
    S3(S3BackendConfig),
    /// Process memory; for tests and experiments only: nothing survives a restart.
    Memory,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3BackendConfig {
    /// e.g. "http://127.0.0.1:8333"; empty means AWS for `region`.
    #[serde(default)]
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: Secret,
    /// Prepended to every pack name, e.g. "dooz/".
    #[serde(default)]
    pub prefix: String,
    /// Use virtual-hosted-style addressing instead of path style.
    #[serde(default)]
    pub virtual_hosted: bool,
    #[serde(default)]
    pub retry: RetrySettings,
    /// Send If-None-Match: * so a pack is never overwritten (turn off for
    /// endpoints that reject conditional writes).
    #[serde(default = "yes")]
    pub create_only: bool,
    /// PEM file of CA certificates trusted for an `https://` endpoint, in
    /// addition to the system's (a private CA, a self-signed test server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// How hard to retry a failing backend before giving up on a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_retries: usize,
    #[serde(with = "humantime_secs")]
    pub retry_timeout: Duration,
    #[serde(with = "humantime_secs")]
    pub connect_timeout: Duration,
    /// Whole-request timeout; large enough for a full pack on a slow link.
    #[serde(with = "humantime_secs")]
    pub request_timeout: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
        }
    }
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn yes() -> bool {
    true
}

/// Durations in the config file are given as (fractional) seconds.
pub(crate) mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
