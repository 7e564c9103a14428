//! Dooz's data core: cuts objects into content-defined chunks, names them by
//! a keyed hash, compresses and seals each into a self-contained frame, and
//! gathers frames into self-describing packs.
//!
//! Pure: no I/O, no async runtime. Keys come in as plain parameters
//! ([`Keyring`]); the byte formats are specified in `docs/FORMAT.md` and
//! pinned by golden vectors in `tests/data/golden/`.
//!
//! ```
//! use dooz_chunker::*;
//!
//! let epoch = EpochKeys { enc: Key32::from_bytes([1; 32]), nonce: Key32::from_bytes([2; 32]) };
//! let keyring = Keyring::new(
//!     [7; 16],                     // tenant
//!     Key32::from_bytes([3; 32]),  // K_id
//!     Key32::from_bytes([4; 32]),  // K_cdc
//!     Key32::from_bytes([5; 32]),  // K_meta
//!     Cipher::Aes256GcmSiv,
//!     0,
//!     [(0, epoch)],
//! )?;
//! let params = ChunkerParams::default();
//! let mut chunker = keyring.chunker(params)?;
//! let mut pack = PackWriter::new([9; 16]);
//! let object = b"hello, world".repeat(1000);
//! let mut ids = Vec::new();
//! for chunk in chunker.push(&object).into_iter().chain(chunker.finish()) {
//!     let id = keyring.chunk_id(&chunk);
//!     let frame = keyring.seal_chunk(&id, &chunk, &CompressionPolicy::default());
//!     let at = pack.push_frame(id, &frame, chunk.len() as u32);
//!     ids.push((id, at));
//! }
//! let pack = pack.finish(&keyring);
//!
//! // Later: one frame, by a ranged read.
//! let (id, at) = ids[0];
//! let frame = &pack[at.offset as usize..][..at.len as usize];
//! let plain = keyring.open_chunk(&id, frame, params.max as usize)?;
//! assert_eq!(plain, object);
//!
//! // Or rebuild what the pack holds from its bytes alone.
//! let index = read_pack_index(&pack, &keyring)?;
//! assert_eq!(index.entries[0].id, id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod chunk_id;
mod chunking;
mod cipher;
mod compression;
mod frame;
mod keyring;
mod keys;
mod pack;

pub use chunk_id::ChunkId;
pub use chunking::{Chunker, ChunkerError, ChunkerParams};
#[doc(hidden)]
pub use cipher::raw;
pub use cipher::{Cipher, NONCE_LEN, ParseCipherError, TAG_LEN, UnknownCipher};
pub use compression::{Compression, CompressionPolicy, PROBE_LEN, UnknownCompression};
pub use frame::{
    FRAME_HEADER_LEN, FRAME_MAGIC, FRAME_OVERHEAD, FRAME_VERSION, FrameError, FrameHeader,
    SealError, parse_frame_header,
};
pub use keyring::{Keyring, KeyringError};
pub use keys::{EpochKeys, Key32, PackId, TenantId};
pub use pack::{
    FrameLocation, INDEX_ENTRY_LEN, IndexEntry, PACK_HEADER_LEN, PACK_MAGIC, PACK_TRAILER_LEN,
    PACK_TRAILER_MAGIC, PACK_VERSION, PackError, PackIndex, PackReader, PackTrailer, PackWriter,
    parse_pack_trailer, read_pack_footer, read_pack_index,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_safe<T: Send + Sync>() {}

    /// The gateway moves keyrings, chunkers and pack writers across tasks and
    /// threads; keep that possible.
    #[test]
    fn public_types_are_send_and_sync() {
        thread_safe::<Keyring>();
        thread_safe::<Chunker>();
        thread_safe::<PackWriter>();
        thread_safe::<PackReader<'static>>();
        thread_safe::<FrameError>();
        thread_safe::<PackError>();
        thread_safe::<Key32>();
    }
}
