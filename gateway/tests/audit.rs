//! The audit log as an operator and an auditor meet it: S3 clients change
//! things, `dooz audit export` lists every change exactly once (and no read),
//! `dooz audit verify` passes on an untouched chain and exits 1 when a row is
//! edited or removed, retention stays verifiable, operator commands are
//! recorded without their secrets, and gateways sharing one PostgreSQL build
//! one chain. Both metadata stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use dooz_gateway::meta::Policy;
use serde_json::Value;
use support::gateway::{Backend, Gateway, Meta, MetaHandle, Options, start, start_with};
use support::{code, pg::PgDb, put};

/// `dooz --config <the gateway's config> ARGS`.
fn dooz(g: &Gateway, args: &[&str]) -> Output {
    let path: PathBuf = g.data_dir.path().join("dooz.toml");
    std::fs::write(&path, toml::to_string(&g.cfg).unwrap()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dooz"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("USER", "auditor")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "dooz failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn export(g: &Gateway, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "export", "--format", "jsonl"];
    args.extend_from_slice(extra);
    ok(dooz(g, &args))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn s3_rows(rows: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = rows
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("s3:"))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expected(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = rows
        .iter()
        .map(|(a, t, r)| (a.to_string(), t.to_string(), r.to_string()))
        .collect();
    v.sort();
    v
}

/// One of each mutation S3 clients send, some refused; then reads, which
/// must not be recorded.
async fn scenario(g: &Gateway) -> Vec<(String, String, String)> {
    let c = g.client();
    c.create_bucket().bucket("aud").send().await.unwrap();
    put(&c, "aud", "k1", b"one").await;
    put(&c, "aud", "dir/k 2", b"two").await;
    c.copy_object()
        .bucket("aud")
        .key("k3")
        .copy_source("aud/k1")
        .send()
        .await
        .unwrap();
    let mp = c
        .create_multipart_upload()
        .bucket("aud")
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = mp.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket("aud")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("aud")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ab = c
        .create_multipart_upload()
        .bucket("aud")
        .key("ab")
        .send()
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket("aud")
        .key("ab")
        .upload_id(ab.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    let refused = c
        .put_object()
        .bucket("aud")
        .key("k1")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(refused), "PreconditionFailed");
    let (ro, ro_secret) = g.user("reader", Policy::ReadOnly).await;
    let denied = g
        .client_as(&ro, &ro_secret)
        .put_object()
        .bucket("aud")
        .key("ro")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(denied), "AccessDenied");
    c.delete_object()
        .bucket("aud")
        .key("k3")
        .send()
        .await
        .unwrap();
    let ids = ["k1", "dir/k 2", "never-was"]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
        .collect::<Vec<_>>();
    c.delete_objects()
        .bucket("aud")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    // A malformed policy and an ACL change (not served yet) are refused,
    // but the attempts are recorded.
    let policy = c
        .put_bucket_policy()
        .bucket("aud")
        .policy("{\"Version\":\"2012-10-17\",\"Statement\":[]}")
        .send()
        .await;
    assert!(policy.is_err());
    let acl = c
        .put_object_acl()
        .bucket("aud")
        .key("mp")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await;
    assert!(acl.is_err());
    // Reads: none of these may appear.
    c.get_object().bucket("aud").key("mp").send().await.unwrap();
    c.head_object()
        .bucket("aud")
        .key("mp")
        .send()
        .await
        .unwrap();
    c.list_objects_v2().bucket("aud").send().await.unwrap();
    c.list_buckets().send().await.unwrap();
    c.delete_object()
        .bucket("aud")
        .key("mp")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("aud").send().await.unwrap();
    expected(&[
        ("s3:CreateBucket", "aud", "200"),
        ("s3:PutObject", "aud/k1", "200"),
        ("s3:PutObject", "aud/dir/k 2", "200"),
        ("s3:CopyObject", "aud/k3", "200"),
        ("s3:CreateMultipartUpload", "aud/mp", "200"),
        ("s3:UploadPart", "aud/mp", "200"),
        ("s3:CompleteMultipartUpload", "aud/mp", "200"),
        ("s3:CreateMultipartUpload", "aud/ab", "200"),
        ("s3:AbortMultipartUpload", "aud/ab", "204"),
        ("s3:PutObject", "aud/k1", "412"),
        ("s3:PutObject", "aud/ro", "403"),
        ("s3:DeleteObject", "aud/k3", "204"),
        ("s3:DeleteObjects", "aud/k1", "200"),
        ("s3:DeleteObjects", "aud/dir/k 2", "200"),
        ("s3:DeleteObjects", "aud/never-was", "200"),
        ("s3:PutBucketPolicy", "aud", "400"),
        ("s3:PutObjectAcl", "aud/mp", "501"),
        ("s3:DeleteObject", "aud/mp", "204"),
        ("s3:DeleteBucket", "aud", "204"),
    ])
}

async fn every_mutation_once(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let want = scenario(&g).await;
    let rows = export(&g, &[]);
    assert_eq!(s3_rows(&rows), want);
    let tenant = g.tenant.id.to_string();
    for r in rows
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("s3:"))
    {
        assert!(
            r["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{r}"
        );
        assert_eq!(r["request_id"].as_str().unwrap().len(), 16, "{r}");
        // The access check verifies the caller before anything is decided,
        // so refused and unserved requests (501) name it too.
        assert_eq!(r["tenant_id"].as_str(), Some(tenant.as_str()), "{r}");
        assert!(r["detail"].get("actor_verified").is_none(), "{r}");
        let actor = r["actor"].as_str().unwrap();
        if r["target"] == "aud/ro" {
            assert_ne!(actor, g.access_key);
        } else {
            assert_eq!(actor, g.access_key, "{r}");
        }
    }
    let put = rows
        .iter()
        .find(|r| r["action"] == "s3:PutObject" && r["result"] == "200")
        .unwrap();
    assert_eq!(put["detail"]["bytes_in"], 3);
    let copy = rows
        .iter()
        .find(|r| r["action"] == "s3:CopyObject")
        .unwrap();
    assert_eq!(copy["detail"]["copy_source"], "aud/k1");
    // Sequence numbers follow each other; time never goes back.
    for w in rows.windows(2) {
        assert_eq!(
            w[1]["seq"].as_u64().unwrap(),
            w[0]["seq"].as_u64().unwrap() + 1
        );
        assert!(w[1]["at_ms"].as_i64() >= w[0]["at_ms"].as_i64());
    }
    // CSV carries the same rows (plus the export just recorded).
    let csv = ok(dooz(&g, &["audit", "export", "--format", "csv"]));
    assert!(csv.starts_with("seq,at,tenant_id,actor,source,action,target,result,"));
    assert_eq!(csv.matches("\r\n").count(), 1 + rows.len() + 1);
    assert!(ok(dooz(&g, &["audit", "verify"])).contains("chain intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_s3_mutation_is_recorded_once_sqlite() {
    every_mutation_once(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_s3_mutation_is_recorded_once_postgres() {
    every_mutation_once(Meta::Postgres).await;
}

/// Raw SQL on the gateway's database, as someone with database access would.
async fn sql(g: &Gateway, statements: &str) -> Result<(), String> {
    match &g.meta {
        MetaHandle::Sqlite => {
            let conn = rusqlite::Connection::open(g.data_dir.path().join("meta.db")).unwrap();
            conn.execute_batch(statements).map_err(|e| e.to_string())
        }
        MetaHandle::Postgres(db) => {
            let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(statements)
                .await
                .map_err(|e| format!("{e:?}"))
        }
    }
}

fn verify(g: &Gateway, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let out = dooz(g, &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!(
            "verify exited {other:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn head(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("head"))
        .unwrap()
        .trim()
        .to_owned()
}

async fn tampering_is_detected(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("tamper").send().await.unwrap();
    for i in 0..4 {
        put(&c, "tamper", &format!("k{i}"), b"x").await;
    }
    let (intact, text) = verify(&g, &[]);
    assert!(intact, "{text}");
    let earlier_head = head(&text);

    // The database itself refuses to change history.
    for refused in [
        "UPDATE audit_log SET target = 'tamper/forged' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
    ] {
        let err = sql(&g, refused).await.unwrap_err();
        assert!(err.contains("append-only"), "{err}");
    }
    // Someone who can drop the guards can edit rows, but not re-sign them.
    let unguard = match meta {
        Meta::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        Meta::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER;",
    };
    sql(&g, unguard).await.unwrap();
    sql(
        &g,
        "UPDATE audit_log SET target = 'tamper/forged' WHERE seq = 2",
    )
    .await
    .unwrap();
    let (intact, text) = verify(&g, &[]);
    assert!(!intact && text.contains("row 2 was altered"), "{text}");
    let original = "tamper/k0";
    sql(
        &g,
        &format!("UPDATE audit_log SET target = '{original}' WHERE seq = 2"),
    )
    .await
    .unwrap();
    assert!(verify(&g, &[]).0, "the edit, undone, is the only break");

    sql(
        &g,
        "UPDATE audit_log SET result = '200', at = at + 1 WHERE seq = 4",
    )
    .await
    .unwrap();
    assert!(!verify(&g, &[]).0);
    sql(&g, "UPDATE audit_log SET at = at - 1 WHERE seq = 4")
        .await
        .unwrap();
    assert!(verify(&g, &[]).0);

    sql(&g, "DELETE FROM audit_log WHERE seq = 3")
        .await
        .unwrap();
    let (intact, text) = verify(&g, &[]);
    assert!(!intact && text.contains("rows 3..3 are missing"), "{text}");

    // Removing the newest rows leaves a valid prefix: only a head kept
    // elsewhere shows it.
    let g2 = start(Options::new(meta, Backend::Local)).await;
    let c2 = g2.client();
    c2.create_bucket().bucket("trunc").send().await.unwrap();
    put(&c2, "trunc", "a", b"x").await;
    let (_, text) = verify(&g2, &[]);
    let kept = head(&text);
    put(&c2, "trunc", "b", b"x").await;
    sql(&g2, unguard).await.unwrap();
    let newest: u64 = kept.split(':').next().unwrap().parse().unwrap();
    sql(&g2, &format!("DELETE FROM audit_log WHERE seq >= {newest}"))
        .await
        .unwrap();
    assert!(verify(&g2, &[]).0, "a truncated tail alone verifies");
    let (intact, text) = verify(&g2, &["--expect", &kept]);
    assert!(
        !intact && text.contains("newer rows were removed"),
        "{text}"
    );
    assert!(!earlier_head.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_sqlite() {
    tampering_is_detected(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_postgres() {
    tampering_is_detected(Meta::Postgres).await;
}

async fn retention_stays_verifiable(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("retained").send().await.unwrap();
    for i in 0..5 {
        put(&c, "retained", &format!("k{i}"), b"x").await;
    }
    let before = dooz_gateway::engine::now_millis() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    put(&c, "retained", "after", b"x").await;
    let out = ok(dooz(
        &g,
        &["audit", "purge", "--before", &before.to_string()],
    ));
    assert!(out.contains("removed 6 audit rows"), "{out}");
    let rows = export(&g, &[]);
    let actions: Vec<_> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "s3:PutObject",
            "audit:purge",
            "audit:purge-command",
            "audit:export"
        ]
    );
    assert_eq!(rows[1]["detail"]["anchor_seq"], 6);
    let (intact, text) = verify(&g, &[]);
    assert!(intact, "{text}");
    assert!(text.contains("retention anchor 6"), "{text}");
    // Moving the anchor by hand (to hide the rows after it) is not a purge.
    let unguard = match meta {
        Meta::Sqlite => "DROP TRIGGER audit_log_no_delete;",
        Meta::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER;",
    };
    sql(&g, unguard).await.unwrap();
    sql(
        &g,
        "UPDATE audit_anchor SET seq = 8, hash = (SELECT hash FROM audit_log WHERE seq = 8); \
         DELETE FROM audit_log WHERE seq <= 8",
    )
    .await
    .unwrap();
    let (intact, text) = verify(&g, &[]);
    assert!(
        !intact && text.contains("removed without a retention (audit:purge) record"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_stays_verifiable_sqlite() {
    retention_stays_verifiable(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_stays_verifiable_postgres() {
    retention_stays_verifiable(Meta::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_are_recorded_without_secrets() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    ok(dooz(&g, &["admin", "tenant", "create", "acme"]));
    let created = ok(dooz(
        &g,
        &[
            "admin", "user", "create", "--tenant", "acme", "--name", "ci", "--json",
        ],
    ));
    let user: Value = serde_json::from_str(created.trim()).unwrap();
    let secret = user["secret_key"].as_str().unwrap().to_owned();
    let failed = dooz(&g, &["admin", "user", "delete", "DZNOSUCHKEY"]);
    assert!(!failed.status.success());
    ok(dooz(&g, &["keys", "status"]));
    // A tenant's own S3 writes, for the tenant filter.
    let (acme, access, acme_secret) = g.new_tenant("other").await;
    let c = g.client_as(&access, &acme_secret);
    c.create_bucket()
        .bucket("other-bucket")
        .send()
        .await
        .unwrap();

    let rows = export(&g, &[]);
    let admin: BTreeMap<_, _> = rows
        .iter()
        .filter(|r| !r["action"].as_str().unwrap().starts_with("s3:"))
        .map(|r| (r["action"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    assert_eq!(admin["admin:tenant.create"]["result"], "ok");
    assert_eq!(admin["admin:tenant.create"]["target"], "acme");
    assert_eq!(admin["admin:user.create"]["result"], "ok");
    assert_eq!(admin["admin:user.create"]["actor"], "cli:auditor");
    assert!(
        admin["admin:user.create"]["source"]
            .as_str()
            .unwrap()
            .starts_with("cli@")
    );
    assert!(
        admin["admin:user.delete"]["result"]
            .as_str()
            .unwrap()
            .starts_with("error: no user")
    );
    assert_eq!(admin["keys:status"]["result"], "ok");
    let everything = ok(dooz(&g, &["audit", "export", "--format", "csv"]));
    assert!(
        !everything.contains(&secret),
        "a secret reached the audit log"
    );

    // --tenant keeps that tenant's rows only; --from/--to bound by time.
    let theirs = export(&g, &["--tenant", "other"]);
    assert_eq!(
        s3_rows(&theirs),
        expected(&[("s3:CreateBucket", "other-bucket", "200")])
    );
    assert!(theirs.iter().all(|r| r["tenant_id"] == acme.id.to_string()));
    let first = rows[0]["at_ms"].as_i64().unwrap();
    let none = export(&g, &["--to", &first.to_string()]);
    assert!(none.is_empty());
    let from_first = export(&g, &["--from", &first.to_string(), "--to", "2999-01-01"]);
    assert!(from_first.len() >= rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_postgres_build_one_chain() {
    let db = std::sync::Arc::new(PgDb::create().await);
    let a = start_with(
        Options::new(Meta::Postgres, Backend::Local),
        MetaHandle::Postgres(db.clone()),
        None,
    )
    .await;
    let b = start_with(
        Options::new(Meta::Postgres, Backend::Local),
        MetaHandle::Postgres(db.clone()),
        None,
    )
    .await;
    a.client()
        .create_bucket()
        .bucket("shared")
        .send()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (gi, g) in [&a, &b].into_iter().enumerate() {
        for w in 0..4 {
            let c = g.client();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    put(&c, "shared", &format!("g{gi}/w{w}/{i}"), b"x").await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = export(&a, &[]);
    let puts = rows
        .iter()
        .filter(|r| r["action"] == "s3:PutObject")
        .count();
    assert_eq!(puts, 80);
    let mut seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (seqs[0]..seqs[0] + seqs.len() as u64).collect::<Vec<_>>()
    );
    assert!(verify(&b, &[]).0);
}

/// Peak resident memory (KiB) of `dooz ARGS` with stdout discarded, from
/// GNU time (Debian package `time`, installed by scripts/install-test-deps).
fn peak_kib(g: &Gateway, args: &[&str]) -> u64 {
    let path: PathBuf = g.data_dir.path().join("dooz.toml");
    std::fs::write(&path, toml::to_string(&g.cfg).unwrap()).unwrap();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_dooz"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time (Debian package time)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines().last().unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_in_bounded_memory() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let ctx = dooz_gateway::server::Context::open(g.cfg.clone())
        .await
        .unwrap();
    let key = dooz_gateway::audit::chain_key(&ctx).await.unwrap();
    let record = |i: usize| dooz_gateway::meta::AuditRecord {
        at: 0,
        tenant_id: Some(g.tenant.id.to_string()),
        actor: g.access_key.clone(),
        source: "127.0.0.1:1".into(),
        action: "s3:PutObject".into(),
        target: format!("busy/{i:08}/{}", "k".repeat(200)),
        result: "200".into(),
        request_id: Some(format!("{i:016X}")),
        detail: Some(format!(
            "{{\"bytes_in\":{i},\"user_agent\":\"{}\"}}",
            "u".repeat(200)
        )),
        gateway: "bench".into(),
    };
    // A first small batch, then a large one: the same export command over
    // 1,000 rows and over 101,000 (~60 MiB of JSON) must need about the same memory.
    let small: Vec<_> = (0..1000).map(record).collect();
    ctx.meta.audit().audit_append(&key, small).await.unwrap();
    let split = dooz_gateway::engine::now_millis() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for chunk in 0..20 {
        let batch: Vec<_> = (0..5000).map(|i| record(1000 + chunk * 5000 + i)).collect();
        ctx.meta.audit().audit_append(&key, batch).await.unwrap();
    }
    let to = split.to_string();
    let few = peak_kib(&g, &["audit", "export", "--to", &to]);
    let many = peak_kib(&g, &["audit", "export"]);
    assert!(
        many < few + 16 * 1024,
        "exporting 101,000 rows peaked at {many} KiB, 1,000 rows at {few} KiB"
    );
    let lines = ok(dooz(&g, &["audit", "export", "--format", "csv"]))
        .matches("\r\n")
        .count();
    assert!(lines > 101_000, "{lines}");
    assert!(verify(&g, &[]).0);
}
