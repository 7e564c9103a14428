//! `dooz admin bucket ls | restore`: point-in-time views and restores of
//! versioned buckets, as typed operations the CLI and the admin API share
//! (bucket deletion is in `ops.rs`), and how the CLI prints their results.

use serde::{Deserialize, Serialize};

use super::ops::{AdminError, AdminResult};
use crate::engine::{RestoreAction, RestoreEvent, RestoreReport, parse_time};
use crate::meta::{Bucket, VersionSummary, lock::rfc3339};
use crate::server::Context;

async fn bucket(ctx: &Context, name: &str) -> AdminResult<Bucket> {
    ctx.meta
        .get_bucket(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no bucket {name}")))
}

fn instant(at: &str) -> AdminResult<crate::engine::PointInTime> {
    parse_time(at).map_err(AdminError::Invalid)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
    pub version_id: String,
}

impl From<VersionSummary> for ListedObject {
    fn from(v: VersionSummary) -> Self {
        Self {
            last_modified: rfc3339(v.created_at),
            key: v.key,
            size: v.size,
            etag: v.etag,
            version_id: v.version_id,
        }
    }
}

/// The objects of a bucket now or at an instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectListing {
    pub bucket: String,
    /// RFC 3339, or "now".
    pub at: String,
    pub objects: Vec<ListedObject>,
}

/// The current objects, or (versioned buckets) those at `at`.
pub async fn list_objects(
    ctx: &Context,
    name: &str,
    at: Option<&str>,
    prefix: &str,
) -> AdminResult<ObjectListing> {
    let b = bucket(ctx, name).await?;
    let (listed, when) = match at {
        Some(t) => {
            let at = instant(t)?;
            (ctx.engine.list_at(&b, prefix, at).await?, rfc3339(at))
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
                .await?;
            (listed, "now".to_owned())
        }
    };
    Ok(ObjectListing {
        bucket: name.to_owned(),
        at: when,
        objects: listed.into_iter().map(ListedObject::from).collect(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// RFC 3339.
    pub at: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub dry_run: bool,
}

/// A restore's counts and every change it made (or, dry, would make).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    #[serde(flatten)]
    pub report: RestoreReport,
    pub actions: Vec<RestoreAction>,
}

/// Makes the bucket's state at `req.at` current again; `progress` sees the
/// counts as they grow (the CLI prints them, the API has no one to tell).
pub async fn restore(
    ctx: &Context,
    name: &str,
    req: &RestoreRequest,
    progress: &mut (dyn FnMut(&RestoreReport) + Send),
) -> AdminResult<RestoreResult> {
    let at = instant(&req.at)?;
    let b = bucket(ctx, name).await?;
    let mut actions = Vec::new();
    let mut on = |event: RestoreEvent<'_>| match event {
        RestoreEvent::Action(a) => actions.push(a.clone()),
        RestoreEvent::Progress(r) => progress(r),
    };
    let report = ctx
        .engine
        .restore_bucket(&b, &req.prefix, at, req.dry_run, &mut on)
        .await?;
    Ok(RestoreResult { report, actions })
}

/// What the CLI prints for one restore action.
pub fn action_line(a: &RestoreAction, dry_run: bool) -> String {
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

/// The CLI's summary line of a restore.
pub fn restore_summary(r: &RestoreReport) -> String {
    format!(
        "{} {} as of {}: {} keys scanned, {} restored ({} bytes referenced again, none copied), {} deleted, {} unchanged",
        if r.dry_run {
            "dry run of restoring"
        } else {
            "restored"
        },
        r.bucket,
        r.at,
        r.keys_scanned,
        r.restored,
        r.restored_bytes,
        r.deleted,
        r.unchanged
    )
}

/// The CLI's progress line of a restore (stderr).
pub fn restore_progress(r: &RestoreReport) -> String {
    format!(
        "restore: {} keys scanned, {} restored, {} deleted, {} unchanged",
        r.keys_scanned, r.restored, r.deleted, r.unchanged
    )
}

/// The CLI's row of a listed object.
pub fn object_line(o: &ListedObject) -> String {
    format!(
        "{}  {:>12}  {:<32}  {}",
        o.last_modified, o.size, o.version_id, o.key
    )
}
