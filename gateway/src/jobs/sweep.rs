//! The orphan sweep: packs on a backend without a metadata row (a crash or a
//! failed request between the pack upload and the commit) and staging files
//! of local backends (a write killed half-way), older than the cut-off.
//!
//! A backend is swept only from a complete listing: any listing error stops
//! the run before anything is deleted from that backend. Rows are read after
//! the listing, so a pack committed meanwhile is known; a pack written
//! meanwhile is younger than the cut-off (its upload began after the
//! low-water mark, or its lease was revoked and its commit will fail).

use std::collections::HashSet;

use super::gc::{GcError, Run};
use crate::meta::{Millis, PackKey};

/// S3 backends report modification times rounded down to the second: a pack
/// counts as modified up to this much later than listed.
const MTIME_PRECISION_MS: Millis = 1000;

pub(super) async fn sweep(run: &mut Run<'_>, cut: Millis) -> Result<(), GcError> {
    let meta = run.engine.meta().clone();
    // Every backend is listed completely before anything is deleted.
    let mut listings = Vec::new();
    for store in run.engine.backends().iter() {
        run.check_lease()?;
        let packs = store.list_pack_objects().await?;
        let staging = store.list_staging().await?;
        listings.push((store.clone(), packs, staging));
        run.tick("orphans");
    }
    let known: HashSet<PackKey> = meta.list_packs(None).await?.iter().map(|p| p.id).collect();
    let old_enough = |modified: Millis| modified.saturating_add(MTIME_PRECISION_MS) < cut;
    for (store, packs, staging) in listings {
        for p in packs {
            if known.contains(&p.id) || !old_enough(p.modified_ms) {
                continue;
            }
            run.check_lease()?;
            if !run.dry_run() {
                run.delete_pace.take(1).await;
                store.delete_pack(&p.id).await?;
                tracing::debug!(backend = store.name(), pack = %hex::encode(p.id), size = p.size, "deleted an orphan pack");
            }
            run.report.orphans_deleted += 1;
            run.report.orphan_bytes_deleted += p.size;
            run.tick("orphans");
        }
        for f in staging {
            if !old_enough(f.modified_ms) {
                continue;
            }
            run.check_lease()?;
            if !run.dry_run() {
                run.delete_pace.take(1).await;
                store.delete_staging(&f).await?;
                tracing::debug!(backend = store.name(), file = %f.path.display(), size = f.size, "deleted a staging file");
            }
            run.report.staging_deleted += 1;
            run.report.staging_bytes_deleted += f.size;
            run.tick("orphans");
        }
    }
    Ok(())
}
