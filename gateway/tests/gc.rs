//! Space reclamation through the ways users reach it: objects written,
//! overwritten, deleted and aborted through S3; `dooz gc`, `dooz fsck` and
//! `dooz admin usage` as the binary; the collector of a running gateway
//! racing slow uploads and reads; a backend outage during a run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gc_stress;
mod support;

use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use dooz_gateway::jobs::{Collector, GcConfig};
use md5::Digest as _;
use support::gateway::{Backend, Gateway, Meta, Options, collect, eager, local_packs_dir, start};
use support::{code, get, pseudo_random, put};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

fn dooz() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dooz"))
}

/// Runs `dooz ARGS --config <the gateway's config>`; returns stdout as JSON.
fn dooz_json(g: &Gateway, args: &[&str]) -> serde_json::Value {
    let out = dooz()
        .args(args)
        .arg("--config")
        .arg(g.config_file())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dooz {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "dooz {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Pack bytes on the backend, and how many staging files a local one holds.
async fn on_backend(g: &Gateway) -> (u64, usize) {
    let store = g.engine().backends().get("main").unwrap();
    (
        g.backend_bytes().await,
        store.list_staging().await.unwrap().len(),
    )
}

/// Pack overhead a live object carries beyond its frames: header, trailer
/// and encrypted index of each of its (few) packs.
const PACK_OVERHEAD: u64 = 64 * 1024;

/// The scenario: 4 × 64 MiB written, three deleted, the fourth
/// overwritten, an aborted multipart upload and a refused (BadDigest) upload;
/// `dooz gc` with grace 0 brings the backend down to the live object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_binary_reclaims_deleted_overwritten_aborted_and_refused_uploads() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.gc = Some(eager());
    let mut g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("big").send().await.unwrap();
    for i in 0..4u64 {
        put(&c, "big", &format!("o{i}"), &pseudo_random(64 * MIB, i + 1)).await;
    }
    let up = c
        .create_multipart_upload()
        .bucket("big")
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = up.upload_id.unwrap();
    for n in 1..=2 {
        c.upload_part()
            .bucket("big")
            .key("mp")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(pseudo_random(6 * MIB, 100 + n as u64)))
            .send()
            .await
            .unwrap();
    }
    c.abort_multipart_upload()
        .bucket("big")
        .key("mp")
        .upload_id(&id)
        .send()
        .await
        .unwrap();

    // A refused upload cleans up after itself at once.
    let wrong_md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b"other"));
    let refused = c
        .put_object()
        .bucket("big")
        .key("bad")
        .content_md5(wrong_md5)
        .body(ByteStream::from(pseudo_random(8 * MIB, 200)))
        .send()
        .await;
    assert_eq!(code(refused), "BadDigest");
    let report = dooz_gateway::fsck::run(g.engine(), false, 500)
        .await
        .unwrap();
    assert!(report.orphan_packs.is_empty(), "{}", report.render());

    for i in 0..3 {
        c.delete_object()
            .bucket("big")
            .key(format!("o{i}"))
            .send()
            .await
            .unwrap();
    }
    let last = pseudo_random(64 * MIB, 99);
    put(&c, "big", "o3", &last).await;
    g.stop().await;

    // What the operator sees before collecting.
    let usage = dooz_json(&g, &["admin", "usage", "--json"]);
    let tenant = &usage["tenants"][0];
    assert!(
        tenant["reclaimable_bytes"].as_u64().unwrap() > 4 * 64 * MIB as u64,
        "{usage}"
    );
    assert!(tenant["dead_bytes"].as_u64().unwrap() > 0, "{usage}");
    let fsck = dooz_json(&g, &["fsck", "--json"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert!(
        fsck["reclaimable_bytes"].as_u64().unwrap() > 4 * 64 * MIB as u64,
        "{fsck}"
    );

    let (before, _) = on_backend_stopped(&g);
    let dry = dooz_json(&g, &["gc", "--dry-run", "--json"]);
    assert_eq!(dry["dry_run"], true);
    assert!(dry["bytes_reclaimed"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(
        on_backend_stopped(&g).0,
        before,
        "a dry run deletes nothing"
    );

    let run = dooz_json(&g, &["gc", "--json"]);
    assert!(run["error"].is_null(), "{run}");
    assert!(run["chunks_collected"].as_u64().unwrap() > 0, "{run}");
    assert!(run["packs_deleted"].as_u64().unwrap() > 0, "{run}");
    let (after, staging) = on_backend_stopped(&g);
    let rewritten = run["bytes_rewritten"].as_u64().unwrap();
    assert_eq!(
        before + rewritten - after,
        run["bytes_reclaimed"].as_u64().unwrap(),
        "{run}"
    );
    assert_eq!(staging, 0);

    g.restart().await;
    assert_eq!(get(&g.client(), "big", "o3").await, last);
    g.fsck_clean().await;
    let live = g.engine().meta().usage(Some(g.tenant.id)).await.unwrap();
    assert!(
        after as f64 <= 1.1 * live.chunk_stored_bytes as f64 + PACK_OVERHEAD as f64,
        "backend holds {after} bytes for {} live frame bytes",
        live.chunk_stored_bytes
    );
    assert_eq!(on_backend(&g).await.0, after);
}

/// Pack bytes and staging files under a stopped local gateway's pack directory.
fn on_backend_stopped(g: &Gateway) -> (u64, usize) {
    fn walk(dir: &std::path::Path, acc: &mut (u64, usize)) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, acc);
            } else if p.to_string_lossy().contains(".dzp#") {
                acc.1 += 1;
            } else if p.extension().is_some_and(|x| x == "dzp") {
                acc.0 += e.metadata().unwrap().len();
            }
        }
    }
    let mut acc = (0, 0);
    walk(&local_packs_dir(g), &mut acc);
    acc
}

/// Small chunks and packs, so that objects share packs and compaction has
/// work; the collector compacts packs below 90% live.
fn small_packs(meta: Meta, backend: Backend) -> Options {
    let mut opts = Options::new(meta, backend);
    opts.chunking = Some((64 * 1024, 128 * 1024, 256 * 1024));
    opts.pack_target = Some(MIB);
    opts.gc = Some(GcConfig {
        compact_threshold: 0.9,
        ..eager()
    });
    opts
}

/// Small packs (256 KiB): uploads ship packs while their bodies still arrive.
fn tiny_packs() -> Options {
    let mut opts = small_packs(Meta::Sqlite, Backend::Local);
    opts.pack_target = Some(256 * 1024);
    opts
}

/// Every other MiB of `x`: shares most chunks with it, so deleting `x`
/// leaves its packs about half live.
fn every_other_mib(x: &[u8]) -> Vec<u8> {
    x.chunks(MIB).step_by(2).flatten().copied().collect()
}

/// Compaction rewrites half-dead packs and deletes them; a GET that planned
/// its reads before the rewrite finds the chunks where they moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_rewrites_half_dead_packs_under_a_running_read() {
    let g = start(small_packs(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("cmp").send().await.unwrap();
    let x = pseudo_random(32 * MIB, 7);
    let y = every_other_mib(&x);
    put(&c, "cmp", "x", &x).await;
    put(&c, "cmp", "y", &y).await;
    c.delete_object()
        .bucket("cmp")
        .key("x")
        .send()
        .await
        .unwrap();
    let packs_before: Vec<_> = g.engine().meta().list_packs(None).await.unwrap();

    // A reader that has begun: its reads are planned against the old packs.
    let mut reading = c
        .get_object()
        .bucket("cmp")
        .key("y")
        .send()
        .await
        .unwrap()
        .body;
    let mut got = Vec::new();
    while got.len() < MIB {
        got.extend_from_slice(&reading.next().await.unwrap().unwrap());
    }
    let relocated_before = dooz_gateway::jobs::metrics::GC.relocated_reads.get();

    let r = collect(&g).await;
    assert!(r.packs_compacted > 0 && r.packs_written > 0, "{r:?}");
    assert!(r.bytes_rewritten > 0 && r.packs_deleted > 0, "{r:?}");
    let store = g.engine().backends().get("main").unwrap();
    let now_on_backend: Vec<_> = store.list_packs().await.unwrap();
    let compacted_away = packs_before
        .iter()
        .filter(|p| !now_on_backend.iter().any(|(id, _)| *id == p.id))
        .count();
    assert!(compacted_away > 0, "old packs were deleted: {r:?}");

    while let Some(piece) = reading.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert!(got == y, "the read in flight returned other bytes");
    assert!(
        dooz_gateway::jobs::metrics::GC.relocated_reads.get() > relocated_before,
        "the read found its old packs gone and followed the chunks"
    );
    assert_eq!(get(&c, "cmp", "y").await, y);
    g.fsck_clean().await;
    let live = g.engine().meta().usage(None).await.unwrap();
    let (bytes, _) = on_backend(&g).await;
    assert!(
        bytes as f64 <= 1.1 * live.chunk_stored_bytes as f64 + PACK_OVERHEAD as f64,
        "after compaction the backend holds {bytes} bytes for {} live",
        live.chunk_stored_bytes
    );
}

/// A PUT whose body arrives in pieces the test releases, over a presigned URL.
struct SlowPut {
    stream: tokio::net::TcpStream,
}

impl SlowPut {
    async fn begin(g: &Gateway, bucket: &str, key: &str, len: usize) -> Self {
        let c = g.client();
        let url = c
            .put_object()
            .bucket(bucket)
            .key(key)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
            .await
            .unwrap();
        let addr = g.endpoint.trim_start_matches("http://").to_owned();
        let path_q = url.uri().split_once(addr.as_str()).unwrap().1.to_owned();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head =
            format!("PUT {path_q} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        Self { stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The status line of the answer.
    async fn finish(mut self) -> String {
        let mut resp = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut buf).await.unwrap();
            resp.extend_from_slice(&buf[..n]);
            if n == 0 || resp.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&resp)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Calls of one metadata operation so far (in this test process).
fn meta_calls(op: &str) -> u64 {
    dooz_gateway::metrics::METRICS
        .meta_duration
        .with_label_values(&["sqlite", op])
        .get_sample_count()
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// An upload slower than the grace period keeps what it uses: chunks it
/// found live whose last other reference is deleted meanwhile, and packs
/// it has written but not committed — with the collector running at grace 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_slower_than_the_grace_period_keep_their_chunks_and_packs() {
    let g = start(tiny_packs()).await;
    let c = g.client();
    c.create_bucket().bucket("slow").send().await.unwrap();

    // Deduplication: the slow upload finds x's chunks live, then x goes.
    let x = pseudo_random(12 * MIB, 11);
    put(&c, "slow", "x", &x).await;
    let mut dedup = SlowPut::begin(&g, "slow", "copy-of-x", x.len()).await;
    let lookups = meta_calls("lookup_chunks");
    dedup.send(&x[..8 * MIB]).await;
    until("the upload looked its chunks up", async || {
        meta_calls("lookup_chunks") > lookups
    })
    .await;
    c.delete_object()
        .bucket("slow")
        .key("x")
        .send()
        .await
        .unwrap();
    let r = collect(&g).await;
    assert_eq!(
        r.chunks_collected, 0,
        "chunks an upload in flight found live are kept: {r:?}"
    );

    // New data: the slow upload's packs are on the backend, not yet committed.
    // (Frames are sealed one lookup batch, 4 MiB, behind what was read.)
    let fresh = pseudo_random(12 * MIB, 12);
    let mut novel = SlowPut::begin(&g, "slow", "fresh", fresh.len()).await;
    novel.send(&fresh[..10 * MIB]).await;
    let store = g.engine().backends().get("main").unwrap().clone();
    let meta = g.engine().meta().clone();
    until("an uncommitted pack is on the backend", async || {
        let rows: Vec<_> = meta
            .list_packs(None)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        store
            .list_packs()
            .await
            .unwrap()
            .iter()
            .any(|(id, _)| !rows.contains(id))
    })
    .await;
    let r = collect(&g).await;
    assert_eq!(
        r.orphans_deleted, 0,
        "packs of an upload in flight are kept: {r:?}"
    );
    assert_eq!(r.chunks_collected, 0, "{r:?}");

    dedup.send(&x[8 * MIB..]).await;
    assert!(dedup.finish().await.starts_with("HTTP/1.1 200"));
    novel.send(&fresh[10 * MIB..]).await;
    assert!(novel.finish().await.starts_with("HTTP/1.1 200"));
    assert_eq!(get(&c, "slow", "copy-of-x").await, x);
    assert_eq!(get(&c, "slow", "fresh").await, fresh);
    g.fsck_clean().await;

    // With nothing in flight, the same run collects what is garbage now.
    c.delete_object()
        .bucket("slow")
        .key("fresh")
        .send()
        .await
        .unwrap();
    let r = collect(&g).await;
    assert!(r.chunks_collected > 0 && r.packs_deleted > 0, "{r:?}");
    assert_eq!(get(&c, "slow", "copy-of-x").await, x);
    g.fsck_clean().await;
}

/// A gateway whose upload lease is gone (taken over after it stopped
/// renewing) must not commit the packs it wrote under it: the sweep may have
/// deleted them. The commit fails (503, retry), the packs are taken back,
/// and the gateway holds a new lease for the next upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_lease_was_lost_is_refused_and_cleans_up() {
    let g = start(tiny_packs()).await;
    let c = g.client();
    c.create_bucket().bucket("fence").send().await.unwrap();
    let body = pseudo_random(3 * MIB, 21);
    let mut slow = SlowPut::begin(&g, "fence", "k", body.len()).await;
    slow.send(&body[..2 * MIB]).await;
    let uploads = g.engine().uploads().clone();
    until("the upload is in flight", async || uploads.in_flight() > 0).await;

    // What a collector does to a lease that expired: delete it.
    let lost = uploads
        .fence()
        .expect("serving gateways hold an upload lease");
    assert!(g.engine().meta().release_lease(&lost).await.unwrap());
    slow.send(&body[2 * MIB..]).await;
    let status = slow.finish().await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert_eq!(
        code(c.head_object().bucket("fence").key("k").send().await),
        "NotFound"
    );
    let report = dooz_gateway::fsck::run(g.engine(), false, 500)
        .await
        .unwrap();
    assert!(
        report.orphan_packs.is_empty(),
        "the refused upload's packs are gone: {}",
        report.render()
    );

    until("the gateway holds a new upload lease", async || {
        uploads.fence().is_some_and(|f| f != lost)
    })
    .await;
    put(&c, "fence", "k", &body).await;
    assert_eq!(get(&c, "fence", "k").await, body);
    g.fsck_clean().await;
}

/// Upload leases of other gateways protect their uploads while renewed, and
/// stop protecting once expired: the collector revokes them and collects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upload_leases_stop_protecting() {
    let g = start(small_packs(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("lease").send().await.unwrap();
    put(&c, "lease", "gone", &pseudo_random(2 * MIB, 31)).await;
    c.delete_object()
        .bucket("lease")
        .key("gone")
        .send()
        .await
        .unwrap();

    // Another gateway with an upload that began an hour ago, renewing.
    let meta = g.engine().meta();
    let now = dooz_gateway::engine::now_millis();
    let req = dooz_gateway::meta::LeaseRequest {
        name: "uploads/other-gateway".into(),
        holder: "token".into(),
        owner: "test".into(),
        now,
        expires_at: now + 60_000,
        low_water: Some(now - 3_600_000),
        expired_before: now,
    };
    let grant = meta.acquire_lease(&req).await.unwrap();
    let dooz_gateway::meta::LeaseGrant::Acquired(held) = grant else {
        panic!("{grant:?}");
    };
    let r = collect(&g).await;
    assert_eq!((r.chunks_collected, r.packs_deleted), (0, 0), "{r:?}");
    assert!(r.low_water <= now - 3_600_000, "{r:?}");

    // It stops renewing: expired, revoked, and its protection is gone.
    assert!(
        meta.renew_lease(&held.fence(), now - 1, Some(now - 3_600_000))
            .await
            .unwrap()
    );
    let r = collect(&g).await;
    assert_eq!(r.leases_revoked, 1, "{r:?}");
    assert!(r.chunks_collected > 0 && r.packs_deleted > 0, "{r:?}");
    assert!(meta.list_leases("uploads/other").await.unwrap().is_empty());
    g.fsck_clean().await;
}

/// One collector at a time: while a run holds the lease, another gets Busy
/// (and `dooz gc` exits 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_collector_at_a_time() {
    let g = start(small_packs(Meta::Sqlite, Backend::Local)).await;
    let meta = g.engine().meta().clone();
    let timings = dooz_gateway::jobs::lease::LeaseTimings::from_config(&g.cfg.gc);
    let held = dooz_gateway::jobs::lease::HeldLease::try_acquire(meta, "gc", timings)
        .await
        .unwrap()
        .expect("the lease is free");
    let busy = Collector::new(g.engine().clone(), g.cfg.gc.clone())
        .run(false, &mut |_| {})
        .await
        .expect_err("a second collector must not run");
    assert!(
        matches!(busy.error, dooz_gateway::jobs::GcError::Busy(_)),
        "{}",
        busy.error
    );
    let out = dooz()
        .args(["gc", "--config"])
        .arg(g.config_file())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    held.release().await;
    collect(&g).await;
}

/// A backend outage during a run: the run stops with a counted error, no
/// live data is touched, and the next run after recovery finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_outage_aborts_the_run_and_loses_nothing() {
    let mut g = start(small_packs(Meta::Sqlite, Backend::Seaweed)).await;
    let c = g.client();
    c.create_bucket().bucket("outage").send().await.unwrap();
    let keep = pseudo_random(3 * MIB, 41);
    put(&c, "outage", "keep", &keep).await;
    put(&c, "outage", "drop", &pseudo_random(3 * MIB, 42)).await;
    c.delete_object()
        .bucket("outage")
        .key("drop")
        .send()
        .await
        .unwrap();

    let errors = || {
        dooz_gateway::jobs::metrics::GC
            .errors
            .with_label_values(&["backend"])
            .get()
    };
    let before = errors();
    let mut sw = g.seaweed.take().expect("seaweed");
    sw.stop();
    let failed = Collector::new(g.engine().clone(), g.cfg.gc.clone())
        .run(false, &mut |_| {})
        .await
        .expect_err("a run cannot finish without its backend");
    assert_eq!(failed.error.cause(), "backend", "{}", failed.error);
    assert_eq!(errors(), before + 1);
    assert_eq!(failed.report.orphans_deleted, 0);

    let sw = tokio::task::spawn_blocking(move || {
        sw.restart().expect("SeaweedFS restarts");
        sw
    })
    .await
    .unwrap();
    let r = collect(&g).await;
    assert!(
        r.bytes_reclaimed() > 0,
        "the next run finishes the work: {r:?}"
    );
    assert_eq!(get(&c, "outage", "keep").await, keep);
    g.fsck_clean().await;
    let report = dooz_gateway::fsck::run(g.engine(), false, 900)
        .await
        .unwrap();
    assert!(report.orphan_packs.is_empty(), "{}", report.render());
    drop(g);
    drop(sw);
}

/// Writers and a collector at grace 0 on the embedded store (small run;
/// `soak_gc` runs a long one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_embedded_writers_against_a_collector_at_grace_0() {
    let g = start(gc_stress::stress_options(Meta::Sqlite, Backend::Local)).await;
    let plan = gc_stress::Plan {
        writers: 4,
        ops_per_writer: 30,
        seed: 1,
    };
    let o = gc_stress::run(&[&g], plan).await;
    assert!(o.gc_runs > 0 && o.chunks_collected > 0, "{o:?}");
    assert!(o.packs_compacted > 0 && o.packs_deleted > 0, "{o:?}");
}

/// Two gateways on one PostgreSQL and one backend, both running collectors:
/// one collects at a time, writers on both keep going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_two_gateways_on_postgres_one_collector_at_a_time() {
    let (a, b) = gc_stress::postgres_pair().await;
    let plan = gc_stress::Plan {
        writers: 4,
        ops_per_writer: 20,
        seed: 2,
    };
    let o = gc_stress::run(&[&a, &b], plan).await;
    assert!(o.gc_runs > 0 && o.chunks_collected > 0, "{o:?}");
    assert!(o.packs_compacted > 0, "{o:?}");
}

/// Versions hold their chunks through collection — noncurrent ones, and a
/// locked one whose key was deleted — until they are deleted for good; a
/// COMPLIANCE version can be deleted only once its retention ran out, and
/// then the collector frees its bytes.
async fn locked_and_noncurrent_versions_keep_their_bytes(meta: Meta) {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::ObjectLockMode;

    let mut opts = Options::new(meta, Backend::Local);
    opts.gc = Some(eager());
    let g = start(opts).await;
    let c = g.client();
    let b = "locked-gc";
    c.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let (old, new) = (pseudo_random(4 * MIB, 71), pseudo_random(4 * MIB, 72));
    let retention_ms = 3000;
    let until = DateTime::from_millis(dooz_gateway::engine::now_millis() + retention_ms);
    let locked = c
        .put_object()
        .bucket(b)
        .key("k")
        .body(ByteStream::from(old.clone()))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let current = c
        .put_object()
        .bucket(b)
        .key("k")
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    // A delete marker on top: neither version is current any more.
    c.delete_object().bucket(b).key("k").send().await.unwrap();
    let before = g.backend_bytes().await;
    assert!(before >= 8 * MIB as u64, "{before}");
    collect(&g).await;
    assert_eq!(g.backend_bytes().await, before, "versions hold their packs");
    for (v, want) in [(&locked, &old), (&current, &new)] {
        let got = c
            .get_object()
            .bucket(b)
            .key("k")
            .version_id(v)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(got == want[..], "version {v} reads back after collection");
    }
    let refused = c
        .delete_object()
        .bucket(b)
        .key("k")
        .version_id(&locked)
        .send()
        .await;
    assert_eq!(code(refused), "AccessDenied");

    c.delete_object()
        .bucket(b)
        .key("k")
        .version_id(&current)
        .send()
        .await
        .unwrap();
    collect(&g).await;
    let locked_only = g.backend_bytes().await;
    assert!(
        locked_only < before && locked_only >= 4 * MIB as u64,
        "the deleted version's bytes go, the locked one's stay: {before} -> {locked_only}"
    );

    // Retention over (a lower bound on the wait): the version may go, and its bytes with it.
    tokio::time::sleep(Duration::from_millis(retention_ms as u64 + 1500)).await;
    c.delete_object()
        .bucket(b)
        .key("k")
        .version_id(&locked)
        .send()
        .await
        .unwrap();
    collect(&g).await;
    let after = g.backend_bytes().await;
    assert!(
        after < MIB as u64,
        "all versions deleted: {after} bytes left"
    );
    g.fsck_clean().await;
}

mod locked_versions {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        locked_and_noncurrent_versions_keep_their_bytes(Meta::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        locked_and_noncurrent_versions_keep_their_bytes(Meta::Postgres).await
    }
}
