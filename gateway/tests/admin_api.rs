//! The admin HTTP API as an operator meets it: over HTTP with a bearer token
//! (none or a wrong one is refused with a JSON error), every endpoint doing
//! what `dooz admin` does, every operation of the served OpenAPI document
//! answering as documented, and `dooz admin --endpoint --token` running the
//! same commands with no database credentials — with the same output as
//! the local commands, and each call in the audit log. Both metadata stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::code;
use support::gateway::{Backend, Gateway, Meta, Options, start};

const TOKEN: &str = "admin-api-token-0123456789";

async fn gateway(meta: Meta) -> Gateway {
    let mut opts = Options::new(meta, Backend::Local);
    opts.admin = Some(dooz_gateway::config::AdminConfig {
        token: Some(TOKEN.into()),
        ..Default::default()
    });
    start(opts).await
}

/// One call with the right token: status and JSON body.
async fn call(g: &Gateway, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}/admin/v1{path}", g.admin))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/json"), "{path}");
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// `dooz` with the given environment only: no config file, no data dir,
/// no database — what an operator's laptop has.
fn dooz_remote(args: &[&str], env: &[(&str, &str)]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dooz"))
        .args(args)
        .env_clear()
        .env("USER", "remote-operator")
        .envs(env.iter().copied())
        .current_dir(cwd.path())
        .output()
        .unwrap();
    // Nothing local was created: the work happened in the gateway.
    assert!(
        std::fs::read_dir(cwd.path()).unwrap().next().is_none(),
        "dooz admin --endpoint wrote into its working directory"
    );
    out
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

fn audit_rows(g: &Gateway) -> Vec<Value> {
    ok(g.dooz(&["audit", "export", "--format", "jsonl"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_a_wrong_one_is_refused_with_a_json_error() {
    let g = gateway(Meta::Sqlite).await;
    let http = reqwest::Client::new();
    let url = format!("{}/admin/v1/tenants", g.admin);
    for token in [None, Some("admin-api-token-012345678"), Some("")] {
        let mut req = http.post(&url).json(&json!({"name": "intruder"}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert!(r.headers().contains_key("www-authenticate"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(error_code(&body), "Unauthorized");
    }
    // Basic auth with the right secret is not a bearer token.
    let r = http
        .get(&url)
        .basic_auth(TOKEN, None::<&str>)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Nothing was created by the refused calls.
    let (status, tenants) = call(&g, Method::GET, "/tenants", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root"]);
    // Unknown routes and wrong methods say so, past the token check only.
    let (status, body) = call(&g, Method::GET, "/nothing-here", None).await;
    assert_eq!((status, error_code(&body)), (404, "NoSuchRoute"));
    let r = http.put(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, POST");
    // The CLI with a wrong token fails and says which setting to check.
    let out = dooz_remote(
        &["admin", "--endpoint", &g.admin, "tenant", "list"],
        &[("DOOZ_ADMIN_TOKEN", "wrong-token")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin token required") && err.contains("--token"),
        "{err}"
    );
}

async fn every_endpoint(meta: Meta) {
    let g = gateway(meta).await;

    // Tenants.
    let (s, t) = call(&g, Method::POST, "/tenants", Some(json!({"name": "acme"}))).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["name"], "acme");
    let (s, e) = call(&g, Method::POST, "/tenants", Some(json!({"name": "acme"}))).await;
    assert_eq!((s, error_code(&e)), (409, "Conflict"));
    let (s, e) = call(
        &g,
        Method::POST,
        "/tenants",
        Some(json!({"name": "x", "cipher": "rot13"})),
    )
    .await;
    assert_eq!((s, error_code(&e)), (400, "InvalidArgument"), "{e}");
    let (_, tenants) = call(&g, Method::GET, "/tenants", None).await;
    let mut names: Vec<&str> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["acme", "root"]);

    // Users: the secret comes once and works with an S3 client.
    let (s, admin) = call(
        &g,
        Method::POST,
        "/users",
        Some(json!({"tenant": "acme", "name": "ops", "policy": "admin"})),
    )
    .await;
    assert_eq!(s, 201, "{admin}");
    let (ak, sk) = (
        admin["access_key"].as_str().unwrap().to_owned(),
        admin["secret_key"].as_str().unwrap().to_owned(),
    );
    let (s, reader) = call(
        &g,
        Method::POST,
        "/users",
        Some(json!({"tenant": "acme", "name": "reader", "policy": "read-only"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, e) = call(
        &g,
        Method::POST,
        "/users",
        Some(json!({"tenant": "acme", "name": "bad", "policy": "superuser"})),
    )
    .await;
    assert_eq!((s, error_code(&e)), (400, "InvalidArgument"));
    let (s, e) = call(
        &g,
        Method::POST,
        "/users",
        Some(json!({"tenant": "nobody", "name": "x"})),
    )
    .await;
    assert_eq!((s, error_code(&e)), (404, "NotFound"));
    let (s, e) = call(
        &g,
        Method::POST,
        "/users",
        Some(json!({"tenant": "acme", "name": "x", "surprise": 1})),
    )
    .await;
    assert_eq!((s, error_code(&e)), (400, "InvalidArgument"));
    let (_, users) = call(&g, Method::GET, "/users?tenant=acme", None).await;
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2, "the refused creations stored nothing");
    assert!(users.iter().all(|u| u.get("secret_key").is_none()));
    let ops = users
        .iter()
        .find(|u| u["access_key"] == ak.as_str())
        .unwrap();
    assert_eq!(ops["policy"], "admin");
    assert_eq!(
        ops["tenant_id"],
        tenants
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "acme")
            .unwrap()["id"]
    );
    let (_, policies) = call(&g, Method::GET, "/policies", None).await;
    let policy_names: Vec<&str> = policies
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(policy_names, ["admin", "read-write", "read-only"]);

    // Buckets.
    let (s, b) = call(
        &g,
        Method::POST,
        "/buckets",
        Some(json!({"name": "acme-data", "tenant": "acme", "versioning": true})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["versioning"], "enabled");
    let (s, e) = call(
        &g,
        Method::POST,
        "/buckets",
        Some(json!({"name": "Bad_Name", "tenant": "acme"})),
    )
    .await;
    assert_eq!((s, error_code(&e)), (400, "InvalidArgument"));
    let (s, e) = call(
        &g,
        Method::POST,
        "/buckets",
        Some(json!({"name": "acme-data", "tenant": "root"})),
    )
    .await;
    assert_eq!((s, error_code(&e)), (409, "Conflict"));
    let c = g.client_as(&ak, &sk);
    for i in 0..2 {
        c.put_object()
            .bucket("acme-data")
            .key("k")
            .body(ByteStream::from(vec![i; 1000]))
            .send()
            .await
            .unwrap();
    }
    let ro = g.client_as(
        reader["access_key"].as_str().unwrap(),
        reader["secret_key"].as_str().unwrap(),
    );
    assert_eq!(
        code(ro.put_object().bucket("acme-data").key("x").send().await),
        "AccessDenied"
    );
    let (_, buckets) = call(&g, Method::GET, "/buckets?tenant=acme", None).await;
    assert_eq!(buckets.as_array().unwrap().len(), 1);
    assert_eq!(buckets[0]["name"], "acme-data");
    assert_eq!(buckets[0]["backend"], "main");

    // Usage.
    let (s, usage) = call(&g, Method::GET, "/usage?tenant=acme", None).await;
    assert_eq!(s, 200);
    assert_eq!(usage["objects"], 2, "{usage}");
    assert_eq!(usage["logical_bytes"], 2000);
    assert_eq!(usage["tenants"][0]["name"], "acme");
    let (s, e) = call(&g, Method::GET, "/usage?tenant=nobody", None).await;
    assert_eq!((s, error_code(&e)), (404, "NotFound"));

    // Bucket deletion: not while it holds versions, unless forced.
    let (s, e) = call(&g, Method::DELETE, "/buckets/acme-data", None).await;
    assert_eq!((s, error_code(&e)), (409, "Conflict"), "{e}");
    let (s, d) = call(&g, Method::DELETE, "/buckets/acme-data?force=true", None).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["versions_deleted"], 2);
    assert_eq!(
        code(c.head_bucket().bucket("acme-data").send().await),
        "NotFound"
    );
    let (s, e) = call(&g, Method::DELETE, "/buckets/acme-data", None).await;
    assert_eq!((s, error_code(&e)), (404, "NotFound"));

    // Backends.
    let (_, backends) = call(&g, Method::GET, "/backends", None).await;
    assert_eq!(
        backends,
        json!([{"name": "main", "kind": "local", "default": true, "up": true}])
    );

    // The collector: a dry run, a real run, then the status shows it.
    let (s, r) = call(&g, Method::POST, "/gc/run?wait=true&dry_run=true", None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["dry_run"].clone(), r["result"].clone()),
        (json!(true), json!("ok"))
    );
    let (s, r) = call(&g, Method::POST, "/gc/run?wait=true", None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["result"], "ok", "{r}");
    assert!(r["summary"].as_str().unwrap().starts_with("reclaimed"));
    let (s, st) = call(&g, Method::GET, "/gc", None).await;
    assert_eq!(s, 200);
    assert_eq!(st["running"], false);
    assert_eq!(st["last_run"]["dry_run"], false);
    assert!(st["runs_ok"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["last_success"].as_i64().unwrap() > 1_700_000_000, "{st}");
    let (s, e) = call(&g, Method::POST, "/gc/run?wait=maybe", None).await;
    assert_eq!((s, error_code(&e)), (400, "InvalidArgument"));

    // Deleting a user.
    let (s, _) = call(&g, Method::DELETE, &format!("/users/{ak}"), None).await;
    assert_eq!(s, 200);
    let (s, e) = call(&g, Method::DELETE, &format!("/users/{ak}"), None).await;
    assert_eq!((s, error_code(&e)), (404, "NotFound"));

    // Every call is in the audit log as the API's, with the client's
    // address, and no secret; the chain is intact.
    let rows = audit_rows(&g);
    let api: Vec<&Value> = rows.iter().filter(|r| r["actor"] == "api:token").collect();
    let created: Vec<&&Value> = api
        .iter()
        .filter(|r| r["action"] == "admin:user.create")
        .collect();
    assert_eq!(created.len(), 5, "two ok, three refused");
    assert_eq!(created.iter().filter(|r| r["result"] == "ok").count(), 2);
    assert!(
        api.iter()
            .all(|r| r["source"].as_str().unwrap().starts_with("127.0.0.1:"))
    );
    for action in [
        "admin:tenant.create",
        "admin:tenant.list",
        "admin:user.list",
        "admin:user.delete",
        "admin:policy.list",
        "admin:bucket.create",
        "admin:bucket.list",
        "admin:bucket.delete",
        "admin:usage",
        "admin:backend.list",
        "admin:gc.run",
        "admin:gc.status",
    ] {
        assert!(
            api.iter().any(|r| r["action"] == action),
            "{action} not recorded"
        );
    }
    let delete = api
        .iter()
        .find(|r| r["action"] == "admin:bucket.delete" && r["result"] == "ok")
        .unwrap();
    assert_eq!(delete["target"], "acme-data");
    let all = serde_json::to_string(&rows).unwrap();
    assert!(!all.contains(&sk), "a secret reached the audit log");
    assert!(ok(g.dooz(&["audit", "verify"])).contains("chain intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_sqlite() {
    every_endpoint(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_postgres() {
    every_endpoint(Meta::Postgres).await;
}

/// Every operation the served document lists answers (with a status the
/// document lists for it), and nothing else under /admin/v1 does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_openapi_document_answers() {
    let g = gateway(Meta::Sqlite).await;
    let (s, doc) = call(&g, Method::GET, "/openapi.json", None).await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path
                .replace("{access_key}", "DZNOSUCHKEY")
                .replace("{name}", "no-such-bucket")
                .replace("{tenant}", "no-such-tenant")
                .replace("{policy}", "no-such-policy")
                .replace("{scope}", "key")
                .replace("{subject}", "DZNOSUCHKEY");
            let body = op.get("requestBody").map(|_| json!({}));
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, answer) = call(&g, m.clone(), &concrete, body).await;
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{m} {path} answered {status} ({answer}), which the document does not list"
            );
            assert_ne!(error_code(&answer), "NoSuchRoute", "{m} {path}");
            // Every documented schema reference resolves.
            for r in serde_json::to_string(op)
                .unwrap()
                .split("#/components/schemas/")
                .skip(1)
            {
                let name = r.split('"').next().unwrap();
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "{path}: schema {name} is not defined"
                );
            }
            operations += 1;
        }
    }
    assert_eq!(operations, 28, "the routes api.rs serves");
    // A method the document does not list for a path is refused.
    let (s, e) = call(&g, Method::DELETE, "/tenants", None).await;
    assert_eq!((s, error_code(&e)), (405, "MethodNotAllowed"));
}

async fn cli_through_the_endpoint(meta: Meta) {
    let g = gateway(meta).await;
    let env = [
        ("DOOZ_ADMIN_ENDPOINT", g.admin.as_str()),
        ("DOOZ_ADMIN_TOKEN", TOKEN),
    ];
    let remote = |args: &[&str]| {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        dooz_remote(&all, &env)
    };
    assert!(ok(remote(&["tenant", "create", "beta"])).starts_with("tenant beta created"));
    // The flags work as well as the environment.
    let listed = ok(dooz_remote(
        &[
            "admin",
            "--endpoint",
            &g.admin,
            "--token",
            TOKEN,
            "tenant",
            "list",
            "--json",
        ],
        &[],
    ));
    // Same answer as the command run on the metadata store.
    assert_eq!(listed, ok(g.dooz(&["admin", "tenant", "list", "--json"])));
    assert!(listed.contains("\"beta\""));

    let user: Value = serde_json::from_str(&ok(remote(&[
        "user", "create", "--tenant", "beta", "--name", "ops", "--policy", "admin", "--json",
    ])))
    .unwrap();
    let ak = user["access_key"].as_str().unwrap();
    let sk = user["secret_key"].as_str().unwrap();
    assert_eq!(user["tenant"], "beta");
    let users = ok(remote(&["user", "list", "--tenant", "beta"]));
    assert!(users.contains(ak) && !users.contains(sk), "{users}");
    assert_eq!(
        ok(remote(&["user", "list", "--json"])),
        ok(g.dooz(&["admin", "user", "list", "--json"]))
    );
    assert!(ok(remote(&["user", "policies"])).contains("read-only"));

    assert!(ok(remote(&["bucket", "create", "beta-b", "--tenant", "beta"])).contains("created"));
    let c = g.client_as(ak, sk);
    c.put_object()
        .bucket("beta-b")
        .key("k")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let buckets = ok(remote(&["bucket", "list", "--json"]));
    assert_eq!(buckets, ok(g.dooz(&["admin", "bucket", "list", "--json"])));
    assert!(buckets.contains("beta-b"));
    let usage: Value =
        serde_json::from_str(&ok(remote(&["usage", "--tenant", "beta", "--json"]))).unwrap();
    assert_eq!(usage["objects"], 1);
    assert!(ok(remote(&["usage"])).contains("dedup ratio"));
    let backends: Value = serde_json::from_str(&ok(remote(&["backends", "--json"]))).unwrap();
    assert_eq!(backends[0]["up"], true);
    let run: Value =
        serde_json::from_str(&ok(remote(&["gc", "run", "--dry-run", "--json"]))).unwrap();
    assert_eq!(run["dry_run"], true);
    assert!(ok(remote(&["gc", "run"])).starts_with("reclaimed"));
    assert!(ok(remote(&["gc", "status"])).contains("last API run"));

    // Refusals come back as failures with the gateway's message.
    let out = remote(&["bucket", "delete", "beta-b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert!(ok(remote(&["bucket", "delete", "beta-b", "--force"])).contains("deleted"));
    point_in_time_and_lifecycle_through_the_endpoint(&g, &remote, &c).await;
    policies_through_the_endpoint(&g, &remote, ak);
    assert!(ok(remote(&["user", "delete", ak])).contains("deleted"));
    let out = remote(&["user", "delete", ak]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
    let out = dooz_remote(&["admin", "--endpoint", &g.admin, "tenant", "list"], &[]);
    assert!(!out.status.success(), "no token, no call");

    // The gateway recorded the calls, naming the operator who ran them.
    let rows = audit_rows(&g);
    let create = rows
        .iter()
        .find(|r| r["action"] == "admin:user.create" && r["actor"] == "api:token")
        .unwrap();
    assert_eq!(create["detail"]["operator"], "remote-operator", "{create}");
    assert_eq!(create["result"], "ok");
    assert!(
        rows.iter()
            .any(|r| r["action"] == "admin:bucket.delete" && r["result"] == "ok")
    );
}

/// `bucket ls --at`, `bucket restore` and `lifecycle status` through the
/// API: the same output as the commands run on the metadata store, and a
/// restore that really brings the old content back.
async fn point_in_time_and_lifecycle_through_the_endpoint(
    g: &Gateway,
    remote: &dyn Fn(&[&str]) -> Output,
    c: &aws_sdk_s3::Client,
) {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    };
    assert!(
        ok(remote(&[
            "bucket",
            "create",
            "beta-v",
            "--tenant",
            "beta",
            "--versioning"
        ]))
        .contains("created")
    );
    let put = async |body: &'static [u8]| {
        c.put_object()
            .bucket("beta-v")
            .key("doc")
            .body(ByteStream::from_static(body))
            .send()
            .await
            .unwrap();
    };
    put(b"first").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let then = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    put(b"second version").await;

    let ls = |args: &[&str]| {
        let mut all = vec!["bucket", "ls", "beta-v", "--json"];
        all.extend_from_slice(args);
        all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    fn as_strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let local = |args: &[String]| {
        let mut all = vec!["admin".to_owned()];
        all.extend_from_slice(args);
        ok(g.dooz(&all.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let at_then = ls(&["--at", &then]);
    let listed: Value = serde_json::from_str(&ok(remote(&as_strs(&at_then)))).unwrap();
    assert_eq!(listed[0]["size"], 5, "{listed}");
    assert_eq!(ok(remote(&as_strs(&at_then))), local(&at_then));
    let now: Value = serde_json::from_str(&ok(remote(&as_strs(&ls(&[]))))).unwrap();
    assert_eq!(now[0]["size"], 14, "{now}");

    let dry: Value = serde_json::from_str(&ok(remote(&[
        "bucket",
        "restore",
        "beta-v",
        "--at",
        &then,
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        (dry["dry_run"].clone(), dry["restored"].clone()),
        (json!(true), json!(1))
    );
    let text = ok(remote(&["bucket", "restore", "beta-v", "--at", &then]));
    assert!(text.contains("restore doc from version"), "{text}");
    assert!(text.contains("1 restored"), "{text}");
    let body = c
        .get_object()
        .bucket("beta-v")
        .key("doc")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"first");
    // A time that is not one is the gateway's 400, said to the operator.
    let out = remote(&["bucket", "ls", "beta-v", "--at", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    c.put_bucket_lifecycle_configuration()
        .bucket("beta-v")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("old")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("").build())
                        .expiration(LifecycleExpiration::builder().days(30).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let status = ok(remote(&["lifecycle", "status", "--json"]));
    assert_eq!(status, ok(g.dooz(&["lifecycle", "status", "--json"])));
    let rows: Value = serde_json::from_str(&status).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["bucket"] == "beta-v" && r["rules"] == 1),
        "{rows}"
    );
}

/// `dooz admin policy …`, `user policy …` and `user can` through the API:
/// the same answers as on the metadata store, condition keys included.
fn policies_through_the_endpoint(g: &Gateway, remote: &dyn Fn(&[&str]) -> Output, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-internal.json");
    std::fs::write(
        &file,
        r#"{"Version": "2012-10-17", "Statement": [{"Sid": "NoInternal", "Effect": "Deny",
            "Action": "s3:*", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let created = ok(remote(&[
        "policy",
        "create",
        "--tenant",
        "beta",
        "no-internal",
        "--file",
        file,
    ]));
    assert!(created.contains("stored"), "{created}");
    let list = ["policy", "list", "--tenant", "beta", "--json"];
    let mut local_list = vec!["admin"];
    local_list.extend_from_slice(&list);
    assert_eq!(ok(remote(&list)), ok(g.dooz(&local_list)));
    assert!(
        ok(remote(&[
            "policy",
            "show",
            "--tenant",
            "beta",
            "no-internal"
        ]))
        .contains("10.0.0.0/8")
    );
    // A malformed document is the gateway's 400, with where it is wrong.
    std::fs::write(dir.path().join("bad.json"), r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:ec2:::x"}]}"#).unwrap();
    let bad = dir.path().join("bad.json");
    let out = remote(&[
        "policy",
        "create",
        "--tenant",
        "beta",
        "bad",
        "--file",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Statement[0].Resource"));

    assert!(ok(remote(&["user", "policy", "attach", key, "no-internal"])).contains("attached"));
    let held = ok(remote(&["user", "policy", "list", key, "--json"]));
    assert_eq!(
        held,
        ok(g.dooz(&["admin", "user", "policy", "list", key, "--json"]))
    );
    assert!(
        held.contains("no-internal") && held.contains("admin"),
        "{held}"
    );
    let can = |extra: &[&str]| {
        let mut args = vec!["user", "can", key, "s3:GetObject", "arn:aws:s3:::beta-b/k"];
        args.extend_from_slice(extra);
        let mut local = vec!["admin"];
        local.extend_from_slice(&args);
        let (r, l) = (remote(&args), g.dooz(&local));
        assert_eq!(r.stdout, l.stdout, "remote and local answers differ");
        assert_eq!(r.status.code(), l.status.code());
        r
    };
    let allowed = can(&[]);
    assert!(allowed.status.success());
    assert!(String::from_utf8_lossy(&allowed.stdout).starts_with("ALLOW"));
    let denied = can(&["--context", "aws:SourceIp=10.0.0.7"]);
    assert_eq!(denied.status.code(), Some(1));
    let text = String::from_utf8_lossy(&denied.stdout).into_owned();
    assert!(
        text.starts_with("EXPLICIT-DENY") && text.contains("Sid NoInternal"),
        "{text}"
    );

    assert!(ok(remote(&["user", "policy", "detach", key, "no-internal"])).contains("detached"));
    let out = remote(&["user", "policy", "detach", key, "no-internal"]);
    assert!(!out.status.success(), "not attached any more");
    assert!(
        ok(remote(&[
            "policy",
            "delete",
            "--tenant",
            "beta",
            "no-internal"
        ]))
        .contains("deleted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_through_the_endpoint_sqlite() {
    cli_through_the_endpoint(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_through_the_endpoint_postgres() {
    cli_through_the_endpoint(Meta::Postgres).await;
}

/// Policies over the API: a tenant policy is stored (a malformed one is
/// refused with where it is wrong), attached to a user, decides `can`, and
/// cannot be deleted while attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_routes_store_attach_and_decide() {
    let g = gateway(Meta::Sqlite).await;
    let t = g.tenant.name.clone();
    let (key, _) = g.user("ci", dooz_gateway::meta::Policy::ReadOnly).await;
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Logs", "Effect": "Allow",
        "Action": "s3:PutObject", "Resource": "arn:aws:s3:::logs/*"}]});
    let bad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "s3:PutObject", "Resource": "arn:aws:ec2:::x"}]});
    let (s, e) = call(
        &g,
        Method::PUT,
        &format!("/tenants/{t}/policies/logs"),
        Some(bad),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Statement[0].Resource"),
        "{e}"
    );
    let (s, _) = call(
        &g,
        Method::PUT,
        &format!("/tenants/{t}/policies/logs"),
        Some(doc.clone()),
    )
    .await;
    assert_eq!(s, 200);
    let (s, shown) = call(
        &g,
        Method::GET,
        &format!("/tenants/{t}/policies/logs"),
        None,
    )
    .await;
    assert_eq!((s, &shown["document"]), (200, &doc));
    let (_, list) = call(&g, Method::GET, &format!("/tenants/{t}/policies"), None).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "read-write", "read-only", "logs"]);

    let can = |action: &'static str| {
        let (g, key) = (&g, key.clone());
        async move {
            let (s, a) = call(
                g,
                Method::GET,
                &format!("/users/{key}/can?action={action}&resource=arn:aws:s3:::logs/x"),
                None,
            )
            .await;
            assert_eq!(s, 200, "{a}");
            a
        }
    };
    assert_eq!(can("s3:PutObject").await["decision"], "implicit-deny");
    let (s, _) = call(
        &g,
        Method::PUT,
        &format!("/users/{key}/policies/logs"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (_, held) = call(&g, Method::GET, &format!("/users/{key}/policies"), None).await;
    assert_eq!(held, json!(["logs", "read-only"]));
    let a = can("s3:PutObject").await;
    assert_eq!(
        (a["allowed"].as_bool(), a["statement"].as_str()),
        (Some(true), Some("policy logs Statement[0] (Sid Logs)"))
    );
    let (s, e) = call(
        &g,
        Method::DELETE,
        &format!("/tenants/{t}/policies/logs"),
        None,
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = call(
        &g,
        Method::DELETE,
        &format!("/users/{key}/policies/logs"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &g,
        Method::DELETE,
        &format!("/tenants/{t}/policies/logs"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(can("s3:PutObject").await["decision"], "implicit-deny");
}
