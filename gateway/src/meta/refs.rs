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
//! net change per chunk: first the inserts of new chunks, then the updates of
//! all other rows, each pass in chunk-id order, so that concurrent PostgreSQL
//! transactions take row locks in one order. A chunk both released and
//! re-added (an overwrite with the same content) costs nothing.

use std::collections::hash_map::Entry;
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
// SET expressions see the row before the update; RETURNING the row after it.
const BUMP_CHUNK: &str = "UPDATE chunks SET refcount = refcount + $3, \
     state = CASE WHEN refcount + $3 > 0 THEN 'live' ELSE 'zombie' END, \
     zombie_since = CASE WHEN refcount + $3 > 0 THEN NULL \
                         WHEN refcount > 0 THEN $4 ELSE zombie_since END \
     WHERE tenant_id = $1 AND chunk_id = $2 AND refcount + $3 >= 0 \
     RETURNING pack_id, len, refcount";
const INSERT_PACK: &str = "INSERT INTO packs \
     (id, tenant_id, backend, size, live_bytes, state, created_at) \
     VALUES ($1, $2, $3, $4, 0, 'live', $5)";
const ADJUST_PACK: &str = "UPDATE packs SET live_bytes = \
     CASE WHEN live_bytes + $2 < 0 THEN 0 ELSE live_bytes + $2 END \
     WHERE id = $1 RETURNING id";

/// How often a new chunk's insert may lose to a row that then vanishes
/// before we update it (only a concurrent GC deletes rows) before we give up.
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
///
/// One statement per chunk in the common case: an INSERT for a new chunk, a
/// guarded `UPDATE … RETURNING` for every other (its old refcount is the new
/// one minus the change, so every transition is known exactly). Only rows
/// that UPDATE did not match (gone, or a release below zero) are looked at
/// again.
pub(crate) async fn apply(
    tx: &mut dyn Tx,
    tenant: TenantId,
    changes: RefChanges,
    new_chunks: &[NewChunk],
    new_packs: &[NewPack],
    now: Millis,
) -> MetaResult<usize> {
    let mut duplicate_frames = 0;
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
        match fresh.entry(c.id) {
            Entry::Occupied(_) => duplicate_frames += 1,
            Entry::Vacant(v) => {
                v.insert(c);
            }
        }
    }

    insert_packs(tx, tenant, new_packs, now).await?;

    // Chunks released and re-added in equal measure keep their row as is.
    let changes: BTreeMap<ChunkKey, Change> = changes
        .per_chunk
        .into_iter()
        .filter(|(id, ch)| ch.net() != 0 || fresh.contains_key(id))
        .collect();
    let rows = Rows {
        tenant,
        tenant_v: Value::from(tenant),
        changes: &changes,
        fresh: &fresh,
        now,
    };
    let mut pack_delta: BTreeMap<PackKey, i64> = BTreeMap::new();
    let mut won = BTreeSet::new();
    let (mut to_insert, mut to_bump): (Vec<ChunkKey>, Vec<ChunkKey>) =
        changes.keys().partition(|id| fresh.contains_key(*id));
    for _ in 0..INSERT_ROUNDS {
        // Inserts first, then every other row, each pass in chunk-id order.
        let lost = rows
            .insert(tx, &to_insert, &mut won, &mut pack_delta)
            .await?;
        to_bump.extend(lost);
        to_bump.sort_unstable();
        let unmatched = rows.bump(tx, &to_bump, &mut pack_delta).await?;
        to_insert = rows.settle(tx, &unmatched, &mut pack_delta).await?;
        to_bump.clear();
        if to_insert.is_empty() {
            adjust_packs(tx, pack_delta).await?;
            return Ok(duplicate_frames + fresh.len() - won.len());
        }
    }
    Err(MetaError::Internal(format!(
        "chunk {} kept vanishing while being inserted",
        hex::encode(to_insert[0])
    )))
}

/// The chunk rows one `apply` changes.
struct Rows<'a> {
    tenant: TenantId,
    tenant_v: Value,
    changes: &'a BTreeMap<ChunkKey, Change>,
    fresh: &'a HashMap<ChunkKey, &'a NewChunk>,
    now: Millis,
}

impl Rows<'_> {
    fn net(&self, id: &ChunkKey) -> i64 {
        self.changes.get(id).map_or(0, |c| c.net())
    }

    /// Inserts rows for new chunks; returns those another upload's row beat.
    async fn insert(
        &self,
        tx: &mut dyn Tx,
        ids: &[ChunkKey],
        won: &mut BTreeSet<ChunkKey>,
        pack_delta: &mut BTreeMap<PackKey, i64>,
    ) -> MetaResult<Vec<ChunkKey>> {
        let mut sets = Vec::with_capacity(ids.len());
        for id in ids {
            let loc = &self.fresh[id].loc;
            let refcount = self.net(id).max(0);
            sets.push(Vec::from(params![
                self.tenant_v.clone(),
                id,
                &loc.pack_id,
                to_i64(loc.offset, "chunk offset")?,
                i64::from(loc.len),
                i64::from(loc.plain_len),
                i64::from(loc.epoch),
                refcount,
                state_of(refcount),
                (refcount == 0).then_some(self.now),
            ]));
        }
        let results = tx.query_each(INSERT_CHUNK, &sets).await?;
        let mut lost = Vec::new();
        for (id, rows) in ids.iter().zip(results) {
            if rows.is_empty() {
                lost.push(*id);
            } else {
                won.insert(*id);
                if self.net(id) > 0 {
                    let loc = &self.fresh[id].loc;
                    *pack_delta.entry(loc.pack_id).or_default() += i64::from(loc.len);
                }
            }
        }
        Ok(lost)
    }

    /// Applies the net change to existing rows; returns the ids no row
    /// matched (missing, or the change would go below zero).
    async fn bump(
        &self,
        tx: &mut dyn Tx,
        ids: &[ChunkKey],
        pack_delta: &mut BTreeMap<PackKey, i64>,
    ) -> MetaResult<Vec<ChunkKey>> {
        let sets: Vec<Vec<Value>> = ids
            .iter()
            .map(|id| Vec::from(params![self.tenant_v.clone(), id, self.net(id), self.now]))
            .collect();
        let results = tx.query_each(BUMP_CHUNK, &sets).await?;
        let mut unmatched = Vec::new();
        for (id, rows) in ids.iter().zip(results) {
            let Some(row) = rows.first() else {
                unmatched.push(*id);
                continue;
            };
            let c = Cols::new(row, "chunks");
            let (pack, len, new) = (c.pack_key(0)?, c.i64(1)?, c.i64(2)?);
            let old = new - self.net(id);
            if old > 0 && new == 0 {
                *pack_delta.entry(pack).or_default() -= len;
            } else if old == 0 && new > 0 {
                *pack_delta.entry(pack).or_default() += len;
            }
        }
        Ok(unmatched)
    }

    /// Rows `bump` did not match: a reused chunk that is gone fails the
    /// commit; a new chunk whose row vanished after beating ours is inserted
    /// again (returned); a release below zero is clamped and logged.
    async fn settle(
        &self,
        tx: &mut dyn Tx,
        ids: &[ChunkKey],
        pack_delta: &mut BTreeMap<PackKey, i64>,
    ) -> MetaResult<Vec<ChunkKey>> {
        let locked = lock_rows(tx, &self.tenant_v, ids.iter().copied()).await?;
        let mut reinsert = Vec::new();
        let mut clamped = Vec::new();
        for id in ids {
            let change = self.changes.get(id).copied().unwrap_or_default();
            match locked.get(id) {
                Some(row) => {
                    tracing::error!(
                        tenant = %self.tenant,
                        chunk = %hex::encode(id),
                        refcount = row.refcount,
                        releasing = change.release,
                        "refcount would drop below zero; clamped to zero, run fsck"
                    );
                    if row.refcount > 0 {
                        *pack_delta.entry(row.pack).or_default() -= row.len;
                        clamped.push(Vec::from(params![
                            self.tenant_v.clone(),
                            id,
                            0i64,
                            "zombie",
                            self.now
                        ]));
                    }
                }
                None if self.fresh.contains_key(id) => reinsert.push(*id),
                None if change.add > 0 => {
                    return Err(MetaError::ChunkVanished(hex::encode(id)));
                }
                None => tracing::error!(
                    tenant = %self.tenant,
                    chunk = %hex::encode(id),
                    "releasing references of a chunk that has no row; run fsck"
                ),
            }
        }
        tx.query_each(UPDATE_CHUNK, &clamped).await?;
        Ok(reinsert)
    }
}

fn state_of(refcount: i64) -> &'static str {
    if refcount > 0 { "live" } else { "zombie" }
}

/// Inserts new pack rows, once the leases they were written under are
/// checked (and locked against takeover until the transaction ends).
pub(crate) async fn insert_packs(
    tx: &mut dyn Tx,
    tenant: TenantId,
    packs: &[NewPack],
    now: Millis,
) -> MetaResult<()> {
    super::leases::check_fences(tx, packs.iter().filter_map(|p| p.fence.as_ref())).await?;
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

pub(crate) async fn adjust_packs(tx: &mut dyn Tx, delta: BTreeMap<PackKey, i64>) -> MetaResult<()> {
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

/// The first half of a lookup, in a read transaction: which of these chunks
/// have a row, split into live ones and zombies (both in id order).
pub(crate) async fn lookup(
    tx: &mut dyn Tx,
    tenant: TenantId,
    ids: &[ChunkKey],
) -> MetaResult<(Vec<ChunkKey>, Vec<ChunkKey>)> {
    const STATE: &str = "SELECT chunk_id, state FROM chunks WHERE tenant_id = $1 AND chunk_id = $2";
    let (_, sorted) = distinct(ids);
    let keys: Vec<Value> = sorted.iter().map(Value::from).collect();
    let mut live = Vec::new();
    let mut zombies = Vec::new();
    for row in tx.query_keys(STATE, &Value::from(tenant), &keys).await? {
        let c = Cols::new(&row, "chunks");
        let id = c.chunk_key(0)?;
        if c.text(1)? == "zombie" {
            zombies.push(id);
        } else {
            live.push(id);
        }
    }
    live.sort_unstable();
    zombies.sort_unstable();
    Ok((live, zombies))
}

/// The second half, in a write transaction and only when zombies were found:
/// moves their zombie_since to now so GC grants the uploader a full grace
/// period. Returns the ids that still have a row (revived ones included).
pub(crate) async fn touch_zombies(
    tx: &mut dyn Tx,
    tenant: TenantId,
    zombies: &[ChunkKey],
    now: Millis,
) -> MetaResult<Vec<ChunkKey>> {
    // No state condition: a zombie revived meanwhile still exists.
    const TOUCH: &str = "UPDATE chunks SET zombie_since = \
         CASE WHEN state = 'zombie' THEN $3 ELSE zombie_since END \
         WHERE tenant_id = $1 AND chunk_id = $2 RETURNING chunk_id";
    let tenant_v = Value::from(tenant);
    let sets: Vec<Vec<Value>> = zombies
        .iter()
        .map(|id| Vec::from(params![tenant_v.clone(), id, now]))
        .collect();
    let results = tx.query_each(TOUCH, &sets).await?;
    Ok(zombies
        .iter()
        .zip(results)
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(id, _)| *id)
        .collect())
}

/// `ids` without repeats, in their first order, keeping those in `found`.
pub(crate) fn in_request_order(ids: &[ChunkKey], found: &BTreeSet<ChunkKey>) -> Vec<ChunkKey> {
    let (ordered, _) = distinct(ids);
    ordered
        .into_iter()
        .filter(|id| found.contains(id))
        .collect()
}

pub(crate) async fn locations(
    tx: &mut dyn Tx,
    tenant: TenantId,
    ids: &[ChunkKey],
) -> MetaResult<Vec<(ChunkKey, ChunkLocation)>> {
    const LOCATION: &str = "SELECT chunk_id, pack_id, off, len, plain_len, epoch FROM chunks \
         WHERE tenant_id = $1 AND chunk_id = $2";
    let (ordered, sorted) = distinct(ids);
    let keys: Vec<Value> = sorted.iter().map(Value::from).collect();
    let mut found = HashMap::with_capacity(keys.len());
    for row in tx.query_keys(LOCATION, &Value::from(tenant), &keys).await? {
        let c = Cols::new(&row, "chunks");
        found.insert(
            c.chunk_key(0)?,
            ChunkLocation {
                pack_id: c.pack_key(1)?,
                offset: c.u64(2)?,
                len: c.u32(3)?,
                plain_len: c.u32(4)?,
                epoch: c.u32(5)?,
            },
        );
    }
    Ok(ordered
        .into_iter()
        .filter_map(|id| found.get(&id).map(|loc| (id, *loc)))
        .collect())
}

/// The backend each of these packs of the tenant lives on.
pub(crate) async fn pack_backends(
    tx: &mut dyn Tx,
    tenant: TenantId,
    ids: &[PackKey],
) -> MetaResult<Vec<(PackKey, String)>> {
    const BACKEND: &str = "SELECT id, backend FROM packs WHERE tenant_id = $1 AND id = $2";
    let mut sorted: Vec<PackKey> = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let keys: Vec<Value> = sorted.iter().map(Value::from).collect();
    let mut out = Vec::with_capacity(keys.len());
    for row in tx.query_keys(BACKEND, &Value::from(tenant), &keys).await? {
        let c = Cols::new(&row, "packs");
        out.push((c.pack_key(0)?, c.text(1)?));
    }
    Ok(out)
}
