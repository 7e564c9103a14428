//! Throughput of each stage of the write path and of the whole pipeline,
//! on incompressible data and on source code, plus the raw primitives the
//! targets are stated against. `cargo bench -p dooz-chunker`.
//!
//! Criterion measures every stage (MB/s on one core, `Throughput::Bytes`);
//! a final section times pipeline and raw primitives back to back and
//! prints the two target ratios:
//!   pipeline ÷ raw AES-256-GCM-SIV on random data (target ≥ 0.6),
//!   pipeline ÷ raw zstd-1 on source code (target ≥ 0.75).
//!
//! Environment: `DOOZ_BENCH_RANDOM_MIB` (default 64), `DOOZ_BENCH_SOURCE_MIB`
//! (default 32), `DOOZ_BENCH_CORPUS` (directory scanned for `*.rs`; default
//! `$CARGO_HOME/registry/src`; files sorted by path, at most 256 KiB per
//! package so generated giants do not dominate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use criterion::{Criterion, SamplingMode, Throughput};
use dooz_chunker::{ChunkId, ChunkerParams, Cipher, CompressionPolicy, EpochKeys, Key32, Keyring};

/// Bytes handed to the chunker per push, like frames of an HTTP body.
const PUSH: usize = 64 * 1024;

fn env_mib(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        << 20
}

fn random_input(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"dooz bench random input")
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Every `*.rs` file under `dir`, grouped by package (the nearest directory
/// holding a `Cargo.toml`).
fn collect_rs(dir: &Path, package: &Path, out: &mut Vec<(PathBuf, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let package = if dir.join("Cargo.toml").is_file() {
        dir
    } else {
        package
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_rs(&path, package, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push((package.to_path_buf(), path));
        }
    }
}

/// At most this much source from any one package, so a few huge generated
/// crates (SDKs, bindings) do not make up the whole corpus.
const PER_PACKAGE: usize = 256 * 1024;

/// `*.rs` files under the corpus directory, sorted by path, at most
/// [`PER_PACKAGE`] bytes per package, concatenated up to `len` bytes.
fn source_corpus(len: usize) -> Option<(Vec<u8>, PathBuf)> {
    let root = match std::env::var_os("DOOZ_BENCH_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cargo_home = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
            cargo_home.join("registry").join("src")
        }
    };
    let mut files = Vec::new();
    collect_rs(&root, &root, &mut files);
    files.sort();
    let mut out = Vec::with_capacity(len);
    let mut current: Option<(PathBuf, usize)> = None;
    for (package, file) in files {
        if out.len() >= len {
            break;
        }
        let taken = match &current {
            Some((p, taken)) if *p == package => *taken,
            _ => 0,
        };
        if taken >= PER_PACKAGE {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&file) {
            out.extend_from_slice(&bytes);
            current = Some((package, taken + bytes.len()));
        }
    }
    out.truncate(len);
    (!out.is_empty() && out.len() >= len / 2).then_some((out, root))
}

fn keyring() -> Keyring {
    Keyring::new(
        [1; 16],
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

/// The stages, each a function over a whole input. Shared by the criterion
/// groups and the ratio section so both measure the same thing.
struct Workload {
    name: &'static str,
    data: Vec<u8>,
    /// (start, end) of each chunk in `data`.
    chunks: Vec<(usize, usize)>,
    ids: Vec<ChunkId>,
    frames: Vec<Vec<u8>>,
}

impl Workload {
    fn new(name: &'static str, data: Vec<u8>, ring: &Keyring, params: ChunkerParams) -> Self {
        let mut chunker = ring.chunker(params).unwrap();
        let mut chunks = Vec::new();
        let mut start = 0;
        for piece in data.chunks(PUSH) {
            for chunk in chunker.push(piece) {
                chunks.push((start, start + chunk.len()));
                start += chunk.len();
            }
        }
        if let Some(chunk) = chunker.finish() {
            chunks.push((start, start + chunk.len()));
        }
        let ids: Vec<ChunkId> = chunks
            .iter()
            .map(|&(s, e)| ring.chunk_id(&data[s..e]))
            .collect();
        let frames = chunks
            .iter()
            .zip(&ids)
            .map(|(&(s, e), id)| ring.seal_chunk(id, &data[s..e], &CompressionPolicy::default()))
            .collect();
        Self {
            name,
            data,
            chunks,
            ids,
            frames,
        }
    }

    fn chunk_slices(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(|&(s, e)| &self.data[s..e])
    }

    fn chunking(&self, ring: &Keyring, params: ChunkerParams) -> usize {
        let mut chunker = ring.chunker(params).unwrap();
        let mut count = 0;
        for piece in self.data.chunks(PUSH) {
            count += black_box(chunker.push(piece)).len();
        }
        count + usize::from(chunker.finish().is_some())
    }

    fn ids(&self, ring: &Keyring) {
        for chunk in self.chunk_slices() {
            black_box(ring.chunk_id(chunk));
        }
    }

    fn seal(&self, ring: &Keyring, policy: &CompressionPolicy) -> usize {
        self.chunk_slices()
            .zip(&self.ids)
            .map(|(chunk, id)| black_box(ring.seal_chunk(id, chunk, policy)).len())
            .sum()
    }

    fn open(&self, ring: &Keyring, max_plain: usize) {
        for (frame, id) in self.frames.iter().zip(&self.ids) {
            black_box(ring.open_chunk(id, frame, max_plain).unwrap());
        }
    }

    fn zstd(&self, compressor: &mut zstd::bulk::Compressor<'_>, out: &mut Vec<u8>) -> usize {
        let mut total = 0;
        for chunk in self.chunk_slices() {
            out.clear();
            total += compressor.compress_to_buffer(chunk, out).unwrap();
        }
        total
    }

    /// The primitive alone: in place over a scratch copy, no framing, no
    /// copies, same chunk sizes.
    fn raw_aead(&self, aead: &Aes256GcmSiv, scratch: &mut [u8]) {
        for &(s, e) in &self.chunks {
            black_box(
                aead.encrypt_inout_detached(&[7u8; 12].into(), b"aad", (&mut scratch[s..e]).into())
                    .unwrap(),
            );
        }
    }

    /// chunk → id → compress (probe first) → seal, as the gateway does it.
    fn pipeline(&self, ring: &Keyring, params: ChunkerParams, policy: &CompressionPolicy) -> usize {
        let mut chunker = ring.chunker(params).unwrap();
        let mut stored = 0;
        let mut seal = |chunk: Vec<u8>| {
            let id = ring.chunk_id(&chunk);
            stored += black_box(ring.seal_chunk(&id, &chunk, policy)).len();
        };
        for piece in self.data.chunks(PUSH) {
            chunker.push(piece).into_iter().for_each(&mut seal);
        }
        chunker.finish().into_iter().for_each(&mut seal);
        stored
    }
}

fn criterion_groups(c: &mut Criterion, ring: &Keyring, params: ChunkerParams, work: &Workload) {
    let mut group = c.benchmark_group(format!("chunker/{}", work.name));
    group
        .throughput(Throughput::Bytes(work.data.len() as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let level1 = CompressionPolicy::new(1);
    let level3 = CompressionPolicy::new(3);
    group.bench_function("chunking", |b| b.iter(|| work.chunking(ring, params)));
    group.bench_function("blake3_ids", |b| b.iter(|| work.ids(ring)));
    group.bench_function("seal_zstd1", |b| b.iter(|| work.seal(ring, &level1)));
    group.bench_function("seal_uncompressed", |b| {
        b.iter(|| work.seal(ring, &CompressionPolicy::OFF))
    });
    group.bench_function("open", |b| b.iter(|| work.open(ring, params.max as usize)));
    let mut out = Vec::with_capacity(params.max as usize * 2);
    let mut zstd1 = zstd::bulk::Compressor::new(1).unwrap();
    group.bench_function("raw_zstd1", |b| b.iter(|| work.zstd(&mut zstd1, &mut out)));
    let mut zstd3 = zstd::bulk::Compressor::new(3).unwrap();
    group.bench_function("raw_zstd3", |b| b.iter(|| work.zstd(&mut zstd3, &mut out)));
    let aead = Aes256GcmSiv::new(&[9u8; 32].into());
    let mut scratch = work.data.clone();
    group.bench_function("raw_aes256gcmsiv", |b| {
        b.iter(|| work.raw_aead(&aead, &mut scratch))
    });
    group.bench_function("pipeline_zstd1", |b| {
        b.iter(|| work.pipeline(ring, params, &level1))
    });
    group.bench_function("pipeline_zstd3", |b| {
        b.iter(|| work.pipeline(ring, params, &level3))
    });
    group.finish();
}

/// Median seconds of `runs` timings of `f`.
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ratio_report(
    ring: &Keyring,
    params: ChunkerParams,
    random: &Workload,
    source: Option<&Workload>,
) {
    const RUNS: usize = 9;
    let policy = CompressionPolicy::default();
    let mb_s = |bytes: usize, secs: f64| bytes as f64 / secs / 1e6;
    println!("\n== Chunker target ratios (one core, median of {RUNS} interleaved runs) ==");
    println!("default compression level: {}", policy.level);

    // Interleave pipeline and primitive so machine noise hits both alike.
    let aead = Aes256GcmSiv::new(&[9u8; 32].into());
    let mut scratch = random.data.clone();
    let (mut pipe, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let start = Instant::now();
        black_box(random.pipeline(ring, params, &policy));
        pipe.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        random.raw_aead(&aead, &mut scratch);
        raw.push(start.elapsed().as_secs_f64());
    }
    let (pipe, raw) = (median(pipe), median(raw));
    let n = random.data.len();
    println!(
        "random {} MiB: pipeline {:.0} MB/s, raw AES-256-GCM-SIV {:.0} MB/s, ratio {:.2} (target >= 0.60)",
        n >> 20,
        mb_s(n, pipe),
        mb_s(n, raw),
        raw / pipe
    );

    let Some(source) = source else {
        println!("source: no corpus found, ratio not measured");
        return;
    };
    let mut compressor = zstd::bulk::Compressor::new(1).unwrap();
    let mut out = Vec::with_capacity(params.max as usize * 2);
    let (mut pipe, mut raw) = (Vec::new(), Vec::new());
    let (mut stored, mut compressed) = (0, 0);
    for _ in 0..RUNS {
        let start = Instant::now();
        stored = black_box(source.pipeline(ring, params, &policy));
        pipe.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        compressed = source.zstd(&mut compressor, &mut out);
        raw.push(start.elapsed().as_secs_f64());
    }
    let (pipe, raw) = (median(pipe), median(raw));
    let n = source.data.len();
    println!(
        "source {} MiB: pipeline {:.0} MB/s (stored {:.1}%), raw zstd-1 {:.0} MB/s ({:.1}%), ratio {:.2} (target >= 0.75)",
        n >> 20,
        mb_s(n, pipe),
        100.0 * stored as f64 / n as f64,
        mb_s(n, raw),
        100.0 * compressed as f64 / n as f64,
        raw / pipe
    );

    // What the default level trades: the same pipeline at zstd 3.
    let level3 = CompressionPolicy::new(3);
    let (mut one, mut three) = (Vec::new(), Vec::new());
    let mut stored3 = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        black_box(source.pipeline(ring, params, &policy));
        one.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        stored3 = black_box(source.pipeline(ring, params, &level3));
        three.push(start.elapsed().as_secs_f64());
    }
    println!(
        "source pipeline at zstd 1: {:.0} MB/s, stored {:.1}%; at zstd 3: {:.0} MB/s, stored {:.1}%",
        mb_s(n, median(one)),
        100.0 * stored as f64 / n as f64,
        mb_s(n, median(three)),
        100.0 * stored3 as f64 / n as f64
    );
}

fn main() {
    let ring = keyring();
    let params = ChunkerParams::default();
    let random = Workload::new(
        "random",
        random_input(env_mib("DOOZ_BENCH_RANDOM_MIB", 64)),
        &ring,
        params,
    );
    let source = match source_corpus(env_mib("DOOZ_BENCH_SOURCE_MIB", 32)) {
        Some((data, root)) => {
            println!(
                "source corpus: {} bytes of *.rs under {}",
                data.len(),
                root.display()
            );
            Some(Workload::new("source", data, &ring, params))
        }
        None => {
            println!("source corpus: not enough *.rs files found; set DOOZ_BENCH_CORPUS");
            None
        }
    };
    for work in std::iter::once(&random).chain(source.as_ref()) {
        println!(
            "{}: {} bytes in {} chunks, {} bytes of frames",
            work.name,
            work.data.len(),
            work.chunks.len(),
            work.frames.iter().map(Vec::len).sum::<usize>()
        );
    }

    let mut criterion = Criterion::default().configure_from_args();
    for work in std::iter::once(&random).chain(source.as_ref()) {
        criterion_groups(&mut criterion, &ring, params, work);
    }
    criterion.final_summary();
    ratio_report(&ring, params, &random, source.as_ref());
}
