//! Boundary healing: chunk boundaries that do not depend on how a client
//! split its upload.
//!
//! Each part of a multipart upload is chunked on its own, so every part
//! boundary forces a cut that a single PutObject of the same bytes would not
//! make; once an edit shifts the content, the chunks next to every boundary
//! after it differ from the previous version's. At completion the bytes
//! around each forced cut are chunked again as one stream: from the start of
//! the part's last chunk (a cut the single-stream chunking shares) up to the
//! first point where the stream cuts exactly where the next part's own
//! chunking did. From there on both chunkings agree, because a FastCDC
//! chunker's state after a cut depends on nothing before it. The object's
//! manifest then names the chunks a single PUT would have made; the parts'
//! boundary chunks it no longer names are released by the completion and
//! collected by GC. A boundary between two copied ranges (UploadPartCopy
//! entries that cover part of a chunk) is left as it is: a copy stores
//! nothing new, and copying contiguous ranges of an object rebuilds its
//! chunks anyway.
//!
//! A chunker decides a cut only once it has seen the byte after it, so after
//! each entry it is shown the next entry's first two bytes: a chunk emitted
//! exactly at the entry's end is the shared cut, and those two bytes are
//! dropped from the stream again.
//!
//! Cost per boundary: the part's last chunk and the next part's chunks up to
//! the first shared cut (typically one or two, plus the one read for the
//! look-ahead) are read, opened, re-chunked, looked up and, where new, sealed
//! and written. A stream that meets no shared cut within `MAX_REGION_CHUNKS`
//! maximum-size chunks (the chunking settings changed between the parts'
//! upload and now) is cut at the next entry end a part's own chunker chose:
//! correct data, less dedup. The chunks a part keeps at its edges go to a
//! pack of their own at upload (`put.rs`), so the ones this replaces leave
//! whole packs to the collector rather than dead bytes among live ones.

use std::sync::Arc;

use bytes::Bytes;
use dooz_chunker::{ChunkId, Keyring};

use super::get::fetch;
use super::plan::{Piece, Read};
use super::put::Ingest;
use super::relocate::Relocate;
use super::{Engine, EngineError, EngineResult};
use crate::budget::{self, Reservation};
use crate::meta::{LeaseFence, Manifest, ManifestChunk, ManifestPart, NewChunk, NewPack, Tenant};
use crate::metrics::METRICS;
use crate::store::PackStore;

/// A re-chunked region ends at the first entry end past this many maximum
/// chunk sizes when it has met no shared cut.
const MAX_REGION_CHUNKS: u64 = 4;
/// Bytes of the next entry shown to the chunker to learn whether it cuts
/// where an entry ends: FastCDC tests positions in pairs.
const LOOKAHEAD: usize = 2;

/// A completed upload's manifest after healing, and what healing stored.
pub(super) struct Healed {
    pub manifest: Manifest,
    pub new_chunks: Vec<NewChunk>,
    pub new_packs: Vec<NewPack>,
    /// Regions re-chunked, and the plaintext bytes read for them.
    pub regions: u64,
    pub reread_bytes: u64,
}

/// Where each entry of the joined parts' manifest ends, and whether that end
/// is only there because a part ended.
struct Layout {
    ends: Vec<u64>,
    forced: Vec<bool>,
}

impl Layout {
    fn of(joined: &Manifest) -> Self {
        let n = joined.chunks.len();
        let mut forced = vec![false; n];
        let mut last_of_part = 0usize;
        let with_entries: Vec<&ManifestPart> =
            joined.parts.iter().filter(|p| p.chunk_count > 0).collect();
        for (i, p) in with_entries.iter().enumerate() {
            last_of_part += p.chunk_count as usize;
            // The object's end is a cut a single PUT makes too.
            if i + 1 < with_entries.len() && last_of_part > 0 {
                forced[last_of_part - 1] = true;
            }
        }
        let mut at = 0u64;
        let ends = joined
            .chunks
            .iter()
            .map(|c| {
                at += u64::from(c.len());
                at
            })
            .collect();
        Self { ends, forced }
    }

    /// An entry kept as it is: a whole chunk whose end its own chunker
    /// chose, or part of a chunk an UploadPartCopy referenced (a copy
    /// stores nothing new; a region that reaches one re-chunks it).
    fn keeps(&self, joined: &Manifest, i: usize) -> bool {
        joined.chunks[i].slice.is_some() || !self.forced[i]
    }
}

impl Engine {
    /// Re-chunks the boundaries of `joined` (the chosen parts' entries in
    /// order, aligned to its parts); None when nothing needs it (one part,
    /// or healing is off). New chunks go to `store` under `fence`; on
    /// failure the packs written are deleted.
    pub(super) async fn heal_boundaries(
        &self,
        tenant: &Tenant,
        store: &PackStore,
        joined: &Manifest,
        fence: Option<LeaseFence>,
    ) -> EngineResult<Option<Healed>> {
        let layout = Layout::of(joined);
        let n = joined.chunks.len();
        if !self.inner.cfg.heal_boundaries || !(0..n).any(|i| !layout.keeps(joined, i)) {
            return Ok(None);
        }
        let keyring = self.keyring_of(tenant).await?;
        // One entry is read at a time: its frame and its plaintext (see
        // `Read::memory`), held by the ingest's reservation.
        let frame = self.inner.cfg.chunker.max as usize + dooz_chunker::FRAME_OVERHEAD;
        let reading = 2 * (frame + budget::UNIT);
        let mut ing = self
            .start_ingest(tenant, store, Vec::new(), fence, reading)
            .await?;
        let walked = self.walk(tenant, &keyring, &mut ing, joined, &layout).await;
        let walked = match walked {
            Ok(w) => ing.drain().await.map(|()| w),
            Err(e) => Err(e),
        };
        let (chunks, regions, reread_bytes) = match walked {
            Ok(w) => w,
            Err(e) => {
                ing.abandon().await;
                return Err(e);
            }
        };
        let staged = ing.into_staged();
        super::put::record_write(0, staged.stored_bytes, 0);
        METRICS.healed_boundaries.inc_by(regions);
        METRICS.healed_bytes.inc_by(reread_bytes);
        let manifest = Manifest {
            parts: parts_over(&joined.parts, &chunks),
            chunks,
        };
        Ok(Some(Healed {
            manifest,
            new_chunks: staged.new_chunks,
            new_packs: staged.new_packs,
            regions,
            reread_bytes,
        }))
    }

    /// The healed entries, how many regions were re-chunked and the bytes
    /// read for them.
    async fn walk(
        &self,
        tenant: &Tenant,
        keyring: &Arc<Keyring>,
        ing: &mut Ingest,
        joined: &Manifest,
        layout: &Layout,
    ) -> EngineResult<(Vec<ManifestChunk>, u64, u64)> {
        let n = joined.chunks.len();
        let limit = MAX_REGION_CHUNKS * u64::from(self.inner.cfg.chunker.max);
        let mut out = Vec::with_capacity(n);
        let (mut regions, mut reread) = (0u64, 0u64);
        // Entry `i`'s plaintext when it was read ahead, and how much of it
        // the chunker has already seen.
        let mut ahead: Option<(Bytes, usize)> = None;
        let mut i = 0;
        while i < n {
            if layout.keeps(joined, i) {
                out.push(joined.chunks[i].clone());
                ahead = None;
                i += 1;
                continue;
            }
            // Entry i starts at a cut both chunkings share.
            regions += 1;
            let first = ing.chunks().len();
            let start = layout.ends[i] - u64::from(joined.chunks[i].len());
            loop {
                let (bytes, seen) = match ahead.take() {
                    Some(a) => a,
                    None => {
                        let b = self.read_entry(tenant, keyring, &joined.chunks[i]).await?;
                        reread += b.len() as u64;
                        (b, 0)
                    }
                };
                ing.push_plain(&bytes[seen..]).await?;
                // Its plaintext is in the chunker now; the reading allowance
                // covers one entry at a time.
                drop(bytes);
                i += 1;
                if ing.at_cut() {
                    break;
                }
                if i == n || (layout.ends[i - 1] - start > limit && !layout.forced[i - 1]) {
                    ing.cut().await?;
                    break;
                }
                // A cut at this entry's end is decided only once the chunker
                // has seen the next bytes (a whole pair): show it two.
                let next = self.read_entry(tenant, keyring, &joined.chunks[i]).await?;
                reread += next.len() as u64;
                let look = next.len().min(LOOKAHEAD);
                ing.push_plain(&next[..look]).await?;
                let cut_len: u64 = ing.chunks()[first..]
                    .iter()
                    .map(|c| u64::from(c.len()))
                    .sum();
                if start + cut_len == layout.ends[i - 1] {
                    // The stream cut where this entry ends: from here on
                    // both chunkings agree.
                    ing.discard_buffered();
                    ahead = Some((next, 0));
                    break;
                }
                ahead = Some((next, look));
            }
            out.extend_from_slice(&ing.chunks()[first..]);
        }
        Ok((out, regions, reread))
    }

    /// The plaintext an entry covers, read from wherever its chunk is now.
    async fn read_entry(
        &self,
        tenant: &Tenant,
        keyring: &Arc<Keyring>,
        entry: &ManifestChunk,
    ) -> EngineResult<Bytes> {
        let meta = self.meta();
        let missing =
            || EngineError::Corrupt(format!("chunk {} has no row", hex::encode(entry.id)));
        let (_, loc) = meta
            .chunk_locations(tenant.id, &[entry.id])
            .await?
            .into_iter()
            .next()
            .ok_or_else(missing)?;
        let store = meta
            .pack_backends(tenant.id, &[loc.pack_id])
            .await?
            .into_iter()
            .next()
            .map(|(_, backend)| self.backends().get(&backend).cloned())
            .transpose()?;
        let (skip, take) = entry.span();
        let read = Read {
            pack_id: loc.pack_id,
            start: loc.offset,
            end: loc.offset + u64::from(loc.len),
            pieces: vec![Piece {
                id: ChunkId(entry.id),
                loc,
                skip: skip as usize,
                take: take as usize,
            }],
        };
        // The ingest's reservation covers this read (`heal_boundaries`).
        let memory = Reservation::none();
        let relocate = Relocate {
            engine: self.clone(),
            tenant: tenant.id,
        };
        let pieces = fetch(store, keyring.clone(), read, memory, relocate).await?;
        Ok(match pieces.as_slice() {
            [one] => one.clone(),
            _ => Bytes::from(pieces.concat()),
        })
    }
}

/// The parts list of a healed manifest: each part keeps its number, size
/// and ETag, and counts the entries that start inside it (`lead` bytes in
/// for the first).
fn parts_over(parts: &[ManifestPart], chunks: &[ManifestChunk]) -> Vec<ManifestPart> {
    let mut out = Vec::with_capacity(parts.len());
    let mut entry = 0usize;
    let mut entry_at = 0u64;
    let mut part_at = 0u64;
    for p in parts {
        let part_end = part_at + p.size;
        let mut count = 0u32;
        let mut lead = 0u32;
        while entry < chunks.len() && entry_at < part_end {
            if count == 0 {
                // Fits: a lead is less than the largest chunk.
                lead = u32::try_from(entry_at - part_at).unwrap_or(u32::MAX);
            }
            count += 1;
            entry_at += u64::from(chunks[entry].len());
            entry += 1;
        }
        out.push(ManifestPart {
            chunk_count: count,
            lead,
            ..p.clone()
        });
        part_at = part_end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, size: u64, chunk_count: u32) -> ManifestPart {
        ManifestPart {
            part_number: n,
            size,
            chunk_count,
            etag: format!("\"{n}\""),
            lead: 0,
        }
    }

    fn whole(b: u8, len: u32) -> ManifestChunk {
        ManifestChunk::whole([b; 32], len)
    }

    #[test]
    fn forced_cuts_are_the_ends_of_all_parts_but_the_last() {
        let mut joined = Manifest {
            parts: vec![part(1, 30, 2), part(2, 0, 0), part(3, 25, 2)],
            chunks: vec![whole(1, 10), whole(2, 20), whole(3, 5), whole(4, 20)],
        };
        let l = Layout::of(&joined);
        assert_eq!(l.forced, vec![false, true, false, false]);
        assert_eq!(l.ends, vec![10, 30, 35, 55]);
        assert!(l.keeps(&joined, 0) && !l.keeps(&joined, 1) && l.keeps(&joined, 3));
        // A copied slice ending a part stays.
        joined.chunks[1].slice = Some((0, 20));
        joined.chunks[1].plain_len = 40;
        assert!(l.keeps(&joined, 1));
    }

    #[test]
    fn parts_count_the_entries_starting_inside_them() {
        let parts = [part(1, 100, 0), part(2, 50, 0), part(3, 70, 0)];
        // Entries [0,60) [60,120) [120,200) [200,220).
        let chunks = [whole(1, 60), whole(2, 60), whole(3, 80), whole(4, 20)];
        let got = parts_over(&parts, &chunks);
        let counts: Vec<(u32, u32)> = got.iter().map(|p| (p.chunk_count, p.lead)).collect();
        assert_eq!(counts, vec![(2, 0), (1, 20), (1, 50)]);
        assert_eq!(got[1].etag, "\"2\"");
        // Entries [0,180) [180,220): part 2 has none of its own.
        let got = parts_over(&parts, &[whole(1, 180), whole(2, 40)]);
        let counts: Vec<(u32, u32)> = got.iter().map(|p| (p.chunk_count, p.lead)).collect();
        assert_eq!(counts, vec![(1, 0), (0, 0), (1, 30)]);
    }
}
