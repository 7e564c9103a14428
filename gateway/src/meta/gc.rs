//! Space reclamation in the metadata: collecting zombie chunk rows, finding
//! and dropping packs nothing points at, choosing packs to compact and
//! repointing their live chunks, and per-tenant space accounting.
//!
//! Every destructive statement re-checks its condition in the statement
//! itself (a zombie still a zombie and still older than the cut-off; a pack
//! still without chunk rows), so a revival, a lookup touch or a repoint that
//! commits between the collector's read and its write always wins. The
//! protocol around these calls (grace, lease low-water mark, order of
//! backend and metadata deletions) is in `jobs/gc.rs` and docs/METADATA.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;

use super::check::pack_record;
use super::codec::{now_millis, to_i64};
use super::model::{ChunkKey, ChunkLocation, Millis, NewPack, PackKey, PackRecord, TenantId};
use super::refs;
use super::sql::{Cols, Driver, Tx, Value, params, tx_job};
use super::store::{SqlStore, read, write};
use super::{MetaError, MetaResult};

const ZOMBIES_FIRST: &str = "SELECT tenant_id, chunk_id, pack_id, len, zombie_since FROM chunks \
     WHERE state = 'zombie' AND zombie_since < $1 \
     ORDER BY zombie_since, tenant_id, chunk_id LIMIT $2";
const ZOMBIES_AFTER: &str = "SELECT tenant_id, chunk_id, pack_id, len, zombie_since FROM chunks \
     WHERE state = 'zombie' AND zombie_since < $1 \
     AND (zombie_since, tenant_id, chunk_id) > ($2, $3, $4) \
     ORDER BY zombie_since, tenant_id, chunk_id LIMIT $5";
// The guard repeats the selection: a zombie revived or touched since it was
// listed is no longer deleted.
const COLLECT: &str = "DELETE FROM chunks WHERE tenant_id = $1 AND chunk_id = $2 \
     AND state = 'zombie' AND zombie_since < $3 RETURNING pack_id, len, zombie_since";

const UNREFERENCED: &str = "SELECT p.id, p.tenant_id, p.backend, p.size, p.live_bytes, p.created_at \
     FROM packs p WHERE p.live_bytes = 0 AND p.id > $2 \
     AND (p.retired_at IS NULL OR p.retired_at <= $1) \
     AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = p.id) \
     ORDER BY p.id LIMIT $3";
// Dry runs: packs whose every row is a zombie a real run would collect.
const WOULD_EMPTY: &str = "SELECT p.id, p.tenant_id, p.backend, p.size, p.live_bytes, p.created_at \
     FROM packs p WHERE p.live_bytes = 0 AND p.id > $2 \
     AND (p.retired_at IS NULL OR p.retired_at <= $1) \
     AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = p.id \
                     AND (c.state = 'live' OR c.zombie_since >= $4)) \
     ORDER BY p.id LIMIT $3";
const DROP_PACK: &str = "DELETE FROM packs WHERE id = $1 AND live_bytes = 0 \
     AND (retired_at IS NULL OR retired_at <= $2) \
     AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack_id = $1) \
     RETURNING id, tenant_id, backend, size, live_bytes, created_at";
const KNOWN_PACK: &str = "SELECT id FROM packs WHERE id = $1";
const CANDIDATES: &str = "SELECT id, tenant_id, backend, size, live_bytes, created_at FROM packs \
     WHERE live_bytes > 0 AND live_bytes * 1000 < size * $1 AND id > $2 \
     ORDER BY id LIMIT $3";
const PACK_CHUNKS: &str = "SELECT tenant_id, chunk_id, off, len, plain_len, epoch, state \
     FROM chunks WHERE pack_id = $1 ORDER BY off";
// Compare-and-set on the location: a row that moved or vanished meanwhile is
// left alone (its copied frame becomes dead bytes of the new pack).
const REPOINT: &str = "UPDATE chunks SET pack_id = $3, off = $4 \
     WHERE tenant_id = $1 AND chunk_id = $2 AND pack_id = $5 AND off = $6 \
     RETURNING state, len";
const RETIRE: &str = "UPDATE packs SET retired_at = $2 WHERE id = $1";

const CHUNK_SPACE: &str = "SELECT tenant_id, \
     CAST(COALESCE(SUM(CASE WHEN state = 'live' THEN len ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN state = 'zombie' THEN len ELSE 0 END), 0) AS BIGINT), \
     COUNT(*) FROM chunks GROUP BY tenant_id";
const PACK_SPACE: &str = "SELECT tenant_id, COUNT(*), \
     CAST(COALESCE(SUM(size), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN live_bytes = 0 THEN size ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN live_bytes > 0 AND live_bytes * 1000 < size * $1 \
                            THEN size - live_bytes ELSE 0 END), 0) AS BIGINT) \
     FROM packs GROUP BY tenant_id";

/// A zombie chunk row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zombie {
    pub tenant: TenantId,
    pub id: ChunkKey,
    pub pack: PackKey,
    /// Bytes of its frame.
    pub len: u64,
    pub zombie_since: Millis,
}

/// A chunk row of one pack, as compaction sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackChunk {
    pub tenant: TenantId,
    pub id: ChunkKey,
    pub loc: ChunkLocation,
    pub live: bool,
}

/// One frame copied by compaction: from where to where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMove {
    pub id: ChunkKey,
    pub from: PackKey,
    pub from_offset: u64,
    pub to_offset: u64,
}

/// A compacted pack to insert and the chunk rows to point at it, in one
/// transaction. The pack's `fence` (the collector's lease) must still hold.
#[derive(Clone, Debug)]
pub struct Repoint {
    pub tenant: TenantId,
    pub new_pack: NewPack,
    pub moves: Vec<ChunkMove>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepointOutcome {
    /// Rows now pointing at the new pack.
    pub moved: usize,
    /// Rows that changed location or vanished meanwhile (their copies are dead bytes).
    pub skipped: usize,
    /// Live bytes the new pack starts with.
    pub live_bytes: u64,
}

/// Space one tenant holds on its backends, from the metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantSpace {
    pub tenant: TenantId,
    pub chunk_rows: u64,
    /// Frames of live chunks.
    pub live_bytes: u64,
    /// Frames of zombie chunks (collected once older than the grace period).
    pub zombie_bytes: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    /// Pack bytes that are not live frames: zombies, collected chunks, frames
    /// that lost a race, pack headers and indexes.
    pub dead_bytes: u64,
    /// What a collector would free: packs without live chunks, and the dead
    /// bytes of packs below the compaction threshold.
    pub reclaimable_bytes: u64,
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Zombies older than `cut`, oldest first, after the cursor.
pub(crate) async fn zombies(
    tx: &mut dyn Tx,
    cut: Millis,
    after: Option<&Zombie>,
    limit: usize,
) -> MetaResult<Vec<Zombie>> {
    let n = limit_of(limit);
    let rows = match after {
        None => tx.query(ZOMBIES_FIRST, &params![cut, n]).await?,
        Some(z) => {
            tx.query(
                ZOMBIES_AFTER,
                &params![cut, z.zombie_since, z.tenant, &z.id, n],
            )
            .await?
        }
    };
    rows.iter()
        .map(|row| {
            let c = Cols::new(row, "chunks");
            Ok(Zombie {
                tenant: c.tenant(0)?,
                id: c.chunk_key(1)?,
                pack: c.pack_key(2)?,
                len: c.u64(3)?,
                zombie_since: c.i64(4)?,
            })
        })
        .collect()
}

/// Deletes these chunk rows if they are still zombies older than `cut`;
/// returns the ones deleted. Rows are touched in key order (the lock order
/// of every writer).
pub(crate) async fn collect(
    tx: &mut dyn Tx,
    cut: Millis,
    ids: &[(TenantId, ChunkKey)],
) -> MetaResult<Vec<Zombie>> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let sets: Vec<Vec<Value>> = sorted
        .iter()
        .map(|(t, id)| Vec::from(params![*t, id, cut]))
        .collect();
    let results = tx.query_each(COLLECT, &sets).await?;
    let mut out = Vec::new();
    for ((tenant, id), rows) in sorted.iter().zip(results) {
        if let Some(row) = rows.first() {
            let c = Cols::new(row, "chunks");
            out.push(Zombie {
                tenant: *tenant,
                id: *id,
                pack: c.pack_key(0)?,
                len: c.u64(1)?,
                zombie_since: c.i64(2)?,
            });
        }
    }
    Ok(out)
}

/// Packs no chunk row points at (and, when `zombies_before` is given, packs
/// whose rows are all zombies older than it: what a run would empty),
/// retired no later than `retired_before`, ordered by id after the cursor.
pub(crate) async fn unreferenced(
    tx: &mut dyn Tx,
    retired_before: Millis,
    zombies_before: Option<Millis>,
    after: Option<PackKey>,
    limit: usize,
) -> MetaResult<Vec<PackRecord>> {
    let after = after.unwrap_or_default();
    let n = limit_of(limit);
    let rows = match zombies_before {
        None => {
            tx.query(UNREFERENCED, &params![retired_before, &after, n])
                .await?
        }
        Some(cut) => {
            tx.query(WOULD_EMPTY, &params![retired_before, &after, n, cut])
                .await?
        }
    };
    rows.iter().map(|r| pack_record(r)).collect()
}

/// Deletes the pack row if nothing points at it (and it was retired no later
/// than `retired_before`); returns it when deleted.
pub(crate) async fn drop_pack(
    tx: &mut dyn Tx,
    id: &PackKey,
    retired_before: Millis,
) -> MetaResult<Option<PackRecord>> {
    tx.query_opt(DROP_PACK, &params![id, retired_before])
        .await?
        .as_deref()
        .map(pack_record)
        .transpose()
}

/// Which of these packs have a row.
pub(crate) async fn known(tx: &mut dyn Tx, ids: &[PackKey]) -> MetaResult<Vec<PackKey>> {
    let sets: Vec<Vec<Value>> = ids.iter().map(|id| Vec::from(params![id])).collect();
    let results = tx.query_each(KNOWN_PACK, &sets).await?;
    Ok(ids
        .iter()
        .zip(results)
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(id, _)| *id)
        .collect())
}

/// Packs with live bytes below `permille`/1000 of their size.
pub(crate) async fn candidates(
    tx: &mut dyn Tx,
    permille: u32,
    after: Option<PackKey>,
    limit: usize,
) -> MetaResult<Vec<PackRecord>> {
    let after = after.unwrap_or_default();
    let rows = tx
        .query(
            CANDIDATES,
            &params![i64::from(permille), &after, limit_of(limit)],
        )
        .await?;
    rows.iter().map(|r| pack_record(r)).collect()
}

pub(crate) async fn pack_chunks(tx: &mut dyn Tx, pack: &PackKey) -> MetaResult<Vec<PackChunk>> {
    let rows = tx.query(PACK_CHUNKS, &params![pack]).await?;
    rows.iter()
        .map(|row| {
            let c = Cols::new(row, "chunks");
            Ok(PackChunk {
                tenant: c.tenant(0)?,
                id: c.chunk_key(1)?,
                loc: ChunkLocation {
                    pack_id: *pack,
                    offset: c.u64(2)?,
                    len: c.u32(3)?,
                    plain_len: c.u32(4)?,
                    epoch: c.u32(5)?,
                },
                live: c.text(6)? == "live",
            })
        })
        .collect()
}

/// Inserts the compacted pack (its fence checked) and moves every chunk row
/// that still points where the frame was copied from; live bytes follow the
/// rows, and every pack a row left is marked retired now.
pub(crate) async fn repoint_rows(
    tx: &mut dyn Tx,
    r: &Repoint,
    now: Millis,
) -> MetaResult<RepointOutcome> {
    let new_id = r.new_pack.id;
    refs::insert_packs(tx, r.tenant, std::slice::from_ref(&r.new_pack), now).await?;
    let mut moves = r.moves.clone();
    moves.sort_unstable_by_key(|m| m.id);
    let tenant = Value::from(r.tenant);
    let mut sets = Vec::with_capacity(moves.len());
    for m in &moves {
        if m.from == new_id {
            return Err(MetaError::Internal(
                "a chunk cannot move into its own pack".into(),
            ));
        }
        sets.push(Vec::from(params![
            tenant.clone(),
            &m.id,
            &new_id,
            to_i64(m.to_offset, "chunk offset")?,
            &m.from,
            to_i64(m.from_offset, "chunk offset")?,
        ]));
    }
    let results = tx.query_each(REPOINT, &sets).await?;
    let mut out = RepointOutcome::default();
    let mut delta: BTreeMap<PackKey, i64> = BTreeMap::new();
    let mut left = BTreeSet::new();
    for (m, rows) in moves.iter().zip(results) {
        let Some(row) = rows.first() else {
            out.skipped += 1;
            continue;
        };
        let c = Cols::new(row, "chunks");
        out.moved += 1;
        left.insert(m.from);
        if c.text(0)? == "live" {
            let len = c.i64(1)?;
            *delta.entry(m.from).or_default() -= len;
            *delta.entry(new_id).or_default() += len;
            out.live_bytes += c.u64(1)?;
        }
    }
    refs::adjust_packs(tx, delta).await?;
    let retire: Vec<Vec<Value>> = left.iter().map(|p| Vec::from(params![p, now])).collect();
    tx.query_each(RETIRE, &retire).await?;
    Ok(out)
}

/// Per tenant: live and zombie frame bytes, packs, and what a collector with
/// this compaction threshold would reclaim.
pub(crate) async fn space(tx: &mut dyn Tx, permille: u32) -> MetaResult<Vec<TenantSpace>> {
    fn of(map: &mut BTreeMap<TenantId, TenantSpace>, t: TenantId) -> &mut TenantSpace {
        map.entry(t).or_insert_with(|| TenantSpace {
            tenant: t,
            ..Default::default()
        })
    }
    let mut by_tenant: BTreeMap<TenantId, TenantSpace> = BTreeMap::new();
    for row in tx.query(CHUNK_SPACE, &[]).await? {
        let c = Cols::new(&row, "chunks");
        let s = of(&mut by_tenant, c.tenant(0)?);
        s.live_bytes = c.u64(1)?;
        s.zombie_bytes = c.u64(2)?;
        s.chunk_rows = c.u64(3)?;
    }
    for row in tx.query(PACK_SPACE, &params![i64::from(permille)]).await? {
        let c = Cols::new(&row, "packs");
        let s = of(&mut by_tenant, c.tenant(0)?);
        s.packs = c.u64(1)?;
        s.pack_bytes = c.u64(2)?;
        s.reclaimable_bytes = c.u64(3)? + c.u64(4)?;
    }
    Ok(by_tenant
        .into_values()
        .map(|mut s| {
            s.dead_bytes = s.pack_bytes.saturating_sub(s.live_bytes);
            s
        })
        .collect())
}

/// Collector operations of a metadata store (a supertrait of `MetaStore`).
#[async_trait]
pub trait GcStore: Send + Sync {
    /// Zombies whose `zombie_since` is before `cut`, oldest first, after the cursor.
    async fn gc_zombies(
        &self,
        cut: Millis,
        after: Option<Zombie>,
        limit: usize,
    ) -> MetaResult<Vec<Zombie>>;
    /// Deletes the rows that are still zombies older than `cut`; returns them.
    async fn gc_collect_zombies(
        &self,
        cut: Millis,
        ids: &[(TenantId, ChunkKey)],
    ) -> MetaResult<Vec<Zombie>>;
    /// Packs without chunk rows, retired no later than `retired_before`; with
    /// `zombies_before`, also packs whose rows are all zombies older than it.
    async fn gc_unreferenced_packs(
        &self,
        retired_before: Millis,
        zombies_before: Option<Millis>,
        after: Option<PackKey>,
        limit: usize,
    ) -> MetaResult<Vec<PackRecord>>;
    /// Deletes a pack row nothing points at; None if something does (or it is gone).
    async fn gc_drop_pack(
        &self,
        id: &PackKey,
        retired_before: Millis,
    ) -> MetaResult<Option<PackRecord>>;
    /// Which of these packs have a row.
    async fn gc_known_packs(&self, ids: &[PackKey]) -> MetaResult<Vec<PackKey>>;
    /// Packs whose live bytes are below `permille`/1000 of their size.
    async fn gc_compaction_candidates(
        &self,
        permille: u32,
        after: Option<PackKey>,
        limit: usize,
    ) -> MetaResult<Vec<PackRecord>>;
    /// Every chunk row pointing into a pack, by offset.
    async fn gc_pack_chunks(&self, pack: &PackKey) -> MetaResult<Vec<PackChunk>>;
    /// One transaction: insert the compacted pack (fence checked), move the
    /// rows that still point at the copied frames, retire the packs they left.
    async fn gc_repoint(&self, repoint: Repoint) -> MetaResult<RepointOutcome>;
    /// Per-tenant space; `permille` is the compaction threshold.
    async fn gc_space(&self, permille: u32) -> MetaResult<Vec<TenantSpace>>;
}

#[async_trait]
impl<D: Driver> GcStore for SqlStore<D> {
    async fn gc_zombies(
        &self,
        cut: Millis,
        after: Option<Zombie>,
        limit: usize,
    ) -> MetaResult<Vec<Zombie>> {
        read(
            &self.db,
            "gc_zombies",
            tx_job!(tx, [] => zombies(tx, cut, after.as_ref(), limit).await),
        )
        .await
    }

    async fn gc_collect_zombies(
        &self,
        cut: Millis,
        ids: &[(TenantId, ChunkKey)],
    ) -> MetaResult<Vec<Zombie>> {
        let ids = Arc::new(ids.to_vec());
        write(
            &self.db,
            "gc_collect_zombies",
            tx_job!(tx, [ids] => collect(tx, cut, &ids).await),
        )
        .await
    }

    async fn gc_unreferenced_packs(
        &self,
        retired_before: Millis,
        zombies_before: Option<Millis>,
        after: Option<PackKey>,
        limit: usize,
    ) -> MetaResult<Vec<PackRecord>> {
        read(
            &self.db,
            "gc_unreferenced_packs",
            tx_job!(tx, [] =>
                unreferenced(tx, retired_before, zombies_before, after, limit).await),
        )
        .await
    }

    async fn gc_drop_pack(
        &self,
        id: &PackKey,
        retired_before: Millis,
    ) -> MetaResult<Option<PackRecord>> {
        let id = *id;
        write(
            &self.db,
            "gc_drop_pack",
            tx_job!(tx, [] => drop_pack(tx, &id, retired_before).await),
        )
        .await
    }

    async fn gc_known_packs(&self, ids: &[PackKey]) -> MetaResult<Vec<PackKey>> {
        let ids = Arc::new(ids.to_vec());
        read(
            &self.db,
            "gc_known_packs",
            tx_job!(tx, [ids] => known(tx, &ids).await),
        )
        .await
    }

    async fn gc_compaction_candidates(
        &self,
        permille: u32,
        after: Option<PackKey>,
        limit: usize,
    ) -> MetaResult<Vec<PackRecord>> {
        read(
            &self.db,
            "gc_compaction_candidates",
            tx_job!(tx, [] => candidates(tx, permille, after, limit).await),
        )
        .await
    }

    async fn gc_pack_chunks(&self, pack: &PackKey) -> MetaResult<Vec<PackChunk>> {
        let pack = *pack;
        read(
            &self.db,
            "gc_pack_chunks",
            tx_job!(tx, [] => pack_chunks(tx, &pack).await),
        )
        .await
    }

    async fn gc_repoint(&self, repoint: Repoint) -> MetaResult<RepointOutcome> {
        let repoint = Arc::new(repoint);
        write(
            &self.db,
            "gc_repoint",
            tx_job!(tx, [repoint] => repoint_rows(tx, &repoint, now_millis()).await),
        )
        .await
    }

    async fn gc_space(&self, permille: u32) -> MetaResult<Vec<TenantSpace>> {
        read(
            &self.db,
            "gc_space",
            tx_job!(tx, [] => space(tx, permille).await),
        )
        .await
    }
}
