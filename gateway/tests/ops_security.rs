//! What an operator relies on when the gateway faces a network: TLS
//! everywhere it talks — its own endpoints (certificate reloaded on SIGHUP
//! without dropping open connections), PostgreSQL (libpq's sslmode), an S3
//! backend behind a private CA —, an admin endpoint that wants a token,
//! readiness that names what failed without internal detail, and secrets
//! that reach neither `dooz config` nor the logs, whatever RUST_LOG says.
//! Certificates come from the openssl command line tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dooz_conformance::{ChildGuard, Seaweed, free_port, wait_for_port};
use support::gateway::{Backend, Meta, Options, start};
use support::pg::PgDb;
use support::{code, get, put};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost:
/// (ca.pem, cert.pem, key.pem) under `dir/name-*`.
fn make_ca_and_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let key = format!("{name}-key.pem");
    let csr = format!("{name}.csr");
    let cert = format!("{name}-cert.pem");
    let ext = format!("{name}.ext");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN=dooz test CA {name}"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

const ADMIN_TOKEN: &str = "tls-admin-token-0123456789";

fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `dooz serve` over HTTPS on both endpoints: a client trusting the CA gets
/// through, plain HTTP does not; SIGHUP after replacing the files makes new
/// connections see the new certificate while an open one keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_serve_tls_and_reload_it_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = make_ca_and_cert(dir.path(), "one");
    let (ca2, cert2, key2) = make_ca_and_cert(dir.path(), "two");
    let (cert, key) = (
        dir.path().join("live-cert.pem"),
        dir.path().join("live-key.pem"),
    );
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let (s3_port, admin_port) = (free_port(), free_port());
    let (access, secret) = ("DZTLSTESTACCESS01", "tls-test-secret-0123456789abcdef");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dooz"));
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{s3_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("DOOZ_ROOT_ACCESS_KEY", access)
        .env("DOOZ_ROOT_SECRET_KEY", secret)
        .env("DOOZ_SERVER__TLS_CERT_FILE", &cert)
        .env("DOOZ_SERVER__TLS_KEY_FILE", &key)
        .env("DOOZ_ADMIN__TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "info");
    let mut guard = ChildGuard::spawn("dooz", cmd, &dir.path().join("dooz.log")).unwrap();
    assert!(
        wait_for_port(admin_port, Duration::from_secs(30)),
        "{}",
        guard.log_tail(30)
    );
    let admin = format!("https://127.0.0.1:{admin_port}");
    let s3 = format!("https://127.0.0.1:{s3_port}");
    let old = client_trusting(&ca1);
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(r) = old.get(format!("{admin}/health/ready")).send().await {
            ready = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready,
        Some(reqwest::StatusCode::OK),
        "{}",
        guard.log_tail(30)
    );
    // The S3 endpoint: a signed ListBuckets over TLS.
    let mut list = http::Request::builder()
        .method("GET")
        .uri(format!("{s3}/"))
        .header("host", format!("127.0.0.1:{s3_port}"))
        .body(Vec::new())
        .unwrap();
    support::raw::sign_request(&mut list, access, secret);
    let send_signed = |c: &reqwest::Client, r: &http::Request<Vec<u8>>| {
        let mut b = c.get(r.uri().to_string());
        for (k, v) in r.headers() {
            b = b.header(k, v);
        }
        b.send()
    };
    let r = send_signed(&old, &list).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // Plain HTTP is not served on a TLS port.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{admin_port}/health/live"))
            .await
            .is_err()
    );
    // A client that does not trust the CA is refused.
    assert!(
        client_trusting(&ca2)
            .get(format!("{admin}/health/live"))
            .send()
            .await
            .is_err()
    );

    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    let pid = guard.pid().unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let new = client_trusting(&ca2);
    let mut reloaded = false;
    for _ in 0..100 {
        if new.get(format!("{admin}/health/live")).send().await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "new connections never saw the new certificate");
    // The old client's kept-alive connection still works (a new one would
    // meet a certificate it does not trust).
    let r = send_signed(&old, &list).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        client_trusting(&ca1)
            .get(format!("{admin}/health/live"))
            .send()
            .await
            .is_err(),
        "a fresh connection must see the new certificate"
    );
    // `dooz admin --endpoint https://…` trusts a private CA with --ca-file
    // (the system roots do not know it).
    let admin_cli = |ca: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dooz"));
        c.args(["admin", "--endpoint", &admin, "--token", ADMIN_TOKEN]);
        if let Some(ca) = ca {
            c.arg("--ca-file").arg(ca);
        }
        c.args(["tenant", "list", "--json"]).output().unwrap()
    };
    let out = admin_cli(Some(&ca2));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"root\""));
    let out = admin_cli(None);
    assert!(!out.status.success(), "an unknown CA must not be trusted");
    let out = admin_cli(Some(&ca1));
    assert!(
        !out.status.success(),
        "the old CA no longer issued the certificate"
    );

    // A broken file on the next reload keeps the current certificate.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client_trusting(&ca2)
        .get(format!("{admin}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let code = tokio::task::spawn_blocking(move || guard.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

/// A PostgreSQL connection string with libpq's TLS settings: `require`
/// encrypts, `verify-full` checks the chain and the name, `verify-ca` only
/// the chain. (The local server runs Debian's snakeoil certificate, issued
/// to `localhost` and signed by itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_reached_over_tls_as_sslmode_says() {
    let db = PgDb::create().await;
    let base = db.url();
    assert!(
        base.contains("host=127.0.0.1"),
        "this test expects PostgreSQL on 127.0.0.1: {base}"
    );
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let by_name = base.replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1");

    let required = format!("{base} sslmode=require application_name=dooz-tls-test");
    let store = dooz_gateway::meta::open(&required)
        .await
        .expect("sslmode=require");
    store.ping().await.unwrap();
    let (client, conn) =
        tokio_postgres::connect(&support::pg::admin_conninfo(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'dooz-tls-test' AND a.datname = $1",
            &[&db.name],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "the store has connections open");
    assert!(
        rows.iter().all(|r| r.get::<_, bool>(0)),
        "every connection is TLS"
    );
    drop(store);

    let full = format!("{by_name} sslmode=verify-full sslrootcert={snakeoil}");
    dooz_gateway::meta::open(&full)
        .await
        .expect("verify-full with the right root and name")
        .ping()
        .await
        .unwrap();
    // sslrootcert names the only roots trusted (as libpq): another CA fails.
    let dir = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = make_ca_and_cert(dir.path(), "localhost");
    let Err(e) = dooz_gateway::meta::open(&format!(
        "{by_name} sslmode=verify-full sslrootcert={}",
        other_ca.display()
    ))
    .await
    else {
        panic!("a certificate signed by another CA must not pass verify-full");
    };
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let Err(e) = dooz_gateway::meta::open(&format!(
        "{base} sslmode=verify-full sslrootcert={snakeoil}"
    ))
    .await
    else {
        panic!("a certificate for localhost must not pass verify-full for 127.0.0.1");
    };
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    dooz_gateway::meta::open(&format!("{base} sslmode=verify-ca sslrootcert={snakeoil}"))
        .await
        .expect("verify-ca does not check the name")
        .ping()
        .await
        .unwrap();
    // The whole gateway runs on such a connection.
    let mut opts = Options::new(Meta::Postgres, Backend::Local);
    opts.meta_params = Some(format!("sslmode=verify-ca sslrootcert={snakeoil}"));
    let g = start(opts).await;
    g.client()
        .create_bucket()
        .bucket("tls")
        .send()
        .await
        .unwrap();
    put(&g.client(), "tls", "k", b"over tls").await;
    assert_eq!(get(&g.client(), "tls", "k").await, b"over tls");
}

/// An S3 backend whose certificate a private CA signed: reachable with
/// `ca_file`, refused (503, nothing stored) without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_behind_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca_and_cert(dir.path(), "backend");
    let sw = tokio::task::spawn_blocking(move || Seaweed::start_with_tls(cert, key))
        .await
        .unwrap()
        .expect("SeaweedFS with TLS");
    let plain = support::s3_client(&sw.endpoint(), &sw.access_key, &sw.secret_key);
    plain.create_bucket().bucket("packs").send().await.unwrap();
    let https = sw.https_endpoint().unwrap();
    let port = sw.https_port.unwrap();
    assert!(wait_for_port(port, Duration::from_secs(30)));
    let backend = |ca_file: Option<PathBuf>| {
        let mut b = support::seaweed_backend(&sw, "packs");
        if let dooz_gateway::store::BackendConfig::S3(s3) = &mut b {
            s3.endpoint = https.clone();
            s3.ca_file = ca_file;
            s3.retry.max_retries = 0;
        }
        b
    };
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.backend_config = Some(backend(Some(ca.clone())));
    let g = start(opts).await;
    g.client()
        .create_bucket()
        .bucket("via-ca")
        .send()
        .await
        .unwrap();
    put(&g.client(), "via-ca", "k", b"through a private CA").await;
    assert_eq!(
        get(&g.client(), "via-ca", "k").await,
        b"through a private CA"
    );

    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.backend_config = Some(backend(None));
    let untrusting = start(opts).await;
    let c = untrusting.client();
    c.create_bucket().bucket("noca").send().await.unwrap();
    let r = c
        .put_object()
        .bucket("noca")
        .key("k")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(r), "ServiceUnavailable");
    assert_eq!(
        code(c.head_object().bucket("noca").key("k").send().await),
        "NotFound"
    );
    drop(sw);
}

/// `/metrics` and `/health/*` are open on loopback; anything else needs the
/// bearer token. Readiness names a failed dependency, not its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_wants_a_token_and_readiness_tells_no_internals() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.admin = Some(dooz_gateway::config::AdminConfig {
        token: Some("admin-token-0123456789".into()),
        token_file: None,
        open_paths: Vec::new(),
    });
    let g = start(opts).await;
    let http = reqwest::Client::new();
    for open in ["/metrics", "/health/live", "/health/ready"] {
        let r = http.get(format!("{}{open}", g.admin)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{open}");
    }
    let r = http
        .get(format!("{}/admin/users", g.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = http
        .get(format!("{}/admin/users", g.admin))
        .bearer_auth("admin-token-012345678")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/admin/users", g.admin))
        .bearer_auth("admin-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "past the check: no such route yet");

    // Break the backend: its pack directory becomes a file.
    let packs = support::gateway::local_packs_dir(&g).join("packs");
    let _ = std::fs::remove_dir_all(&packs);
    std::fs::write(&packs, b"not a directory").unwrap();
    let r = http
        .get(format!("{}/health/ready", g.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["meta"], "ok");
    assert_eq!(v["backends"]["main"], "unavailable");
    let dir = g.data_dir.path().display().to_string();
    assert!(
        !body.contains(&dir) && !body.to_lowercase().contains("error"),
        "{body}"
    );
}

/// `dooz config` prints every setting and no secret: not the metadata
/// password (URL or keyword form), the admin or OpenBao token, nor a
/// backend's secret key.
#[test]
fn dooz_config_redacts_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        "pg-url-password-123",
        "admin-token-secret-456",
        "bao-token-secret-789",
        "backend-secret-key-000",
    ];
    for meta in [
        format!(
            "postgres://dooz:{}@db.internal:5432/dooz?sslmode=require",
            secrets[0]
        ),
        format!(
            "host=db.internal user=dooz password='{}' dbname=dooz",
            secrets[0]
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dooz"))
            .args(["config", "--data-dir"])
            .arg(dir.path())
            .env("DOOZ_META", &meta)
            .env("DOOZ_ADMIN__TOKEN", secrets[1])
            .env("DOOZ_KMS__OPENBAO__ADDR", "https://bao.internal:8200")
            .env("DOOZ_KMS__OPENBAO__KEY", "dooz")
            .env("DOOZ_KMS__OPENBAO__TOKEN", secrets[2])
            .env("DOOZ_DEFAULT_BACKEND", "sw")
            .env("DOOZ_BACKENDS__SW__TYPE", "s3")
            .env("DOOZ_BACKENDS__SW__BUCKET", "packs")
            .env("DOOZ_BACKENDS__SW__SECRET_ACCESS_KEY", secrets[3])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for s in secrets {
            assert!(!text.contains(s), "{s} printed:\n{text}");
        }
        assert!(text.contains("db.internal"), "{text}");
        assert!(text.matches("<redacted>").count() >= 4, "{text}");
    }
}

/// With every log directive turned up — including the s3s signature code —
/// no signature, expected signature or secret reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_directive_brings_back_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (s3_port, admin_port) = (free_port(), free_port());
    let (access, secret) = ("DZLOGFILTERACCESS1", "log-filter-secret-0123456789abcdef");
    let log_path = dir.path().join("dooz.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dooz"));
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{s3_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .env("DOOZ_ROOT_ACCESS_KEY", access)
        .env("DOOZ_ROOT_SECRET_KEY", secret)
        .env(
            "RUST_LOG",
            "trace,s3s::ops=debug,s3s::ops::signature=trace,s3s=trace,hyper=trace,h2=trace,tokio_postgres=trace",
        );
    let mut guard = ChildGuard::spawn("dooz", cmd, &log_path).unwrap();
    assert!(
        wait_for_port(s3_port, Duration::from_secs(30)),
        "{}",
        guard.log_tail(30)
    );
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let c = support::s3_client(&endpoint, access, secret);
    c.create_bucket().bucket("logs").send().await.unwrap();
    put(&c, "logs", "k", b"logged").await;
    // A presigned URL's signature, and a wrong-secret request whose
    // signature s3s compares (and would log, with the expected one).
    let url = c
        .get_object()
        .bucket("logs")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60)).unwrap(),
        )
        .await
        .unwrap();
    let presigned_sig = url
        .uri()
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(reqwest::get(url.uri()).await.unwrap().status(), 200);
    let addr = format!("127.0.0.1:{s3_port}");
    let base = support::raw::request("GET", &addr, "/logs/k", &[], Vec::new());
    let at = std::time::SystemTime::now();
    let mut wrong = base.clone();
    support::raw::sign_at(&mut wrong, access, "not-the-secret-at-all-0000", false, at);
    let wrong_sig = wrong.headers()["authorization"]
        .to_str()
        .unwrap()
        .split("Signature=")
        .nth(1)
        .unwrap()
        .to_owned();
    let r = support::raw::send(&addr, &wrong).await;
    assert_eq!(r.status, 403);
    // The expected signature of that request is what the right secret gives.
    let mut right = base;
    support::raw::sign_at(&mut right, access, secret, false, at);
    let expected_sig = right.headers()["authorization"]
        .to_str()
        .unwrap()
        .split("Signature=")
        .nth(1)
        .unwrap()
        .to_owned();
    let code = tokio::task::spawn_blocking(move || guard.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("dooz::access"),
        "the access log is still there"
    );
    assert!(
        log.lines().count() > 20,
        "debug output of Dooz itself is there"
    );
    for (what, needle) in [
        ("secret key", secret),
        ("presigned signature", presigned_sig.as_str()),
        ("wrong signature", wrong_sig.as_str()),
        ("expected signature", expected_sig.as_str()),
    ] {
        let hits: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        assert!(hits.is_empty(), "the {what} is in the log: {hits:?}");
    }
}
