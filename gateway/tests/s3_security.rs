//! Authentication, authorization and integrity, the way a client meets them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::code;

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use dooz_gateway::meta::Policy;
use support::gateway::{Backend, Meta, Options, local_packs_dir, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_other() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let root = g.client();
    root.create_bucket()
        .bucket("root-bucket")
        .send()
        .await
        .unwrap();
    root.put_object()
        .bucket("root-bucket")
        .key("secret.txt")
        .body(ByteStream::from_static(b"root data"))
        .send()
        .await
        .unwrap();

    let (_t, ak, sk) = g.new_tenant("other").await;
    let other = g.client_as(&ak, &sk);
    let listed = other.list_buckets().send().await.unwrap();
    assert!(listed.buckets().is_empty(), "{listed:?}");
    assert_eq!(
        code(
            other
                .get_object()
                .bucket("root-bucket")
                .key("secret.txt")
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        code(
            other
                .head_object()
                .bucket("root-bucket")
                .key("secret.txt")
                .send()
                .await
        ),
        "<403>"
    );
    assert_eq!(
        code(
            other
                .put_object()
                .bucket("root-bucket")
                .key("intruder")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        code(other.list_objects_v2().bucket("root-bucket").send().await),
        "AccessDenied"
    );
    assert_eq!(
        code(
            other
                .delete_object()
                .bucket("root-bucket")
                .key("secret.txt")
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        code(other.delete_bucket().bucket("root-bucket").send().await),
        "AccessDenied"
    );
    // Bucket names are global: taken by another tenant is BucketAlreadyExists.
    assert_eq!(
        code(other.create_bucket().bucket("root-bucket").send().await),
        "BucketAlreadyExists"
    );
    other
        .create_bucket()
        .bucket("other-bucket")
        .send()
        .await
        .unwrap();
    other
        .put_object()
        .bucket("other-bucket")
        .key("secret.txt")
        .body(ByteStream::from_static(b"root data"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            root.get_object()
                .bucket("other-bucket")
                .key("secret.txt")
                .send()
                .await
        ),
        "AccessDenied"
    );
    // Identical content in two tenants is stored twice: no cross-tenant dedup.
    let usage_root = g.engine().meta().usage(Some(g.tenant.id)).await.unwrap();
    let usage_other = g.engine().meta().usage(Some(_t.id)).await.unwrap();
    assert_eq!(usage_root.chunks, 1);
    assert_eq!(usage_other.chunks, 1);

    // Policies inside a tenant.
    let (ro_ak, ro_sk) = g.user("reader", Policy::ReadOnly).await;
    let ro = g.client_as(&ro_ak, &ro_sk);
    let body = ro
        .get_object()
        .bucket("root-bucket")
        .key("secret.txt")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(body, b"root data");
    assert_eq!(
        code(
            ro.put_object()
                .bucket("root-bucket")
                .key("nope")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "AccessDenied"
    );
    let (rw_ak, rw_sk) = g.user("writer", Policy::ReadWrite).await;
    let rw = g.client_as(&rw_ak, &rw_sk);
    rw.put_object()
        .bucket("root-bucket")
        .key("ok")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(rw.create_bucket().bucket("rw-bucket").send().await),
        "AccessDenied"
    );
    g.fsck_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_presigned_urls_and_sigv2() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("auth").send().await.unwrap();
    c.put_object()
        .bucket("auth")
        .key("k")
        .body(ByteStream::from_static(b"presigned body"))
        .send()
        .await
        .unwrap();

    let unknown = g.client_as("DZUNKNOWNKEY00000000", "whatever-secret-1234");
    assert_eq!(
        code(unknown.list_buckets().send().await),
        "InvalidAccessKeyId"
    );
    let wrong = g.client_as(&g.access_key, "not-the-right-secret-at-all");
    assert_eq!(
        code(wrong.list_buckets().send().await),
        "SignatureDoesNotMatch"
    );

    let http = reqwest::Client::new();
    // Anonymous.
    let r = http
        .get(format!("{}/auth/k", g.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // SigV2 is refused outright.
    let r = http
        .get(format!("{}/auth/k", g.endpoint))
        .header(
            "authorization",
            format!("AWS {}:c2lnbmF0dXJl", g.access_key),
        )
        .header(
            "date",
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("<Code>InvalidRequest</Code>"), "{text}");
    assert!(text.contains("AWS4-HMAC-SHA256"), "{text}");

    // Presigned GET and PUT work with plain HTTP clients.
    let url = c
        .get_object()
        .bucket("auth")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let r = http.get(url.uri()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"presigned body");
    let put_url = c
        .put_object()
        .bucket("auth")
        .key("uploaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let r = http
        .put(put_url.uri())
        .body("via presigned put")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let got = c
        .get_object()
        .bucket("auth")
        .key("uploaded")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(got, b"via presigned put");

    // Expiry beyond seven days is refused before the signature is checked.
    let long = url
        .uri()
        .replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
    let r = http.get(long).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("AuthorizationQueryParametersError")
    );
    // A tampered presigned URL fails its signature.
    let tampered = url.uri().replace("/auth/k", "/auth/uploaded");
    let r = http.get(tampered).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    // An expired one is AccessDenied with S3's message.
    let short = c
        .get_object()
        .bucket("auth")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = http.get(short.uri()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("AccessDenied") && text.contains("Request has expired"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_input() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("limits").send().await.unwrap();
    assert_eq!(
        code(
            c.put_object()
                .bucket("limits")
                .key("k".repeat(1025))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "KeyTooLongError"
    );
    assert_eq!(
        code(
            c.put_object()
                .bucket("limits")
                .key("meta")
                .metadata("big", "v".repeat(2100))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "MetadataTooLarge"
    );
    // A wrong Content-MD5 stores nothing.
    assert_eq!(
        code(
            c.put_object()
                .bucket("limits")
                .key("md5")
                .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
                .body(ByteStream::from_static(b"not empty"))
                .send()
                .await
        ),
        "BadDigest"
    );
    assert_eq!(
        code(c.head_object().bucket("limits").key("md5").send().await),
        "NotFound"
    );

    // A declared body over 5 GiB is refused before any byte is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = g.endpoint.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        format!("PUT /limits/huge HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 6000000000\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("EntityTooLarge"), "{text}");

    // Malformed XML.
    let r = reqwest::Client::new()
        .post(format!("{}/limits?delete", g.endpoint))
        .body("<Delete><Object>")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    // The gateway is still healthy after all of it.
    let ready = reqwest::get(format!("{}/health/ready", g.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    g.fsck_clean().await;
}

/// Flipping a byte of a pack on the backend makes GET fail, never return
/// wrong bytes: in the first chunk as a status code, later as a cut stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_packs_are_never_served() {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.chunking = Some((64 * 1024, 256 * 1024, 1024 * 1024));
    let g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("rot").send().await.unwrap();
    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for key in ["first", "later"] {
        c.put_object()
            .bucket("rot")
            .key(key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    }
    // Both keys share their chunks; corrupt one copy of the data by flipping
    // a byte in the first chunk's frame, then one in the last chunk's.
    let meta = g.engine().meta();
    let v = meta
        .get_object("rot", "first", None)
        .await
        .unwrap()
        .unwrap();
    assert!(v.manifest.chunks.len() > 3);
    let flip = |idx: usize| {
        let id = v.manifest.chunks[idx].id;
        let meta = meta.clone();
        let tenant = g.tenant.id;
        let packs = local_packs_dir(&g);
        async move {
            let loc = meta.chunk_locations(tenant, &[id]).await.unwrap()[0].1;
            let hexid = hex::encode(loc.pack_id);
            let path = packs
                .join("packs")
                .join(&hexid[..2])
                .join(format!("{hexid}.dzp"));
            let mut bytes = std::fs::read(&path).unwrap();
            let at = (loc.offset + u64::from(loc.len) / 2) as usize;
            bytes[at] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
        }
    };
    flip(0).await;
    let err = c.get_object().bucket("rot").key("first").send().await;
    assert_eq!(code(err), "InternalError");
    // A range that avoids the damaged chunk still reads.
    let tail = c
        .get_object()
        .bucket("rot")
        .key("later")
        .range(format!("bytes={}-", data.len() - 10))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(tail, data[data.len() - 10..]);

    let last = v.manifest.chunks.len() - 1;
    flip(last).await;
    let res = c
        .get_object()
        .bucket("rot")
        .key("later")
        .range("bytes=1048576-")
        .send()
        .await;
    match res {
        Err(_) => {}
        Ok(out) => {
            let body = out.body.collect().await;
            assert!(
                body.is_err(),
                "a corrupt chunk mid-stream must cut the body"
            );
        }
    }
    // fsck --read-packs notices nothing wrong with the index (the frames are
    // damaged, not the index), but GET refuses: verification is per chunk.
    let ready = reqwest::get(format!("{}/health/live", g.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// Virtual-hosted-style requests from a real client (curl with SigV4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_with_curl() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("vhost").send().await.unwrap();
    c.put_object()
        .bucket("vhost")
        .key("dir/file.txt")
        .body(ByteStream::from_static(b"virtual hosted"))
        .send()
        .await
        .unwrap();
    let port = g.endpoint.rsplit(':').next().unwrap().to_owned();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--resolve",
            &format!("vhost.dooz.test:{port}:127.0.0.1"),
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &format!("{}:{}", g.access_key, g.secret_key),
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            &format!("http://vhost.dooz.test:{port}/dir/file.txt"),
        ])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.stdout, b"virtual hosted");
}
