//! zstd compression of chunk payloads, with a cheap early exit for data that
//! will not compress.
//!
//! Before compressing a chunk, its first [`PROBE_LEN`] bytes are compressed
//! at level 1 into a scratch buffer. If they shrink by less than 1/32 the
//! chunk is stored raw, so random, already compressed or encrypted data costs
//! one small, fast zstd call per chunk. Otherwise the whole chunk is
//! compressed in one call straight into the frame buffer. (Continuing one
//! streaming compression after the probe wastes nothing in theory, but
//! measured 10–15% slower than two one-shot calls: streaming copies the
//! input into zstd's window.) The compressed form is kept only when it is
//! strictly smaller than the chunk.
//!
//! zstd contexts are expensive to create, so each thread keeps its own for
//! reuse: one for probes, one for chunks, one for decompression.

use std::cell::RefCell;
use std::fmt;

use std::io::Cursor;

use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, ResetDirective};

/// How a frame's payload is encoded; recorded (encrypted) in every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    /// The payload is the chunk itself.
    None = 0,
    /// The payload is one zstd frame (RFC 8878) holding the chunk.
    Zstd = 1,
}

impl Compression {
    /// The wire id.
    pub fn id(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        })
    }
}

/// A byte that is not the id of any [`Compression`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression id {0}")]
pub struct UnknownCompression(pub u8);

impl TryFrom<u8> for Compression {
    type Error = UnknownCompression;

    fn try_from(id: u8) -> Result<Self, Self::Error> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Zstd),
            other => Err(UnknownCompression(other)),
        }
    }
}

/// How hard to try compressing chunks.
///
/// The default is zstd level 1: on source code it gives ~88% of level 3's
/// size reduction at ~1.6× its speed on this project's benchmark machine
/// (see docs/BENCHMARKS.md), and compression is the slowest stage of the
/// write pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionPolicy {
    /// zstd level; `0` switches compression off. Negative levels are zstd's
    /// fast modes. Values beyond zstd's range are clamped to it.
    pub level: i32,
}

impl CompressionPolicy {
    /// The default level.
    pub const DEFAULT_LEVEL: i32 = 1;
    /// Never compress.
    pub const OFF: CompressionPolicy = CompressionPolicy { level: 0 };

    /// A policy with the given zstd level (`0` = off).
    pub fn new(level: i32) -> Self {
        Self { level }
    }
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        Self {
            level: Self::DEFAULT_LEVEL,
        }
    }
}

/// Length of the prefix compressed first to decide whether compressing the
/// chunk is worth it. Chunks up to twice this long are compressed directly.
pub const PROBE_LEN: usize = 16 * 1024;

/// Chunks shorter than this are never compressed: zstd's frame header alone
/// eats most of what it could save.
const MIN_COMPRESS_LEN: usize = 64;

/// The probe's zstd level: the fastest level that still finds matches.
const PROBE_LEVEL: i32 = 1;

/// A thread's compression state.
struct Compressors {
    probe: CCtx<'static>,
    chunk: CCtx<'static>,
    scratch: Vec<u8>,
}

impl Compressors {
    fn new() -> Option<Self> {
        let mut probe = CCtx::try_create()?;
        configure(&mut probe, PROBE_LEVEL).then_some(())?;
        Some(Self {
            probe,
            chunk: CCtx::try_create()?,
            scratch: Vec::with_capacity(zstd_safe::compress_bound(PROBE_LEN)),
        })
    }
}

/// Level, no checksum (the AEAD and the chunk id already check the bytes),
/// content size recorded. Resets the session first: after a failed call
/// (say, output larger than the room given) zstd refuses new parameters
/// until then.
fn configure(ctx: &mut CCtx<'static>, level: i32) -> bool {
    ctx.reset(ResetDirective::SessionOnly).is_ok()
        && ctx
            .set_parameter(CParameter::CompressionLevel(level))
            .is_ok()
        && ctx.set_parameter(CParameter::ChecksumFlag(false)).is_ok()
        && ctx.set_parameter(CParameter::ContentSizeFlag(true)).is_ok()
}

thread_local! {
    static COMPRESSORS: RefCell<Option<Compressors>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Appends the payload for `plaintext` to `out`: zstd-compressed when that
/// is allowed and shrinks it, else the plaintext itself. Says which.
pub(crate) fn compress_into(
    out: &mut Vec<u8>,
    plaintext: &[u8],
    policy: &CompressionPolicy,
) -> Compression {
    let start = out.len();
    // Room for the raw fallback, which is also the most compressed output we
    // would keep, so zstd never makes the vector grow.
    out.reserve(plaintext.len());
    if policy.level != 0 && plaintext.len() >= MIN_COMPRESS_LEN {
        let level = policy
            .level
            .clamp(zstd_safe::min_c_level(), zstd_safe::max_c_level());
        let shrunk = COMPRESSORS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                if slot.is_none() {
                    *slot = Compressors::new();
                }
                slot.as_mut()
                    .is_some_and(|ctx| compress(ctx, out, plaintext, level))
            }
            // Not reachable (nothing here re-enters), but storing raw is
            // always a correct answer.
            Err(_) => false,
        });
        if shrunk && out.len() - start < plaintext.len() {
            return Compression::Zstd;
        }
        out.truncate(start);
    }
    out.extend_from_slice(plaintext);
    Compression::None
}

/// Probes, then compresses `plaintext` onto the end of `out` as one zstd
/// frame. Returns false (possibly leaving bytes after the original length,
/// for the caller to cut) when the probe says the data is incompressible or
/// on any zstd error.
fn compress(ctx: &mut Compressors, out: &mut Vec<u8>, plaintext: &[u8], level: i32) -> bool {
    if plaintext.len() > 2 * PROBE_LEN {
        ctx.scratch.clear();
        let Ok(probed) = ctx
            .probe
            .compress2(&mut ctx.scratch, &plaintext[..PROBE_LEN])
        else {
            // Cannot happen (the scratch holds the bound), but a failed call
            // leaves the context unusable until reset.
            let _ = ctx.probe.reset(ResetDirective::SessionOnly);
            return false;
        };
        if probed > PROBE_LEN - PROBE_LEN / 32 {
            return false;
        }
    }
    if !configure(&mut ctx.chunk, level) {
        return false;
    }
    // Written in place after the frame header; zstd fails rather than write
    // past the capacity reserved by the caller.
    let start = out.len();
    let mut cursor = Cursor::new(out);
    cursor.set_position(start as u64);
    ctx.chunk.compress2(&mut cursor, plaintext).is_ok()
}

/// Why a zstd payload did not decode to the announced length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecompressFailure {
    /// zstd refused the payload (corrupt, or larger than announced).
    Zstd(&'static str),
    /// It decoded to fewer bytes than announced.
    Short { expected: usize, actual: usize },
    /// No decompression context could be allocated.
    NoContext,
}

/// Decodes a zstd payload into exactly `plain_len` bytes. Never allocates
/// more than `plain_len` for the output, whatever the payload claims.
pub(crate) fn decompress(payload: &[u8], plain_len: usize) -> Result<Vec<u8>, DecompressFailure> {
    let mut out = Vec::with_capacity(plain_len);
    let written = DECOMPRESSOR.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| DecompressFailure::NoContext)?;
        if slot.is_none() {
            *slot = DCtx::try_create();
        }
        let ctx = slot.as_mut().ok_or(DecompressFailure::NoContext)?;
        // One-shot decoding writes straight into `out` and fails rather than
        // grow it past its capacity, so `plain_len` bounds the memory.
        ctx.decompress(&mut out, payload)
            .map_err(|code| DecompressFailure::Zstd(zstd_safe::get_error_name(code)))
    })?;
    if written != plain_len || out.len() != plain_len {
        return Err(DecompressFailure::Short {
            expected: plain_len,
            actual: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    fn text(len: usize) -> Vec<u8> {
        b"fn main() { println!(\"hello, dooz\"); }\n"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    #[test]
    fn ids_and_names() {
        assert_eq!(Compression::try_from(0), Ok(Compression::None));
        assert_eq!(Compression::try_from(1), Ok(Compression::Zstd));
        assert_eq!(Compression::try_from(2), Err(UnknownCompression(2)));
        assert_eq!(Compression::Zstd.to_string(), "zstd");
        assert_eq!(CompressionPolicy::default().level, 1);
    }

    #[test]
    fn compressible_data_is_compressed_and_round_trips() {
        for len in [MIN_COMPRESS_LEN, 5000, 2 * PROBE_LEN + 1, 1 << 20] {
            let data = text(len);
            let mut out = b"prefix".to_vec();
            let how = compress_into(&mut out, &data, &CompressionPolicy::default());
            assert_eq!(how, Compression::Zstd, "len {len}");
            assert_eq!(&out[..6], b"prefix");
            assert!(out.len() - 6 < len.max(4000) / 4, "len {len}");
            assert_eq!(decompress(&out[6..], len).unwrap(), data);
        }
    }

    #[test]
    fn incompressible_and_tiny_data_is_stored_raw() {
        for len in [0, 10, MIN_COMPRESS_LEN - 1, 4096, 3 * PROBE_LEN, 1 << 20] {
            let data = if len < MIN_COMPRESS_LEN {
                text(len)
            } else {
                noise(len, 1)
            };
            let mut out = Vec::new();
            let how = compress_into(&mut out, &data, &CompressionPolicy::default());
            assert_eq!(how, Compression::None, "len {len}");
            assert_eq!(out, data);
        }
    }

    #[test]
    fn probe_rejects_noisy_prefix_even_if_tail_compresses() {
        let mut data = noise(PROBE_LEN, 2);
        data.extend(text(PROBE_LEN * 4));
        let mut out = Vec::new();
        assert_eq!(
            compress_into(&mut out, &data, &CompressionPolicy::default()),
            Compression::None
        );
        // A compressible prefix lets the whole chunk through.
        let mut data = text(PROBE_LEN * 2);
        data.extend(noise(PROBE_LEN, 3));
        let mut out = Vec::new();
        assert_eq!(
            compress_into(&mut out, &data, &CompressionPolicy::default()),
            Compression::Zstd
        );
        assert_eq!(decompress(&out, data.len()).unwrap(), data);
    }

    #[test]
    fn level_zero_is_off_and_levels_are_clamped() {
        let data = text(10_000);
        let mut out = Vec::new();
        assert_eq!(
            compress_into(&mut out, &data, &CompressionPolicy::OFF),
            Compression::None
        );
        for level in [i32::MIN, -5, 3, 19, i32::MAX] {
            let mut out = Vec::new();
            match compress_into(&mut out, &data, &CompressionPolicy::new(level)) {
                Compression::Zstd => assert_eq!(decompress(&out, data.len()).unwrap(), data),
                // zstd's fastest modes may not find the repeats; still fine.
                Compression::None => assert!(level < 0 && out == data, "level {level}"),
            }
        }
    }

    #[test]
    fn decompression_is_bounded_by_the_announced_length() {
        let data = text(100_000);
        let mut out = Vec::new();
        compress_into(&mut out, &data, &CompressionPolicy::default());
        assert!(matches!(
            decompress(&out, 99_999),
            Err(DecompressFailure::Zstd(_))
        ));
        assert_eq!(
            decompress(&out, 100_001),
            Err(DecompressFailure::Short {
                expected: 100_001,
                actual: 100_000
            })
        );
        assert!(matches!(
            decompress(b"not zstd", 10),
            Err(DecompressFailure::Zstd(_))
        ));
    }
}
