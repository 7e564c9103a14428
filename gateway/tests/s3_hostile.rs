//! Hostile clients, one test per hole: requests no S3 client sends (encoded
//! parameter names, POST floods, slowloris, stalled bodies, unread
//! responses, oversized or unverified XML, NUL keys), each answered with the
//! right status, storing nothing, while the gateway keeps serving others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use dooz_gateway::config::ServerConfig;
use support::gateway::{Backend, Gateway, Meta, Options, start};
use support::metrics::metric;
use support::raw::{self, addr, request, send, sign_request, sign_with};
use support::{code, get, pseudo_random, put};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asserts `bucket/key` does not exist.
async fn absent(g: &Gateway, bucket: &str, key: &str) {
    assert_eq!(
        code(
            g.client()
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
        ),
        "NotFound",
        "{key} must not have been stored"
    );
}

/// A normal client is served.
async fn still_serving(g: &Gateway, bucket: &str) {
    let key = format!("alive-{}", rand::random::<u32>());
    put(&g.client(), bucket, &key, b"still here").await;
    assert_eq!(get(&g.client(), bucket, &key).await, b"still here");
}

/// Waits (bounded) until nothing is reserved from the memory budget.
async fn budget_drains(g: &Gateway) {
    for _ in 0..200 {
        if g.engine().budget().in_use_bytes() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "memory budget still in use: {} bytes",
        g.engine().budget().in_use_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_and_long_expiry_cannot_hide_behind_encoded_names() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("enc").send().await.unwrap();
    put(&c, "enc", "k", b"secret").await;
    let a = addr(&g.endpoint);
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());

    // SigV2 in the query, under every spelling s3s decodes to the same name.
    for (i, q) in [
        format!(
            "AWSAccessKeyId={}&Expires=9999999999&Signature=c2ln",
            g.access_key
        ),
        format!(
            "AWS%41ccessKeyId={}&Expires=9999999999&Signature=c2ln",
            g.access_key
        ),
        format!(
            "AWSAccessKeyId={}&Expires=9999999999&%53ignature=c2ln",
            g.access_key
        ),
        "Sig%6eature=c2ln&Expires=1".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let key = format!("v2q-{i}");
        let r = send(
            &a,
            &request("PUT", &a, &format!("/enc/{key}?{q}"), &[], b"x".to_vec()),
        )
        .await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.code().as_deref(), Some("InvalidRequest"), "{q}");
        absent(&g, "enc", &key).await;
    }
    // SigV2 in a second Authorization header.
    let mut two = request(
        "GET",
        &a,
        "/enc/k",
        &[
            ("authorization", "AWS4-HMAC-SHA256 Credential=x"),
            ("date", &date),
        ],
        Vec::new(),
    );
    two.headers_mut().append(
        "authorization",
        http::HeaderValue::from_str(&format!("AWS {}:c2ln", g.access_key)).unwrap(),
    );
    let r = send(&a, &two).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("InvalidRequest"));

    // A presigned URL whose expiry name is encoded is still capped at 7 days.
    let url = c
        .get_object()
        .bucket("enc")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let pq = url.uri().split_once("/enc/k").unwrap().1.to_owned();
    for bad in [
        "X-Amz-Expires=604801",
        "X-Amz-%45xpires=604801",
        "X%2DAmz%2DExpires=999999999",
    ] {
        let q = pq.replace("X-Amz-Expires=300", bad);
        let r = send(
            &a,
            &request("GET", &a, &format!("/enc/k{q}"), &[], Vec::new()),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(
            r.code().as_deref(),
            Some("AuthorizationQueryParametersError"),
            "{bad}"
        );
        assert!(!r.text().contains("secret"));
    }
    // The untouched URL works, the gateway serves on.
    let r = send(
        &a,
        &request("GET", &a, &format!("/enc/k{pq}"), &[], Vec::new()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"secret");

    // SigV2 in a POST form: refused before the file part is read.
    let form = b"--B\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nform-key\r\n--B\r\nContent-Disposition: form-data; name=\"AWSAccessKeyId\"\r\n\r\nDZX\r\n--B\r\nContent-Disposition: form-data; name=\"signature\"\r\n\r\nc2ln\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n--B--\r\n";
    let r = send(
        &a,
        &request(
            "POST",
            &a,
            "/enc",
            &[("content-type", "multipart/form-data; boundary=B")],
            form.to_vec(),
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("InvalidRequest"));
    absent(&g, "enc", "form-key").await;
    still_serving(&g, "enc").await;
}

/// Forty anonymous browser-form POSTs announcing 1 GiB each, plus POSTs to
/// resources that have no POST operation: each is answered at once, before
/// its file (or body), holding no memory, while a normal client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_flood_is_refused_before_its_bodies() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    g.client()
        .create_bucket()
        .bucket("flood")
        .send()
        .await
        .unwrap();
    let a = addr(&g.endpoint);
    let mut flood = Vec::new();
    for i in 0..40 {
        let a = a.clone();
        flood.push(tokio::spawn(async move {
            let (path, ct) = if i % 4 == 3 {
                ("/flood/obj", "application/octet-stream")
            } else {
                ("/flood", "multipart/form-data; boundary=xyz")
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: {a}\r\ncontent-type: {ct}\r\ncontent-length: 1073741824\r\n\r\n"
            );
            let mut s = tokio::net::TcpStream::connect(&a).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            // The form's fields, then the start of its file part.
            let fields = "--xyz\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbig\r\n--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n";
            if i % 4 != 3 {
                s.write_all(fields.as_bytes()).await.unwrap();
            }
            let _ = s.write_all(&vec![b'-'; 64 * 1024]).await;
            raw::read_response(&mut s, Duration::from_secs(30)).await
        }));
    }
    // Served meanwhile.
    still_serving(&g, "flood").await;
    for (i, f) in flood.into_iter().enumerate() {
        let r = f.await.unwrap();
        let expected = if i % 4 == 3 { 405 } else { 403 };
        assert_eq!(r.status, expected, "{i}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"));
    }
    // An XML body announced over the cap is refused before it is read, signed or not.
    let big = (dooz_gateway::s3::front::MAX_XML_BODY + 1).to_string();
    let mut s = tokio::net::TcpStream::connect(&a).await.unwrap();
    s.write_all(
        format!("POST /flood?delete HTTP/1.1\r\nhost: {a}\r\ncontent-length: {big}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let r = raw::read_response(&mut s, Duration::from_secs(30)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("MaxMessageLengthExceeded"));
    budget_drains(&g).await;
    let listed = g
        .client()
        .list_objects_v2()
        .bucket("flood")
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .contents()
            .iter()
            .all(|o| o.key().unwrap().starts_with("alive-")),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_bodies_are_capped_and_their_digests_checked() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("xml").send().await.unwrap();
    put(&c, "xml", "keep", b"kept").await;
    let a = addr(&g.endpoint);
    let (ak, sk) = (g.access_key.clone(), g.secret_key.clone());
    let delete = |extra: &[(&str, &str)], body: Vec<u8>| {
        let mut r = request("POST", &a, "/xml?delete", extra, body);
        sign_request(&mut r, &ak, &sk);
        r
    };
    let doc = b"<Delete><Object><Key>keep</Key></Object></Delete>".to_vec();

    // Over the cap without a Content-Length (chunked): refused, as S3 does
    // (411 MissingContentLength), or stopped at the cap (400).
    let mut huge = b"<Delete>".to_vec();
    huge.resize(dooz_gateway::s3::front::MAX_XML_BODY + 1024, b' ');
    let r = send(&a, &delete(&[("transfer-encoding", "chunked")], huge)).await;
    assert!(matches!(r.status, 400 | 411), "{} {}", r.status, r.text());
    // No digest at all: S3 requires Content-MD5 or a checksum.
    let r = send(&a, &delete(&[], doc.clone())).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("InvalidRequest"));
    // A digest that does not match the body.
    let wrong = base64::engine::general_purpose::STANDARD.encode(md5_of(b"something else"));
    let r = send(&a, &delete(&[("content-md5", &wrong)], doc.clone())).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("BadDigest"));
    let wrong_crc = base64::engine::general_purpose::STANDARD.encode(0u32.to_be_bytes());
    let r = send(
        &a,
        &delete(&[("x-amz-checksum-crc32", &wrong_crc)], doc.clone()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("BadDigest"));
    assert_eq!(get(&c, "xml", "keep").await, b"kept", "nothing was deleted");
    // The right one deletes.
    let right = base64::engine::general_purpose::STANDARD.encode(md5_of(&doc));
    let r = send(&a, &delete(&[("content-md5", &right)], doc.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    absent(&g, "xml", "keep").await;
    // SDKs send a checksum (CRC32 by default): DeleteObjects just works.
    put(&c, "xml", "sdk", b"x").await;
    let del = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("sdk")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    c.delete_objects()
        .bucket("xml")
        .delete(del)
        .send()
        .await
        .unwrap();
    absent(&g, "xml", "sdk").await;
    budget_drains(&g).await;
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(b).into()
}

/// Keys and parameters with NUL or bytes that are not UTF-8 are client
/// errors on both stores, never a 500 from the database.
async fn nul_and_invalid_utf8(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    g.client()
        .create_bucket()
        .bucket("nul")
        .send()
        .await
        .unwrap();
    let a = addr(&g.endpoint);
    for (method, pq) in [
        ("PUT", "/nul/a%00b"),
        ("GET", "/nul/a%00b"),
        ("HEAD", "/nul/a%00b"),
        ("DELETE", "/nul/a%00b"),
        ("PUT", "/nul/a%FFb"),
        ("GET", "/nul/%C3%28"),
        ("GET", "/nul?list-type=2&prefix=a%00"),
        ("GET", "/nul?list-type=2&start-after=%00"),
        ("GET", "/nul?delimiter=%00"),
        ("GET", "/nul?marker=x%00y"),
        ("POST", "/nul/k%00?uploads"),
        ("GET", "/nul/k?uploadId=u%00"),
        ("PUT", "/nul/copy"),
    ] {
        let mut r = request(method, &a, pq, &[], b"body".to_vec());
        if pq == "/nul/copy" {
            r.headers_mut().insert(
                "x-amz-copy-source",
                http::HeaderValue::from_static("/nul/a%00b"),
            );
        }
        sign_request(&mut r, &g.access_key, &g.secret_key);
        let resp = send(&a, &r).await;
        assert!(
            (400..500).contains(&resp.status),
            "{method} {pq} on {meta:?}: {} {}",
            resp.status,
            resp.text()
        );
    }
    still_serving(&g, "nul").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_keys_are_client_errors_on_sqlite() {
    nul_and_invalid_utf8(Meta::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_keys_are_client_errors_on_postgres() {
    nul_and_invalid_utf8(Meta::Postgres).await;
}

fn quick_timeouts() -> ServerConfig {
    ServerConfig {
        header_read_timeout_secs: 2,
        idle_timeout_secs: 2,
        body_stall_timeout_secs: 2,
        send_stall_timeout_secs: 2,
        ..ServerConfig::default()
    }
}

/// Reads until the server closes the connection (bounded wait).
async fn closed_by_server(s: &mut tokio::net::TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{what}: the server kept the connection open"),
        }
    }
}

/// Slowloris (headers that never end) and idle kept-alive connections are
/// closed by the gateway; a normal client is served while they hang, and
/// connections beyond the cap wait rather than pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_closed() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.server = Some(ServerConfig {
        max_connections: 24,
        ..quick_timeouts()
    });
    let g = start(opts).await;
    g.client()
        .create_bucket()
        .bucket("slow")
        .send()
        .await
        .unwrap();
    let a = addr(&g.endpoint);
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut s = tokio::net::TcpStream::connect(&a).await.unwrap();
        s.write_all(format!("GET /slow/k HTTP/1.1\r\nhost: {a}\r\nx-slow: ").as_bytes())
            .await
            .unwrap();
        slow.push(s);
    }
    // Trickle one more byte on each, as slowloris does: it does not help.
    for s in &mut slow {
        s.write_all(b"a").await.unwrap();
    }
    still_serving(&g, "slow").await;
    for s in &mut slow {
        let got = closed_by_server(s, "slowloris").await;
        assert!(
            got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(
        metric(
            &g.admin,
            "dooz_connections_closed_total",
            &["reason=\"header_timeout\""]
        )
        .await
            >= 16.0
    );

    // A kept-alive connection that sends nothing more is closed too.
    let mut idle = tokio::net::TcpStream::connect(&a).await.unwrap();
    idle.write_all(format!("GET /slow HTTP/1.1\r\nhost: {a}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let first = closed_by_server(&mut idle, "idle").await;
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 403"));

    // At the cap, new connections wait for a slot instead of failing.
    let mut held = Vec::new();
    for _ in 0..24 {
        let mut s = tokio::net::TcpStream::connect(&a).await.unwrap();
        s.write_all(b"GET /slow/k HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    still_serving(&g, "slow").await;
    for s in &mut held {
        closed_by_server(s, "held").await;
    }
}

/// Uploads that stop sending hold memory only until the stall timeout:
/// with the budget taken by three stalled uploads, a fourth client's PUT
/// waits, then completes once they fail; nothing of theirs is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_give_their_memory_back() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.chunking = Some((64 * 1024, 256 * 1024, 1024 * 1024));
    opts.pack_target = Some(4 * 1024 * 1024);
    opts.server = Some(quick_timeouts());
    // Room for three uploads at once (each reserves ~19 MiB here).
    opts.memory_budget = Some(64 * 1024 * 1024);
    let g = start(opts).await;
    let per_upload = g.engine().config().upload_reservation();
    assert!(
        3 * per_upload <= g.engine().budget().total_bytes()
            && 4 * per_upload > g.engine().budget().total_bytes(),
        "reservation {per_upload}, budget {}",
        g.engine().budget().total_bytes()
    );
    g.client()
        .create_bucket()
        .bucket("stall")
        .send()
        .await
        .unwrap();
    let a = addr(&g.endpoint);
    let body = pseudo_random(8 * 1024 * 1024, 7);
    let mut stalled = Vec::new();
    for i in 0..3 {
        let mut r = request(
            "PUT",
            &a,
            &format!("/stall/stalled-{i}"),
            &[("content-length", &body.len().to_string())],
            body.clone(),
        );
        sign_with(&mut r, &g.access_key, &g.secret_key, true);
        stalled.push(raw::start(&a, &r, 2 * 1024 * 1024).await);
    }
    // Wait until the three hold their reservations.
    for _ in 0..200 {
        if g.engine().budget().in_use_bytes() >= 3 * per_upload {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(g.engine().budget().in_use_bytes() >= 3 * per_upload);
    // This PUT needs memory the stalled ones hold.
    let c = g.client();
    let data = pseudo_random(3 * 1024 * 1024, 9);
    let waiting = tokio::spawn({
        let c = c.clone();
        let data = data.clone();
        async move {
            c.put_object()
                .bucket("stall")
                .key("patient")
                .body(ByteStream::from(data))
                .send()
                .await
        }
    });
    for s in &mut stalled {
        let r = raw::read_response(s, Duration::from_secs(30)).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.code().as_deref(), Some("RequestTimeout"));
    }
    waiting.await.unwrap().expect("the waiting PUT completes");
    assert_eq!(get(&c, "stall", "patient").await, data);
    for i in 0..3 {
        absent(&g, "stall", &format!("stalled-{i}")).await;
    }
    budget_drains(&g).await;
    g.fsck_clean().await;
}

/// A GET whose body has started never waits for memory behind new
/// requests: with the budget held by stalled uploads and another PUT
/// queued for memory, a large GET of compressible data (whose reads open
/// to several times their ciphertext) still streams to its end while the
/// uploads hold their memory. (Clients give up on a body that stalls: the
/// AWS SDKs' stalled-stream protection after 5 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_get_never_waits_for_memory_uploads_hold() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.chunking = Some((64 * 1024, 256 * 1024, 1024 * 1024));
    opts.pack_target = Some(4 * 1024 * 1024);
    opts.server = Some(ServerConfig {
        // The stalled uploads hold their memory until the test drops them.
        body_stall_timeout_secs: 120,
        ..quick_timeouts()
    });
    opts.memory_budget = Some(64 * 1024 * 1024);
    let g = start(opts).await;
    let per_upload = g.engine().config().upload_reservation();
    let c = g.client();
    c.create_bucket().bucket("floor").send().await.unwrap();
    // Log-like text: compresses several times over.
    let text: Vec<u8> = (0..600_000u32)
        .flat_map(|i| {
            format!(
                "{i:08} GET /api/v1/items/{} 200 {}ms\n",
                i * 7 % 1000,
                i % 97
            )
            .into_bytes()
        })
        .collect();
    put(&c, "floor", "log", &text).await;
    budget_drains(&g).await;

    let mut resp = c
        .get_object()
        .bucket("floor")
        .key("log")
        .send()
        .await
        .unwrap();
    let mut got = resp.body.next().await.unwrap().unwrap().to_vec();
    let floor = g.engine().budget().in_use_bytes();
    assert!(floor > 0, "the GET holds its floor");

    // Uploads take what is left of the budget and stall.
    let a = addr(&g.endpoint);
    let body = pseudo_random(8 * 1024 * 1024, 11);
    let room = g.engine().budget().total_bytes() - floor;
    let n = room / per_upload;
    assert!(n >= 1, "floor {floor}, upload {per_upload}");
    let mut stalled = Vec::new();
    for i in 0..n {
        let mut r = request(
            "PUT",
            &a,
            &format!("/floor/stalled-{i}"),
            &[("content-length", &body.len().to_string())],
            body.clone(),
        );
        sign_with(&mut r, &g.access_key, &g.secret_key, true);
        stalled.push(raw::start(&a, &r, 1024 * 1024).await);
    }
    let held = floor + n * per_upload;
    for _ in 0..200 {
        if g.engine().budget().in_use_bytes() >= held {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(g.engine().budget().in_use_bytes() >= held);
    // A PUT queued for memory: the semaphore is fair, so anything asking
    // for memory now waits behind it.
    let queued = tokio::spawn({
        let c = c.clone();
        async move {
            c.put_object()
                .bucket("floor")
                .key("queued")
                .body(ByteStream::from(pseudo_random(3 * 1024 * 1024, 12)))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    while let Some(bytes) = resp.body.next().await {
        got.extend_from_slice(&bytes.unwrap());
    }
    assert!(got == text, "the GET returned other bytes");
    assert!(
        g.engine().budget().in_use_bytes() >= n * per_upload,
        "the GET finished only after the stalled uploads let go of their memory"
    );
    assert!(!queued.is_finished(), "the queued PUT still waits");
    // Closing the stalled uploads frees their memory; the queued PUT runs.
    drop(stalled);
    queued.await.unwrap().expect("the queued PUT completes");
    budget_drains(&g).await;
    g.fsck_clean().await;
}

/// A client that stops reading a large GET is cut off after the send-stall
/// timeout, and the read-ahead it held goes back to the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_responses_give_their_memory_back() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.server = Some(quick_timeouts());
    let g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("unread").send().await.unwrap();
    let data = pseudo_random(40 * 1024 * 1024, 3);
    put(&c, "unread", "big", &data).await;
    let a = addr(&g.endpoint);
    let mut r = request("GET", &a, "/unread/big", &[], Vec::new());
    sign_request(&mut r, &g.access_key, &g.secret_key);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(a.parse().unwrap()).await.unwrap();
    let mut head = String::from("GET /unread/big HTTP/1.1\r\n");
    for (k, v) in r.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // Read a little, then nothing.
    let mut first = [0u8; 1024];
    let _ = s.read(&mut first).await.unwrap();
    let mut held = false;
    for _ in 0..100 {
        held |= g.engine().budget().in_use_bytes() > 0;
        if held {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(held, "the GET reserved its reads");
    budget_drains(&g).await;
    assert!(
        metric(
            &g.admin,
            "dooz_connections_closed_total",
            &["reason=\"send_stall\""]
        )
        .await
            >= 1.0
    );
    drop(s);
    assert_eq!(get(&c, "unread", "big").await, data);
}

/// A delimiter listing seeks past each common prefix: 20 prefixes of 100
/// keys each cost a few rows per prefix, not the 2,000 rows under them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiter_listing_seeks_past_common_prefixes() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("dirs").send().await.unwrap();
    put(&c, "dirs", "template", b"").await;
    // 2,000 more empty objects in one statement (a template row copied).
    let db = g.data_dir.path().join("meta.db");
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999) \
             INSERT INTO objects (bucket, key, version_id, is_latest, delete_marker, size, etag, attrs, created_at, manifest) \
             SELECT o.bucket, printf('d%02d/k%04d', i / 100, i), o.version_id, o.is_latest, o.delete_marker, \
                    o.size, o.etag, o.attrs, o.created_at, o.manifest \
             FROM objects o, n WHERE o.bucket = 'dirs' AND o.key = 'template'",
        )
        .unwrap();
    })
    .await
    .unwrap();
    let before = metric(&g.admin, "dooz_list_rows_read_total", &[]).await;
    let out = c
        .list_objects_v2()
        .bucket("dirs")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let rows = metric(&g.admin, "dooz_list_rows_read_total", &[]).await - before;
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(prefixes.len(), 20, "{prefixes:?}");
    assert_eq!(prefixes[0], "d00/");
    assert_eq!(out.contents().len(), 1);
    // 21 entries: at most 32 + 3 per entry (+ a final peek), far from 2,001.
    assert!(rows <= 32.0 + 3.0 * 21.0 + 2.0, "read {rows} rows");
    // Paging through the prefixes two at a time visits each once.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_objects_v2()
            .bucket("dirs")
            .delimiter("/")
            .prefix("d")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(
            page.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 20);
    seen.dedup();
    assert_eq!(seen.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_buckets_is_paged() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    for b in ["page-a", "page-b", "page-c", "page-d", "other-e"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let out = c
            .list_buckets()
            .max_buckets(2)
            .prefix("page-")
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(out.buckets().len() <= 2);
        names.extend(out.buckets().iter().map(|b| b.name().unwrap().to_owned()));
        token = out.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["page-a", "page-b", "page-c", "page-d"]);
    let all = c.list_buckets().send().await.unwrap();
    assert_eq!(all.buckets().len(), 5);
    assert_eq!(
        code(c.list_buckets().max_buckets(10_001).send().await),
        "InvalidArgument"
    );
}

/// An unknown access key costs one database read, however often it comes;
/// a string that cannot be an access key costs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_keys_are_remembered() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let reads = || {
        metric(
            &g.admin,
            "dooz_meta_operation_duration_seconds_count",
            &["operation=\"get_user\""],
        )
    };
    let before = reads().await;
    let unknown = g.client_as("DZNOSUCHKEY000000000", "whatever-secret-1234");
    for _ in 0..15 {
        assert_eq!(
            code(unknown.list_buckets().send().await),
            "InvalidAccessKeyId"
        );
    }
    assert_eq!(reads().await - before, 1.0);
    let nonsense = g.client_as("not-a-key!", "whatever-secret-1234");
    for _ in 0..5 {
        assert!(nonsense.list_buckets().send().await.is_err());
    }
    assert_eq!(reads().await - before, 1.0);
    // A real key still works.
    g.client().list_buckets().send().await.unwrap();
}

/// A multipart upload whose parts add up to more than 5 TiB is refused at
/// completion (the part sizes are forged in the database: uploading 5 TiB
/// is not a test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_objects_are_capped_at_5_tib() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("mp-cap").send().await.unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("mp-cap")
        .key("huge")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let mut parts = Vec::new();
    for n in 1..=2 {
        let body = pseudo_random(if n == 1 { 5 * 1024 * 1024 } else { 10 }, n as u64);
        let out = c
            .upload_part()
            .bucket("mp-cap")
            .key("huge")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let db = g.data_dir.path().join("meta.db");
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch("UPDATE parts SET size = 3 * 1024 * 1024 * 1024 * 1024")
            .unwrap();
    })
    .await
    .unwrap();
    let done = c
        .complete_multipart_upload()
        .bucket("mp-cap")
        .key("huge")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(done), "EntityTooLarge");
    absent(&g, "mp-cap", "huge").await;
    c.abort_multipart_upload()
        .bucket("mp-cap")
        .key("huge")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    budget_drains(&g).await;
}
