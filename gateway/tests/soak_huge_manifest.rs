//! A HEAD and ranged GETs of an object whose manifest is 180 MB (10,000
//! parts, 5 million chunk entries: what a 5 TiB multipart object at 1 MiB
//! chunks has): they read the parts list and the entries of the range, not
//! the manifest. Prints the figures docs/BENCHMARKS.md quotes, next to what
//! reading the whole manifest costs (what every HEAD and GET did before).
//!
//! The object is forged in the database from a real one: its parts repeat
//! the real object's chunks, so every byte it serves can be checked.
//! Run by scripts/soak (takes a minute and ~1 GB of memory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dooz_gateway::meta::{Manifest, ManifestPart};
use support::gateway::{Backend, Meta, Options, start};
use support::{pseudo_random, put};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_manifests_are_read_only_where_needed() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.chunking = Some((64 * 1024, 256 * 1024, 1024 * 1024));
    let g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("huge").send().await.unwrap();
    let seed_data = pseudo_random(1024 * 1024, 42);
    put(&c, "huge", "seed", &seed_data).await;
    let seed = g
        .engine()
        .meta()
        .get_object("huge", "seed", None)
        .await
        .unwrap()
        .unwrap();
    let unit = seed.manifest.chunks.clone();
    const PARTS: u32 = 10_000;
    const CHUNKS_PER_PART: usize = 500;
    let reps = CHUNKS_PER_PART / unit.len();
    let part_size = seed_data.len() as u64 * reps as u64;
    let mut manifest = Manifest::default();
    for n in 1..=PARTS {
        manifest.parts.push(ManifestPart {
            part_number: n,
            size: part_size,
            chunk_count: (unit.len() * reps) as u32,
            etag: format!("\"{:032x}\"", n),
            lead: 0,
        });
        for _ in 0..reps {
            manifest.chunks.extend(unit.iter().cloned());
        }
    }
    let total = part_size * u64::from(PARTS);
    let blob = manifest.encode();
    let entries = manifest.chunks.len();
    drop(manifest);
    println!(
        "forged object: {} parts, {entries} entries, {:.1} GiB, manifest {:.1} MB",
        PARTS,
        total as f64 / (1u64 << 30) as f64,
        blob.len() as f64 / 1e6
    );
    let db = g.data_dir.path().join("meta.db");
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.execute(
            "INSERT INTO objects (bucket, key, version_id, is_latest, delete_marker, size, etag, attrs, created_at, manifest) \
             SELECT bucket, 'big', version_id, is_latest, delete_marker, ?1, etag, \
                    json_set(attrs, '$.size', ?1), created_at, ?2 \
             FROM objects WHERE bucket = 'huge' AND key = 'seed'",
            rusqlite::params![total as i64, blob],
        )
        .unwrap();
    })
    .await
    .unwrap();

    // HEAD: the parts list only.
    let started = Instant::now();
    let head = c
        .head_object()
        .bucket("huge")
        .key("big")
        .part_number(PARTS as i32)
        .send()
        .await
        .unwrap();
    let head_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(head.parts_count(), Some(PARTS as i32));
    // Ranged GETs: the last MiB, and one in the middle of a part.
    let rss_before = rss_kib();
    let started = Instant::now();
    let tail = c
        .get_object()
        .bucket("huge")
        .key("big")
        .range(format!(
            "bytes={}-{}",
            total - seed_data.len() as u64,
            total - 1
        ))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    let tail_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(tail, seed_data);
    let mid = total / 2 + 12_345;
    let started = Instant::now();
    let middle = c
        .get_object()
        .bucket("huge")
        .key("big")
        .range(format!("bytes={mid}-{}", mid + 99_999))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    let mid_ms = started.elapsed().as_secs_f64() * 1e3;
    let at = (mid % seed_data.len() as u64) as usize;
    let expected: Vec<u8> = seed_data
        .iter()
        .cycle()
        .skip(at)
        .take(100_000)
        .copied()
        .collect();
    assert_eq!(middle, expected);
    let rss_get = rss_kib().saturating_sub(rss_before);

    // What every HEAD and GET paid before: the whole manifest, decoded.
    let rss_before = rss_kib();
    let started = Instant::now();
    let whole = g
        .engine()
        .meta()
        .get_object("huge", "big", None)
        .await
        .unwrap()
        .unwrap();
    let whole_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_whole = rss_kib().saturating_sub(rss_before);
    assert_eq!(whole.manifest.chunks.len(), entries);
    drop(whole);
    println!(
        "HEAD ?partNumber: {head_ms:.1} ms; GET last MiB: {tail_ms:.1} ms; GET 100 KB mid-object: {mid_ms:.1} ms; RSS growth over both GETs {} MiB",
        rss_get / 1024
    );
    println!(
        "reading and decoding the whole manifest (the old HEAD/GET first step): {whole_ms:.0} ms, RSS growth {} MiB",
        rss_whole / 1024
    );
}
