//! Soak and crash tests of space reclamation (run by `scripts/soak`, not by
//! the default test run): long stress runs on both stores, and `dooz serve`
//! killed with SIGKILL at random moments while its collector and writers
//! run (single PUTs, deletes, and multipart uploads whose completions
//! re-chunk part boundaries), then restarted; nothing acknowledged is lost,
//! and a final `dooz gc` brings the backend down to the live data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gc_stress;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use dooz_conformance::{ChildGuard, free_port, wait_for_port};
use support::gateway::{Backend, Meta, start};
use support::pseudo_random;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_stress_embedded() {
    let g = start(gc_stress::stress_options(Meta::Sqlite, Backend::Local)).await;
    let plan = gc_stress::Plan {
        writers: 6,
        ops_per_writer: 300,
        seed: 11,
    };
    let o = gc_stress::run(&[&g], plan).await;
    assert!(o.gc_runs > 0 && o.packs_compacted > 0, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_stress_two_gateways_on_postgres() {
    let (a, b) = gc_stress::postgres_pair().await;
    let plan = gc_stress::Plan {
        writers: 6,
        ops_per_writer: 200,
        seed: 12,
    };
    let o = gc_stress::run(&[&a, &b], plan).await;
    assert!(o.gc_runs > 0 && o.packs_compacted > 0, "{o:?}");
}

const ACCESS: &str = "soakadmin";
const SECRET: &str = "soak-secret-key-0123456789";
const BUCKET: &str = "crash";
const KILLS: usize = 12;

/// A key's acceptable contents: the last acknowledged one, plus any write
/// that was in flight when the server died (its outcome is unknown).
type Allowed = BTreeMap<String, Vec<Option<Vec<u8>>>>;

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("dooz.toml");
    std::fs::write(
        &path,
        format!(
            r#"data_dir = "{}"
[chunking]
min_size = 16384
avg_size = 32768
max_size = 65536
pack_target_size = 262144
[gc]
enabled = true
interval = 0.3
grace = 0.0
clock_skew = 0.0
compact_threshold = 0.8
lease_ttl = 3.0
max_rewrite_bytes_per_sec = 0
max_deletes_per_sec = 0
"#,
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn dooz(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dooz"));
    cmd.arg("--config").arg(config);
    cmd.env("DOOZ_ROOT_ACCESS_KEY", ACCESS)
        .env("DOOZ_ROOT_SECRET_KEY", SECRET)
        .env("RUST_LOG", "info");
    cmd
}

fn serve(config: &Path, port: u16, admin: u16, log: &Path) -> ChildGuard {
    let mut cmd = dooz(config);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")]);
    let g = ChildGuard::spawn("dooz", cmd, log).unwrap();
    assert!(
        wait_for_port(port, Duration::from_secs(60)),
        "{}",
        g.log_tail(40)
    );
    g
}

fn client(port: u16) -> Client {
    let c = support::s3_client(&format!("http://127.0.0.1:{port}"), ACCESS, SECRET);
    Client::from_conf(
        c.config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// Writes until `stop` or until the server is gone; records what may be there.
async fn writer(
    c: Client,
    w: usize,
    cycle: usize,
    stop: Arc<AtomicBool>,
    allowed: Arc<std::sync::Mutex<Allowed>>,
) {
    let blocks: Vec<Vec<u8>> = (0..6).map(|i| pseudo_random(160 * 1024, 500 + i)).collect();
    let mut n = (w * 7919 + cycle * 104_729) as u64 | 1;
    let mut next = || {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        n
    };
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{w}-k{}", next() % 5);
        let delete = next() % 4 == 0;
        let value = (!delete).then(|| {
            let mut b = Vec::new();
            for _ in 0..1 + next() % 4 {
                b.extend_from_slice(&blocks[(next() % 6) as usize]);
            }
            b.extend_from_slice(&pseudo_random(6000, next()));
            b
        });
        allowed
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_insert_with(|| vec![None])
            .push(value.clone());
        let done = match &value {
            Some(b) => c
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from(b.clone()))
                .send()
                .await
                .is_ok(),
            None => c
                .delete_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .is_ok(),
        };
        if done {
            allowed.lock().unwrap().insert(key, vec![value]);
        } else {
            // The server died under the request: either outcome is fine.
            return;
        }
    }
}

/// Writes multipart objects (two parts, so each completion re-chunks a part
/// boundary) until `stop` or until the server is gone.
async fn multipart_writer(
    c: Client,
    cycle: usize,
    stop: Arc<AtomicBool>,
    allowed: Arc<std::sync::Mutex<Allowed>>,
) {
    let blocks: Vec<Vec<u8>> = (0..6).map(|i| pseudo_random(160 * 1024, 500 + i)).collect();
    let mut n = (cycle * 7_777 + 13) as u64 | 1;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let key = format!("mp-k{}", (n >> 33) % 3);
        let mut value = Vec::new();
        for i in 0..34u64 {
            value.extend_from_slice(&blocks[((n >> 20) + i * (n >> 40)) as usize % 6]);
        }
        value.extend_from_slice(&pseudo_random(6000, n));
        allowed
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_insert_with(|| vec![None])
            .push(Some(value.clone()));
        let done = support::put_in_parts(&c, BUCKET, &key, &value, 5 * 1024 * 1024)
            .await
            .is_ok();
        if done {
            allowed.lock().unwrap().insert(key, vec![Some(value)]);
        } else {
            // The server died under the upload: either outcome is fine.
            return;
        }
    }
}

/// Each key holds one of its allowed contents; returns the exact state.
async fn verify(c: &Client, allowed: &Allowed) -> Allowed {
    let mut exact = Allowed::new();
    for (key, options) in allowed {
        let got = match c.get_object().bucket(BUCKET).key(key).send().await {
            Ok(o) => Some(o.body.collect().await.unwrap().to_vec()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                assert_eq!(status, Some(404), "{key}: {e:?}");
                None
            }
        };
        assert!(
            options.contains(&got),
            "{key} holds {} bytes, none of the {} acceptable contents",
            got.as_ref().map_or(0, Vec::len),
            options.len()
        );
        exact.insert(key.clone(), vec![got]);
    }
    exact
}

fn backend_files(dir: &Path) -> (u64, usize) {
    fn walk(dir: &Path, acc: &mut (u64, usize)) {
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
    walk(&dir.join("data").join("packs"), &mut acc);
    acc
}

fn json_of(mut cmd: Command, args: &[&str]) -> serde_json::Value {
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "dooz {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_kill9_under_gc_and_write_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (port, admin) = (free_port(), free_port());
    let allowed = Arc::new(std::sync::Mutex::new(Allowed::new()));
    for cycle in 0..KILLS {
        let mut server = serve(
            &config,
            port,
            admin,
            &dir.path().join(format!("serve-{cycle}.log")),
        );
        let c = client(port);
        let _ = c.create_bucket().bucket(BUCKET).send().await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers: Vec<_> = (0..3)
            .map(|w| tokio::spawn(writer(c.clone(), w, cycle, stop.clone(), allowed.clone())))
            .collect();
        writers.push(tokio::spawn(multipart_writer(
            c.clone(),
            cycle,
            stop.clone(),
            allowed.clone(),
        )));
        // A random moment: mid-upload, mid-commit, mid-collection.
        let ms = 500 + (pseudo_random(2, cycle as u64)[0] as u64) * 12;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
    }

    let last_kill = tokio::time::Instant::now();
    let mut server = serve(&config, port, admin, &dir.path().join("final.log"));
    let c = client(port);
    let snapshot = allowed.lock().unwrap().clone();
    let exact = verify(&c, &snapshot).await;
    assert!(
        exact
            .iter()
            .any(|(k, v)| k.starts_with("mp-") && v[0].is_some()),
        "no multipart upload completed in {KILLS} cycles"
    );
    assert_eq!(server.terminate(Duration::from_secs(30)), Some(0));

    // The last collection: grace 0, compaction down to 97% live. A server
    // killed with SIGKILL keeps its leases until they expire (lease_ttl,
    // 3 s): its collector lease makes `dooz gc` exit 3 meanwhile, and its
    // upload lease still protects everything newer than the oldest upload it
    // had in flight (the collector cannot tell a dead gateway from a slow
    // one). Cycles last about a second, so the last three killed servers'
    // leases are still live here: wait them out, as an operator's next run
    // would.
    tokio::time::sleep_until(last_kill + Duration::from_millis(3500)).await;
    let mut busy = 0;
    let run = loop {
        let mut gc = dooz(&config);
        gc.env("DOOZ_GC__COMPACT_THRESHOLD", "0.97");
        let out = gc.args(["gc", "--json"]).output().unwrap();
        if out.status.code() == Some(3) && busy < 40 {
            busy += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        assert!(
            out.status.success(),
            "dooz gc: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        break serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
    };
    assert!(run["error"].is_null(), "{run}");
    let fsck = json_of(dooz(&config), &["fsck", "--json", "--read-packs"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert_eq!(
        fsck["orphan_packs"].as_array().map(Vec::len),
        Some(0),
        "{fsck}"
    );
    let usage = json_of(dooz(&config), &["admin", "usage", "--json"]);
    let live = usage["chunk_stored_bytes"].as_u64().unwrap();
    let (bytes, staging) = backend_files(dir.path());
    assert_eq!(staging, 0, "no staging file remains");
    assert!(
        bytes as f64 <= 1.05 * live as f64,
        "backend holds {bytes} bytes for {live} live frame bytes ({run}; usage {usage})"
    );

    let _server = serve(&config, port, admin, &dir.path().join("after.log"));
    verify(&client(port), &exact).await;
}
