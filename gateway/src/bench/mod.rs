//! `dooz bench`: the same S3 load against several endpoints in one run —
//! Dooz and its baselines (the backend directly, a plaintext proxy) — with
//! every figure and the ratio of each target to the best baseline.
//!
//! Phases run endpoint after endpoint within a phase, so a slow machine
//! moment spreads over everyone rather than hitting one endpoint's figures.

mod data;
mod load;
mod report;

use std::path::PathBuf;

use clap::Args;

pub use data::Kind;
pub use report::Figures;

/// Options of `dooz bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// An endpoint under test, NAME=URL (repeatable). Its credentials come
    /// from BENCH_<NAME>_ACCESS_KEY and BENCH_<NAME>_SECRET_KEY.
    #[arg(long = "target", value_name = "NAME=URL", required = true)]
    pub targets: Vec<String>,
    /// A baseline endpoint, NAME=URL (repeatable); credentials as for --target.
    #[arg(long = "baseline", value_name = "NAME=URL")]
    pub baselines: Vec<String>,
    /// NAME=URL of an endpoint's Dooz admin address: the delta phase reads
    /// the bytes it wrote to its backend from /metrics there.
    #[arg(long = "admin", value_name = "NAME=URL")]
    pub admins: Vec<String>,
    /// NAME=PID of an endpoint's server process: its peak RSS is reported.
    #[arg(long = "pid", value_name = "NAME=PID")]
    pub pids: Vec<String>,
    /// Size of the large objects, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub large_mib: u64,
    /// Size of the small objects, in KiB.
    #[arg(long, default_value_t = 100)]
    pub small_kib: usize,
    /// Number of small objects written and read per endpoint.
    #[arg(long, default_value_t = 1600)]
    pub small_count: u64,
    /// Requests in flight during the small-object phases.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Bytes changed in the middle of the large object for the delta phase, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub delta_kib: usize,
    /// Also PUT this many large random objects at once to each target (not
    /// the baselines; 0 = skip): memory under concurrent large uploads shows
    /// in the peak-RSS figures.
    #[arg(long, default_value_t = 0)]
    pub parallel_puts: usize,
    /// Also run this many clients at once against each target (0 = skip):
    /// half PUT distinct random objects of --mixed-mib MiB, half GET the
    /// large random object. The peak-RSS figure then shows the memory bound
    /// under mixed load (docs/BENCHMARKS.md, "Memory under mixed load").
    #[arg(long, default_value_t = 0)]
    pub mixed_clients: usize,
    /// Size of each mixed-phase PUT, in MiB.
    #[arg(long, default_value_t = 64)]
    pub mixed_mib: u64,
    /// Run only the mixed phase (after uploading the object it GETs), so
    /// the peak RSS reported is that phase's.
    #[arg(long)]
    pub only_mixed: bool,
    /// Where the input files are generated [default: a temporary directory].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Seed for the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Why a benchmark run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad argument {0}: expected NAME=VALUE")]
    Arg(String),
    #[error("endpoint {0}: set BENCH_{1}_ACCESS_KEY and BENCH_{1}_SECRET_KEY")]
    Credentials(String, String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{endpoint}: {step}: {message}")]
    S3 {
        endpoint: String,
        step: String,
        message: String,
    },
    #[error("{endpoint}: {step}: downloaded bytes differ from what was uploaded")]
    Mismatch { endpoint: String, step: String },
}

pub(crate) fn split_pair(s: &str) -> Result<(String, String), BenchError> {
    s.split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| BenchError::Arg(s.to_owned()))
}

/// Runs every phase and prints the report; returns the figures.
pub async fn run(args: BenchArgs) -> Result<Figures, BenchError> {
    let plan = load::Plan::from_args(&args)?;
    let figures = plan.run().await?;
    println!("{}", figures.table());
    if let Some(path) = &args.json {
        std::fs::write(path, figures.json()).map_err(|source| BenchError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    }
    Ok(figures)
}
