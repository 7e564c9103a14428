//! Benchmark inputs, generated from a seed so every run and every endpoint
//! sees the same bytes: incompressible random data and source-code-like text.

use std::io::{BufWriter, Write};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Which kind of bytes a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Random,
    Text,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Random => "random",
            Kind::Text => "text",
        }
    }
}

const WORDS: &[&str] = &[
    "fn", "let", "mut", "self", "return", "match", "impl", "pub", "struct", "enum", "if", "else",
    "for", "in", "while", "loop", "async", "await", "use", "crate", "super", "where", "type",
    "const", "static", "trait", "Result", "Option", "Some", "None", "Ok", "Err", "Vec", "String",
    "bytes", "len", "offset", "buffer", "chunk", "pack", "tenant", "bucket", "key", "value",
    "config", "error", "request", "response", "stream", "reader", "writer", "index", "count",
];

/// Fills `buf` with pseudo-source lines: indentation, identifiers, operators.
fn text_block(rng: &mut StdRng, buf: &mut Vec<u8>, len: usize) {
    buf.clear();
    while buf.len() < len {
        let indent = rng.random_range(0..5) * 4;
        buf.extend(std::iter::repeat_n(b' ', indent));
        let words = rng.random_range(2..10);
        for w in 0..words {
            if w > 0 {
                buf.push(if rng.random_bool(0.2) { b'.' } else { b' ' });
            }
            buf.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())].as_bytes());
            if rng.random_bool(0.1) {
                buf.extend_from_slice(format!("_{}", rng.random_range(0..1000u32)).as_bytes());
            }
        }
        buf.extend_from_slice(if rng.random_bool(0.3) {
            b" {\n"
        } else {
            b";\n"
        });
    }
    buf.truncate(len);
}

/// Writes `size` bytes of `kind` generated from `seed` to `path`.
pub fn write_file(path: &Path, kind: Kind, size: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        match kind {
            Kind::Random => rng.fill_bytes(&mut buf[..n]),
            Kind::Text => text_block(&mut rng, &mut buf, n),
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// A copy of `src` with `len` bytes in its middle replaced by fresh random bytes.
pub fn write_edited_copy(src: &Path, dst: &Path, len: usize, seed: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    std::fs::copy(src, dst)?;
    let size = std::fs::metadata(dst)?.len();
    let mut f = std::fs::OpenOptions::new().write(true).open(dst)?;
    f.seek(SeekFrom::Start((size / 2).saturating_sub(len as u64 / 2)))?;
    let mut patch = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut patch);
    f.write_all(&patch)?;
    f.sync_all()
}

/// Small objects: every one distinct, so no endpoint gets a dedup shortcut.
pub fn small_object(seed: u64, index: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)).fill_bytes(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_reproducible_and_text_compresses() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_file(&a, Kind::Text, 300_000, 7).unwrap();
        write_file(&b, Kind::Text, 300_000, 7).unwrap();
        let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(ta, tb);
        assert_eq!(ta.len(), 300_000);
        let packed = zstd::bulk::compress(&ta, 3).unwrap();
        assert!(packed.len() * 3 < ta.len(), "text should compress 3x");
        write_file(&a, Kind::Random, 300_000, 7).unwrap();
        let r = std::fs::read(&a).unwrap();
        assert!(zstd::bulk::compress(&r, 3).unwrap().len() >= r.len());
    }

    #[test]
    fn edited_copy_differs_only_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_file(&a, Kind::Random, 1 << 20, 1).unwrap();
        write_edited_copy(&a, &b, 4096, 2).unwrap();
        let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(x.len(), y.len());
        let diff: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
        assert!(diff.len() > 4000);
        assert!(*diff.first().unwrap() >= (1 << 19) - 2048);
        assert!(*diff.last().unwrap() < (1 << 19) + 2048);
        assert_ne!(small_object(1, 1, 64), small_object(1, 2, 64));
    }
}
