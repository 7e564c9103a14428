//! The pack: many chunk frames in one backend object, with an encrypted
//! index so the pack describes itself.
//!
//! ```text
//! header   magic "DZPK" (4) ‖ version (1) ‖ pack id (16)                  21 bytes
//! frames   chunk frames back to back
//! footer   AES-256-GCM-SIV(K_meta) of: count (u32 LE) ‖ count × entry,
//!          then its 16-byte tag; entry = id (32) ‖ offset (u64 LE) ‖
//!          len (u32 LE) ‖ plain_len (u32 LE)
//! trailer  pack id (16) ‖ footer offset (u64 LE) ‖ footer len (u32 LE) ‖
//!          version (1) ‖ magic "DZPT" (4)                                 33 bytes
//! ```
//!
//! A reader fetches the trailer (a ranged read of the last
//! [`PACK_TRAILER_LEN`] bytes), then the footer, and from it knows every
//! frame's place. See docs/FORMAT.md §4.

use crate::chunk_id::ChunkId;
use crate::cipher::TAG_LEN;
use crate::compression::CompressionPolicy;
use crate::frame::{FRAME_OVERHEAD, FrameError, SealError};
use crate::keyring::{Keyring, pack_aad, pack_nonce};
use crate::keys::PackId;

/// First four bytes of every pack.
pub const PACK_MAGIC: [u8; 4] = *b"DZPK";
/// Last four bytes of every pack.
pub const PACK_TRAILER_MAGIC: [u8; 4] = *b"DZPT";
/// The pack format version this crate writes and reads.
pub const PACK_VERSION: u8 = 1;
/// Bytes of the pack header; the first frame starts here.
pub const PACK_HEADER_LEN: usize = 4 + 1 + 16;
/// Bytes of the fixed-size trailer at the end of every pack.
pub const PACK_TRAILER_LEN: usize = 16 + 8 + 4 + 1 + 4;
/// Bytes of one footer index entry (before encryption).
pub const INDEX_ENTRY_LEN: usize = 32 + 8 + 4 + 4;
/// Footer bytes besides its entries: the count and the tag.
const FOOTER_FIXED_LEN: usize = 4 + TAG_LEN;

/// Where a frame landed inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLocation {
    /// Offset of the frame's first byte from the start of the pack.
    pub offset: u64,
    /// Frame length in bytes.
    pub len: u32,
}

/// One frame as listed in a pack's footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The chunk the frame holds.
    pub id: ChunkId,
    /// Offset of the frame from the start of the pack.
    pub offset: u64,
    /// Frame length.
    pub len: u32,
    /// Length of the chunk's plaintext.
    pub plain_len: u32,
}

impl IndexEntry {
    /// The frame's place, for a ranged read.
    pub fn location(&self) -> FrameLocation {
        FrameLocation {
            offset: self.offset,
            len: self.len,
        }
    }
}

/// A pack's decrypted, checked index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackIndex {
    /// The pack's id.
    pub pack_id: PackId,
    /// Its frames, in pack order.
    pub entries: Vec<IndexEntry>,
}

/// The fixed-size trailer: where the footer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackTrailer {
    /// The pack's id (authenticated later, by the footer's tag).
    pub pack_id: PackId,
    /// Offset of the footer from the start of the pack.
    pub footer_offset: u64,
    /// Footer length.
    pub footer_len: u32,
}

impl PackTrailer {
    /// Length of the whole pack this trailer describes.
    pub fn pack_len(&self) -> Option<u64> {
        self.footer_offset
            .checked_add(u64::from(self.footer_len))?
            .checked_add(PACK_TRAILER_LEN as u64)
    }
}

/// Why a pack (or part of one) was refused. Each variant names what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// Fewer bytes than the part being parsed needs.
    #[error("{what} truncated: {len} bytes, need at least {min}")]
    Truncated {
        /// Which part: "pack", "trailer" or "footer".
        what: &'static str,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        min: usize,
    },
    /// The pack does not start with the pack magic.
    #[error("bad pack header magic {found:02x?} (expected \"DZPK\")")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The trailer does not end with the trailer magic.
    #[error("bad pack trailer magic {found:02x?} (expected \"DZPT\")")]
    BadTrailerMagic {
        /// The last four bytes.
        found: [u8; 4],
    },
    /// A pack format version this crate does not read.
    #[error("unsupported pack version {found} in {what} (this build reads version 1)")]
    UnsupportedVersion {
        /// "header" or "trailer".
        what: &'static str,
        /// The version byte.
        found: u8,
    },
    /// Header and trailer name different packs.
    #[error("pack id in header {header:02x?} differs from trailer {trailer:02x?}")]
    PackIdMismatch {
        /// Id in the header.
        header: PackId,
        /// Id in the trailer.
        trailer: PackId,
    },
    /// The trailer points outside the pack or not right before itself.
    #[error("footer at {offset}+{len} does not end at the trailer of a {pack_len}-byte pack")]
    FooterOutOfBounds {
        /// Footer offset from the trailer.
        offset: u64,
        /// Footer length from the trailer.
        len: u32,
        /// Pack length.
        pack_len: usize,
    },
    /// The footer's length cannot hold a whole number of entries.
    #[error("footer length {0} is not 20 + 48·n bytes")]
    FooterLength(usize),
    /// The footer's tag did not verify: wrong tenant, keys or pack id, or
    /// altered bytes.
    #[error("pack footer authentication failed")]
    FooterAuthenticationFailed,
    /// The footer's entry count disagrees with its length.
    #[error("footer lists {count} entries but has room for {room}")]
    EntryCount {
        /// Count recorded.
        count: u32,
        /// Entries the length holds.
        room: usize,
    },
    /// An entry does not start where the previous frame ended.
    #[error("index entry {index} at offset {found}, expected {expected} (frames are back to back)")]
    NotContiguous {
        /// Entry number.
        index: usize,
        /// Where it should start.
        expected: u64,
        /// Where it says it starts.
        found: u64,
    },
    /// An entry is shorter than any frame.
    #[error("index entry {index} is {len} bytes, shorter than any frame ({min})")]
    FrameTooShort {
        /// Entry number.
        index: usize,
        /// Its length.
        len: u32,
        /// Smallest frame.
        min: usize,
    },
    /// The frames do not end where the footer starts.
    #[error("frames end at {frames_end} but the footer starts at {footer_offset}")]
    FramesDoNotReachFooter {
        /// End of the last frame.
        frames_end: u64,
        /// Footer offset.
        footer_offset: u64,
    },
    /// No entry with that number.
    #[error("no frame {index} in a pack of {count}")]
    NoSuchFrame {
        /// Entry number asked for.
        index: usize,
        /// Frames in the pack.
        count: usize,
    },
    /// A frame listed in the index failed to open.
    #[error("frame {index} (chunk {id}) failed to open: {source}")]
    Frame {
        /// Entry number.
        index: usize,
        /// Its chunk id.
        id: ChunkId,
        /// What failed.
        #[source]
        source: FrameError,
    },
    /// A frame opened to a plaintext length other than the index records.
    #[error("frame {index} holds {actual} bytes but the index records {expected}")]
    PlainLenMismatch {
        /// Entry number.
        index: usize,
        /// Length in the index.
        expected: u32,
        /// Length opened.
        actual: usize,
    },
}

/// Builds one pack in memory: header, frames as they come, and on
/// [`finish`](Self::finish) the encrypted footer and the trailer.
#[derive(Debug)]
pub struct PackWriter {
    pack_id: PackId,
    buf: Vec<u8>,
    entries: Vec<IndexEntry>,
}

impl PackWriter {
    /// A new pack; the header is written at once.
    pub fn new(pack_id: PackId) -> Self {
        Self::with_capacity(pack_id, 0)
    }

    /// A new pack whose buffer is sized for about `bytes` bytes (the target
    /// pack size), so it does not grow by copying.
    pub fn with_capacity(pack_id: PackId, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(PACK_HEADER_LEN + PACK_TRAILER_LEN));
        buf.extend_from_slice(&PACK_MAGIC);
        buf.push(PACK_VERSION);
        buf.extend_from_slice(&pack_id);
        Self {
            pack_id,
            buf,
            entries: Vec::new(),
        }
    }

    /// This pack's id.
    pub fn pack_id(&self) -> PackId {
        self.pack_id
    }

    /// Appends a sealed frame holding chunk `id` of `plain_len` bytes.
    ///
    /// # Panics
    /// If the frame is 4 GiB or longer (frames are at most 16 MiB + 43).
    pub fn push_frame(&mut self, id: ChunkId, frame: &[u8], plain_len: u32) -> FrameLocation {
        let offset = self.buf.len();
        self.buf.extend_from_slice(frame);
        self.record(id, offset, frame.len(), plain_len)
    }

    /// Seals `plaintext` (chunk `id`) straight into the pack, saving the copy
    /// [`Keyring::seal_chunk`] + [`push_frame`](Self::push_frame) make.
    pub fn push_chunk(
        &mut self,
        keyring: &Keyring,
        id: ChunkId,
        plaintext: &[u8],
        policy: &CompressionPolicy,
    ) -> Result<FrameLocation, SealError> {
        let plain_len =
            u32::try_from(plaintext.len()).map_err(|_| SealError::TooLarge(plaintext.len()))?;
        let offset = self.buf.len();
        let len = keyring.seal_chunk_into(&mut self.buf, &id, plaintext, policy)?;
        Ok(self.record(id, offset, len, plain_len))
    }

    fn record(&mut self, id: ChunkId, offset: usize, len: usize, plain_len: u32) -> FrameLocation {
        let Ok(len) = u32::try_from(len) else {
            panic!("frame of {len} bytes for chunk {id} does not fit a pack index entry");
        };
        let location = FrameLocation {
            offset: offset as u64,
            len,
        };
        self.entries.push(IndexEntry {
            id,
            offset: location.offset,
            len,
            plain_len,
        });
        location
    }

    /// Bytes so far: header and frames (no footer or trailer yet).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True while no frame has been added (only the header is written).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Frames added so far.
    pub fn frame_count(&self) -> usize {
        self.entries.len()
    }

    /// The entries the footer will list.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Bytes [`finish`](Self::finish) will return.
    pub fn finished_len(&self) -> usize {
        self.buf.len() + FOOTER_FIXED_LEN + self.entries.len() * INDEX_ENTRY_LEN + PACK_TRAILER_LEN
    }

    /// Appends the footer, encrypted under the tenant's `K_meta`, and the
    /// trailer; returns the whole pack.
    ///
    /// # Panics
    /// If the footer would reach 4 GiB (about 89 million frames).
    pub fn finish(self, keyring: &Keyring) -> Vec<u8> {
        let Self {
            pack_id,
            mut buf,
            entries,
        } = self;
        let footer_offset = buf.len();
        let Ok(count) = u32::try_from(entries.len()) else {
            panic!("{} frames do not fit one pack footer", entries.len());
        };
        buf.reserve(FOOTER_FIXED_LEN + entries.len() * INDEX_ENTRY_LEN + PACK_TRAILER_LEN);
        buf.extend_from_slice(&count.to_le_bytes());
        for entry in &entries {
            buf.extend_from_slice(&entry.id.0);
            buf.extend_from_slice(&entry.offset.to_le_bytes());
            buf.extend_from_slice(&entry.len.to_le_bytes());
            buf.extend_from_slice(&entry.plain_len.to_le_bytes());
        }
        let aad = pack_aad(&keyring.tenant(), &pack_id);
        let Ok(tag) =
            keyring
                .meta()
                .seal_in_place(&pack_nonce(&pack_id), &aad, &mut buf[footer_offset..])
        else {
            // AES-GCM-SIV only refuses inputs of 2^36 bytes and more.
            panic!(
                "pack footer of {} bytes could not be sealed",
                buf.len() - footer_offset
            );
        };
        buf.extend_from_slice(&tag);
        let footer_len = buf.len() - footer_offset;
        let Ok(footer_len) = u32::try_from(footer_len) else {
            panic!("pack footer of {footer_len} bytes does not fit the trailer");
        };
        buf.extend_from_slice(&pack_id);
        buf.extend_from_slice(&(footer_offset as u64).to_le_bytes());
        buf.extend_from_slice(&footer_len.to_le_bytes());
        buf.push(PACK_VERSION);
        buf.extend_from_slice(&PACK_TRAILER_MAGIC);
        buf
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(out)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(out)
}

/// Parses the trailer, i.e. the last [`PACK_TRAILER_LEN`] bytes of a pack
/// (longer input: its last bytes are used), to learn where the footer is.
pub fn parse_pack_trailer(trailer: &[u8]) -> Result<PackTrailer, PackError> {
    let Some(start) = trailer.len().checked_sub(PACK_TRAILER_LEN) else {
        return Err(PackError::Truncated {
            what: "trailer",
            len: trailer.len(),
            min: PACK_TRAILER_LEN,
        });
    };
    let trailer = &trailer[start..];
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&trailer[29..33]);
    if magic != PACK_TRAILER_MAGIC {
        return Err(PackError::BadTrailerMagic { found: magic });
    }
    if trailer[28] != PACK_VERSION {
        return Err(PackError::UnsupportedVersion {
            what: "trailer",
            found: trailer[28],
        });
    }
    let mut pack_id = [0u8; 16];
    pack_id.copy_from_slice(&trailer[..16]);
    Ok(PackTrailer {
        pack_id,
        footer_offset: le_u64(&trailer[16..24]),
        footer_len: le_u32(&trailer[24..28]),
    })
}

/// Decrypts and checks a pack's footer given only its bytes (as located by
/// the trailer) and the pack id: for rebuilding metadata with two ranged
/// reads. Entries are checked to lie back to back from the end of the
/// header; that they end at the footer needs the trailer
/// ([`read_pack_index`] checks it).
pub fn read_pack_footer(
    pack_id: &PackId,
    footer: &[u8],
    keyring: &Keyring,
) -> Result<PackIndex, PackError> {
    if footer.len() < FOOTER_FIXED_LEN {
        return Err(PackError::Truncated {
            what: "footer",
            len: footer.len(),
            min: FOOTER_FIXED_LEN,
        });
    }
    let room = (footer.len() - FOOTER_FIXED_LEN) / INDEX_ENTRY_LEN;
    if !(footer.len() - FOOTER_FIXED_LEN).is_multiple_of(INDEX_ENTRY_LEN) {
        return Err(PackError::FooterLength(footer.len()));
    }
    let (sealed, tag) = footer.split_at(footer.len() - TAG_LEN);
    let mut tag_bytes = [0u8; TAG_LEN];
    tag_bytes.copy_from_slice(tag);
    // Bounded by the input: the footer was handed over in full.
    let mut plain = sealed.to_vec();
    keyring
        .meta()
        .open_in_place(
            &pack_nonce(pack_id),
            &pack_aad(&keyring.tenant(), pack_id),
            &mut plain,
            &tag_bytes,
        )
        .map_err(|_| PackError::FooterAuthenticationFailed)?;

    let count = le_u32(&plain[..4]);
    if usize::try_from(count).ok() != Some(room) {
        return Err(PackError::EntryCount { count, room });
    }
    let mut entries = Vec::with_capacity(room);
    let mut expected = PACK_HEADER_LEN as u64;
    for (index, raw) in plain[4..].chunks_exact(INDEX_ENTRY_LEN).enumerate() {
        let mut id = [0u8; 32];
        id.copy_from_slice(&raw[..32]);
        let entry = IndexEntry {
            id: ChunkId(id),
            offset: le_u64(&raw[32..40]),
            len: le_u32(&raw[40..44]),
            plain_len: le_u32(&raw[44..48]),
        };
        if entry.offset != expected {
            return Err(PackError::NotContiguous {
                index,
                expected,
                found: entry.offset,
            });
        }
        if (entry.len as usize) < FRAME_OVERHEAD {
            return Err(PackError::FrameTooShort {
                index,
                len: entry.len,
                min: FRAME_OVERHEAD,
            });
        }
        // Cannot overflow: offsets start small and grow by u32 steps.
        expected = entry.offset.saturating_add(u64::from(entry.len));
        entries.push(entry);
    }
    Ok(PackIndex {
        pack_id: *pack_id,
        entries,
    })
}

/// Parses and authenticates a whole pack's index from the pack's bytes and
/// the tenant's keyring. Never panics on any input; allocates at most about
/// the size of the footer it was given.
pub fn read_pack_index(pack: &[u8], keyring: &Keyring) -> Result<PackIndex, PackError> {
    let min = PACK_HEADER_LEN + FOOTER_FIXED_LEN + PACK_TRAILER_LEN;
    if pack.len() < min {
        return Err(PackError::Truncated {
            what: "pack",
            len: pack.len(),
            min,
        });
    }
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&pack[..4]);
    if magic != PACK_MAGIC {
        return Err(PackError::BadMagic { found: magic });
    }
    if pack[4] != PACK_VERSION {
        return Err(PackError::UnsupportedVersion {
            what: "header",
            found: pack[4],
        });
    }
    let mut header_id = [0u8; 16];
    header_id.copy_from_slice(&pack[5..PACK_HEADER_LEN]);
    let trailer = parse_pack_trailer(pack)?;
    if trailer.pack_id != header_id {
        return Err(PackError::PackIdMismatch {
            header: header_id,
            trailer: trailer.pack_id,
        });
    }
    let trailer_start = pack.len() - PACK_TRAILER_LEN;
    let footer_end = trailer
        .footer_offset
        .checked_add(u64::from(trailer.footer_len));
    if trailer.footer_offset < PACK_HEADER_LEN as u64 || footer_end != Some(trailer_start as u64) {
        return Err(PackError::FooterOutOfBounds {
            offset: trailer.footer_offset,
            len: trailer.footer_len,
            pack_len: pack.len(),
        });
    }
    // Fits: it is below `trailer_start`, a usize.
    let footer_start = usize::try_from(trailer.footer_offset).unwrap_or(trailer_start);
    let index = read_pack_footer(
        &trailer.pack_id,
        &pack[footer_start..trailer_start],
        keyring,
    )?;
    let frames_end = index.entries.last().map_or(PACK_HEADER_LEN as u64, |last| {
        last.offset + u64::from(last.len)
    });
    if frames_end != trailer.footer_offset {
        return Err(PackError::FramesDoNotReachFooter {
            frames_end,
            footer_offset: trailer.footer_offset,
        });
    }
    Ok(index)
}

/// Lists and opens the frames of a whole pack held in memory.
#[derive(Debug)]
pub struct PackReader<'a> {
    pack: &'a [u8],
    index: PackIndex,
}

impl<'a> PackReader<'a> {
    /// Reads and authenticates the pack's index.
    pub fn new(pack: &'a [u8], keyring: &Keyring) -> Result<Self, PackError> {
        let index = read_pack_index(pack, keyring)?;
        Ok(Self { pack, index })
    }

    /// The pack's id.
    pub fn pack_id(&self) -> PackId {
        self.index.pack_id
    }

    /// The index, in pack order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.index.entries
    }

    /// The index, consumed.
    pub fn into_index(self) -> PackIndex {
        self.index
    }

    /// The bytes of frame `index`.
    pub fn frame(&self, index: usize) -> Option<&'a [u8]> {
        let entry = self.index.entries.get(index)?;
        // The index was checked to lie inside the pack.
        let start = usize::try_from(entry.offset).ok()?;
        self.pack.get(start..start.checked_add(entry.len as usize)?)
    }

    /// Opens frame `index` and checks it against its index entry.
    pub fn open(
        &self,
        index: usize,
        keyring: &Keyring,
        max_plain: usize,
    ) -> Result<Vec<u8>, PackError> {
        let count = self.index.entries.len();
        let (Some(entry), Some(frame)) = (self.index.entries.get(index), self.frame(index)) else {
            return Err(PackError::NoSuchFrame { index, count });
        };
        let plaintext = keyring
            .open_chunk(&entry.id, frame, max_plain)
            .map_err(|source| PackError::Frame {
                index,
                id: entry.id,
                source,
            })?;
        if plaintext.len() != entry.plain_len as usize {
            return Err(PackError::PlainLenMismatch {
                index,
                expected: entry.plain_len,
                actual: plaintext.len(),
            });
        }
        Ok(plaintext)
    }

    /// Opens every frame in order.
    pub fn open_all<'r>(
        &'r self,
        keyring: &'r Keyring,
        max_plain: usize,
    ) -> impl Iterator<Item = Result<(ChunkId, Vec<u8>), PackError>> + 'r {
        (0..self.index.entries.len()).map(move |index| {
            self.open(index, keyring, max_plain)
                .map(|plaintext| (self.index.entries[index].id, plaintext))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::Cipher;
    use crate::keys::{EpochKeys, Key32};

    fn keyring(tenant: u8) -> Keyring {
        Keyring::new(
            [tenant; 16],
            Key32::from_bytes([2; 32]),
            Key32::from_bytes([3; 32]),
            Key32::from_bytes([4; 32]),
            Cipher::Aes256GcmSiv,
            0,
            [(
                0,
                EpochKeys {
                    enc: Key32::from_bytes([5; 32]),
                    nonce: Key32::from_bytes([6; 32]),
                },
            )],
        )
        .unwrap()
    }

    fn pack_of(ring: &Keyring, chunks: &[&[u8]]) -> (Vec<u8>, Vec<FrameLocation>) {
        let mut writer = PackWriter::new([9; 16]);
        let mut locations = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let id = ring.chunk_id(chunk);
            if i % 2 == 0 {
                let frame = ring.seal_chunk(&id, chunk, &CompressionPolicy::default());
                locations.push(writer.push_frame(id, &frame, chunk.len() as u32));
            } else {
                locations.push(
                    writer
                        .push_chunk(ring, id, chunk, &CompressionPolicy::default())
                        .unwrap(),
                );
            }
        }
        let expected_len = writer.finished_len();
        let pack = writer.finish(ring);
        assert_eq!(pack.len(), expected_len);
        (pack, locations)
    }

    #[test]
    fn round_trip_and_layout() {
        let ring = keyring(1);
        let chunks: [&[u8]; 3] = [b"first chunk", &[7u8; 5000], b""];
        let (pack, locations) = pack_of(&ring, &chunks);
        assert_eq!(&pack[..4], b"DZPK");
        assert_eq!(pack[4], 1);
        assert_eq!(&pack[5..21], &[9; 16]);
        assert_eq!(&pack[pack.len() - 4..], b"DZPT");
        assert_eq!(locations[0].offset, PACK_HEADER_LEN as u64);

        let trailer = parse_pack_trailer(&pack[pack.len() - PACK_TRAILER_LEN..]).unwrap();
        assert_eq!(trailer.pack_id, [9; 16]);
        assert_eq!(trailer.pack_len(), Some(pack.len() as u64));
        let start = trailer.footer_offset as usize;
        let footer = &pack[start..start + trailer.footer_len as usize];
        assert_eq!(footer.len(), 4 + 3 * INDEX_ENTRY_LEN + TAG_LEN);
        let from_footer = read_pack_footer(&trailer.pack_id, footer, &ring).unwrap();
        let index = read_pack_index(&pack, &ring).unwrap();
        assert_eq!(index, from_footer);
        assert_eq!(index.entries.len(), 3);

        let reader = PackReader::new(&pack, &ring).unwrap();
        for (i, (entry, location)) in reader.entries().iter().zip(&locations).enumerate() {
            assert_eq!(entry.location(), *location);
            assert_eq!(entry.id, ring.chunk_id(chunks[i]));
            assert_eq!(entry.plain_len as usize, chunks[i].len());
            // A ranged read of just the frame opens on its own.
            let frame = &pack[location.offset as usize..][..location.len as usize];
            assert_eq!(
                ring.open_chunk(&entry.id, frame, 1 << 20).unwrap(),
                chunks[i]
            );
        }
        let opened: Vec<_> = reader
            .open_all(&ring, 1 << 20)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(opened.len(), 3);
        assert_eq!(opened[1].1, chunks[1]);
        assert_eq!(
            reader.open(3, &ring, 100),
            Err(PackError::NoSuchFrame { index: 3, count: 3 })
        );
        assert!(matches!(
            reader.open(1, &ring, 100),
            Err(PackError::Frame {
                index: 1,
                source: FrameError::PlainLenOutOfBounds { .. },
                ..
            })
        ));
    }

    #[test]
    fn empty_pack() {
        let ring = keyring(1);
        let writer = PackWriter::new([3; 16]);
        assert!(writer.is_empty());
        assert_eq!(writer.len(), PACK_HEADER_LEN);
        let pack = writer.finish(&ring);
        assert_eq!(
            pack.len(),
            PACK_HEADER_LEN + FOOTER_FIXED_LEN + PACK_TRAILER_LEN
        );
        let index = read_pack_index(&pack, &ring).unwrap();
        assert_eq!(index.pack_id, [3; 16]);
        assert!(index.entries.is_empty());
    }

    #[test]
    fn footer_is_bound_to_tenant_and_pack() {
        let ring = keyring(1);
        let (pack, _) = pack_of(&ring, &[b"abc"]);
        assert_eq!(
            read_pack_index(&pack, &keyring(2)),
            Err(PackError::FooterAuthenticationFailed)
        );
        let trailer = parse_pack_trailer(&pack).unwrap();
        let start = trailer.footer_offset as usize;
        let footer = &pack[start..start + trailer.footer_len as usize];
        assert_eq!(
            read_pack_footer(&[8; 16], footer, &ring),
            Err(PackError::FooterAuthenticationFailed)
        );
        // Both ids changed consistently: still refused by the footer's tag.
        let mut moved = pack.clone();
        moved[5..21].copy_from_slice(&[8; 16]);
        let trailer_start = moved.len() - PACK_TRAILER_LEN;
        moved[trailer_start..trailer_start + 16].copy_from_slice(&[8; 16]);
        assert_eq!(
            read_pack_index(&moved, &ring),
            Err(PackError::FooterAuthenticationFailed)
        );
    }

    #[test]
    fn structural_errors() {
        let ring = keyring(1);
        let (pack, _) = pack_of(&ring, &[b"abc", b"defg"]);
        let n = pack.len();
        assert!(matches!(
            read_pack_index(&pack[..20], &ring),
            Err(PackError::Truncated { what: "pack", .. })
        ));
        let mut bad = pack.clone();
        bad[0] = 0;
        assert!(matches!(
            read_pack_index(&bad, &ring),
            Err(PackError::BadMagic { .. })
        ));
        let mut bad = pack.clone();
        bad[4] = 2;
        assert_eq!(
            read_pack_index(&bad, &ring),
            Err(PackError::UnsupportedVersion {
                what: "header",
                found: 2
            })
        );
        let mut bad = pack.clone();
        bad[n - 1] = 0;
        assert!(matches!(
            read_pack_index(&bad, &ring),
            Err(PackError::BadTrailerMagic { .. })
        ));
        let mut bad = pack.clone();
        bad[n - 5] = 0;
        assert_eq!(
            read_pack_index(&bad, &ring),
            Err(PackError::UnsupportedVersion {
                what: "trailer",
                found: 0
            })
        );
        let mut bad = pack.clone();
        bad[6] ^= 1;
        assert!(matches!(
            read_pack_index(&bad, &ring),
            Err(PackError::PackIdMismatch { .. })
        ));
        let mut bad = pack.clone();
        bad[n - PACK_TRAILER_LEN + 16] ^= 1;
        assert!(matches!(
            read_pack_index(&bad, &ring),
            Err(PackError::FooterOutOfBounds { .. })
        ));
        let mut bad = pack.clone();
        bad[n - PACK_TRAILER_LEN + 24] ^= 0x80;
        assert!(matches!(
            read_pack_index(&bad, &ring),
            Err(PackError::FooterOutOfBounds { .. })
        ));
        assert!(matches!(
            parse_pack_trailer(&pack[..10]),
            Err(PackError::Truncated {
                what: "trailer",
                ..
            })
        ));
        assert!(matches!(
            read_pack_footer(&[9; 16], &[0; 10], &ring),
            Err(PackError::Truncated { what: "footer", .. })
        ));
        assert_eq!(
            read_pack_footer(&[9; 16], &[0; 21], &ring),
            Err(PackError::FooterLength(21))
        );
    }

    /// Writes a pack whose footer says whatever `entries`/`count` say.
    fn forged_pack(ring: &Keyring, frames: &[u8], count: u32, entries: &[IndexEntry]) -> Vec<u8> {
        let pack_id = [9; 16];
        let mut buf = PACK_MAGIC.to_vec();
        buf.push(PACK_VERSION);
        buf.extend_from_slice(&pack_id);
        buf.extend_from_slice(frames);
        let footer_offset = buf.len();
        buf.extend_from_slice(&count.to_le_bytes());
        for e in entries {
            buf.extend_from_slice(&e.id.0);
            buf.extend_from_slice(&e.offset.to_le_bytes());
            buf.extend_from_slice(&e.len.to_le_bytes());
            buf.extend_from_slice(&e.plain_len.to_le_bytes());
        }
        let tag = ring
            .meta()
            .seal_in_place(
                &pack_nonce(&pack_id),
                &pack_aad(&ring.tenant(), &pack_id),
                &mut buf[footer_offset..],
            )
            .unwrap();
        buf.extend_from_slice(&tag);
        let footer_len = (buf.len() - footer_offset) as u32;
        buf.extend_from_slice(&pack_id);
        buf.extend_from_slice(&(footer_offset as u64).to_le_bytes());
        buf.extend_from_slice(&footer_len.to_le_bytes());
        buf.push(PACK_VERSION);
        buf.extend_from_slice(&PACK_TRAILER_MAGIC);
        buf
    }

    #[test]
    fn index_consistency_is_checked_behind_the_tag() {
        let ring = keyring(1);
        let frame = ring.seal_chunk(&ring.chunk_id(b"x"), b"x", &CompressionPolicy::OFF);
        let entry = IndexEntry {
            id: ring.chunk_id(b"x"),
            offset: PACK_HEADER_LEN as u64,
            len: frame.len() as u32,
            plain_len: 1,
        };
        assert!(
            read_pack_index(
                &forged_pack(&ring, &frame, 1, std::slice::from_ref(&entry)),
                &ring
            )
            .is_ok()
        );
        assert_eq!(
            read_pack_index(
                &forged_pack(&ring, &frame, 2, std::slice::from_ref(&entry)),
                &ring
            ),
            Err(PackError::EntryCount { count: 2, room: 1 })
        );
        let shifted = IndexEntry {
            offset: 22,
            ..entry.clone()
        };
        assert!(matches!(
            read_pack_index(&forged_pack(&ring, &frame, 1, &[shifted]), &ring),
            Err(PackError::NotContiguous { index: 0, .. })
        ));
        let short = IndexEntry {
            len: 10,
            ..entry.clone()
        };
        assert!(matches!(
            read_pack_index(&forged_pack(&ring, &frame, 1, &[short]), &ring),
            Err(PackError::FrameTooShort { index: 0, .. })
        ));
        let mut two_frames = frame.clone();
        two_frames.extend_from_slice(&frame);
        assert!(matches!(
            read_pack_index(
                &forged_pack(&ring, &two_frames, 1, std::slice::from_ref(&entry)),
                &ring
            ),
            Err(PackError::FramesDoNotReachFooter { .. })
        ));
        let lying = IndexEntry {
            plain_len: 2,
            ..entry
        };
        let pack = forged_pack(&ring, &frame, 1, &[lying]);
        let reader = PackReader::new(&pack, &ring).unwrap();
        assert_eq!(
            reader.open(0, &ring, 100),
            Err(PackError::PlainLenMismatch {
                index: 0,
                expected: 2,
                actual: 1
            })
        );
    }
}
