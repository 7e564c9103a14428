//! A read whose pack is gone asks the metadata where its chunks are now.
//! Compaction moves live chunks into new packs and deletes the old pack a
//! grace period later; a GET that planned its reads before the move and is
//! still streaming after that (a slow client, a large object) finds the old
//! pack missing. Its chunks are looked up once more and read from wherever
//! they are now; a chunk still recorded in the missing pack is lost data.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use dooz_chunker::Keyring;

use super::get::open_pieces;
use super::plan::{Piece, Read};
use super::{Engine, EngineError, EngineResult};
use crate::budget::Reservation;
use crate::meta::{ChunkLocation, TenantId};

#[derive(Clone)]
pub(super) struct Relocate {
    pub(super) engine: Engine,
    pub(super) tenant: TenantId,
}

impl Relocate {
    /// The pieces of `read`, each fetched from its chunk's current location.
    pub(super) async fn refetch(
        &self,
        keyring: Arc<Keyring>,
        read: Read,
        mut memory: Reservation,
    ) -> EngineResult<Vec<Bytes>> {
        let meta = self.engine.meta();
        let ids: Vec<[u8; 32]> = read.pieces.iter().map(|p| p.id.0).collect();
        let now: HashMap<[u8; 32], ChunkLocation> = meta
            .chunk_locations(self.tenant, &ids)
            .await?
            .into_iter()
            .collect();
        let packs: Vec<[u8; 16]> = now.values().map(|l| l.pack_id).collect();
        let backends: HashMap<[u8; 16], String> = meta
            .pack_backends(self.tenant, &packs)
            .await?
            .into_iter()
            .collect();
        let gone = read.pack_id;
        crate::jobs::metrics::GC.relocated_reads.inc();
        let mut out = Vec::with_capacity(read.pieces.len());
        for piece in read.pieces {
            let loc = match now.get(&piece.id.0) {
                Some(loc) if loc.pack_id != gone => *loc,
                _ => {
                    return Err(EngineError::Corrupt(format!(
                        "pack {} of chunk {} is missing",
                        hex::encode(gone),
                        piece.id
                    )));
                }
            };
            let backend = backends.get(&loc.pack_id).ok_or_else(|| {
                EngineError::Corrupt(format!("pack {} has no record", hex::encode(loc.pack_id)))
            })?;
            let store = self.engine.backends().get(backend)?;
            let end = loc.offset + u64::from(loc.len);
            let bytes = store.get_range(&loc.pack_id, loc.offset..end).await?;
            tracing::debug!(chunk = %piece.id, from = %hex::encode(gone), to = %hex::encode(loc.pack_id), "read a moved chunk");
            let single = Read {
                pack_id: loc.pack_id,
                start: loc.offset,
                end,
                pieces: vec![Piece { loc, ..piece }],
            };
            // The read's reservation covers every piece's plaintext; each
            // single read takes its piece's share.
            let share = memory
                .split(single.memory())
                .unwrap_or_else(Reservation::none);
            out.extend(open_pieces(bytes, keyring.clone(), single, share).await?);
        }
        Ok(out)
    }
}
