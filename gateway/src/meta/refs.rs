//! Chunk reference accounting: the one place refcounts, chunk states and pack
//! live bytes change.
//!
//! Invariants (fsck checks them):
//! - a chunk's refcount is the number of times its id occurs in every object
//!   version's manifest and every stored part's manifest;
//! - refcount > 0 ⇔ state 'live' and zombie_since NULL; refcount 0 ⇔ 'zombie'
//!   with zombie_since set;
//! - a pack's live_bytes is the sum of `len` of the live chunks whose row
//!   points at it.
//!
//! A transaction collects all its reference changes first (what the manifest
//! it stores adds, what the version or parts it drops release) and applies the
//! net change per chunk in one pass in chunk-id order, so that concurrent
//! PostgreSQL transactions lock chunk rows in the same order, and a chunk
//! both released and re-added (an overwrite with the same content) costs
//! nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::codec::to_i64;
use super::manifest::Manifest;
use super::model::{ChunkKey, ChunkLocation, Millis, NewChunk, NewPack, PackKey, TenantId};
use super::sql::{Cols, Tx, Value, params};
use super::{MetaError, MetaResult};

const SELECT_FOR_UPDATE: &str =
    "SELECT pack_id, len, refcount FROM chunks WHERE tenant_id = $1 AND chunk_id = $2 FOR UPDATE";
const INSERT_CHUNK: &str = "INSERT INTO chunks \
     (tenant_id, chunk_id, pack_id, off, len, plain_len, epoch, refcount, state, zombie_since) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (tenant_id, chunk_id) DO NOTHING RETURNING chunk_id";
const UPDATE_CHUNK: &str = "UPDATE chunks SET refcount = $3, state = $4, zombie_since = $5 \
     WHERE tenant_id = $1 AND chunk_id = $2";
const INSERT_PACK: &str = "INSERT INTO packs \
     (id, tenant_id, backend, size, live_bytes, state, created_at) \
     VALUES ($1, $2, $3, $4, 0, 'live', $5)";
const ADJUST_PACK: &str = "UPDATE packs SET live_bytes = \
     CASE WHEN live_bytes + $2 < 0 THEN 0 ELSE live_bytes + $2 END \
     WHERE id = $1 RETURNING id";

/// How often an insert may lose to a row that then vanishes before we can
/// lock it (only a concurrent GC deletes rows) before we give up.
const INSERT_ROUNDS: usize = 3;

/// References one transaction adds and releases, per chunk.
#[derive(Debug, Default)]
pub(crate) struct RefChanges {
    per_chunk: BTreeMap<ChunkKey, Change>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Change {
    add: i64,
    release: i64,
}

impl Change {
    fn net(self) -> i64 {
        self.add - self.release
    }
}

impl RefChanges {
    /// The manifest being stored references its chunks.
    pub(crate) fn add(&mut self, m: &Manifest) {
        for (id, n) in m.ref_counts() {
            self.per_chunk.entry(id).or_default().add += n;
        }
    }

    /// A manifest being dropped releases its chunks.
    pub(crate) fn release(&mut self, m: &Manifest) {
        for (id, n) in m.ref_counts() {
            self.per_chunk.entry(id).or_default().release += n;
        }
    }
}

/// A chunk row as locked by this transaction.
struct Locked {
    pack: PackKey,
    len: i64,
    refcount: i64,
}

/// Inserts the new packs, then applies the net reference change of every
/// chunk: inserts rows for new chunks (insert-or-increment), increments and
/// revives reused ones (ChunkVanished if one is gone), decrements released
/// ones (zombie at zero), and moves pack live bytes with every state change.
/// Returns how many new chunks lost the race to a row another upload created.
pub(crate) async fn apply(
    tx: &mut dyn Tx,
    tenant: TenantId,
    changes: RefChanges,
    new_chunks: &[NewChunk],
    new_packs: &[NewPack],
    now: Millis,
) -> MetaResult<usize> {
    let mut lost_races = 0;
    let mut fresh: HashMap<ChunkKey, &NewChunk> = HashMap::with_capacity(new_chunks.len());
    let pack_ids: BTreeSet<PackKey> = new_packs.iter().map(|p| p.id).collect();
    for c in new_chunks {
        if !pack_ids.contains(&c.loc.pack_id) {
            return Err(MetaError::Internal(format!(
                "new chunk {} is in pack {}, which this commit does not add",
                hex::encode(c.id),
                hex::encode(c.loc.pack_id)
            )));
        }
        if changes.per_chunk.get(&c.id).is_none_or(|ch| ch.add == 0) {
            return Err(MetaError::Internal(format!(
                "new chunk {} is not in the manifest",
                hex::encode(c.id)
            )));
        }
        // A second frame of the same chunk in this upload is dead weight,
        // exactly like a frame that lost to another upload.
        if fresh.insert(c.id, c).is_some() {
            lost_races += 1;
        }
    }

    insert_packs(tx, tenant, new_packs, now).await?;

    // Chunks released and re-added in equal measure keep their row as is.
    let touched: Vec<(ChunkKey, Change)> = changes
        .per_chunk
        .into_iter()
        .filter(|(id, ch)| ch.net() != 0 || fresh.contains_key(id))
        .collect();
    if touched.is_empty() {
        return Ok(lost_races);
    }

    let tenant_v = Value::from(tenant);
    let mut locked = lock_rows(tx, &tenant_v, touched.iter().map(|(id, _)| *id)).await?;

    let mut pack_delta: BTreeMap<PackKey, i64> = BTreeMap::new();
    let mut to_insert: Vec<(ChunkKey, Change)> = Vec::new();
    for (id, ch) in &touched {
        if locked.contains_key(id) {
            continue;
        }
        if fresh.contains_key(id) {
            to_insert.push((*id, *ch));
        } else if ch.add > 0 {
            return Err(MetaError::ChunkVanished(hex::encode(id)));
        } else {
            tracing::error!(
                tenant = %tenant,
                chunk = %hex::encode(id),
                "releasing references of a chunk that has no row; run fsck"
            );
        }
    }

    let mut round = 0;
    while !to_insert.is_empty() {
        round += 1;
        if round > INSERT_ROUNDS {
            return Err(MetaError::Internal(format!(
                "chunk {} kept vanishing while being inserted",
                hex::encode(to_insert[0].0)
            )));
        }
        let mut sets = Vec::with_capacity(to_insert.len());
        for (id, ch) in &to_insert {
            let loc = &fresh[id].loc;
            let refcount = ch.net().max(0);
            sets.push(Vec::from(params![
                tenant_v.clone(),
                id,
                &loc.pack_id,
                to_i64(loc.offset, "chunk offset")?,
                i64::from(loc.len),
                i64::from(loc.plain_len),
                i64::from(loc.epoch),
                refcount,
                state_of(refcount),
                (refcount == 0).then_some(now),
            ]));
        }
        let results = tx.query_each(INSERT_CHUNK, &sets).await?;
        let mut lost = Vec::new();
        for ((id, ch), rows) in to_insert.iter().zip(results) {
            if rows.is_empty() {
                lost.push(*id);
            } else if ch.net() > 0 {
                let loc = &fresh[id].loc;
                *pack_delta.entry(loc.pack_id).or_default() += i64::from(loc.len);
            }
        }
        // Another upload committed the same chunk meanwhile: lock its row and
        // account for it like a row that existed all along.
        let relocked = lock_rows(tx, &tenant_v, lost.iter().copied()).await?;
        to_insert.retain(|(id, _)| lost.contains(id) && !relocked.contains_key(id));
        locked.extend(relocked);
    }

    let mut updates = Vec::new();
    for (id, ch) in &touched {
        let Some(row) = locked.get(id) else { continue };
        if fresh.contains_key(id) {
            lost_races += 1;
        }
        let old = row.refcount;
        let mut new = old + ch.net();
        if new < 0 {
            tracing::error!(
                tenant = %tenant,
                chunk = %hex::encode(id),
                refcount = old,
                releasing = ch.release,
                "refcount would drop below zero; clamped to zero, run fsck"
            );
            new = 0;
        }
        if new == old {
            continue;
        }
        if old > 0 && new == 0 {
            *pack_delta.entry(row.pack).or_default() -= row.len;
        } else if old == 0 && new > 0 {
            *pack_delta.entry(row.pack).or_default() += row.len;
        }
        let zombie_since = (new == 0).then_some(now);
        updates.push(Vec::from(params![
            tenant_v.clone(),
            id,
            new,
            state_of(new),
            zombie_since
        ]));
    }
    tx.query_each(UPDATE_CHUNK, &updates).await?;

    adjust_packs(tx, pack_delta).await?;
    Ok(lost_races)
}

fn state_of(refcount: i64) -> &'static str {
    if refcount > 0 { "live" } else { "zombie" }
}

async fn insert_packs(
    tx: &mut dyn Tx,
    tenant: TenantId,
    packs: &[NewPack],
    now: Millis,
) -> MetaResult<()> {
    let mut sorted: Vec<&NewPack> = packs.iter().collect();
    sorted.sort_by_key(|p| p.id);
    let mut sets = Vec::with_capacity(sorted.len());
    for p in sorted {
        sets.push(Vec::from(params![
            &p.id,
            tenant,
            p.backend.as_str(),
            to_i64(p.size, "pack size")?,
            now
        ]));
    }
    tx.query_each(INSERT_PACK, &sets).await?;
    Ok(())
}

/// Locks the rows of these chunks (in the given, sorted, order) and returns
/// the ones that exist.
async fn lock_rows(
    tx: &mut dyn Tx,
    tenant: &Value,
    ids: impl Iterator<Item = ChunkKey>,
) -> MetaResult<HashMap<ChunkKey, Locked>> {
    let ids: Vec<ChunkKey> = ids.collect();
    let sets: Vec<Vec<Value>> = ids
        .iter()
        .map(|id| Vec::from(params![tenant.clone(), id]))
        .collect();
    let results = tx.query_each(SELECT_FOR_UPDATE, &sets).await?;
    let mut out = HashMap::with_capacity(ids.len());
    for (id, rows) in ids.into_iter().zip(results) {
        if let Some(row) = rows.first() {
            let c = Cols::new(row, "chunks");
            out.insert(
                id,
                Locked {
                    pack: c.pack_key(0)?,
                    len: c.i64(1)?,
                    refcount: c.i64(2)?,
                },
            );
        }
    }
    Ok(out)
}

async fn adjust_packs(tx: &mut dyn Tx, delta: BTreeMap<PackKey, i64>) -> MetaResult<()> {
    let changed: Vec<(PackKey, i64)> = delta.into_iter().filter(|(_, d)| *d != 0).collect();
    let sets: Vec<Vec<Value>> = changed
        .iter()
        .map(|(p, d)| Vec::from(params![p, *d]))
        .collect();
    let results = tx.query_each(ADJUST_PACK, &sets).await?;
    for ((pack, d), rows) in changed.iter().zip(results) {
        if rows.is_empty() {
            tracing::error!(pack = %hex::encode(pack), delta = d, "chunk points at a pack with no row; run fsck");
        }
    }
    Ok(())
}

/// Distinct ids in input order, and the same ids sorted (the order rows are
/// touched in).
fn distinct(ids: &[ChunkKey]) -> (Vec<ChunkKey>, Vec<ChunkKey>) {
    let mut seen = BTreeSet::new();
    let ordered: Vec<ChunkKey> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    (ordered, seen.into_iter().collect())
}

/// Which chunks exist (live or zombie); zombies found get zombie_since = now,
/// so GC gives the caller a full grace period to commit its reference.
pub(crate) async fn lookup(
    tx: &mut dyn Tx,
    tenant: TenantId,
    ids: &[ChunkKey],
    now: Millis,
) -> MetaResult<Vec<ChunkKey>> {
    const STATE: &str = "SELECT state FROM chunks WHERE tenant_id = $1 AND chunk_id = $2";
    // No state condition: a zombie revived meanwhile still exists.
    const TOUCH: &str = "UPDATE chunks SET zombie_since = \
         CASE WHEN state = 'zombie' THEN $3 ELSE zombie_since END \
         WHERE tenant_id = $1 AND chunk_id = $2 RETURNING chunk_id";
    let (ordered, sorted) = distinct(ids);
    let tenant_v = Value::from(tenant);
    let sets: Vec<Vec<Value>> = sorted
        .iter()
        .map(|id| Vec::from(params![tenant_v.clone(), id]))
        .collect();
    let results = tx.query_each(STATE, &sets).await?;
    let mut found = BTreeSet::new();
    let mut zombies = Vec::new();
    for (id, rows) in sorted.iter().zip(results) {
        if let Some(row) = rows.first() {
            if Cols::new(row, "chunks").text(0)? == "zombie" {
                zombies.push(*id);
            } else {
                found.insert(*id);
            }
        }
    }
    let sets: Vec<Vec<Value>> = zombies
        .iter()
        .map(|id| Vec::from(params![tenant_v.clone(), id, now]))
        .collect();
    let results = tx.query_each(TOUCH, &sets).await?;
    for (id, rows) in zombies.iter().zip(results) {
        if !rows.is_empty() {
            found.insert(*id);
        }
    }
    Ok(ordered
        .into_iter()
        .filter(|id| found.contains(id))
        .collect())
}

pub(crate) async fn locations(
    tx: &mut dyn Tx,
    tenant: TenantId,
    ids: &[ChunkKey],
) -> MetaResult<Vec<(ChunkKey, ChunkLocation)>> {
    const LOCATION: &str = "SELECT pack_id, off, len, plain_len, epoch FROM chunks \
         WHERE tenant_id = $1 AND chunk_id = $2";
    let (ordered, _) = distinct(ids);
    let tenant_v = Value::from(tenant);
    let sets: Vec<Vec<Value>> = ordered
        .iter()
        .map(|id| Vec::from(params![tenant_v.clone(), id]))
        .collect();
    let results = tx.query_each(LOCATION, &sets).await?;
    let mut out = Vec::with_capacity(ordered.len());
    for (id, rows) in ordered.into_iter().zip(results) {
        if let Some(row) = rows.first() {
            let c = Cols::new(row, "chunks");
            out.push((
                id,
                ChunkLocation {
                    pack_id: c.pack_key(0)?,
                    offset: c.u64(1)?,
                    len: c.u32(2)?,
                    plain_len: c.u32(3)?,
                    epoch: c.u32(4)?,
                },
            ));
        }
    }
    Ok(out)
}
