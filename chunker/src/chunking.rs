//! Content-defined chunking: FastCDC (2020 variant, normalisation level 1)
//! over a push-based stream.
//!
//! The cut-point rule, gear tables and masks are those of the `fastcdc`
//! crate's `v2020` module (its tables are used directly, seeded per tenant),
//! so boundaries are identical to `fastcdc::v2020::FastCDC` over the whole
//! input. The scan itself lives here because `fastcdc`'s one-shot API cannot
//! resume: streaming with it means rescanning a partial chunk on every push.
//! This scanner keeps the rolling hash between pushes, so each byte is hashed
//! once and copied once (into the chunk handed back). The tests compare it
//! with `fastcdc::v2020::FastCDC` for random inputs, seeds and push patterns.

use fastcdc::v2020::{self, Normalization};

/// Chunk size bounds in bytes. All three must be even (FastCDC scans byte
/// pairs) and within the ranges `fastcdc` supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No chunk is shorter, except the last one of a stream.
    pub min: u32,
    /// Target average size.
    pub avg: u32,
    /// No chunk is longer.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB.
    fn default() -> Self {
        Self {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

/// Why chunker parameters were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkerError {
    /// A size is odd; FastCDC scans byte pairs and would silently shift
    /// boundaries.
    #[error("chunker {field} size {value} must be even")]
    Odd {
        /// `min`, `avg` or `max`.
        field: &'static str,
        /// The value given.
        value: u32,
    },
    /// A size is outside what `fastcdc` supports.
    #[error("chunker {field} size {value} is outside {low}..={high}")]
    OutOfRange {
        /// `min`, `avg` or `max`.
        field: &'static str,
        /// The value given.
        value: u32,
        /// Smallest allowed.
        low: u32,
        /// Largest allowed.
        high: u32,
    },
    /// The sizes are not ordered `min <= avg <= max`.
    #[error("chunker sizes must satisfy min <= avg <= max, got {min}/{avg}/{max}")]
    Unordered {
        /// The minimum given.
        min: u32,
        /// The average given.
        avg: u32,
        /// The maximum given.
        max: u32,
    },
}

impl ChunkerParams {
    /// Checks the sizes: even, within `fastcdc`'s supported ranges
    /// (min 64 B–1 MiB, avg 256 B–4 MiB, max 1 KiB–16 MiB), and ordered.
    pub fn validate(&self) -> Result<(), ChunkerError> {
        let fields = [
            ("min", self.min, v2020::MINIMUM_MIN, v2020::MINIMUM_MAX),
            ("avg", self.avg, v2020::AVERAGE_MIN, v2020::AVERAGE_MAX),
            ("max", self.max, v2020::MAXIMUM_MIN, v2020::MAXIMUM_MAX),
        ];
        for (field, value, low, high) in fields {
            // The fastcdc bounds are all far below u32::MAX.
            let low = u32::try_from(low).unwrap_or(u32::MAX);
            let high = u32::try_from(high).unwrap_or(u32::MAX);
            if !(low..=high).contains(&value) {
                return Err(ChunkerError::OutOfRange {
                    field,
                    value,
                    low,
                    high,
                });
            }
            if !value.is_multiple_of(2) {
                return Err(ChunkerError::Odd { field, value });
            }
        }
        if !(self.min <= self.avg && self.avg <= self.max) {
            return Err(ChunkerError::Unordered {
                min: self.min,
                avg: self.avg,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// The normalisation level. Part of where boundaries fall, so changing it
/// would change every chunk id of new data (and break dedup against old).
const NORMALIZATION: Normalization = Normalization::Level1;

/// Streaming, push-based content-defined chunker.
///
/// Feed it the bytes of one object with [`push`](Self::push) in pieces of any
/// size, then call [`finish`](Self::finish). The chunks come out exactly as
/// FastCDC v2020 would cut the whole input in one go. It holds at most one
/// unfinished chunk (< `max` bytes); the bytes of a push that complete chunks
/// are copied straight into those chunks.
///
/// ```
/// use dooz_chunker::{Chunker, ChunkerParams};
/// let params = ChunkerParams { min: 1024, avg: 4096, max: 16384 };
/// let mut chunker = Chunker::new(params, 42)?;
/// let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
/// let mut chunks = Vec::new();
/// for piece in data.chunks(1000) {
///     chunks.extend(chunker.push(piece));
/// }
/// chunks.extend(chunker.finish());
/// assert_eq!(chunks.concat(), data);
/// assert!(chunks.iter().all(|c| c.len() <= 16384));
/// # Ok::<(), dooz_chunker::ChunkerError>(())
/// ```
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
    mask_s_ls: u64,
    mask_l_ls: u64,
    /// Bytes of the current, unfinished chunk.
    pending: Vec<u8>,
    /// Positions (from the chunk start) below this have been examined. Even;
    /// 0 until the first pair at `min` is hashed.
    scanned: usize,
    /// The rolling gear hash after the last examined position.
    hash: u64,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The gear tables are derived from the tenant's seed: keep them out.
        f.debug_struct("Chunker")
            .field("min", &self.min)
            .field("avg", &self.avg)
            .field("max", &self.max)
            .field("buffered", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// A cut: the current chunk ends after this many bytes (from its start).
type Cut = usize;

impl Chunker {
    /// A chunker with the given sizes, its gear table seeded with `seed`
    /// (the tenant's [`crate::Keyring::cdc_seed`]).
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Self, ChunkerError> {
        params.validate()?;
        let (min, avg, max) = (
            params.min as usize,
            params.avg as usize,
            params.max as usize,
        );
        let (mask_s, mask_l) = v2020::select_masks(avg, NORMALIZATION);
        let (gear, gear_ls) = v2020::get_gear_with_seed(seed);
        let mut gear_table = Box::new([0u64; 256]);
        let mut gear_ls_table = Box::new([0u64; 256]);
        // Both tables always have 256 entries (one per byte value).
        gear_table.copy_from_slice(&gear);
        gear_ls_table.copy_from_slice(&gear_ls);
        Ok(Self {
            min,
            avg,
            max,
            gear: gear_table,
            gear_ls: gear_ls_table,
            mask_s,
            mask_l,
            mask_s_ls: mask_s << 1,
            mask_l_ls: mask_l << 1,
            pending: Vec::new(),
            scanned: 0,
            hash: 0,
        })
    }

    /// Appends `data`; returns every chunk it completed, in order.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        while !data.is_empty() {
            let base = self.pending.len();
            match self.find_cut(data) {
                Some(cut) if cut <= base => {
                    // The chunk ends inside what is buffered (a pair that
                    // straddled two pushes cut at its first byte).
                    let tail = self.pending.split_off(cut);
                    chunks.push(self.take_pending(tail));
                }
                Some(cut) => {
                    let (head, rest) = data.split_at(cut - base);
                    if base == 0 {
                        chunks.push(head.to_vec());
                        self.restart_scan();
                    } else {
                        self.pending.extend_from_slice(head);
                        chunks.push(self.take_pending(Vec::new()));
                    }
                    data = rest;
                }
                None => {
                    if self.pending.capacity() == 0 {
                        // The chunk will grow to at most `max`: one
                        // allocation, trimmed when the chunk is handed out.
                        self.pending.reserve_exact(self.max);
                    }
                    self.pending.extend_from_slice(data);
                    data = &[];
                }
            }
        }
        chunks
    }

    /// Ends the stream: returns the last chunk, if any bytes are buffered.
    /// The chunker is then ready for a new stream.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        // Everything buffered was already scanned without finding a cut, and
        // it is shorter than `max`: FastCDC makes it one final chunk.
        if self.pending.is_empty() {
            None
        } else {
            Some(self.take_pending(Vec::new()))
        }
    }

    /// Drops the bytes of the unfinished chunk and starts a new one there;
    /// returns how many were dropped. For a caller that pushed bytes past a
    /// point only to learn whether a chunk ends at it (a cut is decided once
    /// the byte after it has been seen).
    pub fn discard(&mut self) -> usize {
        let n = self.pending.len();
        self.pending.clear();
        self.restart_scan();
        n
    }

    /// Bytes buffered for the unfinished chunk.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// The parameters this chunker was built with.
    pub fn params(&self) -> ChunkerParams {
        // These came from u32 values in `new`.
        ChunkerParams {
            min: u32::try_from(self.min).unwrap_or(u32::MAX),
            avg: u32::try_from(self.avg).unwrap_or(u32::MAX),
            max: u32::try_from(self.max).unwrap_or(u32::MAX),
        }
    }

    /// Hands out the buffered chunk and starts the next one with `tail`.
    fn take_pending(&mut self, tail: Vec<u8>) -> Vec<u8> {
        let mut chunk = std::mem::replace(&mut self.pending, tail);
        if chunk.capacity() - chunk.len() > chunk.len() / 8 {
            chunk.shrink_to_fit();
        }
        self.restart_scan();
        chunk
    }

    /// Forgets the scan state: the next byte starts a new chunk.
    fn restart_scan(&mut self) {
        self.scanned = 0;
        self.hash = 0;
    }

    /// Scans on from where the last call stopped, over the buffered bytes
    /// followed by `data`; returns where the current chunk ends, if that is
    /// decided yet.
    ///
    /// This is FastCDC v2020's `cut_gear` made resumable. Positions are
    /// examined in pairs `(2i, 2i+1)` from `min`; the hash is
    /// `h = (h << 2) + gear_ls[b]` at the even position (tested against the
    /// shifted mask) and `h += gear[b]` at the odd one. A hit at position p
    /// ends the chunk before p. Below `avg` the strict mask applies, from
    /// `avg` on the loose one; at `max` the chunk is cut regardless. Only
    /// complete pairs are examined, exactly as the one-shot scan does at the
    /// end of its input, so a lone last byte waits for the next push (or
    /// ends the stream without having been tested).
    fn find_cut(&mut self, data: &[u8]) -> Option<Cut> {
        let base = self.pending.len();
        let total = base + data.len();
        let limit = (total & !1).min(self.max);
        let mut pos = self.scanned.max(self.min);

        // A pair whose first byte is buffered and second is the first of
        // `data`.
        if pos < limit && pos < base {
            let (first, second) = (self.pending[pos], data[0]);
            if let Some(cut) = self.step_pair(pos, first, second) {
                return Some(cut);
            }
            pos += 2;
        }

        while pos < limit {
            // `pos >= base` here and `pos`, `limit`, `avg` are even, so each
            // region is a whole number of pairs.
            let (end, small) = if pos < self.avg {
                (limit.min(self.avg), true)
            } else {
                (limit, false)
            };
            let (mask, mask_ls) = if small {
                (self.mask_s, self.mask_s_ls)
            } else {
                (self.mask_l, self.mask_l_ls)
            };
            let region = &data[pos - base..end - base];
            match scan_pairs(region, self.hash, mask, mask_ls, &self.gear, &self.gear_ls) {
                Ok(hash) => self.hash = hash,
                Err(offset) => return Some(pos + offset),
            }
            pos = end;
        }
        self.scanned = self.scanned.max(limit);
        (total >= self.max).then_some(self.max)
    }

    /// One pair at even position `pos`, hashed outside the fast loop.
    fn step_pair(&mut self, pos: usize, first: u8, second: u8) -> Option<Cut> {
        let (mask, mask_ls) = if pos < self.avg {
            (self.mask_s, self.mask_s_ls)
        } else {
            (self.mask_l, self.mask_l_ls)
        };
        match scan_pairs(
            &[first, second],
            self.hash,
            mask,
            mask_ls,
            &self.gear,
            &self.gear_ls,
        ) {
            Ok(hash) => {
                self.hash = hash;
                self.scanned = pos + 2;
                None
            }
            Err(offset) => Some(pos + offset),
        }
    }
}

/// The hot loop: hashes `region` (an even number of bytes starting at an
/// even chunk position) pair by pair. `Err(i)` means a cut before
/// `region[i]`; `Ok(hash)` means none, with the hash to continue from.
#[inline]
fn scan_pairs(
    region: &[u8],
    mut hash: u64,
    mask: u64,
    mask_ls: u64,
    gear: &[u64; 256],
    gear_ls: &[u64; 256],
) -> Result<u64, usize> {
    for (i, pair) in region.chunks_exact(2).enumerate() {
        hash = (hash << 2).wrapping_add(gear_ls[usize::from(pair[0])]);
        if hash & mask_ls == 0 {
            return Err(2 * i);
        }
        hash = hash.wrapping_add(gear[usize::from(pair[1])]);
        if hash & mask == 0 {
            return Err(2 * i + 1);
        }
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: ChunkerParams = ChunkerParams {
        min: 256,
        avg: 1024,
        max: 4096,
    };

    fn noise(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    #[test]
    fn discarded_bytes_leave_no_trace() {
        let data = noise(20_000, 9);
        let mut c = Chunker::new(SMALL, 5).unwrap();
        let mut lens: Vec<usize> = c.push(&data[..3000]).iter().map(Vec::len).collect();
        let cut: usize = lens.iter().sum();
        // Bytes pushed past the last cut, then taken back: the chunker goes
        // on from that cut as if they had never come.
        assert_eq!(c.discard(), 3000 - cut);
        assert_eq!(c.buffered(), 0);
        lens.extend(c.push(&data[cut..]).iter().map(Vec::len));
        lens.extend(c.finish().map(|x| x.len()));
        assert_eq!(lens, one_shot(&data, SMALL, 5));
    }

    fn one_shot(data: &[u8], params: ChunkerParams, seed: u64) -> Vec<usize> {
        v2020::FastCDC::with_level_and_seed(
            data,
            params.min as usize,
            params.avg as usize,
            params.max as usize,
            NORMALIZATION,
            seed,
        )
        .map(|chunk| chunk.length)
        .collect()
    }

    fn streamed(data: &[u8], params: ChunkerParams, seed: u64, piece: usize) -> Vec<Vec<u8>> {
        let mut chunker = Chunker::new(params, seed).unwrap();
        let mut chunks = Vec::new();
        for part in data.chunks(piece) {
            chunks.extend(chunker.push(part));
            assert!(chunker.buffered() < params.max as usize);
        }
        chunks.extend(chunker.finish());
        chunks
    }

    #[test]
    fn default_params_are_valid() {
        assert_eq!(ChunkerParams::default().validate(), Ok(()));
        assert_eq!(ChunkerParams::default().avg, 1 << 20);
    }

    #[test]
    fn validation_names_the_problem() {
        let odd = ChunkerParams { min: 257, ..SMALL };
        assert_eq!(
            odd.validate(),
            Err(ChunkerError::Odd {
                field: "min",
                value: 257
            })
        );
        let odd_max = ChunkerParams { max: 4097, ..SMALL };
        assert!(matches!(
            odd_max.validate(),
            Err(ChunkerError::Odd { field: "max", .. })
        ));
        let tiny = ChunkerParams { min: 2, ..SMALL };
        assert!(matches!(
            tiny.validate(),
            Err(ChunkerError::OutOfRange { field: "min", .. })
        ));
        let huge = ChunkerParams {
            max: 32 << 20,
            ..SMALL
        };
        assert!(matches!(
            huge.validate(),
            Err(ChunkerError::OutOfRange { field: "max", .. })
        ));
        let unordered = ChunkerParams {
            min: 2048,
            avg: 1024,
            max: 4096,
        };
        assert!(matches!(
            unordered.validate(),
            Err(ChunkerError::Unordered { .. })
        ));
        assert!(Chunker::new(unordered, 0).is_err());
        let message = odd.validate().unwrap_err().to_string();
        assert!(
            message.contains("min") && message.contains("even"),
            "{message}"
        );
    }

    #[test]
    fn matches_fastcdc_for_every_piece_size() {
        let mut data = noise(50_000, 1);
        // Long runs of one byte force cuts at max.
        data.extend(std::iter::repeat_n(0u8, 10_001));
        data.extend(noise(7_777, 2));
        for seed in [0, 1, 0xdead_beef_cafe_f00d] {
            let expected = one_shot(&data, SMALL, seed);
            for piece in [1, 2, 3, 255, 1024, 4095, 4096, 4097, 100_000] {
                let lengths: Vec<usize> = streamed(&data, SMALL, seed, piece)
                    .iter()
                    .map(Vec::len)
                    .collect();
                assert_eq!(lengths, expected, "seed {seed} piece {piece}");
            }
        }
    }

    #[test]
    fn odd_length_streams_match_fastcdc() {
        // The last byte of an odd-length input is never a cut candidate.
        for len in [257usize, 1023, 1025, 4097, 9999] {
            for seed in 0..20 {
                let data = noise(len, u8::try_from(seed).unwrap());
                let expected = one_shot(&data, SMALL, seed);
                let lengths: Vec<usize> = streamed(&data, SMALL, seed, 7)
                    .iter()
                    .map(Vec::len)
                    .collect();
                assert_eq!(lengths, expected, "len {len} seed {seed}");
            }
        }
    }

    #[test]
    fn empty_and_short_streams() {
        let mut chunker = Chunker::new(SMALL, 0).unwrap();
        assert!(chunker.push(&[]).is_empty());
        assert_eq!(chunker.finish(), None);
        assert_eq!(chunker.push(b"abc"), Vec::<Vec<u8>>::new());
        assert_eq!(chunker.buffered(), 3);
        assert_eq!(chunker.finish(), Some(b"abc".to_vec()));
        assert_eq!(chunker.buffered(), 0);
        // Reusable for the next stream.
        assert_eq!(chunker.push(b"xy"), Vec::<Vec<u8>>::new());
        assert_eq!(chunker.finish(), Some(b"xy".to_vec()));
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = noise(200_000, 9);
        assert_ne!(one_shot(&data, SMALL, 1), one_shot(&data, SMALL, 2));
        let a: Vec<usize> = streamed(&data, SMALL, 1, 1000)
            .iter()
            .map(Vec::len)
            .collect();
        let b: Vec<usize> = streamed(&data, SMALL, 2, 1000)
            .iter()
            .map(Vec::len)
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn chunks_do_not_keep_oversized_buffers() {
        let data = noise(100_000, 4);
        for chunk in streamed(&data, SMALL, 5, 100) {
            assert!(chunk.capacity() <= chunk.len() + chunk.len() / 8 + 1);
        }
    }

    #[test]
    fn debug_hides_the_gear_table() {
        let chunker = Chunker::new(SMALL, 77).unwrap();
        let shown = format!("{chunker:?}");
        assert!(
            shown.contains("Chunker") && !shown.contains("gear"),
            "{shown}"
        );
        assert_eq!(chunker.params(), SMALL);
    }
}
