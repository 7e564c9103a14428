//! Planning the reads of a GET (or an UploadPartCopy): which manifest
//! entries cover the requested range, where their chunks are, and which
//! ranged pack reads fetch them — a window of entries at a time, so a huge
//! object costs memory and metadata queries in proportion to what is read,
//! not to its size.
//!
//! A manifest small enough is read with its version (`INLINE_MANIFEST`);
//! a larger one (a multipart object of many parts) stays in the database
//! and its entries are read in slices: for a format-1 manifest the reader
//! jumps straight to the part holding the range's first byte (entries have
//! a fixed size there), for format 2 it reads from the first entry on.

use std::collections::HashMap;
use std::sync::Arc;

use dooz_chunker::ChunkId;

use super::{Engine, EngineError, EngineResult};
use crate::meta::{
    ChunkLocation, Manifest, ManifestChunk, ManifestHead, ManifestPart, ObjectVersion, TenantId,
};
use crate::store::PackStore;

/// Manifests up to this size are read whole with their version (about
/// 29,000 entries: a 28 GiB object at the default 1 MiB chunks).
pub(crate) const INLINE_MANIFEST: usize = 1024 * 1024;
/// Entries planned (looked up, located, coalesced) at a time.
const PLAN_WINDOW: usize = 4096;
/// Bytes of a stored manifest read per query.
const SLICE_BYTES: usize = PLAN_WINDOW * ManifestHead::MAX_ENTRY;
/// Adjacent frames of one pack are fetched with one ranged read up to this size.
const MAX_COALESCED_READ: u64 = 8 * 1024 * 1024;
/// ... and while the read's memory (ciphertext and the plaintext it opens
/// to, see `Read::memory`) stays within this: compressible data opens to
/// many times its ciphertext. A GET holds this much from its first read
/// on (its floor), so every later read fits without waiting for memory
/// once the client has its 200. A single frame may exceed it only with a
/// chunk size configured above 8 MiB.
pub(super) const MAX_READ_MEMORY: usize = 24 * 1024 * 1024;

/// One ranged read of a pack and the pieces of plaintext it yields.
pub(super) struct Read {
    pub pack_id: [u8; 16],
    pub start: u64,
    pub end: u64,
    pub pieces: Vec<Piece>,
}

pub(super) struct Piece {
    pub id: ChunkId,
    pub loc: ChunkLocation,
    /// Plaintext bytes to drop at the front and to keep.
    pub skip: usize,
    pub take: usize,
}

/// A version's manifest entries in order, from memory or from the database.
pub(super) enum Entries {
    Loaded {
        chunks: Arc<Vec<ManifestChunk>>,
        next: usize,
    },
    Stored(Box<StoredEntries>),
}

pub(super) struct StoredEntries {
    engine: Engine,
    bucket: String,
    key: String,
    version_id: String,
    format: u8,
    /// Blob offset of the first byte not yet read.
    next_at: u64,
    len: u64,
    buf: Vec<u8>,
    pos: usize,
    remaining: u64,
}

fn corrupt(v: &StoredEntries, why: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(format!(
        "manifest of {}/{} version {}: {why}",
        v.bucket, v.key, v.version_id
    ))
}

impl StoredEntries {
    async fn next(&mut self) -> EngineResult<Option<ManifestChunk>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        loop {
            match Manifest::decode_entry(self.format, &self.buf[self.pos..])
                .map_err(|e| corrupt(self, e))?
            {
                Some((c, n)) => {
                    self.pos += n;
                    self.remaining -= 1;
                    return Ok(Some(c));
                }
                None => {
                    if self.next_at >= self.len {
                        return Err(corrupt(self, "it ends inside an entry"));
                    }
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    let more = self
                        .engine
                        .meta()
                        .manifest_slice(
                            &self.bucket,
                            &self.key,
                            &self.version_id,
                            self.next_at,
                            SLICE_BYTES,
                        )
                        .await?;
                    if more.is_empty() {
                        return Err(corrupt(self, "it is shorter than its head says"));
                    }
                    self.next_at += more.len() as u64;
                    self.buf.extend_from_slice(&more);
                }
            }
        }
    }
}

impl Entries {
    /// The entries of `version`; `head` when its manifest stayed stored.
    /// Positions at the entry holding plaintext byte `start` as far as it
    /// can jump; returns the plaintext offset of the next entry.
    pub(super) fn open(
        engine: &Engine,
        version: &ObjectVersion,
        head: Option<ManifestHead>,
        start: u64,
    ) -> (Self, u64) {
        let Some(head) = head else {
            return (
                Entries::Loaded {
                    chunks: Arc::new(version.manifest.chunks.clone()),
                    next: 0,
                },
                0,
            );
        };
        let (index, offset) = jump(&version.manifest.parts, head, start);
        let entries = StoredEntries {
            engine: engine.clone(),
            bucket: version.bucket.clone(),
            key: version.key.clone(),
            version_id: version.version_id.clone(),
            format: head.format,
            next_at: head.chunks_at + index * ManifestHead::V1_ENTRY,
            len: head.len,
            buf: Vec::new(),
            pos: 0,
            remaining: head.chunk_count - index,
        };
        (Entries::Stored(Box::new(entries)), offset)
    }

    pub(super) async fn next(&mut self) -> EngineResult<Option<ManifestChunk>> {
        match self {
            Entries::Loaded { chunks, next } => {
                let c = chunks.get(*next).cloned();
                *next += 1;
                Ok(c)
            }
            Entries::Stored(s) => s.next().await,
        }
    }
}

/// For a format-1 or -3 manifest with parts: the index of the last entry
/// that starts at or before `start` and begins a part's own entries, and its
/// plaintext offset. Otherwise the start (entries vary in size, so there is
/// nothing to compute a jump from).
fn jump(parts: &[ManifestPart], head: ManifestHead, start: u64) -> (u64, u64) {
    match head.format {
        1 => {
            let (mut index, mut offset) = (0u64, 0u64);
            for p in parts {
                if offset + p.size > start {
                    break;
                }
                index += u64::from(p.chunk_count);
                offset += p.size;
            }
            (index.min(head.chunk_count), offset)
        }
        // Chunks straddle parts: a part's first own entry starts `lead`
        // bytes in, and a part inside one long chunk has no entry at all.
        3 => {
            let (mut index, mut offset) = (0u64, 0u64);
            let mut best = (0, 0);
            for p in parts {
                let first = offset + u64::from(p.lead);
                if p.chunk_count > 0 {
                    if first > start {
                        break;
                    }
                    best = (index.min(head.chunk_count), first);
                }
                index += u64::from(p.chunk_count);
                offset += p.size;
            }
            best
        }
        _ => (0, 0),
    }
}

/// Entries of `[start, end)` of an object, planned into reads a window at
/// a time.
pub(super) struct Planner {
    engine: Engine,
    tenant: TenantId,
    entries: Entries,
    /// Plaintext offset of the next entry.
    offset: u64,
    start: u64,
    end: u64,
    pub(super) stores: HashMap<[u8; 16], PackStore>,
    pub(super) done: bool,
}

impl Planner {
    pub(super) fn new(
        engine: &Engine,
        tenant: TenantId,
        version: &ObjectVersion,
        head: Option<ManifestHead>,
        start: u64,
        end: u64,
    ) -> Self {
        let (entries, offset) = Entries::open(engine, version, head, start);
        Self {
            engine: engine.clone(),
            tenant,
            entries,
            offset,
            start,
            end,
            stores: HashMap::new(),
            done: start >= end,
        }
    }

    /// The next entries of the range, with the plaintext span each covers:
    /// at most `PLAN_WINDOW` of them, as (entry, skip, take).
    async fn next_entries(&mut self) -> EngineResult<Vec<(ManifestChunk, u64, u64)>> {
        let mut wanted = Vec::new();
        while !self.done && wanted.len() < PLAN_WINDOW {
            let Some(c) = self.entries.next().await? else {
                self.done = true;
                break;
            };
            let len = u64::from(c.len());
            let (c_start, c_end) = (self.offset, self.offset + len);
            self.offset = c_end;
            if c_end <= self.start || len == 0 {
                continue;
            }
            if c_start >= self.end {
                self.done = true;
                break;
            }
            let skip = self.start.saturating_sub(c_start);
            let take = self.end.min(c_end) - c_start - skip;
            wanted.push((c, skip, take));
            if c_end >= self.end {
                self.done = true;
            }
        }
        Ok(wanted)
    }

    /// The manifest entries of the range, each cut to the part of its chunk
    /// that lies inside it (for a ranged copy).
    pub(super) async fn sliced_entries(mut self) -> EngineResult<Vec<ManifestChunk>> {
        let mut out = Vec::new();
        while !self.done {
            for (mut c, skip, take) in self.next_entries().await? {
                let (slice_off, _) = c.span();
                let (skip, take) = (skip as u32, take as u32);
                c.slice = (skip != 0 || take != c.plain_len).then_some((slice_off + skip, take));
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The next window of reads (empty once the range is planned).
    pub(super) async fn next_reads(&mut self) -> EngineResult<Vec<Read>> {
        let wanted = self.next_entries().await?;
        let mut ids: Vec<[u8; 32]> = wanted.iter().map(|(c, _, _)| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let meta = self.engine.meta();
        let locations: HashMap<[u8; 32], ChunkLocation> = meta
            .chunk_locations(self.tenant, &ids)
            .await?
            .into_iter()
            .collect();
        let mut unknown: Vec<[u8; 16]> = locations
            .values()
            .map(|l| l.pack_id)
            .filter(|p| !self.stores.contains_key(p))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            for (pack, backend) in meta.pack_backends(self.tenant, &unknown).await? {
                let store = self.engine.backends().get(&backend)?.clone();
                self.stores.insert(pack, store);
            }
        }
        let mut reads: Vec<Read> = Vec::new();
        for (c, skip, take) in wanted {
            let loc = *locations.get(&c.id).ok_or_else(|| {
                EngineError::Corrupt(format!("chunk {} has no location", hex::encode(c.id)))
            })?;
            let (slice_off, _) = c.span();
            let piece = Piece {
                id: ChunkId(c.id),
                loc,
                skip: (u64::from(slice_off) + skip) as usize,
                take: take as usize,
            };
            let frame_end = loc.offset + u64::from(loc.len);
            match reads.last_mut() {
                Some(r)
                    if r.pack_id == loc.pack_id
                        && r.end == loc.offset
                        && frame_end - r.start <= MAX_COALESCED_READ
                        && r.memory_extended(frame_end, loc.plain_len) <= MAX_READ_MEMORY =>
                {
                    r.end = frame_end;
                    r.pieces.push(piece);
                }
                _ => reads.push(Read {
                    pack_id: loc.pack_id,
                    start: loc.offset,
                    end: frame_end,
                    pieces: vec![piece],
                }),
            }
        }
        Ok(reads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_to_the_part_holding_the_start() {
        let part = |n, size, chunk_count| ManifestPart {
            part_number: n,
            size,
            chunk_count,
            etag: String::new(),
            lead: 0,
        };
        let parts = [part(1, 100, 3), part(2, 50, 2), part(3, 70, 4)];
        let head = |format| ManifestHead {
            format,
            chunks_at: 0,
            chunk_count: 9,
            len: 0,
        };
        assert_eq!(jump(&parts, head(1), 0), (0, 0));
        assert_eq!(jump(&parts, head(1), 99), (0, 0));
        assert_eq!(jump(&parts, head(1), 100), (3, 100));
        assert_eq!(jump(&parts, head(1), 160), (5, 150));
        assert_eq!(jump(&parts, head(1), 10_000), (9, 220));
        assert_eq!(jump(&parts, head(2), 160), (0, 0));
        assert_eq!(jump(&[], head(1), 160), (0, 0));
    }

    #[test]
    fn jumps_over_straddling_chunks() {
        // Parts [0,100) [100,150) [150,220); entries [0,60) [60,120)
        // [120,200) [200,220): the second and third straddle a boundary.
        let part = |n, size, chunk_count, lead| ManifestPart {
            part_number: n,
            size,
            chunk_count,
            etag: String::new(),
            lead,
        };
        let parts = [part(1, 100, 2, 0), part(2, 50, 1, 20), part(3, 70, 1, 50)];
        let head = ManifestHead {
            format: 3,
            chunks_at: 0,
            chunk_count: 4,
            len: 0,
        };
        assert_eq!(jump(&parts, head, 0), (0, 0));
        assert_eq!(jump(&parts, head, 110), (0, 0));
        assert_eq!(jump(&parts, head, 119), (0, 0));
        assert_eq!(jump(&parts, head, 120), (2, 120));
        assert_eq!(jump(&parts, head, 199), (2, 120));
        assert_eq!(jump(&parts, head, 200), (3, 200));
        // Entries [0,180) [180,220): part 2 lies inside the first.
        let inside = [part(1, 100, 1, 0), part(2, 50, 0, 0), part(3, 70, 1, 30)];
        assert_eq!(jump(&inside, head, 140), (0, 0));
        assert_eq!(jump(&inside, head, 180), (1, 180));
    }
}
