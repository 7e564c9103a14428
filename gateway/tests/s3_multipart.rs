//! Multipart uploads, copies, part reads, checksums and conditional
//! requests, over real TCP with aws-sdk-s3 in both checksum modes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{code, get, pseudo_random as data};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, MetadataDirective,
};
use support::gateway::{Backend, Gateway, Meta, Options, start};

const MIB: usize = 1024 * 1024;

/// A client that sends CRC checksums (trailers on streaming PUTs) when it can,
/// or only when an operation requires them.
fn client(g: &Gateway, checksums_when_supported: bool) -> Client {
    let (req, resp) = if checksums_when_supported {
        (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        )
    } else {
        (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        )
    };
    Client::from_conf(
        g.client()
            .config()
            .to_builder()
            .request_checksum_calculation(req)
            .response_checksum_validation(resp)
            .build(),
    )
}

async fn upload_part(c: &Client, b: &str, k: &str, id: &str, n: i32, body: &[u8]) -> CompletedPart {
    let out = c
        .upload_part()
        .bucket(b)
        .key(k)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
    CompletedPart::builder()
        .part_number(n)
        .e_tag(out.e_tag.unwrap())
        .set_checksum_crc32(out.checksum_crc32)
        .build()
}

fn done(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

async fn multipart_round_trip(checksums: bool) {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = client(&g, checksums);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let p1 = data(5 * MIB, 1);
    let p2 = data(5 * MIB, 2);
    let p3 = data(MIB + 123, 3);
    let create = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("obj")
        .content_type("application/x-test")
        .metadata("origin", "multipart")
        .set_checksum_algorithm(checksums.then_some(ChecksumAlgorithm::Crc32))
        .send()
        .await
        .unwrap();
    let id = create.upload_id.unwrap();
    let a = upload_part(&c, "mpu", "obj", &id, 1, &p1).await;
    // A part sent twice: the second replaces the first.
    upload_part(&c, "mpu", "obj", &id, 2, &data(5 * MIB, 99)).await;
    let b = upload_part(&c, "mpu", "obj", &id, 2, &p2).await;
    // "Interrupted": the client lists what arrived and sends only the rest.
    let listed = c
        .list_parts()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = listed
        .parts()
        .iter()
        .filter_map(|p| p.part_number)
        .collect();
    assert_eq!(numbers, vec![1, 2]);
    assert_eq!(listed.parts()[1].e_tag, b.e_tag);
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    let c3 = upload_part(&c, "mpu", "obj", &id, 3, &p3).await;
    let out = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(done(vec![a, b, c3]))
        .send()
        .await
        .unwrap();
    let etag = out.e_tag.unwrap();
    assert!(etag.ends_with("-3\""), "{etag}");
    if checksums {
        let v = out.checksum_crc32.expect("composite checksum");
        assert!(v.ends_with("-3"), "{v}");
    }
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    whole.extend_from_slice(&p3);
    assert_eq!(get(&c, "mpu", "obj").await, whole);
    let head = c
        .head_object()
        .bucket("mpu")
        .key("obj")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(head.parts_count, Some(3));
    assert_eq!(head.content_length, Some(p2.len() as i64));
    let part3 = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .part_number(3)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(part3, p3);
    assert_eq!(
        code(
            c.get_object()
                .bucket("mpu")
                .key("obj")
                .part_number(4)
                .send()
                .await
        ),
        "InvalidPartNumber"
    );
    let head = c
        .head_object()
        .bucket("mpu")
        .key("obj")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(head.metadata.unwrap()["origin"], "multipart");
    assert_eq!(head.checksum_crc32.is_some(), checksums);
    assert!(
        c.list_multipart_uploads()
            .bucket("mpu")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    );
    g.fsck_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_round_trip_with_checksums() {
    multipart_round_trip(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_round_trip_without_checksums() {
    multipart_round_trip(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_errors_and_exact_refcounts() {
    let g = start(Options::new(Meta::Postgres, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("mperr").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("mperr")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let small = upload_part(&c, "mperr", "k", &id, 1, &data(MIB, 5)).await;
    let big = upload_part(&c, "mperr", "k", &id, 2, &data(5 * MIB, 6)).await;
    let last = upload_part(&c, "mperr", "k", &id, 3, &data(100, 7)).await;
    let complete = |parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("mperr")
            .key("k")
            .upload_id(&id)
            .multipart_upload(done(parts))
            .send()
    };
    assert_eq!(
        code(complete(vec![small.clone(), big.clone(), last.clone()]).await),
        "EntityTooSmall"
    );
    assert_eq!(
        code(complete(vec![big.clone(), small.clone()]).await),
        "InvalidPartOrder"
    );
    let wrong = CompletedPart::builder()
        .part_number(2)
        .e_tag("\"00000000000000000000000000000000\"")
        .build();
    assert_eq!(code(complete(vec![wrong]).await), "InvalidPart");
    let missing = CompletedPart::builder()
        .part_number(9)
        .e_tag(big.e_tag.clone().unwrap())
        .build();
    assert_eq!(code(complete(vec![missing]).await), "InvalidPart");
    assert_eq!(
        code(
            c.upload_part()
                .bucket("mperr")
                .key("k")
                .upload_id(&id)
                .part_number(10_001)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "InvalidArgument"
    );
    // A subset of the parts: the unchosen part's references are released.
    complete(vec![big.clone(), last.clone()]).await.unwrap();
    g.fsck_clean().await;
    assert_eq!(get(&c, "mperr", "k").await.len(), 5 * MIB + 100);

    // Create-only completion when the key exists.
    let id2 = c
        .create_multipart_upload()
        .bucket("mperr")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let p = upload_part(&c, "mperr", "k", &id2, 1, b"tiny").await;
    assert_eq!(
        code(
            c.complete_multipart_upload()
                .bucket("mperr")
                .key("k")
                .upload_id(&id2)
                .if_none_match("*")
                .multipart_upload(done(vec![p]))
                .send()
                .await
        ),
        "PreconditionFailed"
    );
    // Abort releases everything; the upload is gone.
    c.abort_multipart_upload()
        .bucket("mperr")
        .key("k")
        .upload_id(&id2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            c.upload_part()
                .bucket("mperr")
                .key("k")
                .upload_id(&id2)
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        "NoSuchUpload"
    );
    assert_eq!(
        code(
            c.list_parts()
                .bucket("mperr")
                .key("k")
                .upload_id("nope")
                .send()
                .await
        ),
        "NoSuchUpload"
    );
    g.fsck_clean().await;
    // Only the completed object's chunks remain referenced.
    c.delete_object()
        .bucket("mperr")
        .key("k")
        .send()
        .await
        .unwrap();
    g.fsck_clean().await;
    let usage = g.engine().meta().usage(Some(g.tenant.id)).await.unwrap();
    assert_eq!((usage.objects, usage.chunks), (0, 0), "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_add_references_not_chunks() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    for b in ["src", "dst"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let body = data(12 * MIB + 7, 11);
    c.put_object()
        .bucket("src")
        .key("big")
        .content_type("text/x-original")
        .metadata("tag", "one")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let before = g.backend_bytes().await;
    let copied = c
        .copy_object()
        .bucket("dst")
        .key("copy")
        .copy_source("src/big")
        .send()
        .await
        .unwrap();
    assert!(copied.copy_object_result.unwrap().e_tag.is_some());
    let head = c
        .head_object()
        .bucket("dst")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type.as_deref(), Some("text/x-original"));
    assert_eq!(head.metadata.unwrap()["tag"], "one");
    c.copy_object()
        .bucket("src")
        .key("big")
        .copy_source("src/big")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/x-replaced")
        .metadata("tag", "two")
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("src")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type.as_deref(), Some("text/x-replaced"));
    assert_eq!(head.metadata.unwrap()["tag"], "two");
    assert_eq!(
        code(
            c.copy_object()
                .bucket("src")
                .key("big")
                .copy_source("src/big")
                .send()
                .await
        ),
        "InvalidRequest"
    );
    assert_eq!(
        code(
            c.copy_object()
                .bucket("dst")
                .key("x")
                .copy_source("src/big")
                .copy_source_if_match("\"deadbeef\"")
                .send()
                .await
        ),
        "PreconditionFailed"
    );
    assert_eq!(
        code(
            c.copy_object()
                .bucket("dst")
                .key("x")
                .copy_source("src/missing")
                .send()
                .await
        ),
        "NoSuchKey"
    );

    // UploadPartCopy of ranges that cut through chunks.
    let id = c
        .create_multipart_upload()
        .bucket("dst")
        .key("assembled")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut parts = Vec::new();
    let ranges = [
        (1_000_001usize, 6_500_000usize),
        (0, 5 * MIB + 1),
        (9_000_000, body.len() - 1),
    ];
    let mut expected = Vec::new();
    for (i, (a, z)) in ranges.iter().enumerate() {
        let out = c
            .upload_part_copy()
            .bucket("dst")
            .key("assembled")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .copy_source("src/big")
            .copy_source_range(format!("bytes={a}-{z}"))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(out.copy_part_result.unwrap().e_tag.unwrap())
                .build(),
        );
        expected.extend_from_slice(&body[*a..=*z]);
    }
    assert_eq!(
        code(
            c.upload_part_copy()
                .bucket("dst")
                .key("assembled")
                .upload_id(&id)
                .part_number(9)
                .copy_source("src/big")
                .copy_source_range(format!("bytes=0-{}", body.len()))
                .send()
                .await
        ),
        "InvalidRange"
    );
    c.complete_multipart_upload()
        .bucket("dst")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(done(parts))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "dst", "assembled").await, expected);
    assert_eq!(get(&c, "dst", "copy").await, body);
    assert_eq!(
        g.backend_bytes().await,
        before,
        "copies stored no new chunks"
    );

    // Another tenant cannot copy from here.
    let (_, ak, sk) = g.new_tenant("thief").await;
    let thief = g.client_as(&ak, &sk);
    thief.create_bucket().bucket("loot").send().await.unwrap();
    assert_eq!(
        code(
            thief
                .copy_object()
                .bucket("loot")
                .key("x")
                .copy_source("src/big")
                .send()
                .await
        ),
        "AccessDenied"
    );
    g.fsck_clean().await;
    c.delete_object()
        .bucket("src")
        .key("big")
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "dst", "assembled").await, expected);
    g.fsck_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_and_conditions() {
    use base64::Engine as _;
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = client(&g, false);
    c.create_bucket().bucket("sums").send().await.unwrap();
    let body = b"checksummed body".to_vec();
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let crc32 = b64(&crc32fast::hash(&body).to_be_bytes());
    let crc32c = b64(&crc32c::crc32c(&body).to_be_bytes());
    let sha256 = {
        use sha2::Digest;
        b64(&sha2::Sha256::digest(&body))
    };
    let sha1 = {
        use sha1::Digest;
        b64(&sha1::Sha1::digest(&body))
    };
    let crc64 = {
        let mut d = crc64fast_nvme::Digest::new();
        d.write(&body);
        b64(&d.sum64().to_be_bytes())
    };
    let put = || {
        c.put_object()
            .bucket("sums")
            .body(ByteStream::from(body.clone()))
    };
    put()
        .key("crc32")
        .checksum_crc32(&crc32)
        .send()
        .await
        .unwrap();
    put()
        .key("crc32c")
        .checksum_crc32_c(&crc32c)
        .send()
        .await
        .unwrap();
    put()
        .key("crc64")
        .checksum_crc64_nvme(&crc64)
        .send()
        .await
        .unwrap();
    put().key("sha1").checksum_sha1(&sha1).send().await.unwrap();
    put()
        .key("sha256")
        .checksum_sha256(&sha256)
        .send()
        .await
        .unwrap();
    let bad = b64(&[0u8; 4]);
    assert_eq!(
        code(put().key("bad").checksum_crc32(&bad).send().await),
        "BadDigest"
    );
    assert_eq!(
        code(
            put()
                .key("bad")
                .checksum_sha256(b64(&[1u8; 32]))
                .send()
                .await
        ),
        "BadDigest"
    );
    assert_eq!(
        code(c.head_object().bucket("sums").key("bad").send().await),
        "NotFound"
    );
    let head = c
        .head_object()
        .bucket("sums")
        .key("sha256")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256.as_deref(), Some(sha256.as_str()));
    let get = c
        .get_object()
        .bucket("sums")
        .key("crc64")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(get.checksum_crc64_nvme.as_deref(), Some(crc64.as_str()));

    // The SDK's default: CRC32 computed and sent as an aws-chunked trailer.
    let trailer_client = client(&g, true);
    trailer_client
        .put_object()
        .bucket("sums")
        .key("trailer")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("sums")
        .key("trailer")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert!(
        head.checksum_crc32.is_some() || head.checksum_crc64_nvme.is_some(),
        "{head:?}"
    );

    // Conditional writes and reads.
    let etag = c
        .head_object()
        .bucket("sums")
        .key("crc32")
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    assert_eq!(
        code(put().key("crc32").if_match("\"0000\"").send().await),
        "PreconditionFailed"
    );
    put().key("crc32").if_match(&etag).send().await.unwrap();
    assert_eq!(
        code(put().key("crc32").if_none_match("*").send().await),
        "PreconditionFailed"
    );
    put().key("fresh").if_none_match("*").send().await.unwrap();
    assert_eq!(
        code(
            c.get_object()
                .bucket("sums")
                .key("crc32")
                .if_none_match(&etag)
                .send()
                .await
        ),
        "<304>"
    );
    assert_eq!(
        code(
            c.get_object()
                .bucket("sums")
                .key("crc32")
                .if_match("\"other\"")
                .send()
                .await
        ),
        "PreconditionFailed"
    );
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000_000);
    assert_eq!(
        code(
            c.get_object()
                .bucket("sums")
                .key("crc32")
                .if_modified_since(future)
                .send()
                .await
        ),
        "<304>"
    );
    assert_eq!(
        code(
            c.get_object()
                .bucket("sums")
                .key("crc32")
                .if_unmodified_since(past)
                .send()
                .await
        ),
        "PreconditionFailed"
    );
    c.get_object()
        .bucket("sums")
        .key("crc32")
        .if_modified_since(past)
        .send()
        .await
        .unwrap();
    g.fsck_clean().await;
}

/// A FULL_OBJECT CRC64NVME multipart checksum equals the CRC of the whole
/// object, combined from the part CRCs without reading data back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_object_multipart_checksum() {
    use base64::Engine as _;
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = client(&g, true);
    c.create_bucket().bucket("full").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("full")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(aws_sdk_s3::types::ChecksumType::FullObject)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let bodies = [data(5 * MIB, 21), data(5 * MIB + 3, 22), data(777, 23)];
    let mut parts = Vec::new();
    let mut whole = crc64fast_nvme::Digest::new();
    for (i, b) in bodies.iter().enumerate() {
        whole.write(b);
        let out = c
            .upload_part()
            .bucket("full")
            .key("k")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(b.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(out.e_tag.unwrap())
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme)
                .build(),
        );
    }
    let expected = base64::engine::general_purpose::STANDARD.encode(whole.sum64().to_be_bytes());
    let out = c
        .complete_multipart_upload()
        .bucket("full")
        .key("k")
        .upload_id(&id)
        .multipart_upload(done(parts))
        .send()
        .await
        .unwrap();
    assert_eq!(out.checksum_crc64_nvme.as_deref(), Some(expected.as_str()));
    let head = c
        .head_object()
        .bucket("full")
        .key("k")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc64_nvme.as_deref(), Some(expected.as_str()));
    assert_eq!(
        head.checksum_type,
        Some(aws_sdk_s3::types::ChecksumType::FullObject)
    );
}

/// Concurrent create-only uploads: exactly one winner, the rest get 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_race_has_one_winner() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("race").send().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.put_object()
                .bucket("race")
                .key("once")
                .if_none_match("*")
                .body(ByteStream::from(vec![i; 200_000]))
                .send()
                .await
                .map_err(|e| code::<_, ()>(Err(e)))
                .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(code) => assert_eq!(code, "PreconditionFailed"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(get(&c, "race", "once").await, vec![winners[0]; 200_000]);
    g.fsck_clean().await;
}

/// ≥ 2 GiB in 64 MiB parts sent four at a time, read back byte-exact
/// (streamed and compared part by part; nothing holds the whole object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_multipart_four_parts_at_a_time() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("huge").send().await.unwrap();
    const PART: usize = 64 * MIB;
    const PARTS: i32 = 33; // 2 GiB + 64 MiB
    let id = c
        .create_multipart_upload()
        .bucket("huge")
        .key("blob")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for n in 1..=PARTS {
        let (c, id, sem) = (c.clone(), id.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let body = data(PART, n as u64);
            upload_part(&c, "huge", "blob", &id, n, &body).await
        }));
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    c.complete_multipart_upload()
        .bucket("huge")
        .key("blob")
        .upload_id(&id)
        .multipart_upload(done(parts))
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("huge")
        .key("blob")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length, Some(PART as i64 * i64::from(PARTS)));
    let mut body = c
        .get_object()
        .bucket("huge")
        .key("blob")
        .send()
        .await
        .unwrap()
        .body;
    let mut part = 1u64;
    let mut expected = data(PART, part);
    let mut at = 0usize;
    while let Some(bytes) = body.try_next().await.unwrap() {
        let mut bytes = &bytes[..];
        while !bytes.is_empty() {
            let n = bytes.len().min(PART - at);
            assert!(
                bytes[..n] == expected[at..at + n],
                "mismatch in part {part} at {at}"
            );
            at += n;
            bytes = &bytes[n..];
            if at == PART {
                part += 1;
                at = 0;
                expected = data(PART, part);
            }
        }
    }
    assert_eq!(part, PARTS as u64 + 1, "read every part");
    g.fsck_clean().await;
}

/// Uploads `body` as a multipart upload in parts of `part_size` bytes.
async fn upload_in_parts(c: &Client, b: &str, k: &str, body: &[u8], part_size: usize) {
    support::put_in_parts(c, b, k, body, part_size)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A gateway on SQLite with 64/256/1024 KiB chunks (every 5 MiB+ part holds
/// many) and a collector that frees at once, and its bucket "heal".
async fn healing_gateway() -> (Gateway, Client) {
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.chunking = Some((64 * 1024, 256 * 1024, 1024 * 1024));
    opts.gc = Some(support::gateway::eager());
    let g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("heal").send().await.unwrap();
    (g, c)
}

/// The chunk ids of the latest version of `key`, in order.
async fn chunk_ids(g: &Gateway, b: &str, k: &str) -> Vec<[u8; 32]> {
    let v = g
        .engine()
        .meta()
        .get_object(b, k, None)
        .await
        .unwrap()
        .unwrap();
    v.manifest.chunks.iter().map(|c| c.id).collect()
}

/// Asserts two chunk lists are equal, saying how many entries differ.
fn assert_same_chunks(got: &[[u8; 32]], want: &[[u8; 32]], what: &str) {
    let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
    assert!(
        got == want,
        "{what}: {} chunks against {}, {differ} ids differ",
        got.len(),
        want.len()
    );
}

/// Bytes of new chunk frames the gateway has written so far.
async fn stored_so_far(g: &Gateway) -> f64 {
    support::metrics::metric(&g.admin, "dooz_stored_written_bytes_total", &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_objects_get_the_chunks_of_one_put() {
    let (g, c) = healing_gateway().await;
    let body = data(23 * MIB + 12_345, 21);
    support::put(&c, "heal", "one", &body).await;
    let want = chunk_ids(&g, "heal", "one").await;
    let one_put = g.backend_bytes().await;
    assert!(want.len() > 40, "{} chunks", want.len());

    for (n, part_size) in [5 * MIB, 6 * MIB + 7, 8 * MIB].into_iter().enumerate() {
        let key = format!("mp{n}");
        // The parts store their own boundary chunks; completing them
        // re-chunks the boundaries into chunks that all exist already.
        let (id, parts) = support::upload_parts(&c, "heal", &key, &body, part_size)
            .await
            .unwrap();
        let before = stored_so_far(&g).await;
        support::complete_upload(&c, "heal", &key, &id, parts)
            .await
            .unwrap();
        assert_eq!(
            stored_so_far(&g).await,
            before,
            "completion stored nothing new"
        );
        let got = chunk_ids(&g, "heal", &key).await;
        assert_same_chunks(&got, &want, &format!("part size {part_size}"));
        assert_eq!(get(&c, "heal", &key).await, body);
        // Part 2 read by number: its bytes, though chunks straddle it.
        let part2 = c
            .get_object()
            .bucket("heal")
            .key(&key)
            .part_number(2)
            .send()
            .await
            .unwrap();
        assert_eq!(
            part2.parts_count,
            Some(body.len().div_ceil(part_size) as i32)
        );
        let got = part2.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &body[part_size..2 * part_size]);
        // A range starting inside a straddling chunk.
        let (from, to) = (part_size - 1000, part_size + 5000);
        let ranged = c
            .get_object()
            .bucket("heal")
            .key(&key)
            .range(format!("bytes={from}-{to}"))
            .send()
            .await
            .unwrap();
        let got = ranged.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &body[from..=to]);
    }
    // A copy of a multipart object is a single-part one (ETag = MD5 of the
    // content), made of the same chunks.
    let stored = stored_so_far(&g).await;
    let copied = c
        .copy_object()
        .bucket("heal")
        .key("copied")
        .copy_source("heal/mp0")
        .send()
        .await
        .unwrap();
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(&body))
    };
    assert_eq!(
        copied.copy_object_result.unwrap().e_tag.as_deref(),
        Some(format!("\"{md5}\"").as_str())
    );
    assert_eq!(stored_so_far(&g).await, stored, "a copy stores nothing");
    assert_same_chunks(&chunk_ids(&g, "heal", "copied").await, &want, "copy");
    let head = c
        .head_object()
        .bucket("heal")
        .key("copied")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.parts_count, None);
    assert_eq!(head.content_length, Some(body.len() as i64));
    c.delete_object()
        .bucket("heal")
        .key("copied")
        .send()
        .await
        .unwrap();
    let healed =
        support::metrics::metric(&g.admin, "dooz_multipart_healed_regions_total", &[]).await;
    assert!(healed >= 4.0 + 3.0 + 2.0, "{healed} regions healed");
    g.fsck_clean().await;
    // The parts' own boundary chunks are referenced by nothing now: once
    // collected, four copies of the bytes cost what one PUT did.
    support::gateway::collect(&g).await;
    g.fsck_clean().await;
    let after = g.backend_bytes().await;
    assert!(
        after <= one_put + one_put / 50,
        "backend holds {after} bytes after gc, one PUT stored {one_put}"
    );
    for key in ["one", "mp0", "mp1", "mp2"] {
        assert_eq!(get(&c, "heal", key).await, body, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_smaller_than_the_largest_chunk_heal_too() {
    // 5 MiB parts with chunks of up to 8 MiB: chunks span whole parts.
    let mut opts = Options::new(Meta::Postgres, Backend::Local);
    opts.chunking = Some((1024 * 1024, 4 * 1024 * 1024, 8 * 1024 * 1024));
    let g = start(opts).await;
    let c = g.client();
    c.create_bucket().bucket("heal").send().await.unwrap();
    let body = data(31 * MIB + 999, 22);
    support::put(&c, "heal", "one", &body).await;
    upload_in_parts(&c, "heal", "mp", &body, 5 * MIB).await;
    assert_same_chunks(
        &chunk_ids(&g, "heal", "mp").await,
        &chunk_ids(&g, "heal", "one").await,
        "5 MiB parts",
    );
    assert_eq!(get(&c, "heal", "mp").await, body);
    for n in [1usize, 4, 7] {
        let got = support::get_part(&c, "heal", "mp", n as i32).await;
        let from = (n - 1) * 5 * MIB;
        assert_eq!(
            &got[..],
            &body[from..(from + 5 * MIB).min(body.len())],
            "part {n}"
        );
    }
    g.fsck_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insertion_into_a_multipart_object_stores_few_new_chunks() {
    // aws cli's shape: 8 MiB parts; a second version with 100 KiB inserted
    // early shifts every later byte against the part boundaries.
    let (g, c) = healing_gateway().await;
    let v1 = data(40 * MIB, 23);
    let mut v2 = v1.clone();
    let inserted = data(100 * 1024, 24);
    v2.splice(3 * MIB + 17..3 * MIB + 17, inserted.iter().copied());
    upload_in_parts(&c, "heal", "v1", &v1, 8 * MIB).await;
    support::gateway::collect(&g).await;
    let base = g.backend_bytes().await;
    // Random bytes do not compress: once the parts' replaced edge chunks
    // are collected, the object costs its size plus frame overhead.
    assert!(
        base as f64 <= 1.03 * v1.len() as f64,
        "a {} byte object holds {base} backend bytes after gc",
        v1.len()
    );
    upload_in_parts(&c, "heal", "v2", &v2, 8 * MIB).await;
    assert_eq!(get(&c, "heal", "v2").await, v2);

    let old: std::collections::HashSet<[u8; 32]> =
        chunk_ids(&g, "heal", "v1").await.into_iter().collect();
    let fresh = chunk_ids(&g, "heal", "v2")
        .await
        .into_iter()
        .filter(|id| !old.contains(id))
        .count();
    // The chunks around the insertion only; without healing every one of
    // the four boundaries after it adds its own.
    assert!(fresh <= 5, "{fresh} chunks of v2 are not in v1");
    support::gateway::collect(&g).await;
    g.fsck_clean().await;
    let grew = g.backend_bytes().await.saturating_sub(base);
    assert!(
        grew <= 100 * 1024 + 4 * 1024 * 1024,
        "the second version added {grew} bytes to the backend"
    );
    assert_eq!(get(&c, "heal", "v1").await, v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_parts_at_default_chunk_sizes_heal_in_short_regions() {
    // Default chunking (256 KiB / 1 MiB / 4 MiB) and aws cli's 8 MiB parts:
    // a part holds few chunks, and each boundary must still resync within
    // a chunk or two of it.
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("heal").send().await.unwrap();
    let body = data(96 * MIB + 12_345, 31);
    support::put(&c, "heal", "one", &body).await;
    upload_in_parts(&c, "heal", "mp", &body, 8 * MIB).await;
    assert_same_chunks(
        &chunk_ids(&g, "heal", "mp").await,
        &chunk_ids(&g, "heal", "one").await,
        "8 MiB parts, default chunking",
    );
    let regions =
        support::metrics::metric(&g.admin, "dooz_multipart_healed_regions_total", &[]).await;
    let read =
        support::metrics::metric(&g.admin, "dooz_multipart_healed_read_bytes_total", &[]).await;
    assert_eq!(regions, 12.0, "one region per boundary");
    assert!(
        read / regions <= 4.0 * MIB as f64,
        "{:.1} MiB read back per boundary",
        read / regions / MIB as f64
    );
    g.fsck_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_sent_in_parallel_to_two_gateways_heal_like_one_put() {
    use support::gateway::{MetaHandle, start_with};
    let chunking = Some((64 * 1024, 256 * 1024, 1024 * 1024));
    let mut oa = Options::new(Meta::Postgres, Backend::Seaweed);
    oa.chunking = chunking;
    let a = start(oa).await;
    let MetaHandle::Postgres(db) = &a.meta else {
        unreachable!("started on PostgreSQL")
    };
    let mut ob = Options::new(Meta::Postgres, Backend::Seaweed);
    ob.chunking = chunking;
    ob.backend_config = Some(a.cfg.backends["main"].clone());
    let b = start_with(ob, MetaHandle::Postgres(db.clone()), None).await;
    let (ca, cb) = (a.client(), b.client_as(&a.access_key, &a.secret_key));
    ca.create_bucket().bucket("heal").send().await.unwrap();
    let body = data(26 * MIB + 999, 41);
    support::put(&ca, "heal", "one", &body).await;

    let id = cb
        .create_multipart_upload()
        .bucket("heal")
        .key("mp")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    // Odd parts through one gateway, even through the other, all at once.
    let uploads = body.chunks(5 * MIB).enumerate().map(|(i, piece)| {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        let id = id.clone();
        async move { upload_part(&c, "heal", "mp", &id, i as i32 + 1, piece).await }
    });
    let parts = futures::future::join_all(uploads).await;
    ca.complete_multipart_upload()
        .bucket("heal")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(done(parts))
        .send()
        .await
        .unwrap();
    assert_same_chunks(
        &chunk_ids(&a, "heal", "mp").await,
        &chunk_ids(&a, "heal", "one").await,
        "parts from two gateways",
    );
    assert_eq!(get(&cb, "heal", "mp").await, body);
    a.fsck_clean().await;
}
