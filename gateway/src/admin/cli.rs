//! The `dooz` subcommands behind main.rs: serve, admin, fsck, config.

use std::process::ExitCode;

use clap::Subcommand;

use crate::audit::cli::{CommandAudit, finish_command};
use crate::config::Config;
use crate::jobs::{Collector, GcReport};
use crate::server::{self, Context};
use crate::tenancy;

pub use super::commands::{admin, admin_remote};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Tenants: the unit of key ownership and deduplication.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users: access keys that belong to one tenant and carry a policy.
    #[command(subcommand)]
    User(UserCommand),
    /// Buckets.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Named access policies of a tenant (IAM JSON), attachable to users.
    #[command(subcommand)]
    Policy(super::policies::PolicyCommand),
    /// Logical vs stored bytes: objects, unique chunks (plaintext and as
    /// stored), packs; the dedup and compression ratios follow from them.
    /// Then per tenant: live bytes (frames of live chunks), dead bytes (the
    /// rest of its packs: zombie and collected chunks, lost races, pack
    /// indexes) and what `dooz gc` would reclaim.
    Usage {
        /// Only this tenant (name or id).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The collector: its status, or one run now.
    #[command(subcommand)]
    Gc(GcCommand),
    /// The configured backends, whether each answers, and which one new
    /// buckets use.
    Backends {
        #[arg(long)]
        json: bool,
    },
    /// Lifecycle passes: each bucket's last pass and backlog (what
    /// `dooz lifecycle status` shows, here also through --endpoint).
    #[command(subcommand)]
    Lifecycle(LifecycleAdminCommand),
    /// Throttling: limits of one tenant, access key or bucket that differ
    /// from the [limits] defaults, taken up by running gateways within
    /// limits.refresh_secs.
    #[command(subcommand)]
    Limits(super::limits::LimitsCommand),
}

#[derive(Subcommand)]
pub enum LifecycleAdminCommand {
    /// Each bucket with lifecycle rules: its last finished pass and what it
    /// did, and whether a pass is unfinished (where it stands).
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// Where `dooz admin` does its work: on the metadata store named by the
/// configuration (default), or through a running gateway's admin API.
#[derive(clap::Args, Clone, Default)]
pub struct RemoteArgs {
    /// A gateway's admin endpoint (e.g. https://dooz-admin:9001): run the
    /// command through its admin API; no metadata store credentials needed.
    #[arg(long, global = true, env = "DOOZ_ADMIN_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// That gateway's admin token ([admin] token); prefer DOOZ_ADMIN_TOKEN,
    /// flags show in `ps`.
    #[arg(long, global = true, env = "DOOZ_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA (or certificates) to trust for an https
    /// --endpoint, in addition to the system's roots: for gateways whose
    /// certificate a private CA issued.
    #[arg(
        long,
        global = true,
        env = "DOOZ_ADMIN_CA_FILE",
        value_name = "PEM",
        requires = "endpoint"
    )]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
pub enum GcCommand {
    /// Settings, who holds the collector's lease, the last successful run
    /// and run counts (of the process asked: the gateway with --endpoint).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// One collector run now (with --endpoint: inside that gateway), like
    /// `dooz gc`; exit code 3 when another collector holds the lease.
    Run {
        /// Report what a run would reclaim; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Add a new version to the local root keyring file; new wraps use it.
    /// Then run `dooz keys rotate` to re-wrap the tenants' master keys.
    RotateRoot,
    /// Re-wrap every tenant master key under its KEK provider's newest key
    /// version (after rotating the local root key, or the OpenBao transit key).
    /// Touches no data; batched and resumable; prints progress.
    Rotate {
        /// Only tenants wrapped by this provider ("local", "openbao").
        #[arg(long)]
        provider: Option<String>,
        /// Only tenants wrapped by this key reference.
        #[arg(long)]
        key_ref: Option<String>,
        /// Resume after this tenant id (printed by an interrupted run).
        #[arg(long)]
        resume_after: Option<String>,
        /// Tenants per batch.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Start a new encryption epoch for a tenant: new chunks use new keys,
    /// older epochs stay readable.
    NewEpoch {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
    },
    /// Show each tenant's KEK provider, key reference, KEK version and epoch.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with a fresh master key wrapped by a KEK provider.
    Create {
        name: String,
        /// KEK provider: "local" or "openbao" [default: kms.default_provider].
        #[arg(long)]
        kek_provider: Option<String>,
        /// Key reference at the provider (the OpenBao transit key name; BYOK).
        #[arg(long)]
        key_ref: Option<String>,
        /// "aes-256-gcm-siv" or "chacha20-poly1305" [default: kms.default_cipher].
        #[arg(long)]
        cipher: Option<String>,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an access key; its secret is printed once.
    Create {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// admin, read-write or read-only.
        #[arg(long, default_value = "read-write")]
        policy: String,
        /// Use this access key instead of a generated one.
        #[arg(long, requires = "secret_key")]
        access_key: Option<String>,
        /// Use this secret (prefer DOOZ_NEW_SECRET_KEY: flags show in `ps`).
        #[arg(long, env = "DOOZ_NEW_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List users (never their secrets).
    List {
        /// Only this tenant (name or id).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete an access key.
    Delete { access_key: String },
    /// The policies a user can hold (fixed roles).
    Policies {
        #[arg(long)]
        json: bool,
    },
    /// The policies attached to a user: attach, detach, list.
    #[command(subcommand)]
    Policy(super::policies::UserPolicyCommand),
    /// Whether a key may do an action on a resource, and the statement that
    /// decides (exit status 1 when denied). E.g. `dooz admin user can KEY
    /// s3:GetObject arn:aws:s3:::bucket/key`.
    Can {
        access_key: String,
        /// An S3 action, e.g. s3:PutObject.
        action: String,
        /// arn:aws:s3:::bucket or arn:aws:s3:::bucket/key (or `*`).
        resource: String,
        /// Extra condition keys, e.g. --context aws:SourceIp=10.0.0.7
        /// (repeatable).
        #[arg(long = "context", value_parser = super::policies::parse_context_pair)]
        context: Vec<(String, String)>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum BucketCommand {
    /// Create a bucket owned by a tenant.
    Create {
        name: String,
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Keep every version of every object (S3 versioning, enabled).
        #[arg(long)]
        versioning: bool,
        /// Enable S3 Object Lock (implies --versioning; permanent).
        #[arg(long)]
        object_lock: bool,
    },
    /// Make a versioned bucket's state at an instant current again: objects
    /// that existed then become current (new versions referencing the same
    /// chunks: no data is copied), objects created later get delete
    /// markers. Idempotent; refused unless versioning was enabled at that
    /// time and never suspended since. Prints each change, progress on
    /// stderr and a summary.
    Restore {
        bucket: String,
        /// The instant, RFC 3339 (e.g. 2026-03-01T12:00:00Z).
        #[arg(long)]
        at: String,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary and the changes as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the objects of a bucket, now or as it was at an instant
    /// (versioned buckets).
    Ls {
        bucket: String,
        /// The instant, RFC 3339 (e.g. 2026-03-01T12:00:00Z) [default: now].
        #[arg(long)]
        at: Option<String>,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a bucket. It must be empty unless --force, which first deletes
    /// every version, delete marker and multipart upload. A version under
    /// Object Lock (legal hold, or retention not yet expired) stops it
    /// before anything is deleted: no admin command removes locked data.
    Delete {
        bucket: String,
        #[arg(long)]
        force: bool,
    },
    /// List buckets.
    List {
        /// Only this tenant (name or id).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

type CliResult = Result<ExitCode, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub async fn serve(cfg: Config) -> CliResult {
    let ctx = Context::open(cfg).await.map_err(err)?;
    if let Some(b) = server::bootstrap(&ctx).await.map_err(err)? {
        match &b.secret_key {
            Some(secret) => println!(
                "Created the root tenant and its admin access key (shown once, store it now):\n  access key: {}\n  secret key: {}",
                b.access_key,
                secret.as_str()
            ),
            None => println!("Root admin access key {} is ready.", b.access_key),
        }
    }
    let running = server::start(ctx).await.map_err(err)?;
    println!(
        "dooz listening: s3 http://{}  admin http://{}",
        running.s3_addr, running.admin_addr
    );
    server::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn describe_keys(cmd: &KeysCommand) -> CommandAudit {
    let (action, target, tenant, detail) = match cmd {
        KeysCommand::RotateRoot => (
            "keys:rotate-root",
            "root keyring".to_owned(),
            None,
            serde_json::json!({}),
        ),
        KeysCommand::Rotate {
            provider,
            key_ref,
            resume_after,
            batch,
        } => (
            "keys:rotate",
            "tenant keys".to_owned(),
            None,
            serde_json::json!({"provider": provider, "key_ref": key_ref, "resume_after": resume_after, "batch": batch}),
        ),
        KeysCommand::NewEpoch { tenant } => (
            "keys:new-epoch",
            tenant.clone(),
            Some(tenant.clone()),
            serde_json::json!({}),
        ),
        KeysCommand::Status { .. } => ("keys:status", "-".to_owned(), None, serde_json::json!({})),
    };
    CommandAudit {
        action,
        target,
        tenant,
        detail,
    }
}

pub async fn fsck(cfg: Config, read_packs: bool, json: bool) -> CliResult {
    let ctx = Context::open(cfg).await.map_err(err)?;
    let report = crate::fsck::run(&ctx.engine, read_packs, ctx.cfg.gc.threshold_permille())
        .await
        .map_err(err)?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render());
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn print_config(cfg: &Config) -> CliResult {
    // Never print credentials: secrets serialize redacted, and so does the
    // password of the metadata URL.
    println!("{}", toml::to_string_pretty(&cfg.redacted()).map_err(err)?);
    Ok(ExitCode::SUCCESS)
}

/// Runs a key command and records it in the audit log, whatever its result.
pub async fn keys(cfg: Config, cmd: KeysCommand) -> CliResult {
    let audit = describe_keys(&cmd);
    let outcome = run_keys(cfg.clone(), cmd).await;
    let ctx = Context::open(cfg).await.map_err(err)?;
    finish_command(&ctx, audit, outcome).await
}

async fn run_keys(cfg: Config, cmd: KeysCommand) -> CliResult {
    match cmd {
        KeysCommand::RotateRoot => {
            if std::env::var_os("DOOZ_ROOT_KEY").is_some() {
                return Err(
                    "the root keyring comes from DOOZ_ROOT_KEY: add a version there (N:base64 entries) instead"
                        .into(),
                );
            }
            let path = cfg
                .kms
                .root_key_file
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join("root.key"));
            let kek = dooz_keyvault::LocalKek::open(&path).map_err(err)?;
            let v = kek.rotate().map_err(err)?;
            println!(
                "root keyring {} now wraps with version {v}; run `dooz keys rotate --provider local` next",
                path.display()
            );
        }
        KeysCommand::Rotate {
            provider,
            key_ref,
            resume_after,
            batch,
        } => {
            let ctx = Context::open(cfg).await.map_err(err)?;
            let filter = dooz_keyvault::RotationFilter { provider, key_ref };
            let mut progress = |r: &dooz_keyvault::RotationReport| {
                eprintln!(
                    "  scanned {} rewrapped {} current {} failed {} (last tenant {})",
                    r.scanned,
                    r.rewrapped,
                    r.already_current,
                    r.failed,
                    r.last_tenant.as_deref().unwrap_or("-")
                );
            };
            let report = crate::keys::rotate(
                ctx.meta.clone(),
                ctx.engine.vault(),
                filter,
                resume_after,
                batch,
                &mut progress,
            )
            .await
            .map_err(err)?;
            println!(
                "rotation done: {} tenants scanned, {} re-wrapped, {} already current, {} changed concurrently, {} failed",
                report.scanned,
                report.rewrapped,
                report.already_current,
                report.skipped_changed,
                report.failed
            );
            for (tenant, e) in &report.failures {
                println!("  failed: tenant {tenant}: {e}");
            }
            if report.failed > 0 {
                return Ok(ExitCode::from(1));
            }
        }
        KeysCommand::NewEpoch { tenant } => {
            let ctx = Context::open(cfg).await.map_err(err)?;
            let t = tenancy::find_tenant(ctx.meta.as_ref(), &tenant)
                .await
                .map_err(err)?;
            let e = crate::keys::new_epoch(ctx.meta.as_ref(), &t)
                .await
                .map_err(err)?;
            println!("tenant {} now writes with encryption epoch {e}", t.name);
        }
        KeysCommand::Status { json } => {
            let ctx = Context::open(cfg).await.map_err(err)?;
            let mut rows = Vec::new();
            for t in ctx.meta.list_tenants().await.map_err(err)? {
                let w = dooz_keyvault::WrappedTmk::from_bytes(&t.wrapped_tmk).map_err(err)?;
                rows.push((t, w));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(t, w)| serde_json::json!({"tenant": t.name, "id": t.id, "provider": w.provider, "key_ref": w.key_ref, "kek_version": w.kek_version, "epoch": t.current_epoch, "cipher": t.cipher}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!(
                    "{:<24} {:<10} {:<20} {:>11} {:>6}",
                    "TENANT", "PROVIDER", "KEY REF", "KEK VERSION", "EPOCH"
                );
                for (t, w) in rows {
                    println!(
                        "{:<24} {:<10} {:<20} {:>11} {:>6}",
                        t.name, w.provider, w.key_ref, w.kek_version, t.current_epoch
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dooz gc`: one collector run (or, with `dry_run`, the same accounting
/// without a change); progress on stderr, the summary on stdout.
pub async fn gc(cfg: Config, dry_run: bool, json: bool) -> CliResult {
    let ctx = Context::open(cfg).await.map_err(err)?;
    let collector = Collector::new(ctx.engine.clone(), ctx.cfg.gc.clone());
    let mut progress = |r: &GcReport| {
        eprintln!("gc: {}: {}", r.phase, r.summary());
    };
    let (report, failure) = match collector.run(dry_run, &mut progress).await {
        Ok(r) => (r, None),
        Err(f) => (f.report, Some(f.error)),
    };
    if json {
        let mut v = serde_json::to_value(&report).map_err(err)?;
        v["bytes_reclaimed"] = serde_json::json!(report.bytes_reclaimed());
        v["error"] = serde_json::json!(failure.as_ref().map(ToString::to_string));
        println!("{v}");
    } else {
        println!("{}", report.summary());
    }
    match failure {
        None => Ok(ExitCode::SUCCESS),
        Some(e @ crate::jobs::GcError::Busy(_)) => {
            eprintln!("dooz gc: {e}; try again later");
            Ok(ExitCode::from(3))
        }
        Some(e) => {
            eprintln!("dooz gc: run aborted: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
