//! Deployments: a backend outage and recovery, two gateways on one
//! PostgreSQL, and the `dooz` binary itself (first start, graceful shutdown).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{code, get};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use dooz_conformance::{ChildGuard, free_port, wait_for_port};
use support::gateway::{Backend, Meta, MetaHandle, Options, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_outage_commits_nothing_and_recovers() {
    let mut g = start(Options::new(Meta::Sqlite, Backend::Seaweed)).await;
    let c = aws_sdk_s3::Client::from_conf(
        g.client()
            .config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    c.create_bucket().bucket("outage").send().await.unwrap();
    c.put_object()
        .bucket("outage")
        .key("before")
        .body(ByteStream::from(vec![7u8; 300_000]))
        .send()
        .await
        .unwrap();

    let mut sw = g.seaweed.take().expect("seaweed");
    sw.stop();
    let put = c
        .put_object()
        .bucket("outage")
        .key("during")
        .body(ByteStream::from(vec![9u8; 300_000]))
        .send()
        .await;
    assert_eq!(code(put), "ServiceUnavailable");
    let during = c.get_object().bucket("outage").key("before").send().await;
    assert_eq!(code(during), "ServiceUnavailable");
    // Nothing was committed for the failed write.
    assert_eq!(
        code(c.head_object().bucket("outage").key("during").send().await),
        "NotFound"
    );
    let ready = reqwest::get(format!("{}/health/ready", g.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    let sw = tokio::task::spawn_blocking(move || {
        sw.restart().expect("SeaweedFS restarts");
        sw
    })
    .await
    .unwrap();
    // Recovery needs no restart of the gateway.
    assert_eq!(get(&c, "outage", "before").await, vec![7u8; 300_000]);
    c.put_object()
        .bucket("outage")
        .key("after")
        .body(ByteStream::from(vec![9u8; 300_000]))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "outage", "after").await, vec![9u8; 300_000]);
    let ready = reqwest::get(format!("{}/health/ready", g.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    g.fsck_clean().await;
    drop(g);
    drop(sw);
}

/// Strong read-after-write across two gateway instances on one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_postgres() {
    let a = start(Options::new(Meta::Postgres, Backend::Seaweed)).await;
    let db = match &a.meta {
        MetaHandle::Postgres(db) => Arc::clone(db),
        MetaHandle::Sqlite => unreachable!(),
    };
    let mut opts = Options::new(Meta::Postgres, Backend::Seaweed);
    opts.backend_config = Some(a.cfg.backends["main"].clone());
    let b = start_with(opts, MetaHandle::Postgres(db), None).await;
    let ca = a.client();
    // A's credentials work on B: users live in the shared database.
    let cb = b.client_as(&a.access_key, &a.secret_key);

    ca.create_bucket().bucket("shared").send().await.unwrap();
    assert_eq!(
        code(cb.create_bucket().bucket("shared").send().await),
        "BucketAlreadyOwnedByYou"
    );
    for round in 0..5u8 {
        let body = vec![round; 100_000 + usize::from(round)];
        let (writer, reader) = if round % 2 == 0 {
            (&ca, &cb)
        } else {
            (&cb, &ca)
        };
        writer
            .put_object()
            .bucket("shared")
            .key("k")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(get(reader, "shared", "k").await, body, "round {round}");
    }
    cb.delete_object()
        .bucket("shared")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(ca.get_object().bucket("shared").key("k").send().await),
        "NoSuchKey"
    );

    // Concurrent create-only writes through both gateways: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move {
            c.put_object()
                .bucket("shared")
                .key("once")
                .if_none_match("*")
                .body(ByteStream::from(vec![i; 50_000]))
                .send()
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    a.fsck_clean().await;
    drop(b);
}

fn dooz() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dooz"))
}

#[test]
fn help_explains_every_command() {
    let out = dooz().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "admin",
        "fsck",
        "--config",
        "--data-dir",
        "--meta",
        "DOOZ_",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = dooz().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--listen",
        "--admin-listen",
        "DOOZ_LISTEN",
        "SIGTERM",
        "DOOZ_ROOT_ACCESS_KEY",
    ] {
        assert!(text.contains(word), "serve --help lacks {word}:\n{text}");
    }
    let bad = dooz()
        .env("DOOZ_LISTEN", "nonsense")
        .arg("config")
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// The binary on its defaults: first start prints credentials once, the
/// admin commands work on the same data, SIGTERM lets an in-flight upload
/// finish, and a restart finds the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_first_start_admin_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (s3_port, admin_port) = (free_port(), free_port());
    let spawn = |log: &str| {
        let mut cmd = dooz();
        cmd.args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{s3_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .env_remove("DOOZ_ROOT_ACCESS_KEY")
            .env_remove("DOOZ_ROOT_SECRET_KEY")
            .env("RUST_LOG", "info");
        let g = ChildGuard::spawn("dooz", cmd, &dir.path().join(log)).unwrap();
        assert!(
            wait_for_port(s3_port, Duration::from_secs(30)),
            "{}",
            g.log_tail(30)
        );
        g
    };
    let mut first = spawn("first.log");
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    let grab = |label: &str| {
        log.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label} in:\n{log}"))
    };
    let access = grab("access key:");
    let secret = grab("secret key:");
    assert!(dir.path().join("root.key").exists());
    assert!(dir.path().join("meta.db").exists());

    let c = support::s3_client(&format!("http://127.0.0.1:{s3_port}"), &access, &secret);
    c.create_bucket().bucket("graceful").send().await.unwrap();

    // An upload that is still sending its body when SIGTERM arrives.
    let url = c
        .put_object()
        .bucket("graceful")
        .key("slow")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let path_q = url
        .uri()
        .split_once(&format!("{s3_port}"))
        .unwrap()
        .1
        .to_owned();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let expected = body.clone();
    let uploader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", s3_port)).unwrap();
        write!(
            s,
            "PUT {path_q} HTTP/1.1\r\nHost: 127.0.0.1:{s3_port}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        for part in body.chunks(200_000) {
            s.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp
    });
    std::thread::sleep(Duration::from_millis(400));
    let code = tokio::task::spawn_blocking(move || first.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    let resp = uploader.join().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "in-flight upload: {resp}");
    assert_eq!(code, Some(0), "clean exit on SIGTERM");

    // Admin commands on the same data dir.
    let out = dooz()
        .args(["admin", "user", "list", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&access));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
    let out = dooz()
        .args(["fsck", "--read-packs", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Second start: no new credentials, the object is there.
    let _second = spawn("second.log");
    let log2 = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(
        !log2.contains("secret key:"),
        "credentials are printed only once"
    );
    assert_eq!(get(&c, "graceful", "slow").await, expected);
}
