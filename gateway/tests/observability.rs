//! Observability as an operator meets it: a /metrics scrape taken under load
//! passes `promtool check metrics` and counts what happened; backend retries
//! are counted; the access log carries request ids; secrets never reach logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use dooz_conformance::{ChildGuard, find_tool, free_port, wait_for_port};
use support::gateway::{Backend, Meta, Options, start};
use support::metrics::{samples, scrape, sum};
use support::{get, pseudo_random, put};

fn promtool_check(text: &str) {
    let promtool = find_tool("promtool")
        .expect("promtool (Debian package prometheus; scripts/install-test-deps installs it)");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_under_load_pass_promtool_and_count_what_happened() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Seaweed);
    opts.chunking = Some((16 * 1024, 64 * 1024, 256 * 1024));
    let g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("obs").send().await.unwrap();

    // The three bodies once, one after another: their chunks are all new.
    for b in 0..3u64 {
        put(&c, "obs", &format!("seed/{b}"), &pseudo_random(200_000, b)).await;
    }
    let seeded = samples(&scrape(&g.admin).await);
    let new0 = sum(&seeded, "dooz_chunks_total", &["kind=\"new\""]);
    assert!(
        new0 >= 3.0,
        "new chunks after three distinct bodies: {new0}"
    );
    assert_eq!(
        sum(&seeded, "dooz_chunks_total", &["kind=\"deduplicated\""]),
        0.0
    );

    // Bounded load: 6 workers × 10 PUT+GET of the same three bodies, so
    // every chunk is deduplicated; scrapes taken while it runs.
    let mut workers = Vec::new();
    for w in 0..6u64 {
        let c = c.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..10u64 {
                let body = pseudo_random(200_000, w % 3);
                let key = format!("w{w}/{i}");
                put(&c, "obs", &key, &body).await;
                assert_eq!(get(&c, "obs", &key).await, body);
            }
        }));
    }
    let mut during = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        during.push(scrape(&g.admin).await);
    }
    for w in workers {
        w.await.unwrap();
    }
    let missing = c.get_object().bucket("obs").key("nope").send().await;
    assert!(missing.is_err());

    for text in &during {
        promtool_check(text);
    }
    let text = scrape(&g.admin).await;
    promtool_check(&text);
    let s = samples(&text);

    assert_eq!(
        sum(
            &s,
            "dooz_s3_requests_total",
            &["operation=\"PutObject\"", "status=\"200\""]
        ),
        63.0
    );
    assert_eq!(
        sum(
            &s,
            "dooz_s3_requests_total",
            &["operation=\"GetObject\"", "status=\"200\""]
        ),
        60.0
    );
    assert_eq!(
        sum(
            &s,
            "dooz_s3_requests_total",
            &["operation=\"GetObject\"", "status=\"404\""]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "dooz_s3_request_duration_seconds_count",
            &["operation=\"PutObject\""]
        ),
        63.0
    );
    assert_eq!(
        sum(&s, "dooz_s3_received_bytes_total", &[]),
        63.0 * 200_000.0
    );
    assert_eq!(sum(&s, "dooz_s3_sent_bytes_total", &[]), 60.0 * 200_000.0);
    assert_eq!(
        sum(&s, "dooz_logical_written_bytes_total", &[]),
        63.0 * 200_000.0
    );
    // Each body went up 20 more times, every chunk of it deduplicated.
    assert_eq!(sum(&s, "dooz_chunks_total", &["kind=\"new\""]), new0);
    assert_eq!(
        sum(&s, "dooz_chunks_total", &["kind=\"deduplicated\""]),
        20.0 * new0
    );
    let stored = sum(&s, "dooz_stored_written_bytes_total", &[]);
    assert!(stored > 0.0 && stored < 3.1 * 200_000.0, "stored {stored}");
    assert!(
        sum(
            &s,
            "dooz_backend_requests_total",
            &["backend=\"main\"", "operation=\"put\"", "result=\"ok\""]
        ) >= 1.0
    );
    assert!(
        sum(
            &s,
            "dooz_backend_request_duration_seconds_count",
            &["operation=\"get\""]
        ) >= 1.0
    );
    // Packs hold the frames plus their headers and index.
    let written = sum(
        &s,
        "dooz_backend_written_bytes_total",
        &["backend=\"main\""],
    );
    assert!(
        written >= stored && written < stored + 64.0 * 1024.0,
        "written {written}"
    );
    assert!(
        sum(
            &s,
            "dooz_meta_operation_duration_seconds_count",
            &["store=\"sqlite\"", "operation=\"commit_object\""]
        ) >= 60.0
    );
    assert!(
        sum(
            &s,
            "dooz_meta_operation_duration_seconds_count",
            &["operation=\"get_object\""]
        ) >= 61.0
    );
    assert_eq!(sum(&s, "dooz_s3_requests_in_flight", &[]), 0.0);
    assert!(s.keys().any(|k| k.starts_with("dooz_build_info{")));
    assert!(sum(&s, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(
        s.contains_key("dooz_meta_pool_connections{state=\"idle\",store=\"sqlite\"}"),
        "{text}"
    );
    g.fsck_clean().await;
}

/// A backend that drops out makes the client retry; the retries are counted
/// per backend and the failure surfaces as a counted error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_retries_and_errors_are_counted() {
    let mut g = start(Options::new(Meta::Sqlite, Backend::Seaweed)).await;
    let c = g.client();
    c.create_bucket().bucket("retry").send().await.unwrap();
    let body = pseudo_random(300_000, 9);
    put(&c, "retry", "k", &body).await;
    let before = samples(&scrape(&g.admin).await);
    assert_eq!(sum(&before, "dooz_backend_retries_total", &[]), 0.0);

    let mut sw = g.seaweed.take().unwrap();
    tokio::task::spawn_blocking(move || {
        sw.stop();
        sw
    })
    .await
    .map(|sw| g.seaweed = Some(sw))
    .unwrap();
    let failed = c
        .get_object()
        .bucket("retry")
        .key("k")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.raw_response().map(|r| r.status().as_u16()));
    assert_eq!(failed, Err(Some(503)));
    let after = samples(&scrape(&g.admin).await);
    assert!(
        sum(
            &after,
            "dooz_backend_retries_total",
            &["backend=\"main\"", "operation=\"get\""]
        ) >= 1.0,
        "retries not counted"
    );
    assert!(sum(&after, "dooz_backend_requests_total", &["result=\"error\""]) >= 1.0);
    let ready = reqwest::get(format!("{}/health/ready", g.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

/// The binary with JSON logs at debug level: one access line per request
/// whose request id is the one the client got, and none of the secrets —
/// the root secret key, the root key file, a signature — anywhere in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (s3_port, admin_port) = (free_port(), free_port());
    let access = "DZLOGTESTACCESS01";
    let secret = "log-test-secret-0123456789abcdefABCDEF";
    let log_path = dir.path().join("dooz.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dooz"));
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{s3_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("DOOZ_ROOT_ACCESS_KEY", access)
        .env("DOOZ_ROOT_SECRET_KEY", secret)
        .env("DOOZ_LOG__FORMAT", "json")
        .env("RUST_LOG", "debug");
    let mut guard = ChildGuard::spawn("dooz", cmd, &log_path).unwrap();
    assert!(
        wait_for_port(s3_port, Duration::from_secs(30)),
        "{}",
        guard.log_tail(30)
    );

    let c = support::s3_client(&format!("http://127.0.0.1:{s3_port}"), access, secret);
    c.create_bucket().bucket("logs").send().await.unwrap();
    put(&c, "logs", "a/b.txt", b"hello log").await;
    let head = c
        .head_object()
        .bucket("logs")
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length, Some(9));
    // The request id of a raw request, as a client sees it.
    let url = c
        .get_object()
        .bucket("logs")
        .key("a/b.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let signature = url
        .uri()
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let r = reqwest::get(url.uri()).await.unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-amz-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello log");
    let wrong = support::s3_client(
        &format!("http://127.0.0.1:{s3_port}"),
        access,
        "wrong-secret",
    );
    assert!(wrong.list_buckets().send().await.is_err());

    let code = tokio::task::spawn_blocking(move || guard.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let root_key = std::fs::read_to_string(dir.path().join("root.key")).unwrap();

    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let access_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["target"] == "dooz::access")
        .collect();
    assert!(access_lines.len() >= 5, "{log}");
    let line = access_lines
        .iter()
        .find(|v| v["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no access line for {request_id}:\n{log}"));
    assert_eq!(line["operation"], "GetObject");
    assert_eq!(line["bucket"], "logs");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_out"], 9);
    assert_eq!(line["access_key"], access);
    assert!(line["latency_ms"].is_u64());
    assert!(
        access_lines
            .iter()
            .any(|v| v["operation"] == "PutObject" && v["bytes_in"] == 9 && v["status"] == 200)
    );
    assert!(access_lines.iter().any(|v| v["status"] == 403));

    let leaks =
        |needle: &str| -> Vec<&str> { log.lines().filter(|l| l.contains(needle)).collect() };
    assert_eq!(
        leaks(secret),
        Vec::<&str>::new(),
        "the root secret key is in the log"
    );
    assert_eq!(
        leaks(&signature),
        Vec::<&str>::new(),
        "a request signature is in the log"
    );
    for line in root_key.lines().filter(|l| l.len() >= 16) {
        for word in line.split_whitespace().filter(|w| w.len() >= 16) {
            assert!(!log.contains(word), "root key material is in the log");
        }
    }
    assert!(!root_key.is_empty());
}
