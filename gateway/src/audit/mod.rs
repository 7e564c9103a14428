//! The audit log: who did what, when, from where, with what result, for every
//! S3 request that changes something (writes, deletes, policy and ACL changes,
//! refused attempts included) and every operator command.
//!
//! Rows live in the metadata store as a hash chain keyed by a key only the
//! gateways hold (meta/audit.rs). S3 records are appended by one writer task
//! per gateway that groups whatever requests are waiting into one transaction
//! (group commit); with `audit.s3 = "sync"` (the default) a request is answered
//! only after its record is committed. See docs/OPERATIONS.md "Audit log".

pub mod cli;
mod export;
mod s3;
mod verify;
mod writer;

use std::sync::OnceLock;
use std::time::Duration;

use dooz_keyvault::WrappedTmk;
use serde::{Deserialize, Serialize};

use crate::meta::{AuditRecord, ChainKey, MetaError};
use crate::server::{Context, ServeError};

pub use export::{Format, export};
pub use s3::{AuditSlot, S3Call};
pub use verify::{Break, VerifyReport, verify};
pub use writer::AuditLog;

/// `[audit]` in the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How S3 mutations are recorded: "sync" (answered after the record is
    /// committed), "async" (answered at once; a crash loses the records still
    /// queued), or "off". Operator commands are always recorded.
    pub s3: S3Mode,
    /// `dooz audit purge` removes rows older than this many days; 0 keeps
    /// every row.
    pub retention_days: u32,
    /// Most records one append transaction carries.
    pub max_batch: usize,
    /// Records (of waiting requests) queued before S3 requests wait for the
    /// writer: back-pressure, never loss.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            s3: S3Mode::Sync,
            retention_days: 0,
            max_batch: 512,
            queue: 4096,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum S3Mode {
    Sync,
    Async,
    Off,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: {0}")]
    Meta(#[from] MetaError),
    #[error("audit log key: {0}")]
    Key(#[from] dooz_keyvault::KeyError),
    #[error("{0}")]
    Serve(#[from] ServeError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The chain's MAC key: derived from the root tenant's master key, so it is
/// as safe as the tenants' data keys and never stored anywhere. The root
/// tenant is created first if this database has none yet.
pub async fn chain_key(ctx: &Context) -> Result<ChainKey, AuditError> {
    let root = crate::server::ensure_root_tenant(ctx).await?;
    let wrapped = WrappedTmk::from_bytes(&root.wrapped_tmk)?;
    let keys = ctx
        .engine
        .vault()
        .tenant_keys(&root.id.to_string(), &wrapped)
        .await?;
    Ok(ChainKey::new(blake3::derive_key(
        "dooz/v1 audit chain key",
        keys.meta_key().expose(),
    )))
}

/// This machine's name (the pod name in Kubernetes): the `gateway` column.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    })
}

/// Milliseconds since the Unix epoch.
fn now_millis() -> i64 {
    crate::engine::now_millis()
}

/// How long a transient append failure is retried before the records are
/// logged as lost.
const APPEND_RETRIES: &[Duration] = &[
    Duration::from_millis(50),
    Duration::from_millis(250),
    Duration::from_millis(1000),
];

/// A record with the fields every producer fills the same way.
fn record(actor: String, source: String, action: String, target: String) -> AuditRecord {
    AuditRecord {
        at: now_millis(),
        tenant_id: None,
        actor,
        source,
        action,
        target,
        result: String::new(),
        request_id: None,
        detail: None,
        gateway: host_name().to_owned(),
    }
}
