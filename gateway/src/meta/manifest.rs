//! The manifest of an object version or part: its chunks in order, and for a
//! multipart object the parts they came from. Stored as a compact binary blob.
//!
//! Layout (little-endian):
//! ```text
//! "DZMF" | u8 version | u32 part_count | parts | u32 chunk_count | chunks
//! part  = u32 part_number | u64 size | u32 chunk_count | u16 etag_len | etag bytes
//! chunk = [u8; 32] chunk id | u32 plaintext length             (version 1)
//! chunk = [u8; 32] chunk id | u32 plaintext length | u8 sliced
//!         [ | u32 offset | u32 length ]   when sliced = 1       (version 2)
//! ```
//! Version 2 lets an entry cover part of a chunk, so a ranged copy
//! (UploadPartCopy) references existing chunks instead of storing new ones.
//!
//! Version 3 is version 1 with chunks that straddle part boundaries (a
//! multipart object whose boundaries were re-chunked, `engine/heal.rs`):
//! each part record ends with `u32 lead`, and a part's `chunk_count` counts
//! the entries that *start* inside it, the first of them `lead` bytes after
//! the part's start (0 when none starts there). In versions 1 and 2 every
//! part's entries start exactly at the part's start (lead 0).
//!
//! Manifests are written in the lowest version that holds them.

use super::model::ChunkKey;

const MAGIC: &[u8; 4] = b"DZMF";
const V1: u8 = 1;
const V2: u8 = 2;
const V3: u8 = 3;
/// A manifest can never hold more entries than an object of 5 TiB cut into
/// minimum-size chunks; this bound keeps a corrupt count from allocating.
const MAX_ENTRIES: usize = 1 << 26;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestChunk {
    pub id: ChunkKey,
    /// Plaintext length of the whole chunk.
    pub plain_len: u32,
    /// The bytes of the chunk this entry covers, as (offset, length); None
    /// for the whole chunk.
    pub slice: Option<(u32, u32)>,
}

impl ManifestChunk {
    pub fn whole(id: ChunkKey, plain_len: u32) -> Self {
        Self {
            id,
            plain_len,
            slice: None,
        }
    }

    /// (offset, length) of the bytes this entry contributes.
    pub fn span(&self) -> (u32, u32) {
        self.slice.unwrap_or((0, self.plain_len))
    }

    pub fn len(&self) -> u32 {
        self.span().1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestPart {
    pub part_number: u32,
    pub size: u64,
    /// Entries that start inside this part (all of its entries, unless
    /// chunks straddle boundaries; see the format note above).
    pub chunk_count: u32,
    pub etag: String,
    /// Bytes from the part's start to the first entry starting inside it.
    pub lead: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Empty for single-part objects.
    pub parts: Vec<ManifestPart>,
    pub chunks: Vec<ManifestChunk>,
}

/// Where a stored manifest's chunk entries are, for reading them in pieces
/// (a manifest too large to read whole on every GET; see
/// `MetaStore::get_object_bounded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Format version: 1 (fixed 36-byte entries) or 2 (37 or 45 bytes).
    pub format: u8,
    /// Byte offset of the first chunk entry.
    pub chunks_at: u64,
    pub chunk_count: u64,
    /// Length of the whole manifest in bytes.
    pub len: u64,
}

impl ManifestHead {
    /// Bytes of one version-1 entry.
    pub const V1_ENTRY: u64 = 36;
    /// The most bytes one entry takes in any format.
    pub const MAX_ENTRY: usize = 45;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest truncated at byte {0}")]
    Truncated(usize),
    #[error("manifest has bad magic or unsupported version {0}")]
    BadHeader(u8),
    #[error("manifest count {0} exceeds the bound")]
    TooLarge(usize),
    #[error("manifest part etag is not UTF-8")]
    BadEtag,
    #[error("manifest slice lies outside its chunk")]
    BadSlice,
    #[error("manifest has {0} trailing bytes")]
    Trailing(usize),
    #[error("manifest parts cover {parts} chunks but it lists {chunks}")]
    PartMismatch { parts: u64, chunks: usize },
}

impl Manifest {
    pub fn single(chunks: Vec<ManifestChunk>) -> Self {
        Self {
            parts: Vec::new(),
            chunks,
        }
    }

    /// Total plaintext length.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.len())).sum()
    }

    /// How many references each distinct chunk receives from this manifest.
    pub fn ref_counts(&self) -> std::collections::BTreeMap<ChunkKey, i64> {
        let mut counts = std::collections::BTreeMap::new();
        for c in &self.chunks {
            *counts.entry(c.id).or_insert(0) += 1;
        }
        counts
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + self.chunks.len() * 36 + self.parts.len() * 60);
        let sliced = self.chunks.iter().any(|c| c.slice.is_some());
        // Boundary healing never leaves slices: it re-chunks them. A part
        // with bytes but no entry of its own lies inside a straddling chunk.
        let straddles = !sliced
            && self
                .parts
                .iter()
                .any(|p| p.lead != 0 || (p.chunk_count == 0 && p.size > 0));
        out.extend_from_slice(MAGIC);
        out.push(match (sliced, straddles) {
            (true, _) => V2,
            (false, true) => V3,
            (false, false) => V1,
        });
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for p in &self.parts {
            out.extend_from_slice(&p.part_number.to_le_bytes());
            out.extend_from_slice(&p.size.to_le_bytes());
            out.extend_from_slice(&p.chunk_count.to_le_bytes());
            let etag = p.etag.as_bytes();
            let etag = &etag[..etag.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(etag.len() as u16).to_le_bytes());
            out.extend_from_slice(etag);
            if straddles {
                out.extend_from_slice(&p.lead.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&c.id);
            out.extend_from_slice(&c.plain_len.to_le_bytes());
            if sliced {
                match c.slice {
                    Some((offset, len)) => {
                        out.push(1);
                        out.extend_from_slice(&offset.to_le_bytes());
                        out.extend_from_slice(&len.to_le_bytes());
                    }
                    None => out.push(0),
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut r = Reader { bytes, pos: 0 };
        let (version, parts) = r.head()?;
        let chunk_count = r.count()?;
        // Each chunk needs at least 36 bytes: a count beyond what is left is corrupt.
        if chunk_count > (bytes.len() - r.pos) / 36 {
            return Err(ManifestError::Truncated(bytes.len()));
        }
        let mut chunks = Vec::with_capacity(chunk_count);
        for _ in 0..chunk_count {
            let mut id = [0u8; 32];
            id.copy_from_slice(r.take(32)?);
            let plain_len = r.u32()?;
            let slice = if version == V2 && r.take(1)?[0] == 1 {
                let offset = r.u32()?;
                let len = r.u32()?;
                if u64::from(offset) + u64::from(len) > u64::from(plain_len) {
                    return Err(ManifestError::BadSlice);
                }
                Some((offset, len))
            } else {
                None
            };
            chunks.push(ManifestChunk {
                id,
                plain_len,
                slice,
            });
        }
        if r.pos != bytes.len() {
            return Err(ManifestError::Trailing(bytes.len() - r.pos));
        }
        if !parts.is_empty() {
            let covered: u64 = parts.iter().map(|p| u64::from(p.chunk_count)).sum();
            if covered != chunks.len() as u64 {
                return Err(ManifestError::PartMismatch {
                    parts: covered,
                    chunks: chunks.len(),
                });
            }
        }
        Ok(Self { parts, chunks })
    }
}

impl Manifest {
    /// The parts list and where the chunk entries start, from a prefix of a
    /// manifest `len` bytes long; Truncated when the prefix ends before the
    /// chunk count.
    pub fn decode_head(prefix: &[u8], len: u64) -> Result<(Self, ManifestHead), ManifestError> {
        let mut r = Reader {
            bytes: prefix,
            pos: 0,
        };
        let (format, parts) = r.head()?;
        let chunk_count = r.count()? as u64;
        let chunks_at = r.pos as u64;
        let min_entry = if format == V2 { 37 } else { 36 };
        if chunk_count.saturating_mul(min_entry) > len.saturating_sub(chunks_at) {
            return Err(ManifestError::Truncated(len as usize));
        }
        if !parts.is_empty() {
            let covered: u64 = parts.iter().map(|p| u64::from(p.chunk_count)).sum();
            if covered != chunk_count {
                return Err(ManifestError::PartMismatch {
                    parts: covered,
                    chunks: chunk_count as usize,
                });
            }
        }
        Ok((
            Self {
                parts,
                chunks: Vec::new(),
            },
            ManifestHead {
                format,
                chunks_at,
                chunk_count,
                len,
            },
        ))
    }

    /// Decodes one chunk entry of a `format` manifest from the front of
    /// `bytes`; returns it and its length, or None when `bytes` holds less
    /// than a whole entry.
    pub fn decode_entry(
        format: u8,
        bytes: &[u8],
    ) -> Result<Option<(ManifestChunk, usize)>, ManifestError> {
        let mut r = Reader { bytes, pos: 0 };
        let mut id = [0u8; 32];
        match r.take(32) {
            Ok(b) => id.copy_from_slice(b),
            Err(_) => return Ok(None),
        }
        let Ok(plain_len) = r.u32() else {
            return Ok(None);
        };
        let slice = if format == V2 {
            match r.take(1) {
                Err(_) => return Ok(None),
                Ok([1]) => {
                    let (Ok(offset), Ok(len)) = (r.u32(), r.u32()) else {
                        return Ok(None);
                    };
                    if u64::from(offset) + u64::from(len) > u64::from(plain_len) {
                        return Err(ManifestError::BadSlice);
                    }
                    Some((offset, len))
                }
                Ok(_) => None,
            }
        } else {
            None
        };
        Ok(Some((
            ManifestChunk {
                id,
                plain_len,
                slice,
            },
            r.pos,
        )))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// The magic, the format byte and the parts list: what every manifest
    /// starts with, whole (`decode`) or as a prefix (`decode_head`).
    fn head(&mut self) -> Result<(u8, Vec<ManifestPart>), ManifestError> {
        if self.take(4)? != MAGIC {
            return Err(ManifestError::BadHeader(0));
        }
        let format = self.take(1)?[0];
        if !matches!(format, V1 | V2 | V3) {
            return Err(ManifestError::BadHeader(format));
        }
        let part_count = self.count()?;
        let mut parts = Vec::with_capacity(part_count.min(10_000));
        for _ in 0..part_count {
            let part_number = self.u32()?;
            let size = self.u64()?;
            let chunk_count = self.u32()?;
            let etag_len = usize::from(self.u16()?);
            let etag = std::str::from_utf8(self.take(etag_len)?)
                .map_err(|_| ManifestError::BadEtag)?
                .to_owned();
            let lead = if format == V3 { self.u32()? } else { 0 };
            parts.push(ManifestPart {
                part_number,
                size,
                chunk_count,
                etag,
                lead,
            });
        }
        Ok((format, parts))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(ManifestError::Truncated(self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, ManifestError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ManifestError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn count(&mut self) -> Result<usize, ManifestError> {
        let n = self.u32()? as usize;
        if n > MAX_ENTRIES {
            return Err(ManifestError::TooLarge(n));
        }
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(b: u8, len: u32) -> ManifestChunk {
        ManifestChunk::whole([b; 32], len)
    }

    #[test]
    fn slices_round_trip_as_version_2() {
        let mut m = Manifest::single(vec![chunk(1, 100), chunk(2, 50)]);
        assert_eq!(m.encode()[4], 1, "no slices: version 1");
        m.chunks[0].slice = Some((10, 90));
        let enc = m.encode();
        assert_eq!(enc[4], 2);
        let d = Manifest::decode(&enc).unwrap();
        assert_eq!(d, m);
        assert_eq!(d.size(), 140);
        let mut bad = m.clone();
        bad.chunks[1].slice = Some((40, 20));
        assert_eq!(
            Manifest::decode(&bad.encode()),
            Err(ManifestError::BadSlice)
        );
    }

    #[test]
    fn round_trip_with_parts() {
        let m = Manifest {
            parts: vec![
                ManifestPart {
                    part_number: 1,
                    size: 30,
                    chunk_count: 2,
                    etag: "\"abc\"".into(),
                    lead: 0,
                },
                ManifestPart {
                    part_number: 3,
                    size: 5,
                    chunk_count: 1,
                    etag: "\"def\"".into(),
                    lead: 0,
                },
            ],
            chunks: vec![chunk(1, 10), chunk(2, 20), chunk(1, 5)],
        };
        let decoded = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(decoded, m);
        assert_eq!(decoded.size(), 35);
        assert_eq!(decoded.ref_counts().get(&[1u8; 32]), Some(&2));
    }

    #[test]
    fn rejects_parts_not_covering_chunks() {
        let m = Manifest {
            parts: vec![ManifestPart {
                part_number: 1,
                size: 10,
                chunk_count: 2,
                etag: String::new(),
                lead: 0,
            }],
            chunks: vec![chunk(1, 10)],
        };
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::PartMismatch { .. })
        ));
    }

    #[test]
    fn head_and_entries_decode_from_pieces() {
        let mut m = Manifest {
            parts: vec![
                ManifestPart {
                    part_number: 1,
                    size: 30,
                    chunk_count: 2,
                    etag: "\"abc\"".into(),
                    lead: 0,
                },
                ManifestPart {
                    part_number: 2,
                    size: 5,
                    chunk_count: 1,
                    etag: "\"def\"".into(),
                    lead: 0,
                },
            ],
            chunks: vec![chunk(1, 10), chunk(2, 20), chunk(3, 5)],
        };
        for sliced in [false, true] {
            if sliced {
                m.chunks[1].slice = Some((5, 15));
            }
            let enc = m.encode();
            let (head_m, head) = Manifest::decode_head(&enc, enc.len() as u64).unwrap();
            assert_eq!(head_m.parts, m.parts);
            assert_eq!(head.chunk_count, 3);
            assert_eq!(head.format, if sliced { 2 } else { 1 });
            assert!(Manifest::decode_head(&enc[..20], enc.len() as u64).is_err());
            let mut at = head.chunks_at as usize;
            let mut got = Vec::new();
            while let Some((c, n)) = Manifest::decode_entry(head.format, &enc[at..]).unwrap() {
                got.push(c);
                at += n;
            }
            assert_eq!(got, m.chunks);
            assert_eq!(at, enc.len());
            // A piece cut inside an entry is "not enough", not an error.
            let cut = head.chunks_at as usize + 20;
            assert_eq!(
                Manifest::decode_entry(head.format, &enc[head.chunks_at as usize..cut]).unwrap(),
                None
            );
        }
    }

    #[test]
    fn straddling_chunks_round_trip_as_version_3() {
        // Parts of 30 and 25 bytes; the second entry spans the boundary, so
        // part 2's only starting entry begins 5 bytes in.
        let m = Manifest {
            parts: vec![
                ManifestPart {
                    part_number: 1,
                    size: 30,
                    chunk_count: 2,
                    etag: "\"abc\"".into(),
                    lead: 0,
                },
                ManifestPart {
                    part_number: 2,
                    size: 25,
                    chunk_count: 1,
                    etag: "\"def\"".into(),
                    lead: 5,
                },
            ],
            chunks: vec![chunk(1, 10), chunk(2, 25), chunk(3, 20)],
        };
        let enc = m.encode();
        assert_eq!(enc[4], 3);
        assert_eq!(Manifest::decode(&enc).unwrap(), m);
        let (head_m, head) = Manifest::decode_head(&enc, enc.len() as u64).unwrap();
        assert_eq!(head_m.parts, m.parts);
        assert_eq!(head.format, 3);
        let (c, n) = Manifest::decode_entry(3, &enc[head.chunks_at as usize..])
            .unwrap()
            .unwrap();
        assert_eq!((c, n), (chunk(1, 10), 36));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::decode(&bytes);
        }

        #[test]
        fn truncation_is_detected(n in 1usize..20, cut in 1usize..36) {
            let m = Manifest::single((0..n).map(|i| chunk(i as u8, i as u32)).collect());
            let enc = m.encode();
            prop_assert!(Manifest::decode(&enc[..enc.len() - cut]).is_err());
        }
    }
}
