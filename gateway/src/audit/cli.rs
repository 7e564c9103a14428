//! `dooz audit …` and the records of operator commands (`dooz admin`,
//! `dooz keys`, `dooz audit purge`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::export::rfc3339;
use super::verify::parse_expect;
use super::{AuditError, Format, chain_key, record, writer};
use crate::config::Config;
use crate::meta::{AuditFilter, MetaStore};
use crate::server::Context;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the audit rows of a time range as JSON lines or CSV (compliance
    /// export). Streams: memory does not grow with the range.
    Export {
        /// First instant included: RFC 3339 (2026-01-31T00:00:00Z), a date
        /// (2026-01-31, midnight UTC) or Unix milliseconds [default: the oldest row].
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// First instant excluded, same forms [default: no end].
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Only rows of this tenant (name or id).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check the hash chain: exit 1 if a row was altered, inserted or removed.
    /// Prints the newest row's SEQ:HASH; keep it elsewhere and pass it to a
    /// later run with --expect to also detect removal of the newest rows.
    Verify {
        /// A SEQ:HASH printed by an earlier run that must still be in the chain.
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Apply retention: remove rows older than audit.retention_days (or
    /// --older-than-days). The removal itself is recorded in the chain.
    Purge {
        #[arg(long, value_name = "DAYS", conflicts_with = "before")]
        older_than_days: Option<u32>,
        /// Remove rows older than this instant instead (RFC 3339, a date or
        /// Unix milliseconds).
        #[arg(long, value_name = "TIME")]
        before: Option<String>,
    },
}

type CliResult = Result<ExitCode, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// RFC 3339, a date, or Unix milliseconds.
fn parse_time(s: &str) -> Result<i64, AuditError> {
    let bad = || {
        AuditError::Invalid(format!(
            "{s:?} is not RFC 3339, a date (YYYY-MM-DD) or Unix milliseconds"
        ))
    };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let text = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    let t = OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| bad())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

/// Who runs this command: `cli:<user>`, and from where: `cli@<host>`.
fn cli_identity() -> (String, String) {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|l| l.split_whitespace().next().map(|u| format!("uid {u}")))
                })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    (format!("cli:{user}"), format!("cli@{}", super::host_name()))
}

/// What an operator command did, for its audit record.
pub struct CommandAudit {
    /// `admin:user.create`, `keys:rotate`, ...
    pub action: &'static str,
    pub target: String,
    /// Tenant name or id the command acted on.
    pub tenant: Option<String>,
    /// Facts worth keeping (never secrets).
    pub detail: serde_json::Value,
}

/// Appends the record of a command that ran (or failed). A command whose
/// record cannot be written fails, even if its action took effect: the
/// operator must know the trail has a hole.
pub async fn record_command(
    ctx: &Context,
    audit: CommandAudit,
    outcome: &Result<ExitCode, String>,
) -> Result<(), String> {
    let result = match outcome {
        Ok(code) if *code == ExitCode::SUCCESS => "ok".to_owned(),
        Ok(_) => "failed".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let (actor, source) = cli_identity();
    record_operator(ctx, audit, actor, source, result).await
}

/// Appends the record of an operator action, whichever transport carried
/// it: `dooz` commands (actor `cli:<user>`) and admin API requests (actor
/// `api:token`, source the peer address).
pub async fn record_operator(
    ctx: &Context,
    audit: CommandAudit,
    actor: String,
    source: String,
    result: String,
) -> Result<(), String> {
    let key = chain_key(ctx).await.map_err(err)?;
    let mut r = record(actor, source, audit.action.to_owned(), audit.target);
    r.tenant_id = match &audit.tenant {
        Some(t) => crate::tenancy::find_tenant(ctx.meta.as_ref(), t)
            .await
            .ok()
            .map(|t| t.id.to_string()),
        None => None,
    };
    r.result = result;
    r.detail = Some(audit.detail.to_string());
    writer::append_now(ctx.meta.as_ref(), &key, vec![r])
        .await
        .map(drop)
        .map_err(|e| format!("the command ran, but its audit record could not be written: {e}"))
}

/// Records a command that ran and hands back its outcome; a failure to record
/// fails a command that otherwise succeeded.
pub async fn finish_command(ctx: &Context, audit: CommandAudit, outcome: CliResult) -> CliResult {
    match record_command(ctx, audit, &outcome).await {
        Ok(()) => outcome,
        Err(e) if outcome.is_ok() => Err(e),
        Err(e) => {
            eprintln!("dooz: {e}");
            outcome
        }
    }
}

pub async fn run(cfg: Config, cmd: AuditCommand) -> CliResult {
    let ctx = Context::open(cfg).await.map_err(err)?;
    match cmd {
        AuditCommand::Export {
            from,
            to,
            tenant,
            format,
            output,
        } => export(&ctx, from, to, tenant, format, output).await,
        AuditCommand::Verify { expect, json } => verify(&ctx, expect, json).await,
        AuditCommand::Purge {
            older_than_days,
            before,
        } => {
            let cutoff = match before.as_deref().map(parse_time).transpose().map_err(err)? {
                Some(t) => Some(t),
                None => match older_than_days.unwrap_or(ctx.cfg.audit.retention_days) {
                    0 => None,
                    days => Some(super::now_millis() - i64::from(days) * 86_400_000),
                },
            };
            let outcome = purge(&ctx, cutoff).await;
            let audit = CommandAudit {
                action: "audit:purge-command",
                target: "audit_log".into(),
                tenant: None,
                detail: serde_json::json!({ "before": cutoff }),
            };
            finish_command(&ctx, audit, outcome).await
        }
    }
}

async fn export(
    ctx: &Context,
    from: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
    format: Format,
    output: Option<PathBuf>,
) -> CliResult {
    let meta: &dyn MetaStore = ctx.meta.as_ref();
    let filter = AuditFilter {
        from: from
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(err)?
            .unwrap_or(i64::MIN),
        to: to
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(err)?
            .unwrap_or(i64::MAX),
        tenant_id: match &tenant {
            Some(t) => Some(
                crate::tenancy::find_tenant(meta, t)
                    .await
                    .map_err(err)?
                    .id
                    .to_string(),
            ),
            None => None,
        },
    };
    // Reading the trail is itself worth a record.
    let audit = CommandAudit {
        action: "audit:export",
        target: output
            .as_ref()
            .map_or_else(|| "-".to_owned(), |p| p.display().to_string()),
        tenant: tenant.clone(),
        detail: serde_json::json!({
            "from": from, "to": to, "format": format!("{format:?}").to_lowercase(),
        }),
    };
    record_command(ctx, audit, &Ok(ExitCode::SUCCESS)).await?;
    let n = match &output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            super::export(meta, &filter, format, &mut w)
                .await
                .map_err(err)?
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            super::export(meta, &filter, format, &mut w)
                .await
                .map_err(err)?
        }
    };
    eprintln!("exported {n} audit rows");
    Ok(ExitCode::SUCCESS)
}

async fn verify(ctx: &Context, expect: Option<String>, json: bool) -> CliResult {
    let expect = expect
        .as_deref()
        .map(parse_expect)
        .transpose()
        .map_err(err)?;
    let key = chain_key(ctx).await.map_err(err)?;
    let report = super::verify(ctx.meta.as_ref(), &key, expect)
        .await
        .map_err(err)?;
    if json {
        println!("{}", serde_json::to_string(&report).map_err(err)?);
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "rows checked     {}", report.rows);
        let _ = writeln!(out, "retention anchor {}", report.anchor_seq);
        let _ = writeln!(
            out,
            "head             {}:{}",
            report.head_seq, report.head_hash
        );
        if report.is_intact() {
            let _ = writeln!(out, "chain intact");
        } else {
            let _ = writeln!(out, "CHAIN BROKEN: {} break(s)", report.breaks_total);
            for b in &report.breaks {
                let _ = writeln!(out, "  {b}");
            }
        }
    }
    Ok(if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn purge(ctx: &Context, before: Option<i64>) -> CliResult {
    let Some(before) = before else {
        println!("audit.retention_days is 0: every row is kept");
        return Ok(ExitCode::SUCCESS);
    };
    let key = chain_key(ctx).await.map_err(err)?;
    let (actor, source) = cli_identity();
    let mut announcement = record(actor, source, "audit:purge".into(), "audit_log".into());
    announcement.result = "ok".into();
    let outcome = ctx
        .meta
        .audit()
        .audit_purge(&key, before, announcement, 10_000)
        .await
        .map_err(err)?;
    println!(
        "removed {} audit rows older than {} (chain now starts after row {})",
        outcome.deleted,
        rfc3339(before),
        outcome.anchor_seq
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(parse_time("0").ok(), Some(0));
        assert_eq!(parse_time("1970-01-02").ok(), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").ok(), Some(1500));
        assert!(parse_time("yesterday").is_err());
    }
}
