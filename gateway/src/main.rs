//! `dooz`: the S3 gateway and its operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dooz_gateway::admin::cli::{self, AdminCommand, KeysCommand, RemoteArgs};
use dooz_gateway::config::Config;

/// Dooz: an S3-compatible gateway that chunks, deduplicates, compresses and
/// encrypts objects before they reach a local directory or an S3 backend.
///
/// Configuration comes from built-in defaults, then the TOML file given with
/// --config, then DOOZ_* environment variables (nested keys joined with "__",
/// e.g. DOOZ_CHUNKING__AVG_SIZE), then these flags.
#[derive(Parser)]
#[command(name = "dooz", version, propagate_version = true)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "DOOZ_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: embedded metadata, local packs and the root key [default: ./dooz-data].
    #[arg(long, global = true, env = "DOOZ_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata store: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir].
    #[arg(long, global = true, env = "DOOZ_META", value_name = "URL")]
    meta: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the S3 endpoint and the admin endpoint (/metrics, /health/live, /health/ready).
    ///
    /// On first start it creates the root tenant and an admin access key and
    /// prints them once (or uses DOOZ_ROOT_ACCESS_KEY / DOOZ_ROOT_SECRET_KEY).
    /// SIGTERM or Ctrl-C stops accepting, lets in-flight requests finish and exits.
    Serve {
        /// S3 endpoint address [default: 127.0.0.1:9000].
        #[arg(long, env = "DOOZ_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Admin endpoint address [default: 127.0.0.1:9001].
        #[arg(long, env = "DOOZ_ADMIN_LISTEN", value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
    },
    /// Manage tenants, users (access keys), buckets and the collector: in the
    /// metadata store, or with --endpoint through a gateway's admin API.
    ///
    /// Locally each command is recorded in the audit log as `cli:<user>`;
    /// through the API the gateway records it as `api:token`.
    Admin {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Key lifecycle: rotate KEKs (re-wrap tenant master keys), start encryption epochs.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log: compliance export, chain verification, retention.
    ///
    /// Every S3 request that changes something and every admin, keys and
    /// audit command is recorded (who, what, when, from where, result) in a
    /// hash-chained table in the metadata store.
    Audit {
        #[command(subcommand)]
        command: dooz_gateway::audit::cli::AuditCommand,
    },
    /// Check metadata consistency: refcounts recomputed from manifests, pack
    /// accounting, and that every referenced pack exists on its backend.
    /// Read-only; exits non-zero on any inconsistency.
    Fsck {
        /// Also read every pack's index from the backend and check it opens.
        #[arg(long)]
        read_packs: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reclaim space once: delete zombie chunks (unreferenced for longer than
    /// [gc] grace), compact packs whose live bytes fell below
    /// [gc] compact_threshold, delete packs nothing references, and sweep
    /// orphan packs and staging files that failed uploads left behind.
    ///
    /// Safe while gateways serve: only one collector runs at a time (exit
    /// code 3 when another holds the lease), and nothing an upload in flight
    /// may still use is touched. Progress goes to stderr, the summary to
    /// stdout. `dooz serve` runs the same collector every [gc] interval.
    Gc {
        /// Report what a run would reclaim; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lifecycle rules: run a pass now, or show each bucket's last pass.
    ///
    /// `dooz serve` runs passes every [lifecycle] interval; buckets get
    /// their rules through S3's PutBucketLifecycleConfiguration.
    Lifecycle {
        #[command(subcommand)]
        command: dooz_gateway::admin::lifecycle::LifecycleCommand,
    },
    /// Print the effective configuration (defaults, file, environment, flags) as TOML.
    Config,
    /// Load-test S3 endpoints side by side: large-object PUT/GET (random and
    /// compressible), 100 KiB PUT/GET at concurrency 16 with p50/p99, the
    /// backend bytes a 1 MiB edit of a large object costs, and server peak
    /// RSS; prints each target's ratio to the best baseline. Needs no Dooz
    /// configuration. scripts/bench runs it against Dooz, SeaweedFS and
    /// `rclone serve s3`.
    Bench(dooz_gateway::bench::BenchArgs),
}

fn load_config(
    cli: &Cli,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
) -> Result<Config, String> {
    let mut cfg = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(m) = &cli.meta {
        cfg.meta = m.clone();
    }
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(a) = admin {
        cfg.admin_listen = a;
    }
    cfg.finish().map_err(|e| e.to_string())
}

/// glibc's malloc raises its mmap threshold each time a large mmapped buffer
/// is freed, after which chunk and pack buffers (4–21 MiB) come from its
/// arenas and stay there fragmented: 8 concurrent 1 GiB uploads peaked at
/// 825 MiB RSS. With the threshold pinned at 8 MiB, pack buffers are mapped
/// and unmapped whole and the same load peaks at ~440 MiB (docs/BENCHMARKS.md).
/// glibc reads the setting only from the environment at start-up, so `serve`
/// re-executes itself once with it set; an operator's own value wins.
const MALLOC_THRESHOLD_VAR: &str = "MALLOC_MMAP_THRESHOLD_";
const MALLOC_THRESHOLD: &str = "8388608";

fn pin_malloc_threshold() {
    use std::os::unix::process::CommandExt;
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os(MALLOC_THRESHOLD_VAR).is_some()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // `exec` returns only if it failed; then run on as we are.
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(MALLOC_THRESHOLD_VAR, MALLOC_THRESHOLD)
        .exec();
    eprintln!("dooz: could not re-execute with {MALLOC_THRESHOLD_VAR} set ({err}); continuing");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve { .. }) {
        pin_malloc_threshold();
    }
    let cli = match cli.command {
        Command::Bench(args) => return bench(args),
        // Through a gateway's admin API: no configuration, no metadata store.
        Command::Admin { remote, command } if remote.endpoint.is_some() => {
            return admin_remote(remote, command);
        }
        command => Cli { command, ..cli },
    };
    let (listen, admin) = match &cli.command {
        Command::Serve {
            listen,
            admin_listen,
        } => (*listen, *admin_listen),
        _ => (None, None),
    };
    let cfg = match load_config(&cli, listen, admin) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dooz: {e}");
            return ExitCode::from(2);
        }
    };
    dooz_gateway::logging::init(&cfg.log);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => cli::serve(cfg).await,
            Command::Admin { command, .. } => cli::admin(cfg, command).await,
            Command::Keys { command } => cli::keys(cfg, command).await,
            Command::Audit { command } => dooz_gateway::audit::cli::run(cfg, command).await,
            Command::Fsck { read_packs, json } => cli::fsck(cfg, read_packs, json).await,
            Command::Gc { dry_run, json } => cli::gc(cfg, dry_run, json).await,
            Command::Lifecycle { command } => {
                dooz_gateway::admin::lifecycle::run(cfg, command).await
            }
            Command::Config => cli::print_config(&cfg),
            // Handled before any configuration is loaded.
            Command::Bench(_) => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dooz: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `dooz admin --endpoint`: no configuration is loaded, no store opened.
fn admin_remote(remote: RemoteArgs, command: AdminCommand) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(cli::admin_remote(remote, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dooz: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `dooz bench` talks to endpoints only: no configuration, no data dir.
fn bench(args: dooz_gateway::bench::BenchArgs) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(dooz_gateway::bench::run(args)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dooz bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("dooz: cannot start the async runtime: {e}"))
        .ok()
}
