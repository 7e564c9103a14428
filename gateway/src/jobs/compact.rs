//! Compaction: packs whose live bytes fell below the threshold have their
//! live frames copied, byte for byte (no decryption, no re-encryption: a
//! frame's AAD names its tenant, chunk and epoch, not its pack), into new
//! packs of the same tenant on the same backend. Each new pack is committed
//! with `gc_repoint`: one transaction that inserts it — fenced by the `gc`
//! lease, so a collector that lost its lease commits nothing — and moves
//! every chunk row still at the copied location (compare-and-set). A row
//! that moved or died meanwhile keeps its place; its copy is dead bytes of
//! the new pack. The old packs are marked retired and deleted once nothing
//! points at them and the grace period has passed (`gc.rs`).

use std::sync::Arc;

use bytes::Bytes;
use dooz_chunker::{ChunkId, Keyring, PackWriter};

use super::gc::{GcError, Run};
use crate::engine::EngineError;
use crate::meta::{ChunkMove, NewPack, PackChunk, PackKey, PackRecord, Repoint, TenantId};
use crate::store::PackStore;

/// Candidate packs looked at per query.
const CANDIDATE_BATCH: usize = 100;
/// Live frames of one old pack separated by at most this many dead bytes are
/// fetched with one ranged read.
const MAX_GAP: u64 = 256 * 1024;
/// Largest single ranged read.
const MAX_READ: u64 = 8 * 1024 * 1024;

/// A new pack being filled for one tenant on one backend.
struct Target {
    tenant: TenantId,
    keyring: Arc<Keyring>,
    store: PackStore,
    writer: Option<(PackKey, PackWriter)>,
    moves: Vec<ChunkMove>,
}

pub(super) async fn compact(run: &mut Run<'_>) -> Result<(), GcError> {
    let meta = run.engine.meta().clone();
    let permille = run.cfg.threshold_permille();
    let mut after: Option<PackKey> = None;
    loop {
        run.check_lease()?;
        let mut page = meta
            .gc_compaction_candidates(permille, after, CANDIDATE_BATCH)
            .await?;
        let Some(last) = page.last().map(|p| p.id) else {
            return Ok(());
        };
        let full = page.len() == CANDIDATE_BATCH;
        if run.dry_run() {
            for p in &page {
                run.report.packs_compacted += 1;
                run.report.bytes_rewritten += p.live_bytes;
                run.tick("compaction");
            }
        } else {
            // One target pack per tenant and backend at a time.
            page.sort_by(|a, b| {
                (a.tenant_id, &a.backend, a.id).cmp(&(b.tenant_id, &b.backend, b.id))
            });
            let mut target: Option<Target> = None;
            for pack in page {
                let same = target
                    .as_ref()
                    .is_some_and(|t| t.tenant == pack.tenant_id && t.store.name() == pack.backend);
                if !same {
                    if let Some(t) = target.take() {
                        flush(run, t).await?;
                    }
                    target = Some(open_target(run, &pack).await?);
                }
                let Some(t) = target.as_mut() else {
                    continue;
                };
                copy_live_frames(run, t, &pack).await?;
                run.report.packs_compacted += 1;
                run.tick("compaction");
            }
            if let Some(t) = target.take() {
                flush(run, t).await?;
            }
        }
        if !full {
            return Ok(());
        }
        after = Some(last);
    }
}

async fn open_target(run: &Run<'_>, pack: &PackRecord) -> Result<Target, GcError> {
    let tenant = run.engine.tenant(pack.tenant_id).await?;
    Ok(Target {
        tenant: tenant.id,
        keyring: run.engine.keyring_of(&tenant).await?,
        store: run.engine.backends().get(&pack.backend)?.clone(),
        writer: None,
        moves: Vec::new(),
    })
}

/// Reads the live frames of `pack` (coalesced ranged reads) into the target,
/// shipping the target whenever it reaches the pack size.
async fn copy_live_frames(
    run: &mut Run<'_>,
    t: &mut Target,
    pack: &PackRecord,
) -> Result<(), GcError> {
    let meta = run.engine.meta().clone();
    let live: Vec<PackChunk> = meta
        .gc_pack_chunks(&pack.id)
        .await?
        .into_iter()
        .filter(|c| c.live && c.tenant == t.tenant)
        .collect();
    let target_size = run.engine.config().pack_target;
    for range in ranges(&live) {
        run.check_lease()?;
        let (start, end) = (range[0].loc.offset, range_end(range));
        run.rewrite_pace.take(end - start).await;
        let bytes: Bytes = t.store.get_range(&pack.id, start..end).await?;
        if bytes.len() as u64 != end - start {
            return Err(EngineError::Corrupt(format!(
                "pack {} is shorter than its chunk rows say",
                hex::encode(pack.id)
            ))
            .into());
        }
        for c in range {
            let from = (c.loc.offset - start) as usize;
            let frame = &bytes[from..from + c.loc.len as usize];
            let capacity = target_size + frame.len() + 64 * 1024;
            let (_, writer) = t.writer.get_or_insert_with(|| {
                let id: PackKey = rand::random();
                (id, PackWriter::with_capacity(id, capacity))
            });
            let loc = writer.push_frame(ChunkId(c.id), frame, c.loc.plain_len);
            t.moves.push(ChunkMove {
                id: c.id,
                from: pack.id,
                from_offset: c.loc.offset,
                to_offset: loc.offset,
            });
            if writer.len() >= target_size {
                ship(run, t).await?;
            }
        }
    }
    Ok(())
}

/// Live rows grouped into ranged reads: adjacent frames with small gaps.
fn ranges(live: &[PackChunk]) -> Vec<&[PackChunk]> {
    let mut out = Vec::new();
    let mut first = 0;
    for i in 1..=live.len() {
        let split = i == live.len() || {
            let prev_end = range_end(&live[first..i]);
            let next = &live[i];
            next.loc.offset < prev_end
                || next.loc.offset - prev_end > MAX_GAP
                || next.loc.offset + u64::from(next.loc.len) - live[first].loc.offset > MAX_READ
        };
        if split {
            if first < i {
                out.push(&live[first..i]);
            }
            first = i;
        }
    }
    out
}

fn range_end(range: &[PackChunk]) -> u64 {
    range
        .iter()
        .map(|c| c.loc.offset + u64::from(c.loc.len))
        .max()
        .unwrap_or(0)
}

async fn flush(run: &mut Run<'_>, mut t: Target) -> Result<(), GcError> {
    ship(run, &mut t).await
}

/// Writes the target pack and commits its repoint; an uncommitted pack is
/// deleted again at once.
async fn ship(run: &mut Run<'_>, t: &mut Target) -> Result<(), GcError> {
    let Some((id, writer)) = t.writer.take() else {
        return Ok(());
    };
    let moves = std::mem::take(&mut t.moves);
    if moves.is_empty() {
        return Ok(());
    }
    let bytes = Bytes::from(writer.finish(&t.keyring));
    let size = bytes.len() as u64;
    run.rewrite_pace.take(size).await;
    t.store.put_pack(&id, bytes).await?;
    run.report.packs_written += 1;
    run.report.bytes_rewritten += size;
    let repoint = Repoint {
        tenant: t.tenant,
        new_pack: NewPack {
            id,
            backend: t.store.name().to_owned(),
            size,
            fence: run.lease.as_ref().map(|l| l.fence().clone()),
        },
        moves,
    };
    match run.engine.meta().gc_repoint(repoint).await {
        Ok(outcome) => {
            tracing::debug!(
                pack = %hex::encode(id), moved = outcome.moved, skipped = outcome.skipped,
                live_bytes = outcome.live_bytes, "compacted pack committed"
            );
            Ok(())
        }
        Err(e) => {
            // Refused inside the transaction: nothing points at the new pack,
            // take it back now. Otherwise the commit may have happened; the
            // sweep decides from the rows.
            if e.nothing_committed()
                && let Err(d) = t.store.delete_pack(&id).await
            {
                tracing::warn!(pack = %hex::encode(id), error = %d, "deleting an uncommitted compacted pack failed; the sweep will");
            }
            Err(e.into())
        }
    }
}
