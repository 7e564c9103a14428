//! `dooz admin bucket restore | ls`: point-in-time views and restores of
//! versioned buckets (bucket deletion is in `ops.rs`, shared with the API).

use std::io::Write;
use std::process::ExitCode;

use crate::engine::{RestoreAction, RestoreEvent, parse_time};
use crate::meta::{Bucket, MetaStore, VersionSummary, lock::rfc3339};
use crate::server::Context;

type CliResult = Result<ExitCode, String>;

async fn bucket(meta: &dyn MetaStore, name: &str) -> Result<Bucket, String> {
    meta.get_bucket(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no bucket {name}"))
}

fn action_line(a: &RestoreAction, dry_run: bool) -> String {
    let verb = |v: &str| {
        if dry_run {
            format!("would {v}")
        } else {
            v.to_owned()
        }
    };
    match a {
        RestoreAction::Restore {
            key,
            from_version,
            size,
            new_version,
        } => format!(
            "{} {key} from version {from_version} ({size} bytes){}",
            verb("restore"),
            new_version
                .as_ref()
                .map(|v| format!(" as version {v}"))
                .unwrap_or_default()
        ),
        RestoreAction::Delete { key, .. } => format!("{} {key} (created later)", verb("delete")),
    }
}

/// `dooz admin bucket restore BUCKET --at T [--prefix P] [--dry-run] [--json]`
pub async fn restore(
    ctx: &Context,
    name: &str,
    at: &str,
    prefix: &str,
    dry_run: bool,
    json: bool,
) -> CliResult {
    let at = parse_time(at)?;
    let b = bucket(ctx.meta.as_ref(), name).await?;
    let mut actions = Vec::new();
    let mut on = |event: RestoreEvent<'_>| match event {
        RestoreEvent::Action(a) => {
            if json {
                actions.push(a.clone());
            } else {
                println!("{}", action_line(a, dry_run));
            }
        }
        RestoreEvent::Progress(r) => eprintln!(
            "restore: {} keys scanned, {} restored, {} deleted, {} unchanged",
            r.keys_scanned, r.restored, r.deleted, r.unchanged
        ),
    };
    let report = ctx
        .engine
        .restore_bucket(&b, prefix, at, dry_run, &mut on)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        v["actions"] = serde_json::to_value(&actions).map_err(|e| e.to_string())?;
        println!("{v}");
    } else {
        println!(
            "{} {} as of {}: {} keys scanned, {} restored ({} bytes referenced again, none copied), {} deleted, {} unchanged",
            if dry_run {
                "dry run of restoring"
            } else {
                "restored"
            },
            report.bucket,
            report.at,
            report.keys_scanned,
            report.restored,
            report.restored_bytes,
            report.deleted,
            report.unchanged
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `dooz admin bucket ls BUCKET [--at T] [--prefix P] [--json]`
pub async fn ls(
    ctx: &Context,
    name: &str,
    at: Option<&str>,
    prefix: &str,
    json: bool,
) -> CliResult {
    let b = bucket(ctx.meta.as_ref(), name).await?;
    let (listed, when) = match at {
        Some(t) => {
            let at = parse_time(t)?;
            let listed = ctx
                .engine
                .list_at(&b, prefix, at)
                .await
                .map_err(|e| e.to_string())?;
            (listed, rfc3339(at))
        }
        None => {
            let mut listed = Vec::new();
            ctx.engine
                .for_each_version(name, prefix, async |v: VersionSummary| {
                    if v.is_latest && !v.delete_marker {
                        listed.push(v);
                    }
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?;
            (listed, "now".to_owned())
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        let v: Vec<_> = listed
            .iter()
            .map(|v| {
                serde_json::json!({"key": v.key, "size": v.size, "etag": v.etag,
                    "last_modified": rfc3339(v.created_at), "version_id": v.version_id})
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(v)).map_err(|e| e.to_string())?;
    } else {
        for v in &listed {
            writeln!(
                out,
                "{}  {:>12}  {:<32}  {}",
                rfc3339(v.created_at),
                v.size,
                v.version_id,
                v.key
            )
            .map_err(|e| e.to_string())?;
        }
        eprintln!("{} objects in {name} as of {when}", listed.len());
    }
    Ok(ExitCode::SUCCESS)
}
