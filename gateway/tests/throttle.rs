//! Throttling as clients meet it: a key over its request rate gets 503
//! SlowDown with Retry-After before its body is read, and nothing is
//! stored; another key is served meanwhile; bandwidth limits pace uploads
//! and downloads, which still complete with the right bytes and ETag; the
//! limits show in /metrics; `dooz config` refuses a limit it cannot read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use dooz_gateway::meta::Policy;
use dooz_gateway::throttle::{BackendLimits, ByteRate, ByteSize, LimitsConfig, RequestRate};
use md5::Digest as _;
use support::gateway::{Backend, Meta, Options, start};
use support::metrics::metric;
use support::raw::{self, addr, request, sign_request, sign_with};
use support::{code, get, pseudo_random, put};

fn options(limits: LimitsConfig) -> Options {
    let mut o = Options::new(Meta::Sqlite, Backend::Local);
    o.limits = Some(limits);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_request_rate_is_refused_before_its_body_and_others_are_served() {
    let mut limits = LimitsConfig::default();
    // A whole minute's worth in one burst: the sixth request within the
    // minute is refused however fast or slow this machine is.
    limits.key.requests = Some(RequestRate::parse("5/min").unwrap());
    let g = start(options(limits)).await;
    let (other_key, other_secret) = g.user("other", Policy::Admin).await;
    let other = g.client_as(&other_key, &other_secret);
    other.create_bucket().bucket("rate-b").send().await.unwrap();

    let a = addr(&g.endpoint);
    for i in 0..5 {
        let mut r = request(
            "PUT",
            &a,
            &format!("/rate-b/k{i}"),
            &[],
            b"admitted".to_vec(),
        );
        sign_request(&mut r, &g.access_key, &g.secret_key);
        let res = raw::send(&a, &r).await;
        assert_eq!(res.status, 200, "request {i}: {}", res.text());
    }
    // The sixth declares 64 MiB and sends none of it: the refusal comes
    // without the body being read.
    let mut r = request(
        "PUT",
        &a,
        "/rate-b/refused",
        &[("content-length", "67108864")],
        Vec::new(),
    );
    sign_with(&mut r, &g.access_key, &g.secret_key, true);
    let mut s = raw::start(&a, &r, 0).await;
    let res = raw::read_response(&mut s, Duration::from_secs(30)).await;
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.code().as_deref(), Some("SlowDown"));
    let retry: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    // 5/min: the next request is admitted within 12 s.
    assert!((1..=12).contains(&retry), "Retry-After {retry}");

    // Nothing was stored for it, and the other key is served meanwhile.
    assert_eq!(
        code(
            other
                .head_object()
                .bucket("rate-b")
                .key("refused")
                .send()
                .await
        ),
        "NotFound"
    );
    put(&other, "rate-b", "others", b"served").await;
    assert_eq!(get(&other, "rate-b", "others").await, b"served");

    assert!(
        metric(
            &g.admin,
            "dooz_throttled_requests_total",
            &["scope=\"key\""]
        )
        .await
            >= 1.0
    );
    let limit = metric(
        &g.admin,
        "dooz_limit_requests_per_second",
        &["scope=\"key\""],
    )
    .await;
    assert!((limit - 5.0 / 60.0).abs() < 1e-9, "{limit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_pace_uploads_and_downloads_and_never_fail_them() {
    let mut limits = LimitsConfig::default();
    limits.key.ingress = Some(ByteRate::parse("2MiB/s").unwrap());
    limits.key.egress = Some(ByteRate::parse("2MiB/s").unwrap());
    limits.burst = ByteSize::parse("256KiB").unwrap();
    let g = start(options(limits)).await;
    let c = g.client();
    c.create_bucket().bucket("paced-b").send().await.unwrap();
    let body = pseudo_random(4 << 20, 7);
    // (4 MiB - one 256 KiB burst) at 2 MiB/s: at least 1.875 s each way.
    let least = Duration::from_millis(1800);

    let started = Instant::now();
    let out = c
        .put_object()
        .bucket("paced-b")
        .key("paced")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let upload = started.elapsed();
    assert!(upload >= least, "upload took {upload:?}");
    assert_eq!(
        out.e_tag().unwrap(),
        format!("\"{}\"", hex::encode(md5::Md5::digest(&body)))
    );

    let started = Instant::now();
    assert_eq!(get(&c, "paced-b", "paced").await, body);
    let download = started.elapsed();
    assert!(download >= least, "download took {download:?}");

    for dir in ["ingress", "egress"] {
        let waits = metric(
            &g.admin,
            "dooz_throttle_delay_seconds_count",
            &["scope=\"key\"", &format!("direction=\"{dir}\"")],
        )
        .await;
        assert!(waits >= 1.0, "{dir}: {waits} pacing waits");
    }
}

#[test]
fn dooz_config_reads_limits_in_human_units_and_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = dir.path().join("dooz.toml");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_dooz"))
            .arg("--config")
            .arg(&path)
            .arg("config")
            .env_remove("DOOZ_CONFIG")
            .output()
            .unwrap()
    };
    let ok = run(
        "[limits.key]\nrequests = \"200/s\"\ningress = \"50MiB/s\"\n[limits]\nburst = \"1MiB\"\n",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let printed = String::from_utf8_lossy(&ok.stdout);
    assert!(printed.contains("requests = \"200/s\""), "{printed}");
    assert!(printed.contains("ingress = \"50MiB/s\""), "{printed}");
    assert!(printed.contains("burst = \"1MiB\""), "{printed}");

    let bad = run("[limits.bucket]\negress = \"50 furlongs/s\"\n");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("egress") && err.contains("unknown unit"),
        "{err}"
    );

    let bad = run("[limits.backends.nosuch]\nbandwidth = \"1MiB/s\"\n");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("limits.backends.nosuch names no configured backend"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_backend_link_slows_writes_and_reads_and_loses_nothing() {
    let mut limits = LimitsConfig::default();
    limits.backends.insert(
        "main".into(),
        BackendLimits {
            requests: Some(RequestRate::parse("1000/s").unwrap()),
            bandwidth: Some(ByteRate::parse("2MiB/s").unwrap()),
        },
    );
    limits.burst = ByteSize::parse("256KiB").unwrap();
    let g = start(options(limits)).await;
    let c = g.client();
    c.create_bucket().bucket("link").send().await.unwrap();
    // Random bytes: stored as they are (no compression, no dedup), so
    // about 4 MiB crosses the link each way.
    let body = pseudo_random(4 << 20, 11);
    let least = Duration::from_millis(1800);
    let started = Instant::now();
    put(&c, "link", "capped", &body).await;
    let write = started.elapsed();
    assert!(write >= least, "write took {write:?}");
    let started = Instant::now();
    assert_eq!(get(&c, "link", "capped").await, body);
    let read = started.elapsed();
    assert!(read >= least, "read took {read:?}");
    for dir in ["egress", "ingress"] {
        let waits = metric(
            &g.admin,
            "dooz_throttle_delay_seconds_count",
            &["scope=\"backend\"", &format!("direction=\"{dir}\"")],
        )
        .await;
        assert!(waits >= 1.0, "{dir}: {waits} backend waits");
    }
}

/// Waits (bounded) until the gateway holds `n` limit overrides.
async fn overrides_taken_up(admin: &str, n: f64) {
    for _ in 0..100 {
        if metric(admin, "dooz_limit_overrides", &[]).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway did not take up {n} limit overrides");
}

fn ok_output(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "dooz failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dooz_admin_limits_changes_a_running_gateway_locally_and_through_the_endpoint() {
    const TOKEN: &str = "throttle-admin-token-0123456789";
    let limits = LimitsConfig {
        refresh_secs: 1,
        ..Default::default()
    };
    let mut o = options(limits);
    o.admin = Some(dooz_gateway::config::AdminConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    let g = start(o).await;
    let (slow_key, slow_secret) = g.user("slow", Policy::Admin).await;
    let c = g.client();
    c.create_bucket().bucket("over-b").send().await.unwrap();

    // Refused for what does not exist or does not parse; nothing stored.
    let e = g.dooz(&[
        "admin",
        "limits",
        "set",
        "--key",
        "DZNOSUCHKEY",
        "--requests",
        "1/s",
    ]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("no user"));
    let e = g.dooz(&[
        "admin", "limits", "set", "--bucket", "over-b", "--egress", "fast",
    ]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("egress"));
    let e = g.dooz(&["admin", "limits", "set", "--bucket", "over-b"]);
    assert!(!e.status.success());

    let out = ok_output(g.dooz(&[
        "admin",
        "limits",
        "set",
        "--key",
        &slow_key,
        "--requests",
        "2/min",
    ]));
    assert!(out.contains("requests 2/min"), "{out}");
    overrides_taken_up(&g.admin, 1.0).await;

    let a = addr(&g.endpoint);
    let send = |key: String, secret: String, path: String| {
        let a = a.clone();
        async move {
            let mut r = request("GET", &a, &path, &[], Vec::new());
            sign_request(&mut r, &key, &secret);
            raw::send(&a, &r).await
        }
    };
    let slow = || {
        send(
            slow_key.clone(),
            slow_secret.to_string(),
            "/over-b?list-type=2".into(),
        )
    };
    assert_eq!(slow().await.status, 200);
    assert_eq!(slow().await.status, 200);
    let refused = slow().await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.code().as_deref(), Some("SlowDown"));
    // The override is the key's own: the admin key has no limit.
    for _ in 0..5 {
        let r = send(
            g.access_key.clone(),
            g.secret_key.clone(),
            "/over-b?list-type=2".into(),
        )
        .await;
        assert_eq!(r.status, 200);
    }

    let listed: serde_json::Value =
        serde_json::from_str(&ok_output(g.dooz(&["admin", "limits", "list", "--json"]))).unwrap();
    assert_eq!(listed["overrides"][0]["scope"], "key");
    assert_eq!(listed["overrides"][0]["subject"], slow_key.as_str());
    assert_eq!(listed["overrides"][0]["override"]["requests"], "2/min");

    // Through the admin API, as an operator without database access.
    let remote = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dooz"))
            .args(["admin", "--endpoint", &g.admin, "--token", TOKEN])
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let out = ok_output(remote(&["limits", "unset", "--key", &slow_key]));
    assert!(out.contains("back to the [limits] defaults"), "{out}");
    overrides_taken_up(&g.admin, 0.0).await;
    assert_eq!(slow().await.status, 200);
    let again = remote(&["limits", "unset", "--key", &slow_key]);
    assert!(!again.status.success(), "unset of nothing must fail");
    let out = ok_output(remote(&[
        "limits", "set", "--bucket", "over-b", "--egress", "10MiB/s",
    ]));
    assert!(out.contains("egress 10MiB/s"), "{out}");
    let listed = ok_output(remote(&["limits", "list"]));
    assert!(
        listed.contains("bucket") && listed.contains("10MiB/s"),
        "{listed}"
    );
}
