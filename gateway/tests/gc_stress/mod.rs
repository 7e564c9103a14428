//! Writers re-uploading, copying and deleting shared content through S3
//! while collectors (one per gateway, grace 0) run back to back; then every
//! acknowledged object must read back byte-exact, fsck must be clean, and a
//! final run must leave no orphan. Used by `gc.rs` (small) and `soak_gc.rs`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use dooz_gateway::jobs::{Collector, GcConfig, GcError};

use super::support::gateway::{Backend, Gateway, Meta, MetaHandle, Options, start, start_with};
use super::support::{get, pseudo_random};

const KIB: usize = 1024;
const BLOCKS: usize = 8;
const BLOCK: usize = 160 * KIB;
const KEYS_PER_WRITER: usize = 4;
pub const BUCKET: &str = "stress";

/// Collectors at grace 0 that compact everything below 80% live; leases
/// with a TTL long enough that a loaded machine does not lose them.
pub fn stress_options(meta: Meta, backend: Backend) -> Options {
    let mut opts = Options::new(meta, backend);
    opts.chunking = Some((16 * KIB as u32, 32 * KIB as u32, 64 * KIB as u32));
    opts.pack_target = Some(256 * KIB);
    opts.gc = Some(GcConfig {
        enabled: false,
        grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        compact_threshold: 0.8,
        max_rewrite_bytes_per_sec: 0,
        max_deletes_per_sec: 0,
        ..GcConfig::default()
    });
    opts
}

/// Two gateways sharing one PostgreSQL database and one SeaweedFS backend.
pub async fn postgres_pair() -> (Gateway, Gateway) {
    let a = start(stress_options(Meta::Postgres, Backend::Seaweed)).await;
    let MetaHandle::Postgres(db) = &a.meta else {
        unreachable!()
    };
    let mut opts = stress_options(Meta::Postgres, Backend::Seaweed);
    opts.backend_config = Some(a.cfg.backends["main"].clone());
    let b = start_with(opts, MetaHandle::Postgres(db.clone()), None).await;
    (a, b)
}

pub struct Plan {
    pub writers: usize,
    pub ops_per_writer: usize,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub acknowledged: usize,
    pub gc_runs: u64,
    pub gc_busy: u64,
    pub chunks_collected: u64,
    pub packs_compacted: u64,
    pub packs_deleted: u64,
}

/// A client that does not retry: a 503 (a vanished chunk, a lost lease) is
/// a failure of the test, not something to paper over.
pub fn strict_client(g: &Gateway) -> Client {
    Client::from_conf(
        g.client()
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A body made of shared blocks (deduplicated across writers and keys) and
/// a small tail of its own.
fn body(blocks: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(4) {
        out.extend_from_slice(&blocks[rng.below(BLOCKS)]);
    }
    out.extend_from_slice(&pseudo_random(4 * KIB + rng.below(8 * KIB), rng.next()));
    out
}

async fn write_loop(
    c: Client,
    w: usize,
    ops: usize,
    seed: u64,
    blocks: Arc<Vec<Vec<u8>>>,
) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(w as u64) | 1);
    let mut expected: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for op in 0..ops {
        let key = format!("w{w}-k{}", rng.below(KEYS_PER_WRITER));
        let what = rng.below(10);
        let ctx = format!("writer {w} op {op} ({what}) on {key}");
        match what {
            0..=4 => {
                let b = body(&blocks, &mut rng);
                c.put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(b.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                expected.insert(key, Some(b));
            }
            5 | 6 => {
                c.delete_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                expected.insert(key, None);
            }
            7 | 8 => {
                let b = body(&blocks, &mut rng);
                let up = c
                    .create_multipart_upload()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                let id = up.upload_id.unwrap_or_default();
                let part = c
                    .upload_part()
                    .bucket(BUCKET)
                    .key(&key)
                    .upload_id(&id)
                    .part_number(1)
                    .body(ByteStream::from(b.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                c.complete_multipart_upload()
                    .bucket(BUCKET)
                    .key(&key)
                    .upload_id(&id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .parts(
                                CompletedPart::builder()
                                    .part_number(1)
                                    .e_tag(part.e_tag.unwrap_or_default())
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                expected.insert(key, Some(b));
            }
            _ => {
                // A copy of another of this writer's keys: pure references.
                let from = format!("w{w}-k{}", rng.below(KEYS_PER_WRITER));
                let Some(Some(src)) = expected.get(&from).cloned() else {
                    continue;
                };
                if from == key {
                    continue;
                }
                c.copy_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .copy_source(format!("{BUCKET}/{from}"))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                expected.insert(key, Some(src));
            }
        }
    }
    expected
}

/// Runs the collector of `g` back to back until `stop`.
async fn collect_loop(
    g_engine: dooz_gateway::engine::Engine,
    cfg: GcConfig,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let collector = Collector::new(g_engine, cfg);
    let mut out = Outcome::default();
    while !stop.load(Ordering::Relaxed) {
        match collector.run(false, &mut |_| {}).await {
            Ok(r) => {
                out.gc_runs += 1;
                out.chunks_collected += r.chunks_collected;
                out.packs_compacted += r.packs_compacted;
                out.packs_deleted += r.packs_deleted;
            }
            Err(f) if matches!(f.error, GcError::Busy(_)) => {
                out.gc_busy += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(f) => panic!("gc run failed under load: {} ({:?})", f.error, f.report),
        }
    }
    out
}

/// The stress run over one or more gateways of one deployment.
pub async fn run(gateways: &[&Gateway], plan: Plan) -> Outcome {
    let first = gateways[0];
    first
        .client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let blocks: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..BLOCKS)
            .map(|i| pseudo_random(BLOCK, plan.seed + i as u64))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let collectors: Vec<_> = gateways
        .iter()
        .map(|g| {
            tokio::spawn(collect_loop(
                g.engine().clone(),
                g.cfg.gc.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let writers: Vec<_> = (0..plan.writers)
        .map(|w| {
            let c = strict_client(gateways[w % gateways.len()]);
            tokio::spawn(write_loop(
                c,
                w,
                plan.ops_per_writer,
                plan.seed,
                blocks.clone(),
            ))
        })
        .collect();
    let mut expected = BTreeMap::new();
    for w in writers {
        expected.extend(w.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcome {
        acknowledged: plan.writers * plan.ops_per_writer,
        ..Default::default()
    };
    for c in collectors {
        let o = c.await.unwrap();
        total.gc_runs += o.gc_runs;
        total.gc_busy += o.gc_busy;
        total.chunks_collected += o.chunks_collected;
        total.packs_compacted += o.packs_compacted;
        total.packs_deleted += o.packs_deleted;
    }
    verify(gateways, &expected).await;
    first.fsck_clean().await;

    // With nothing in flight, one more run leaves no garbage on the backend —
    // once every gateway's upload lease has published a low-water mark past
    // the last delete (renewals come every second; a fast run can end
    // before any zombie is older than the other gateway's mark).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let last = Collector::new(first.engine().clone(), first.cfg.gc.clone())
        .run(false, &mut |_| {})
        .await
        .unwrap_or_else(|f| panic!("final gc run: {}", f.error));
    let report = dooz_gateway::fsck::run(first.engine(), true, first.cfg.gc.threshold_permille())
        .await
        .unwrap();
    assert!(report.is_clean(), "{}", report.render());
    assert!(report.orphan_packs.is_empty(), "{}", report.render());
    assert!(report.staging_files.is_empty(), "{}", report.render());
    verify(gateways, &expected).await;
    total.chunks_collected += last.chunks_collected;
    total.packs_compacted += last.packs_compacted;
    total.packs_deleted += last.packs_deleted;
    total
}

/// Every key reads back as last acknowledged, through every gateway.
pub async fn verify(gateways: &[&Gateway], expected: &BTreeMap<String, Option<Vec<u8>>>) {
    for g in gateways {
        let c = strict_client(g);
        for (key, want) in expected {
            match want {
                Some(body) => assert!(
                    get(&c, BUCKET, key).await == *body,
                    "{key} reads back other bytes"
                ),
                None => assert!(
                    c.head_object()
                        .bucket(BUCKET)
                        .key(key)
                        .send()
                        .await
                        .is_err(),
                    "{key} was deleted"
                ),
            }
        }
    }
}
