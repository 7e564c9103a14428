//! The object path over real TCP with aws-sdk-s3, against both metadata
//! stores and both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{code, get, pseudo_random, put};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use support::gateway::{Backend, Meta, Options, start};

async fn get_range(c: &Client, key: &str, range: &str) -> (Vec<u8>, Option<String>) {
    let out = c
        .get_object()
        .bucket("alpha")
        .key(key)
        .range(range)
        .send()
        .await
        .unwrap_or_else(|e| panic!("range {range}: {e:?}"));
    let cr = out.content_range.clone();
    (out.body.collect().await.expect("body").to_vec(), cr)
}

async fn list_all(c: &Client, bucket: &str, prefix: &str, page: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(page)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list");
        assert!(out.key_count.unwrap_or(0) <= page);
        keys.extend(out.contents().iter().filter_map(|o| o.key.clone()));
        if out.is_truncated == Some(true) {
            token = out.next_continuation_token.clone();
            assert!(token.is_some());
        } else {
            break;
        }
    }
    keys
}

async fn object_lifecycle(meta: Meta, backend: Backend) {
    let g = start(Options::new(meta, backend)).await;
    let c = g.client();
    c.create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("create");
    assert_eq!(
        code(c.create_bucket().bucket("alpha").send().await),
        "BucketAlreadyOwnedByYou"
    );
    assert_eq!(
        code(c.create_bucket().bucket("Bad_Name").send().await),
        "InvalidBucketName"
    );
    let listed = c.list_buckets().send().await.expect("list buckets");
    assert_eq!(
        listed
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        vec!["alpha"]
    );

    // Metadata and representation headers round-trip.
    let body = b"hello dooz, this is a small object".to_vec();
    let etag = c
        .put_object()
        .bucket("alpha")
        .key("docs/readme.txt")
        .content_type("text/plain")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=readme.txt")
        .metadata("owner", "ann")
        .metadata("project", "dooz")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put")
        .e_tag
        .unwrap();
    assert_eq!(etag, format!("\"{}\"", md5_hex(&body)));
    let head = c
        .head_object()
        .bucket("alpha")
        .key("docs/readme.txt")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length, Some(body.len() as i64));
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition.as_deref(),
        Some("attachment; filename=readme.txt")
    );
    assert_eq!(head.e_tag.as_deref(), Some(etag.as_str()));
    let m = head.metadata.unwrap();
    assert_eq!(m.get("owner").map(String::as_str), Some("ann"));
    assert_eq!(m.get("project").map(String::as_str), Some("dooz"));
    assert_eq!(get(&c, "alpha", "docs/readme.txt").await, body);

    // Empty objects.
    put(&c, "alpha", "empty", b"").await;
    assert!(get(&c, "alpha", "empty").await.is_empty());

    // Ranges over a multi-chunk object.
    let big = pseudo_random(3 * 1024 * 1024 + 17, 7);
    put(&c, "alpha", "big", &big).await;
    let (r, cr) = get_range(&c, "big", "bytes=2-5").await;
    assert_eq!(r, big[2..6]);
    assert_eq!(
        cr.as_deref(),
        Some(format!("bytes 2-5/{}", big.len()).as_str())
    );
    let (r, _) = get_range(&c, "big", "bytes=-3").await;
    assert_eq!(r, big[big.len() - 3..]);
    let (r, _) = get_range(&c, "big", "bytes=1048570-").await;
    assert_eq!(r, big[1_048_570..]);
    let (r, _) = get_range(&c, "big", "bytes=1000000-2500000").await;
    assert_eq!(r, big[1_000_000..=2_500_000]);
    assert_eq!(
        code(
            c.get_object()
                .bucket("alpha")
                .key("big")
                .range(format!("bytes={}-", big.len()))
                .send()
                .await
        ),
        "InvalidRange"
    );
    assert_eq!(get(&c, "alpha", "big").await, big);

    // Listings: delimiter, prefixes, unicode and awkward names, pagination.
    for k in [
        "a/1",
        "a/2",
        "b/1",
        "c",
        "unicode é/ü",
        "space key",
        "plus+key",
    ] {
        put(&c, "alpha", k, k.as_bytes()).await;
    }
    let out = c
        .list_objects_v2()
        .bucket("alpha")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix.clone())
        .collect();
    assert_eq!(prefixes, vec!["a/", "b/", "docs/", "unicode é/"]);
    let keys: Vec<_> = out
        .contents()
        .iter()
        .filter_map(|o| o.key.clone())
        .collect();
    assert_eq!(keys, vec!["big", "c", "empty", "plus+key", "space key"]);
    let mut expected = vec![
        "a/1",
        "a/2",
        "b/1",
        "big",
        "c",
        "docs/readme.txt",
        "empty",
        "plus+key",
        "space key",
        "unicode é/ü",
    ];
    expected.sort();
    for page in [1, 2, 3, 1000] {
        assert_eq!(
            list_all(&c, "alpha", "", page).await,
            expected,
            "page size {page}"
        );
    }
    assert_eq!(list_all(&c, "alpha", "a/", 1).await, vec!["a/1", "a/2"]);
    let v1 = c
        .list_objects()
        .bucket("alpha")
        .marker("c")
        .max_keys(2)
        .send()
        .await
        .expect("list v1");
    let keys: Vec<_> = v1.contents().iter().filter_map(|o| o.key.clone()).collect();
    assert_eq!(keys, vec!["docs/readme.txt", "empty"]);
    assert_eq!(v1.is_truncated, Some(true));
    let encoded = c
        .list_objects_v2()
        .bucket("alpha")
        .prefix("space")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("list url");
    assert_eq!(encoded.contents()[0].key.as_deref(), Some("space%20key"));

    // Deletes.
    c.delete_object()
        .bucket("alpha")
        .key("c")
        .send()
        .await
        .expect("delete");
    assert_eq!(
        code(c.get_object().bucket("alpha").key("c").send().await),
        "NoSuchKey"
    );
    c.delete_object()
        .bucket("alpha")
        .key("never-existed")
        .send()
        .await
        .expect("deleting a missing key is fine");
    assert_eq!(
        code(c.delete_bucket().bucket("alpha").send().await),
        "BucketNotEmpty"
    );
    let remaining = list_all(&c, "alpha", "", 1000).await;
    let del = Delete::builder()
        .set_objects(Some(
            remaining
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket("alpha")
        .delete(del)
        .send()
        .await
        .expect("delete objects");
    assert_eq!(out.deleted().len(), remaining.len());
    assert!(out.errors().is_empty());
    assert!(list_all(&c, "alpha", "", 1000).await.is_empty());
    g.fsck_clean().await;
    c.delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("delete bucket");
    assert_eq!(
        code(c.get_object().bucket("alpha").key("x").send().await),
        "NoSuchBucket"
    );
    assert!(c.head_bucket().bucket("alpha").send().await.is_err());
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

/// Uploading the same 50 MiB twice barely grows the backend; an edited copy
/// stores only the changed chunks; the backend never holds plaintext.
async fn dedup_and_confidentiality(meta: Meta, backend: Backend) {
    let g = start(Options::new(meta, backend)).await;
    let c = g.client();
    c.create_bucket()
        .bucket("dedup")
        .send()
        .await
        .expect("create");

    const MARKER: &[u8] = b"DOOZ-PLAINTEXT-MARKER-5e1f0c";
    let mut data = pseudo_random(50 * 1024 * 1024, 42);
    for at in (0..data.len() - MARKER.len()).step_by(5 * 1024 * 1024) {
        data[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    let before = g.backend_bytes().await;
    put(&c, "dedup", "one", &data).await;
    let after_one = g.backend_bytes().await;
    let stored_one = after_one - before;
    assert!(
        (50 * 1024 * 1024..51 * 1024 * 1024).contains(&stored_one),
        "random data stores about its size: {stored_one}"
    );
    put(&c, "dedup", "two", &data).await;
    let after_two = g.backend_bytes().await;
    assert_eq!(after_two, after_one, "an identical upload writes nothing");

    let mut edited = data.clone();
    for b in &mut edited[25 * 1024 * 1024..25 * 1024 * 1024 + 100] {
        *b = !*b;
    }
    put(&c, "dedup", "edited", &edited).await;
    let grew = g.backend_bytes().await - after_two;
    assert!(
        grew > 0 && grew <= 8 * 1024 * 1024,
        "an edit stores only nearby chunks: {grew}"
    );

    // Compressible text: stored smaller than it is, and never in the clear.
    let mut text = Vec::new();
    while text.len() < 2 * 1024 * 1024 {
        text.extend_from_slice(b"The quick brown fox jumps over the lazy dog. ");
        text.extend_from_slice(MARKER);
        text.push(b'\n');
    }
    let before_text = g.backend_bytes().await;
    put(&c, "dedup", "text", &text).await;
    let text_stored = g.backend_bytes().await - before_text;
    assert!(
        text_stored < text.len() as u64 / 4,
        "text compresses: {text_stored}"
    );

    for pack in g.all_pack_bytes().await {
        assert!(
            !pack.windows(MARKER.len()).any(|w| w == MARKER),
            "a pack holds plaintext"
        );
        assert!(
            !pack.windows(64).any(|w| w == &data[..64]),
            "a pack holds the object's first bytes"
        );
    }
    assert_eq!(get(&c, "dedup", "two").await, data);
    assert_eq!(get(&c, "dedup", "edited").await, edited);
    assert_eq!(get(&c, "dedup", "text").await, text);
    g.fsck_clean().await;

    // Refcounts stay exact as references go away.
    c.delete_object()
        .bucket("dedup")
        .key("one")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("dedup")
        .key("edited")
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "dedup", "two").await, data);
    g.fsck_clean().await;
    let usage = g.engine().meta().usage(Some(g.tenant.id)).await.unwrap();
    assert_eq!(usage.objects, 2);
}

macro_rules! matrix {
    ($test:ident) => {
        mod $test {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_local() {
                super::$test(Meta::Sqlite, Backend::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_local() {
                super::$test(Meta::Postgres, Backend::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_seaweedfs() {
                super::$test(Meta::Sqlite, Backend::Seaweed).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_seaweedfs() {
                super::$test(Meta::Postgres, Backend::Seaweed).await
            }
        }
    };
}

matrix!(object_lifecycle);
matrix!(dedup_and_confidentiality);
