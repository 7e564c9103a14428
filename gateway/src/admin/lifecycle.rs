//! `dooz lifecycle run` and `dooz lifecycle status`.

use std::process::ExitCode;

use clap::Subcommand;
use serde::{Deserialize, Serialize};

use super::ops::AdminResult;

use crate::audit::cli::{CommandAudit, finish_command};
use crate::config::Config;
use crate::jobs::lease::LeaseTimings;
use crate::jobs::{LifecycleError, LifecycleReport, LifecycleWorker};
use crate::meta::lock::rfc3339;
use crate::server::Context;

type CliResult = Result<ExitCode, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[derive(Subcommand)]
pub enum LifecycleCommand {
    /// Run one lifecycle pass now: expire current versions (delete markers
    /// on versioned buckets), remove noncurrent versions and lone delete
    /// markers, abort old multipart uploads, as each bucket's rules say.
    ///
    /// Safe while gateways serve: one pass runs at a time (exit code 3 when
    /// another holds the lease), and a pass that stops resumes where it
    /// left off. Progress goes to stderr, the summary to stdout. Freed space
    /// leaves the backend at the next `dooz gc`.
    Run {
        /// Only this bucket.
        #[arg(long)]
        bucket: Option<String>,
        /// Report what the pass would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each bucket with lifecycle rules: its last finished pass and what it
    /// did, and whether a pass is unfinished (its backlog: where it stands).
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: Config, cmd: LifecycleCommand) -> CliResult {
    let ctx = Context::open(cfg).await.map_err(err)?;
    match cmd {
        LifecycleCommand::Run {
            bucket,
            dry_run,
            json,
        } => {
            let (outcome, report) = run_pass(&ctx, bucket.as_deref(), dry_run, json).await;
            if dry_run {
                return outcome;
            }
            // A pass that changes data is an operator action: audited.
            let audit = CommandAudit {
                action: "lifecycle:run",
                target: bucket.unwrap_or_else(|| "*".to_owned()),
                tenant: None,
                detail: report,
            };
            finish_command(&ctx, audit, outcome).await
        }
        LifecycleCommand::Status { json } => {
            print_status(&status(&ctx).await.map_err(err)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One pass; its outcome and its report (for the audit record).
async fn run_pass(
    ctx: &Context,
    bucket: Option<&str>,
    dry_run: bool,
    json: bool,
) -> (CliResult, serde_json::Value) {
    if let Some(b) = bucket {
        let refused = match (
            ctx.meta.get_bucket(b).await,
            ctx.engine.lifecycle_of(b).await,
        ) {
            (Err(e), _) => Some(err(e)),
            (_, Err(e)) => Some(err(e)),
            (Ok(None), _) => Some(format!("no such bucket: {b}")),
            (_, Ok(None)) => Some(format!("bucket {b} has no lifecycle configuration")),
            _ => None,
        };
        if let Some(why) = refused {
            return (Err(why), serde_json::Value::Null);
        }
    }
    let worker = LifecycleWorker::new(
        ctx.engine.clone(),
        ctx.cfg.lifecycle.clone(),
        LeaseTimings::from_config(&ctx.cfg.gc),
    );
    let mut progress = |b: &str, r: &LifecycleReport| {
        eprintln!("lifecycle: {b}: {}", r.summary());
    };
    let (report, failure) = match worker.run(bucket, dry_run, &mut progress).await {
        Ok(r) => (r, None),
        Err(f) => (f.report, Some(f.error)),
    };
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    v["error"] = serde_json::json!(failure.as_ref().map(ToString::to_string));
    if json {
        println!("{v}");
    } else {
        println!("{}", report.summary());
    }
    let outcome = match failure {
        None => Ok(ExitCode::SUCCESS),
        Some(e @ LifecycleError::Busy(_)) => {
            eprintln!("dooz lifecycle run: {e}; try again later");
            Ok(ExitCode::from(3))
        }
        Some(e) => {
            eprintln!("dooz lifecycle run: pass stopped: {e}");
            Ok(ExitCode::FAILURE)
        }
    };
    (outcome, v)
}

/// One bucket with lifecycle rules: its last finished pass and whether a
/// pass is under way (its cursor: the last key fully handled).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleBucketStatus {
    pub bucket: String,
    pub rules: usize,
    pub last_finished: Option<String>,
    /// The last finished pass's summary (counts; see `LifecycleReport`).
    pub last_pass: Option<serde_json::Value>,
    pub pass_in_progress: bool,
    pub pass_started: Option<String>,
    pub cursor: Option<String>,
}

/// Every bucket with lifecycle rules, for `dooz lifecycle status`,
/// `dooz admin lifecycle status` and `GET /admin/v1/lifecycle`.
pub async fn status(ctx: &Context) -> AdminResult<Vec<LifecycleBucketStatus>> {
    let states = ctx.meta.lifecycle_states().await?;
    let mut rows = Vec::new();
    for bucket in ctx.meta.buckets_with_lifecycle().await? {
        let rules = ctx
            .engine
            .lifecycle_of(&bucket)
            .await?
            .map_or(0, |c| c.rules.len());
        let state = states.iter().find(|s| s.bucket == bucket);
        rows.push(LifecycleBucketStatus {
            bucket,
            rules,
            last_finished: state.and_then(|s| s.last_finished).map(rfc3339),
            last_pass: state
                .and_then(|s| s.last_summary.as_deref())
                .and_then(|s| serde_json::from_str(s).ok()),
            pass_in_progress: state.is_some_and(|s| s.pass_started.is_some()),
            pass_started: state.and_then(|s| s.pass_started).map(rfc3339),
            cursor: state.and_then(|s| s.cursor_key.clone()),
        });
    }
    Ok(rows)
}

/// Prints [`status`]'s rows: a table, or one JSON array.
pub fn print_status(rows: &[LifecycleBucketStatus], json: bool) -> Result<(), String> {
    if json {
        println!("{}", serde_json::to_string(rows).map_err(err)?);
        return Ok(());
    }
    println!(
        "{:<40} {:>5} {:<25} {:<12} LAST PASS",
        "BUCKET", "RULES", "LAST FINISHED", "BACKLOG"
    );
    for r in rows {
        let backlog = if r.pass_in_progress {
            format!("after {}", r.cursor.as_deref().unwrap_or("(start)"))
        } else {
            "none".to_owned()
        };
        let last = r
            .last_pass
            .as_ref()
            .and_then(|v| v.as_object())
            .map(|o| {
                format!(
                    "{} expired, {} markers added, {} noncurrent removed, {} uploads aborted, {} bytes",
                    o["objects_expired"],
                    o["delete_markers_added"],
                    o["noncurrent_versions_removed"],
                    o["uploads_aborted"],
                    o["bytes_released"]
                )
            })
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{:<40} {:>5} {:<25} {:<12} {last}",
            r.bucket,
            r.rules,
            r.last_finished.as_deref().unwrap_or("never"),
            backlog,
        );
    }
    Ok(())
}
