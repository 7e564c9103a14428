//! The orphan sweep: packs on a backend without a metadata row (a crash or a
//! failed request between the pack upload and the commit) and staging files
//! of local backends (a write killed half-way), older than the cut-off.
//!
//! Nothing is deleted from a backend before its listing completed: a listing
//! error stops the run. Old listed packs are checked against the rows in
//! batches as the listing goes (only the orphans are kept in memory); a row
//! is read after its pack was listed, so a pack committed meanwhile is
//! known, and a pack written meanwhile is younger than the cut-off (its
//! upload began after the low-water mark, or its lease was revoked and its
//! commit will fail).

use std::collections::HashSet;

use futures::StreamExt;

use super::gc::{GcError, Run};
use crate::meta::{Millis, PackKey};
use crate::store::{ListedPack, PackStore, StagingFile};

/// S3 backends report modification times rounded down to the second: a pack
/// counts as modified up to this much later than listed.
const MTIME_PRECISION_MS: Millis = 1000;
/// Listed packs checked against the rows per query.
const CHECK_BATCH: usize = 1000;

fn old_enough(modified: Millis, cut: Millis) -> bool {
    modified.saturating_add(MTIME_PRECISION_MS) < cut
}

pub(super) async fn sweep(run: &mut Run<'_>, cut: Millis) -> Result<(), GcError> {
    // Every backend is listed completely before anything is deleted.
    let mut found: Vec<(PackStore, Vec<ListedPack>, Vec<StagingFile>)> = Vec::new();
    for store in run.engine.backends().iter() {
        let orphans = orphans_of(run, store, cut).await?;
        let staging = store
            .list_staging()
            .await?
            .into_iter()
            .filter(|f| old_enough(f.modified_ms, cut))
            .collect();
        found.push((store.clone(), orphans, staging));
    }
    for (store, orphans, staging) in found {
        for p in orphans {
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

/// The packs of one backend older than the cut-off that have no row.
async fn orphans_of(
    run: &mut Run<'_>,
    store: &PackStore,
    cut: Millis,
) -> Result<Vec<ListedPack>, GcError> {
    let meta = run.engine.meta().clone();
    let mut listing = store.list_pack_objects();
    let mut batch: Vec<ListedPack> = Vec::with_capacity(CHECK_BATCH);
    let mut orphans = Vec::new();
    loop {
        let next = listing.next().await.transpose()?;
        let end = next.is_none();
        if let Some(p) = next.filter(|p| old_enough(p.modified_ms, cut)) {
            batch.push(p);
        }
        if batch.len() >= CHECK_BATCH || (end && !batch.is_empty()) {
            run.check_lease()?;
            let ids: Vec<PackKey> = batch.iter().map(|p| p.id).collect();
            let known: HashSet<PackKey> = meta.gc_known_packs(&ids).await?.into_iter().collect();
            orphans.extend(batch.drain(..).filter(|p| !known.contains(&p.id)));
            run.tick("orphans");
        }
        if end {
            return Ok(orphans);
        }
    }
}
