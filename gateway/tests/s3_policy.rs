//! Access control through real clients: a least-privilege key (a tenant
//! policy attached with the `dooz` CLI) can do exactly what its policy
//! says; anonymous GET works exactly where a bucket policy makes a bucket
//! public and Block Public Access stops it; explicit Deny wins; refusals
//! are AccessDenied with S3's XML body and store nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, PublicAccessBlockConfiguration};
use dooz_gateway::meta::Policy;
use support::gateway::{Backend, Gateway, Meta, Options, start};
use support::raw::{addr, request, send, sign_request};
use support::{code, get, put};

const CI_BUILDS: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "WriteBuilds",
    "Effect": "Allow",
    "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
    "Resource": "arn:aws:s3:::cibuilds/builds/*"
  }]
}"#;

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "dooz failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn keys(c: &Client, bucket: &str) -> Vec<String> {
    c.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key.clone())
        .collect()
}

/// A key whose only right is the ci-builds policy, set up with the CLI.
async fn ci_key(g: &Gateway) -> (String, String) {
    let (key, secret) = g.user("ci-bot", Policy::ReadOnly).await;
    let file = g.data_dir.path().join("ci-builds.json");
    std::fs::write(&file, CI_BUILDS).unwrap();
    let tenant = g.tenant.name.as_str();
    let file = file.to_str().unwrap();
    ok(g.dooz(&[
        "admin",
        "policy",
        "create",
        "--tenant",
        tenant,
        "ci-builds",
        "--file",
        file,
    ]));
    ok(g.dooz(&["admin", "user", "policy", "attach", &key, "ci-builds"]));
    ok(g.dooz(&["admin", "user", "policy", "detach", &key, "read-only"]));
    let listed = ok(g.dooz(&["admin", "user", "policy", "list", &key]));
    assert_eq!(listed.trim(), "ci-builds");
    (key, secret.to_string())
}

async fn least_privilege_key_writes_only_builds(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let admin = g.client();
    for b in ["cibuilds", "other"] {
        admin
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("create");
    }
    put(&admin, "cibuilds", "src/main.rs", b"fn main() {}").await;
    let (key, secret) = ci_key(&g).await;
    let ci = g.client_as(&key, &secret);

    // Exactly its policy: PUT under builds/ in ci, and multipart there.
    put(&ci, "cibuilds", "builds/1/app.tar", b"build one").await;
    let up = ci
        .create_multipart_upload()
        .bucket("cibuilds")
        .key("builds/2/big.tar")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().unwrap();
    let part = ci
        .upload_part()
        .bucket("cibuilds")
        .key("builds/2/big.tar")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(b"part one".to_vec()))
        .send()
        .await
        .expect("part");
    ci.complete_multipart_upload()
        .bucket("cibuilds")
        .key("builds/2/big.tar")
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
        .expect("complete");

    // Nothing else: other prefixes, other buckets, reads, lists, deletes,
    // bucket management, and a copy whose source it may not read.
    let body = || ByteStream::from(b"nope".to_vec());
    let denied = [
        code(
            ci.put_object()
                .bucket("cibuilds")
                .key("src/evil.rs")
                .body(body())
                .send()
                .await,
        ),
        code(
            ci.put_object()
                .bucket("other")
                .key("builds/x")
                .body(body())
                .send()
                .await,
        ),
        code(
            ci.get_object()
                .bucket("cibuilds")
                .key("builds/1/app.tar")
                .send()
                .await,
        ),
        code(ci.list_objects_v2().bucket("cibuilds").send().await),
        code(
            ci.delete_object()
                .bucket("cibuilds")
                .key("builds/1/app.tar")
                .send()
                .await,
        ),
        code(ci.create_bucket().bucket("ci-new").send().await),
        code(ci.list_buckets().send().await),
        code(
            ci.copy_object()
                .bucket("cibuilds")
                .key("builds/copied.rs")
                .copy_source("cibuilds/src/main.rs")
                .send()
                .await,
        ),
        code(
            ci.put_bucket_policy()
                .bucket("cibuilds")
                .policy(CI_BUILDS)
                .send()
                .await,
        ),
    ];
    for (i, c) in denied.iter().enumerate() {
        assert_eq!(c, "AccessDenied", "refusal {i}");
    }

    // A refusal is S3's 403 XML body, and it stored nothing.
    let a = addr(&g.endpoint);
    let mut req = request("PUT", &a, "/cibuilds/src/raw.rs", &[], b"raw".to_vec());
    sign_request(&mut req, &key, &secret);
    let res = send(&a, &req).await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(res.code().as_deref(), Some("AccessDenied"));
    assert!(res.text().contains("<Error>"), "{}", res.text());

    let mut ci_keys = keys(&admin, "cibuilds").await;
    ci_keys.sort();
    assert_eq!(
        ci_keys,
        ["builds/1/app.tar", "builds/2/big.tar", "src/main.rs"]
    );
    assert!(keys(&admin, "other").await.is_empty());
    assert!(admin.head_bucket().bucket("ci-new").send().await.is_err());
    assert_eq!(
        get(&admin, "cibuilds", "builds/2/big.tar").await,
        b"part one"
    );

    // `user can` names the deciding statement; exit status 1 when denied.
    let yes = ok(g.dooz(&[
        "admin",
        "user",
        "can",
        &key,
        "s3:PutObject",
        "arn:aws:s3:::cibuilds/builds/9",
    ]));
    assert!(yes.starts_with("ALLOW"), "{yes}");
    assert!(
        yes.contains("policy ci-builds Statement[0] (Sid WriteBuilds)"),
        "{yes}"
    );
    let no = g.dooz(&[
        "admin",
        "user",
        "can",
        &key,
        "s3:GetObject",
        "arn:aws:s3:::cibuilds/builds/9",
    ]);
    assert_eq!(no.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no.stdout).starts_with("IMPLICIT-DENY"));

    // An attached policy cannot be deleted; a malformed one is refused.
    let tenant = g.tenant.name.as_str();
    let del = g.dooz(&["admin", "policy", "delete", "--tenant", tenant, "ci-builds"]);
    assert!(!del.status.success());
    let bad = g.data_dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#).unwrap();
    let out = g.dooz(&[
        "admin",
        "policy",
        "create",
        "--tenant",
        tenant,
        "bad",
        "--file",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Statement[0].Action"));
    g.fsck_clean().await;
}

async fn raw_get(g: &Gateway, path: &str) -> support::raw::RawResponse {
    let a = addr(&g.endpoint);
    send(&a, &request("GET", &a, path, &[], Vec::new())).await
}

fn public_read(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/public/*"}}]}}"#
    )
}

fn block(all: bool, restrict: bool) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(all)
        .ignore_public_acls(all)
        .block_public_policy(all)
        .restrict_public_buckets(restrict)
        .build()
}

async fn anonymous_get_follows_bucket_policy_and_block_public_access(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let admin = g.client();
    admin
        .create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("create");
    put(&admin, "site", "public/index.html", b"<h1>hello</h1>").await;
    put(&admin, "site", "private/secret", b"secret").await;

    // Anonymous is refused without a policy.
    let r = raw_get(&g, "/site/public/index.html").await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));

    // Block Public Access is on by default: a public policy is refused.
    let pab = admin
        .get_public_access_block()
        .bucket("site")
        .send()
        .await
        .expect("get pab")
        .public_access_block_configuration
        .unwrap();
    assert_eq!(pab.block_public_policy, Some(true));
    assert_eq!(
        code(
            admin
                .put_bucket_policy()
                .bucket("site")
                .policy(public_read("site"))
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        code(admin.get_bucket_policy().bucket("site").send().await),
        "NoSuchBucketPolicy"
    );

    // Malformed policies say so, and are not stored.
    for bad in [
        "not json".to_owned(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#.to_owned(),
        public_read("someone-elses"),
    ] {
        let r = admin.put_bucket_policy().bucket("site").policy(bad.clone()).send().await;
        assert_eq!(code(r), "MalformedPolicy", "{bad}");
    }

    // Turned off for this bucket, the public policy goes in and works for
    // exactly what it names.
    admin
        .put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(block(false, false))
        .send()
        .await
        .expect("put pab");
    admin
        .put_bucket_policy()
        .bucket("site")
        .policy(public_read("site"))
        .send()
        .await
        .expect("put policy");
    let stored = admin
        .get_bucket_policy()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.policy(), Some(public_read("site").as_str()));
    let status = admin
        .get_bucket_policy_status()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.policy_status().and_then(|s| s.is_public()),
        Some(true)
    );

    let r = raw_get(&g, "/site/public/index.html").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"<h1>hello</h1>");
    for path in ["/site/private/secret", "/site", "/site?list-type=2", "/"] {
        let r = raw_get(&g, path).await;
        assert_eq!(
            (r.status, r.code().as_deref()),
            (403, Some("AccessDenied")),
            "{path}"
        );
    }
    let a = addr(&g.endpoint);
    let r = send(
        &a,
        &request("PUT", &a, "/site/public/evil", &[], b"x".to_vec()),
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));
    let r = send(
        &a,
        &request("DELETE", &a, "/site/public/index.html", &[], Vec::new()),
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));
    let mut listed = keys(&admin, "site").await;
    listed.sort();
    assert_eq!(listed, ["private/secret", "public/index.html"]);

    // RestrictPublicBuckets ignores the public policy; the owner still reads.
    admin
        .put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .expect("restrict");
    let r = raw_get(&g, "/site/public/index.html").await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));
    assert_eq!(
        get(&admin, "site", "public/index.html").await,
        b"<h1>hello</h1>"
    );

    // Back to open, then the policy is deleted: private again.
    admin
        .put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(block(false, false))
        .send()
        .await
        .unwrap();
    assert_eq!(raw_get(&g, "/site/public/index.html").await.status, 200);
    admin
        .delete_bucket_policy()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(raw_get(&g, "/site/public/index.html").await.status, 403);

    // Deleting the bucket's configuration brings back the gateway default.
    admin
        .delete_public_access_block()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            admin
                .put_bucket_policy()
                .bucket("site")
                .policy(public_read("site"))
                .send()
                .await
        ),
        "AccessDenied"
    );

    // Only those allowed to manage the bucket change its policy.
    let (ro, ro_secret) = g.user("reader", Policy::ReadOnly).await;
    let reader = g.client_as(&ro, &ro_secret);
    assert_eq!(
        code(reader.delete_bucket_policy().bucket("site").send().await),
        "AccessDenied"
    );
    assert_eq!(
        code(
            reader
                .put_public_access_block()
                .bucket("site")
                .public_access_block_configuration(block(false, false))
                .send()
                .await
        ),
        "AccessDenied"
    );
}

async fn bucket_policy_deny_beats_the_admin_role(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let admin = g.client();
    admin.create_bucket().bucket("vault").send().await.unwrap();
    put(&admin, "vault", "keep", b"forever").await;
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"NoDeletes","Effect":"Deny","Principal":{{"AWS":"arn:dooz:iam::{}:root"}},"Action":["s3:DeleteObject","s3:DeleteBucket"],"Resource":["arn:aws:s3:::vault","arn:aws:s3:::vault/keep*"]}}]}}"#,
        g.tenant.name
    );
    admin
        .put_bucket_policy()
        .bucket("vault")
        .policy(deny)
        .send()
        .await
        .expect("a deny-only policy is not public");
    let status = admin
        .get_bucket_policy_status()
        .bucket("vault")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.policy_status().and_then(|s| s.is_public()),
        Some(false)
    );
    assert_eq!(
        code(
            admin
                .delete_object()
                .bucket("vault")
                .key("keep")
                .send()
                .await
        ),
        "AccessDenied"
    );
    // DeleteObjects is decided key by key, as S3 does: the denied key gets
    // an AccessDenied entry, the others are deleted.
    put(&admin, "vault", "scratch", b"temporary").await;
    let del = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("keep")
                .build()
                .unwrap(),
        )
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("scratch")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = admin
        .delete_objects()
        .bucket("vault")
        .delete(del)
        .send()
        .await
        .unwrap();
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default()))
        .collect();
    assert_eq!(errors, vec![("keep", "AccessDenied")]);
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, vec!["scratch"]);
    assert_eq!(get(&admin, "vault", "keep").await, b"forever");
    assert_eq!(
        code(
            admin
                .head_object()
                .bucket("vault")
                .key("scratch")
                .send()
                .await
        ),
        "NotFound"
    );
    // Writes are not denied.
    put(&admin, "vault", "more", b"data").await;
    // The admin may still remove the policy, and then delete.
    admin
        .delete_bucket_policy()
        .bucket("vault")
        .send()
        .await
        .unwrap();
    admin
        .delete_object()
        .bucket("vault")
        .key("keep")
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_key_writes_only_builds_sqlite() {
    least_privilege_key_writes_only_builds(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_key_writes_only_builds_postgres() {
    least_privilege_key_writes_only_builds(Meta::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_get_follows_bucket_policy_and_block_public_access_sqlite() {
    anonymous_get_follows_bucket_policy_and_block_public_access(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_get_follows_bucket_policy_and_block_public_access_postgres() {
    anonymous_get_follows_bucket_policy_and_block_public_access(Meta::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_policy_deny_beats_the_admin_role_sqlite() {
    bucket_policy_deny_beats_the_admin_role(Meta::Sqlite).await;
}
