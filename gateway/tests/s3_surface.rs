//! The S3 surface browsers and SDKs reach beyond object I/O, over real TCP
//! with aws-sdk-s3 and raw HTTP, on both metadata stores: CORS (bucket
//! rules, unauthenticated preflights, headers on actual and presigned
//! responses and on errors), SSE-S3 headers and bucket encryption,
//! GetObjectAttributes, and POST Object forms signed here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, CorsConfiguration, CorsRule,
    ObjectAttributes, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, StorageClass,
};
use support::code;
use support::gateway::{Backend, Meta, Options, start};
use support::raw;

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    let mut b = CorsRule::builder();
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    for h in headers {
        b = b.allowed_headers(*h);
    }
    b.build().unwrap()
}

fn cors(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .unwrap()
}

async fn preflight(addr: &str, path: &str, headers: &[(&str, &str)]) -> raw::RawResponse {
    raw::send(
        addr,
        &raw::request("OPTIONS", addr, path, headers, Vec::new()),
    )
    .await
}

async fn cors_rules_preflights_and_headers(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    let addr = raw::addr(&g.endpoint);
    c.create_bucket().bucket("web").send().await.unwrap();
    assert_eq!(
        code(c.get_bucket_cors().bucket("web").send().await),
        "NoSuchCORSConfiguration"
    );
    // Without rules every preflight is refused, unauthenticated as it is.
    let r = preflight(
        &addr,
        "/web/k",
        &[
            ("origin", "http://www.app.test"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("CORSResponse")));

    // S3's validation errors; nothing is stored.
    let bad = [
        (rule(&["*"], &["PATCH"], &[]), "InvalidRequest"),
        (rule(&["http://*.*.test"], &["GET"], &[]), "InvalidRequest"),
        (rule(&["*"], &["GET"], &["x-*-*"]), "InvalidRequest"),
        (
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("GET")
                .expose_headers("*")
                .build()
                .unwrap(),
            "InvalidRequest",
        ),
    ];
    for (r, want) in bad {
        let got = code(
            c.put_bucket_cors()
                .bucket("web")
                .cors_configuration(cors(vec![r.clone()]))
                .send()
                .await,
        );
        assert_eq!(got, want, "{r:?}");
    }
    assert_eq!(
        code(c.get_bucket_cors().bucket("web").send().await),
        "NoSuchCORSConfiguration"
    );

    let upload = CorsRule::builder()
        .id("upload")
        .allowed_origins("http://*.app.test")
        .allowed_methods("PUT")
        .allowed_methods("GET")
        .allowed_headers("Content-Type")
        .allowed_headers("x-amz-*")
        .expose_headers("ETag")
        .expose_headers("x-amz-version-id")
        .max_age_seconds(600)
        .build()
        .unwrap();
    let anyone = rule(&["*"], &["GET", "HEAD"], &[]);
    c.put_bucket_cors()
        .bucket("web")
        .cors_configuration(cors(vec![upload.clone(), anyone.clone()]))
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules(), &[upload, anyone]);

    // A preflight the first rule allows: its headers, the requested ones
    // echoed, credentials allowed for a named origin.
    let r = preflight(
        &addr,
        "/web/photos/cat.png",
        &[
            ("origin", "http://www.app.test"),
            ("access-control-request-method", "PUT"),
            (
                "access-control-request-headers",
                "content-type, x-amz-meta-a",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://www.app.test")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT, GET"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-amz-meta-a")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("ETag, x-amz-version-id")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("vary").is_some_and(|v| v.contains("Origin")));
    // A header no rule allows, a method the wildcard rule does not allow,
    // an origin outside the pattern: refused.
    for headers in [
        [
            ("origin", "http://www.app.test"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "authorization"),
        ],
        [
            ("origin", "http://evil.test"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
        ],
        [
            ("origin", "https://www.app.test"),
            ("access-control-request-method", "DELETE"),
            ("access-control-request-headers", "content-type"),
        ],
    ] {
        let r = preflight(&addr, "/web/k", &headers).await;
        assert_eq!(
            (r.status, r.code().as_deref()),
            (403, Some("CORSResponse")),
            "{headers:?}"
        );
        assert!(r.header("access-control-allow-origin").is_none());
    }
    // The wildcard rule: `*`, no credentials; bucket-level preflights too.
    let r = preflight(
        &addr,
        "/web",
        &[
            ("origin", "http://elsewhere.test"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
    // Malformed preflights are 400 BadRequest.
    let r = preflight(&addr, "/web/k", &[("access-control-request-method", "GET")]).await;
    assert_eq!((r.status, r.code().as_deref()), (400, Some("BadRequest")));
    let r = preflight(&addr, "/web/k", &[("origin", "http://www.app.test")]).await;
    assert_eq!((r.status, r.code().as_deref()), (400, Some("BadRequest")));
    // A bucket that does not exist has no rules.
    let r = preflight(
        &addr,
        "/nobucket/k",
        &[
            ("origin", "http://www.app.test"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("CORSResponse")));

    // Actual requests through presigned URLs carry the matching rule's
    // headers; errors too; requests without Origin get none.
    let http = reqwest::Client::new();
    let presign = || PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let put_url = c
        .put_object()
        .bucket("web")
        .key("hello.txt")
        .presigned(presign())
        .await
        .unwrap();
    let r = http
        .put(put_url.uri())
        .header("origin", "http://www.app.test")
        .body("from a browser")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://www.app.test");
    assert_eq!(h["access-control-expose-headers"], "ETag, x-amz-version-id");
    assert_eq!(h["x-amz-server-side-encryption"], "AES256");
    let get_url = c
        .get_object()
        .bucket("web")
        .key("hello.txt")
        .presigned(presign())
        .await
        .unwrap();
    let r = http
        .get(get_url.uri())
        .header("origin", "http://elsewhere.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.text().await.unwrap(), "from a browser");
    // PUT from an origin only the GET rule covers: served (CORS is the
    // browser's to enforce) but without CORS headers.
    let r = http
        .put(put_url.uri())
        .header("origin", "http://elsewhere.test")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = http.get(get_url.uri()).send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let missing = c
        .get_object()
        .bucket("web")
        .key("missing")
        .presigned(presign())
        .await
        .unwrap();
    let r = http
        .get(missing.uri())
        .header("origin", "http://www.app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://www.app.test"
    );

    // Deleted: preflights are refused again.
    c.delete_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(
        code(c.get_bucket_cors().bucket("web").send().await),
        "NoSuchCORSConfiguration"
    );
    let r = preflight(
        &addr,
        "/web/k",
        &[
            ("origin", "http://elsewhere.test"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    // Another tenant can neither read nor set the rules.
    let (_, other_key, other_secret) = g.new_tenant("other").await;
    let other = g.client_as(&other_key, &other_secret);
    assert_eq!(
        code(
            other
                .put_bucket_cors()
                .bucket("web")
                .cors_configuration(cors(vec![rule(&["*"], &["GET"], &[])]))
                .send()
                .await
        ),
        "AccessDenied"
    );
}

async fn sse_headers_and_bucket_encryption(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("enc").send().await.unwrap();
    let aes = Some(&ServerSideEncryption::Aes256);
    let put = c
        .put_object()
        .bucket("enc")
        .key("a")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.server_side_encryption(), aes);
    let got = c.get_object().bucket("enc").key("a").send().await.unwrap();
    assert_eq!(got.server_side_encryption(), aes);
    let head = c.head_object().bucket("enc").key("a").send().await.unwrap();
    assert_eq!(head.server_side_encryption(), aes);
    let copy = c
        .copy_object()
        .bucket("enc")
        .key("b")
        .copy_source("enc/a")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.server_side_encryption(), aes);
    // Asking for SSE-S3 is what happens anyway.
    let asked = c
        .put_object()
        .bucket("enc")
        .key("c")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.server_side_encryption(), aes);
    let create = c
        .create_multipart_upload()
        .bucket("enc")
        .key("m")
        .send()
        .await
        .unwrap();
    assert_eq!(create.server_side_encryption(), aes);
    let id = create.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket("enc")
        .key("m")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    assert_eq!(part.server_side_encryption(), aes);
    let done = c
        .complete_multipart_upload()
        .bucket("enc")
        .key("m")
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
    assert_eq!(done.server_side_encryption(), aes);

    // SSE-KMS is refused before anything is stored.
    let kms = c
        .put_object()
        .bucket("enc")
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(kms), "NotImplemented");
    assert_eq!(
        code(c.head_object().bucket("enc").key("kms").send().await),
        "NotFound"
    );

    // Bucket default encryption: SSE-S3 without asking; put and read back;
    // SSE-KMS refused; deleted back to the default.
    let algorithm =
        |o: &aws_sdk_s3::operation::get_bucket_encryption::GetBucketEncryptionOutput| {
            let rule = &o.server_side_encryption_configuration().unwrap().rules()[0];
            (
                rule.apply_server_side_encryption_by_default()
                    .unwrap()
                    .sse_algorithm()
                    .clone(),
                rule.bucket_key_enabled(),
            )
        };
    let d = c
        .get_bucket_encryption()
        .bucket("enc")
        .send()
        .await
        .unwrap();
    assert_eq!(algorithm(&d), (ServerSideEncryption::Aes256, Some(false)));
    let config = |alg: ServerSideEncryption, key: bool| {
        ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(alg)
                            .build()
                            .unwrap(),
                    )
                    .bucket_key_enabled(key)
                    .build(),
            )
            .build()
            .unwrap()
    };
    c.put_bucket_encryption()
        .bucket("enc")
        .server_side_encryption_configuration(config(ServerSideEncryption::Aes256, true))
        .send()
        .await
        .unwrap();
    let d = c
        .get_bucket_encryption()
        .bucket("enc")
        .send()
        .await
        .unwrap();
    assert_eq!(algorithm(&d), (ServerSideEncryption::Aes256, Some(true)));
    let kms = c
        .put_bucket_encryption()
        .bucket("enc")
        .server_side_encryption_configuration(config(ServerSideEncryption::AwsKms, false))
        .send()
        .await;
    assert_eq!(code(kms), "NotImplemented");
    let d = c
        .get_bucket_encryption()
        .bucket("enc")
        .send()
        .await
        .unwrap();
    assert_eq!(algorithm(&d), (ServerSideEncryption::Aes256, Some(true)));
    c.delete_bucket_encryption()
        .bucket("enc")
        .send()
        .await
        .unwrap();
    let d = c
        .get_bucket_encryption()
        .bucket("enc")
        .send()
        .await
        .unwrap();
    assert_eq!(algorithm(&d), (ServerSideEncryption::Aes256, Some(false)));
    assert_eq!(
        code(c.get_bucket_encryption().bucket("nope").send().await),
        "NoSuchBucket"
    );
}

async fn object_attributes(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("attrs").send().await.unwrap();
    let body = b"attributes of a single-part object".to_vec();
    let put = c
        .put_object()
        .bucket("attrs")
        .key("one")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let all = [
        ObjectAttributes::Etag,
        ObjectAttributes::Checksum,
        ObjectAttributes::ObjectParts,
        ObjectAttributes::StorageClass,
        ObjectAttributes::ObjectSize,
    ];
    let a = c
        .get_object_attributes()
        .bucket("attrs")
        .key("one")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.e_tag(),
        Some(put.e_tag().unwrap().trim_matches('"')),
        "ETag without quotes, as S3"
    );
    assert_eq!(a.object_size(), Some(body.len() as i64));
    assert_eq!(a.storage_class(), Some(&StorageClass::Standard));
    assert_eq!(
        a.checksum().and_then(|c| c.checksum_crc32()),
        put.checksum_crc32()
    );
    assert!(a.object_parts().is_none(), "single-part: no parts");
    assert!(a.last_modified().is_some());
    // Only what is asked for.
    let only = c
        .get_object_attributes()
        .bucket("attrs")
        .key("one")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(only.object_size(), Some(body.len() as i64));
    assert!(only.e_tag().is_none() && only.storage_class().is_none());
    assert_eq!(
        code(
            c.get_object_attributes()
                .bucket("attrs")
                .key("missing")
                .object_attributes(ObjectAttributes::Etag)
                .send()
                .await
        ),
        "NoSuchKey"
    );

    // Three parts, paged two at a time.
    let id = c
        .create_multipart_upload()
        .bucket("attrs")
        .key("multi")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 1234];
    let mut done = CompletedMultipartUpload::builder();
    for (i, size) in sizes.iter().enumerate() {
        let n = i as i32 + 1;
        let p = c
            .upload_part()
            .bucket("attrs")
            .key("multi")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(support::pseudo_random(*size, n as u64)))
            .send()
            .await
            .unwrap();
        done = done.parts(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    let complete = c
        .complete_multipart_upload()
        .bucket("attrs")
        .key("multi")
        .upload_id(&id)
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();
    let page = |marker: Option<i32>| {
        c.get_object_attributes()
            .bucket("attrs")
            .key("multi")
            .set_object_attributes(Some(all.to_vec()))
            .max_parts(2)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .send()
    };
    let first = page(None).await.unwrap();
    assert_eq!(
        first.e_tag(),
        Some(complete.e_tag().unwrap().trim_matches('"'))
    );
    assert_eq!(
        first.object_size(),
        Some(sizes.iter().sum::<usize>() as i64)
    );
    let parts = first.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.max_parts(), Some(2));
    let listed: Vec<_> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (Some(1), Some(sizes[0] as i64)),
            (Some(2), Some(sizes[1] as i64))
        ]
    );
    let next = parts.next_part_number_marker().map(|m| m.parse().unwrap());
    assert_eq!(next, Some(2));
    let second = page(next).await.unwrap();
    let parts = second.object_parts().unwrap();
    assert_eq!(parts.is_truncated(), Some(false));
    let listed: Vec<_> = parts.parts().iter().map(|p| p.part_number()).collect();
    assert_eq!(listed, vec![Some(3)]);
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A signed POST Object form: fields (policy and signature added), then
/// the file part, as bytes.
fn signed_form(
    g: &support::gateway::Gateway,
    bucket: &str,
    fields: &[(&str, &str)],
    range: (u64, u64),
    file: &[u8],
) -> Vec<u8> {
    signed_form_as(&g.access_key, &g.secret_key, bucket, fields, range, file)
}

/// [`signed_form`] signed with another user's keys.
fn signed_form_as(
    access_key: &str,
    secret_key: &str,
    bucket: &str,
    fields: &[(&str, &str)],
    range: (u64, u64),
    file: &[u8],
) -> Vec<u8> {
    use base64::Engine as _;
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!("{date}T000000Z");
    let credential = format!("{access_key}/{date}/us-east-1/s3/aws4_request");
    let expires = now + time::Duration::minutes(10);
    let expiration = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        expires.year(),
        u8::from(expires.month()),
        expires.day(),
        expires.hour(),
        expires.minute(),
        expires.second()
    );
    let mut all: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.push(("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()));
    all.push(("x-amz-credential".into(), credential));
    all.push(("x-amz-date".into(), amz_date));
    let mut conditions: Vec<serde_json::Value> = vec![serde_json::json!({ "bucket": bucket })];
    conditions.extend(
        all.iter()
            .map(|(k, v)| serde_json::json!(["eq", format!("${k}"), v])),
    );
    conditions.push(serde_json::json!([
        "content-length-range",
        range.0,
        range.1
    ]));
    let policy = serde_json::json!({ "expiration": expiration, "conditions": conditions });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let k = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k = hmac(&k, b"us-east-1");
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    let signature = hex::encode(hmac(&k, policy.as_bytes()));
    all.push(("policy".into(), policy));
    all.push(("x-amz-signature".into(), signature));
    let mut body = Vec::new();
    for (k, v) in &all {
        body.extend_from_slice(
            format!("--FoRm\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        b"--FoRm\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
    );
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--FoRm--\r\n");
    body
}

async fn post_object_streams_after_its_checks(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("forms").send().await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/forms", g.endpoint);
    let send = |body: Vec<u8>| {
        http.post(&url)
            .header("content-type", "multipart/form-data; boundary=FoRm")
            .body(body)
            .send()
    };
    // 12 MiB across many chunks of the body, the boundary found at its end.
    let file = support::pseudo_random(12 * 1024 * 1024 + 7, 42);
    let form = signed_form(
        &g,
        "forms",
        &[
            ("key", "up/${filename}"),
            ("x-amz-meta-from", "form"),
            (
                "tagging",
                "<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>",
            ),
        ],
        (1, 16 * 1024 * 1024),
        &file,
    );
    let r = send(form).await.unwrap();
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let got = c
        .get_object()
        .bucket("forms")
        .key("up/big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("from"))
            .map(String::as_str),
        Some("form")
    );
    assert_eq!(got.body.collect().await.unwrap().to_vec(), file);
    let tags = c
        .get_object_tagging()
        .bucket("forms")
        .key("up/big.bin")
        .send()
        .await
        .unwrap();
    let tags: Vec<_> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, vec![("team", "web")]);

    // Over the policy's content-length-range: refused as it streams, and
    // nothing is stored.
    let form = signed_form(&g, "forms", &[("key", "too-big")], (1, 1024 * 1024), &file);
    let r = send(form).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>EntityTooLarge</Code>")
    );
    assert_eq!(
        code(c.head_object().bucket("forms").key("too-big").send().await),
        "NotFound"
    );
    // Signed for another bucket: the policy's bucket condition fails.
    c.create_bucket().bucket("other").send().await.unwrap();
    let form = signed_form(&g, "other", &[("key", "elsewhere")], (1, 1 << 30), b"x");
    let r = send(form).await.unwrap();
    assert_eq!(r.status(), 403);
    // Unsigned: AccessDenied before the file is read.
    let anonymous = b"--FoRm\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nanon\r\n--FoRm\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n--FoRm--\r\n";
    let r = send(anonymous.to_vec()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>AccessDenied</Code>")
    );
    let listed = c.list_objects_v2().bucket("forms").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["up/big.bin"]);
    g.fsck_clean().await;
}

/// A form upload is decided by the same policies as a PutObject: a key
/// whose only right is s3:PutObject under `builds/` uploads there with a
/// form and nowhere else; a refusal stores nothing.
async fn post_object_follows_the_callers_policy(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("forms").send().await.unwrap();
    let (key, secret) = g
        .user("form-bot", dooz_gateway::meta::Policy::ReadWrite)
        .await;
    let file = g.data_dir.path().join("builds-only.json");
    std::fs::write(
        &file,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "s3:PutObject", "Resource": "arn:aws:s3:::forms/builds/*"}]}"#,
    )
    .unwrap();
    let tenant = g.tenant.name.as_str();
    for args in [
        vec![
            "admin",
            "policy",
            "create",
            "--tenant",
            tenant,
            "builds-only",
            "--file",
            file.to_str().unwrap(),
        ],
        vec!["admin", "user", "policy", "attach", &key, "builds-only"],
        // Created read-write: what it may do is its attached policies now.
        vec!["admin", "user", "policy", "detach", &key, "read-write"],
    ] {
        let out = g.dooz(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let http = reqwest::Client::new();
    let url = format!("{}/forms", g.endpoint);
    let send = |body: Vec<u8>| {
        http.post(&url)
            .header("content-type", "multipart/form-data; boundary=FoRm")
            .body(body)
            .send()
    };
    let form = |k: &str| {
        signed_form_as(
            &key,
            &secret,
            "forms",
            &[("key", k)],
            (1, 1024),
            b"form data",
        )
    };
    // Credentials are cached briefly: the first answer may predate the
    // detach, so wait (bounded) until the role no longer speaks.
    let mut refused = None;
    for _ in 0..80 {
        let r = send(form("elsewhere/a")).await.unwrap();
        if r.status() == 403 {
            refused = Some(r.text().await.unwrap());
            break;
        }
        c.delete_object()
            .bucket("forms")
            .key("elsewhere/a")
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let refused = refused.expect("a form outside the policy is refused");
    assert!(refused.contains("<Code>AccessDenied</Code>"), "{refused}");
    assert_eq!(
        code(
            c.head_object()
                .bucket("forms")
                .key("elsewhere/a")
                .send()
                .await
        ),
        "NotFound"
    );
    let r = send(form("builds/a")).await.unwrap();
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let got = c
        .get_object()
        .bucket("forms")
        .key("builds/a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"form data");
    g.fsck_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_object_is_throttled_like_any_request() {
    use dooz_gateway::throttle::{LimitsConfig, RequestRate};
    let mut limits = LimitsConfig::default();
    // A minute's worth in one burst: CreateBucket and two forms pass, the
    // third form is refused however fast or slow this machine is.
    limits.key.requests = Some(RequestRate::parse("3/min").unwrap());
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.limits = Some(limits);
    let g = start(opts).await;
    g.client()
        .create_bucket()
        .bucket("forms")
        .send()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/forms", g.endpoint);
    let mut answers = Vec::new();
    for n in 0..3 {
        let key = format!("k{n}");
        let form = signed_form(&g, "forms", &[("key", key.as_str())], (0, 100), b"form");
        let res = http
            .post(&url)
            .header("content-type", "multipart/form-data; boundary=FoRm")
            .body(form)
            .send()
            .await
            .unwrap();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        answers.push((res.status().as_u16(), retry, res.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 204, "{answers:?}");
    assert_eq!(answers[1].0, 204, "{answers:?}");
    let (status, retry, body) = &answers[2];
    assert_eq!(*status, 503, "{body}");
    assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
    let retry: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    // Nothing was stored for the refused form (asked with another key).
    let (other, secret) = g.user("other", dooz_gateway::meta::Policy::Admin).await;
    let c = g.client_as(&other, &secret);
    assert_eq!(
        code(c.head_object().bucket("forms").key("k2").send().await),
        "NotFound"
    );
    c.head_object()
        .bucket("forms")
        .key("k1")
        .send()
        .await
        .unwrap();
}

macro_rules! on_both_stores {
    ($test:ident) => {
        mod $test {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test(Meta::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test(Meta::Postgres).await
            }
        }
    };
}

on_both_stores!(cors_rules_preflights_and_headers);
on_both_stores!(sse_headers_and_bucket_encryption);
on_both_stores!(object_attributes);
on_both_stores!(post_object_streams_after_its_checks);
on_both_stores!(post_object_follows_the_callers_policy);
