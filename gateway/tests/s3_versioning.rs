//! Versioning over real TCP with aws-sdk-s3, on both metadata stores:
//! version ids, delete markers (404/405), version-addressed reads, copies,
//! deletes and completions, suspended buckets, ListObjectVersions paging
//! across 2,500 versions, the dedup claim of 20 versions of a 64 MiB
//! object, and point-in-time restore through the `dooz` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, MfaDeleteStatus,
    ObjectIdentifier, VersioningConfiguration,
};
use support::gateway::{Backend, Meta, Options, start};
use support::{code, get, pseudo_random, put};

const MIB: usize = 1024 * 1024;

async fn set_versioning(c: &Client, bucket: &str, status: BucketVersioningStatus) {
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("versioning of {bucket}: {e:?}"));
}

/// PUTs a body; returns the version id the response carries.
async fn put_v(c: &Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .version_id
}

async fn get_v(c: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}@{version}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

/// (key, version id, is latest, is delete marker) of every version under
/// `prefix`, paging with the markers the answers give.
async fn all_versions(
    c: &Client,
    bucket: &str,
    prefix: &str,
    page: i32,
) -> Vec<(String, String, bool, bool)> {
    let mut out: Vec<(String, String, bool, bool)> = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let r = c
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        let n = r.versions().len() + r.delete_markers().len();
        assert!(n <= page as usize, "a page holds at most max-keys entries");
        // The XML carries versions and delete markers as two lists, each in
        // listing order; merge them back into one.
        let versions = r.versions().iter().map(|v| Entry {
            key: v.key().unwrap().to_owned(),
            version: v.version_id().unwrap().to_owned(),
            latest: v.is_latest().unwrap(),
            marker: false,
            modified: v.last_modified().unwrap().to_millis().unwrap(),
        });
        let markers = r.delete_markers().iter().map(|m| Entry {
            key: m.key().unwrap().to_owned(),
            version: m.version_id().unwrap().to_owned(),
            latest: m.is_latest().unwrap(),
            marker: true,
            modified: m.last_modified().unwrap().to_millis().unwrap(),
        });
        out.extend(merge(versions.collect(), markers.collect()));
        if r.is_truncated() == Some(true) {
            key_marker = r.next_key_marker().map(str::to_owned);
            version_marker = r.next_version_id_marker().map(str::to_owned);
            assert!(key_marker.is_some());
        } else {
            assert!(r.next_key_marker().is_none());
            return out;
        }
    }
}

struct Entry {
    key: String,
    version: String,
    latest: bool,
    marker: bool,
    modified: i64,
}

/// Whether `a` comes before `b` in listing order: keys in order, then newest
/// first (by time; within one millisecond by the seq our ids start with).
fn before(a: &Entry, b: &Entry) -> bool {
    match a.key.cmp(&b.key) {
        std::cmp::Ordering::Equal => match b.modified.cmp(&a.modified) {
            std::cmp::Ordering::Equal => a.version.get(..16) > b.version.get(..16),
            o => o.is_lt(),
        },
        o => o.is_lt(),
    }
}

fn merge(versions: Vec<Entry>, markers: Vec<Entry>) -> Vec<(String, String, bool, bool)> {
    let (mut v, mut m) = (
        versions.into_iter().peekable(),
        markers.into_iter().peekable(),
    );
    let mut out = Vec::new();
    loop {
        let next = match (v.peek(), m.peek()) {
            (Some(a), Some(b)) if before(b, a) => m.next(),
            (Some(_), _) => v.next(),
            (None, _) => m.next(),
        };
        let Some(e) = next else { return out };
        out.push((e.key, e.version, e.latest, e.marker));
    }
}

fn status_of<E: std::fmt::Debug>(r: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    r.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

fn header<E>(r: &aws_sdk_s3::error::SdkError<E>, name: &str) -> Option<String> {
    r.raw_response()
        .and_then(|r| r.headers().get(name))
        .map(str::to_owned)
}

async fn versioning_lifecycle(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    let b = "docs";
    c.create_bucket().bucket(b).send().await.unwrap();
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status(), None, "a new bucket is unversioned");
    assert_eq!(put_v(&c, b, "k", b"unversioned").await, None);

    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Enabled));
    let v1 = put_v(&c, b, "k", b"first").await.unwrap();
    let v2 = put_v(&c, b, "k", b"second").await.unwrap();
    assert!(v1 != v2 && v1 != "null");
    assert_eq!(get(&c, b, "k").await, b"second");
    assert_eq!(get_v(&c, b, "k", &v1).await, b"first");
    assert_eq!(get_v(&c, b, "k", "null").await, b"unversioned");
    let head = c.head_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(head.version_id(), Some(v2.as_str()));
    let head = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id("null")
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), Some("null"));
    assert_eq!(head.content_length(), Some(11));

    // Newest first, the null version at its place in time (the oldest).
    let listed = all_versions(&c, b, "", 1000).await;
    let r = c.list_object_versions().bucket(b).send().await.unwrap();
    let order: Vec<&str> = r.versions().iter().filter_map(|v| v.version_id()).collect();
    assert_eq!(order, [v2.as_str(), v1.as_str(), "null"]);
    assert_eq!(listed.len(), 3);
    assert!(r.versions()[0].is_latest().unwrap());
    assert!(!r.versions()[2].is_latest().unwrap());

    // A delete adds a marker: 404 with x-amz-delete-marker; 405 by its id.
    let del = c.delete_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().unwrap().to_owned();
    let err = c.get_object().bucket(b).key("k").send().await.unwrap_err();
    assert_eq!(status_of(&err), 404);
    assert_eq!(header(&err, "x-amz-delete-marker").as_deref(), Some("true"));
    assert_eq!(
        header(&err, "x-amz-version-id").as_deref(),
        Some(marker.as_str())
    );
    let err = c.head_object().bucket(b).key("k").send().await.unwrap_err();
    assert_eq!(status_of(&err), 404);
    assert_eq!(header(&err, "x-amz-delete-marker").as_deref(), Some("true"));
    let err = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 405);
    assert_eq!(header(&err, "x-amz-delete-marker").as_deref(), Some("true"));
    let err = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 405);
    assert_eq!(
        get_v(&c, b, "k", &v1).await,
        b"first",
        "old versions stay readable"
    );
    let l = c.list_objects_v2().bucket(b).send().await.unwrap();
    assert!(l.contents().is_empty(), "a deleted key is not listed");
    let r = c.list_object_versions().bucket(b).send().await.unwrap();
    assert_eq!(r.delete_markers().len(), 1);
    assert!(r.delete_markers()[0].is_latest().unwrap());
    assert!(r.versions().iter().all(|v| !v.is_latest().unwrap()));

    // Bad and unknown version ids.
    assert_eq!(
        code(
            c.get_object()
                .bucket(b)
                .key("k")
                .version_id("nonsense")
                .send()
                .await
        ),
        "InvalidArgument"
    );
    assert_eq!(
        code(
            c.get_object()
                .bucket(b)
                .key("k")
                .version_id("00000000000000990000000000000000")
                .send()
                .await
        ),
        "NoSuchVersion"
    );

    // Copies name their source version; the copy is a new version.
    let copy = c
        .copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/k?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(copy.copy_source_version_id(), Some(v1.as_str()));
    let copy_v = copy.version_id().unwrap().to_owned();
    assert_eq!(get_v(&c, b, "copy", &copy_v).await, b"first");
    assert_eq!(
        code(
            c.copy_object()
                .bucket(b)
                .key("copy")
                .copy_source(format!("{b}/k?versionId={marker}"))
                .send()
                .await
        ),
        "InvalidRequest"
    );
    assert_eq!(
        code(
            c.copy_object()
                .bucket(b)
                .key("copy")
                .copy_source(format!("{b}/k"))
                .send()
                .await
        ),
        "NoSuchKey"
    );
    // Copying an old version onto its own key brings it back.
    let back = c
        .copy_object()
        .bucket(b)
        .key("k")
        .copy_source(format!("{b}/k?versionId={v2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, b, "k").await, b"second");
    let restored = back.version_id().unwrap().to_owned();

    // UploadPartCopy from a version, and the completion's version id.
    let big = pseudo_random(6 * MIB, 3);
    let big_v = put_v(&c, b, "big", &big).await.unwrap();
    put_v(&c, b, "big", b"overwritten").await;
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key("mp")
        .send()
        .await
        .unwrap();
    let upload_id = up.upload_id().unwrap();
    let part = c
        .upload_part_copy()
        .bucket(b)
        .key("mp")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source(format!("{b}/big?versionId={big_v}"))
        .send()
        .await
        .unwrap();
    assert_eq!(part.copy_source_version_id(), Some(big_v.as_str()));
    let done = c
        .complete_multipart_upload()
        .bucket(b)
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mp_v = done.version_id().unwrap().to_owned();
    assert_eq!(get_v(&c, b, "mp", &mp_v).await, big);

    // DeleteObjects with version ids: a version, a marker, and a new marker.
    let out = c
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("k")
                        .version_id(&v1)
                        .build()
                        .unwrap(),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("k")
                        .version_id(&marker)
                        .build()
                        .unwrap(),
                )
                .objects(ObjectIdentifier::builder().key("copy").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let by_key: Vec<_> = out
        .deleted()
        .iter()
        .map(|d| {
            (
                d.key().unwrap(),
                d.version_id(),
                d.delete_marker(),
                d.delete_marker_version_id().is_some(),
            )
        })
        .collect();
    assert_eq!(
        by_key,
        [
            ("k", Some(v1.as_str()), None, false),
            ("k", Some(marker.as_str()), Some(true), true),
            ("copy", None, Some(true), true),
        ]
    );
    let left: Vec<String> = all_versions(&c, b, "k", 100)
        .await
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(left, [restored.clone(), v2.clone(), "null".into()]);

    // Suspended: writes replace the null version; deletes leave a null marker.
    set_versioning(&c, b, BucketVersioningStatus::Suspended).await;
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Suspended));
    assert_eq!(
        put_v(&c, b, "k", b"suspended").await.as_deref(),
        Some("null")
    );
    assert_eq!(get_v(&c, b, "k", "null").await, b"suspended");
    let left: Vec<String> = all_versions(&c, b, "k", 100)
        .await
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        left,
        ["null".to_owned(), restored.clone(), v2.clone()],
        "one null version, now the newest"
    );
    let del = c.delete_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(
        (del.delete_marker(), del.version_id()),
        (Some(true), Some("null"))
    );
    assert_eq!(get_v(&c, b, "k", &v2).await, b"second");

    // MFA delete is not supported; no return to unversioned.
    let mfa = c
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .mfa_delete(aws_sdk_s3::types::MfaDelete::Enabled)
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(mfa), "NotImplemented");
    let got = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.mfa_delete(), None::<&MfaDeleteStatus>);
    // Only the admin policy changes bucket settings.
    let (ak, sk) = g
        .user("writer", dooz_gateway::meta::Policy::ReadWrite)
        .await;
    let w = g.client_as(&ak, &sk);
    assert_eq!(
        code(
            w.put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build()
                )
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        code(c.delete_bucket().bucket(b).send().await),
        "BucketNotEmpty",
        "old versions and markers keep a bucket non-empty"
    );
    g.fsck_clean().await;
}

/// 2,500 versions (and delete markers) under several prefixes, paged with
/// key and version-id markers at several page sizes, with a delimiter, and
/// with encoding-type=url.
async fn list_object_versions_pages(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    let b = "many";
    c.create_bucket().bucket(b).send().await.unwrap();
    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    // 100 keys x 25 versions; every 7th key ends with a delete marker.
    let keys: Vec<String> = (0..100)
        .map(|i| match i % 4 {
            0 => format!("top-{i:03}"),
            1 => format!("dir{}/obj {i:03}+é", i % 3),
            _ => format!("dir{}/sub/obj-{i:03}", i % 5),
        })
        .collect();
    let mut expected: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for chunk in keys.chunks(10) {
        let tasks = chunk.iter().map(|k| {
            let c = c.clone();
            let k = k.clone();
            async move {
                let mut vs = Vec::new();
                for n in 0..25 {
                    let v = put_v(&c, b, &k, format!("{k}#{n}").as_bytes()).await;
                    vs.push((v.unwrap(), false));
                }
                (k, vs)
            }
        });
        for (k, vs) in futures::future::join_all(tasks).await {
            expected.insert(k, vs);
        }
    }
    for (_, k) in keys.iter().enumerate().filter(|(i, _)| i % 7 == 0) {
        let d = c.delete_object().bucket(b).key(k).send().await.unwrap();
        expected
            .get_mut(k)
            .unwrap()
            .push((d.version_id().unwrap().to_owned(), true));
    }
    let mut want = Vec::new();
    for (k, vs) in &expected {
        for (j, (v, marker)) in vs.iter().rev().enumerate() {
            want.push((k.clone(), v.clone(), j == 0, *marker));
        }
    }
    assert!(want.len() >= 2500);
    for page in [1000, 333, 7] {
        assert_eq!(all_versions(&c, b, "", page).await, want, "page {page}");
    }
    let dir1: Vec<_> = want
        .iter()
        .filter(|w| w.0.starts_with("dir1/"))
        .cloned()
        .collect();
    assert_eq!(all_versions(&c, b, "dir1/", 50).await, dir1);

    // Delimiter: common prefixes count against max-keys and page too.
    let mut prefixes = Vec::new();
    let mut top = Vec::new();
    let (mut km, mut vm) = (None::<String>, None::<String>);
    loop {
        let r = c
            .list_object_versions()
            .bucket(b)
            .delimiter("/")
            .max_keys(4)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        let n = r.versions().len() + r.delete_markers().len() + r.common_prefixes().len();
        assert!(n <= 4);
        prefixes.extend(
            r.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        top.extend(r.versions().iter().map(|v| v.key().unwrap().to_owned()));
        top.extend(
            r.delete_markers()
                .iter()
                .map(|v| v.key().unwrap().to_owned()),
        );
        if r.is_truncated() != Some(true) {
            break;
        }
        km = r.next_key_marker().map(str::to_owned);
        vm = r.next_version_id_marker().map(str::to_owned);
    }
    assert_eq!(prefixes, ["dir0/", "dir1/", "dir2/", "dir3/", "dir4/"]);
    assert_eq!(
        top.len(),
        want.iter().filter(|w| w.0.starts_with("top-")).count()
    );
    let r = c
        .list_object_versions()
        .bucket(b)
        .prefix("dir1/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.common_prefixes()
            .iter()
            .map(|p| p.prefix().unwrap())
            .collect::<Vec<_>>(),
        ["dir1/sub/"]
    );

    // encoding-type=url: keys come back percent-encoded.
    let r = c
        .list_object_versions()
        .bucket(b)
        .prefix("dir1/obj ")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .max_keys(1)
        .send()
        .await
        .unwrap();
    let k = r.versions()[0].key().unwrap();
    assert!(
        k.starts_with("dir1/obj%20") && k.ends_with("%2B%C3%A9"),
        "{k}"
    );
    assert_eq!(r.prefix(), Some("dir1/obj%20"));

    // A version-id marker needs a key marker.
    assert_eq!(
        code(
            c.list_object_versions()
                .bucket(b)
                .version_id_marker(&want[0].1)
                .send()
                .await
        ),
        "InvalidArgument"
    );
    // ListObjects shows the current, non-deleted versions only.
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .list_objects_v2()
            .bucket(b)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        listed.extend(r.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if r.is_truncated() != Some(true) {
            break;
        }
        token = r.next_continuation_token().map(str::to_owned);
    }
    let live: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, k)| k.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(listed, live);
    g.fsck_clean().await;
}

/// 20 versions of a 64 MiB object, each with 1 MiB changed: the backend
/// stores at most 64 MiB + 20 × 8 MiB, and every version reads back.
async fn twenty_versions_cost_only_their_changes(meta: Meta, backend: Backend) {
    let g = start(Options::new(meta, backend)).await;
    let c = g.client();
    let b = "dedup";
    c.create_bucket().bucket(b).send().await.unwrap();
    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    let mut data = pseudo_random(64 * MIB, 11);
    let mut versions = Vec::new();
    for n in 0..20u64 {
        if n > 0 {
            // 1 MiB of new bytes at a place that moves with every version.
            let at = (n as usize * 7919 * 1024) % (63 * MIB);
            data[at..at + MIB].copy_from_slice(&pseudo_random(MIB, 100 + n));
        }
        let v = put_v(&c, b, "disk.img", &data).await.unwrap();
        versions.push((v, blake3::hash(&data)));
    }
    let stored = g.backend_bytes().await;
    let budget = (64 + 20 * 8) * MIB as u64;
    eprintln!(
        "20 versions of a 64 MiB object, 1 MiB changed each: {stored} bytes on the backend \
         ({:.1} MiB; budget {} MiB; {:.1} MiB per extra version)",
        stored as f64 / MIB as f64,
        budget / MIB as u64,
        (stored as f64 / MIB as f64 - 64.0) / 19.0
    );
    assert!(stored <= budget, "{stored} > {budget}");
    for i in [0, 9, 19] {
        let (v, hash) = &versions[i];
        assert_eq!(
            blake3::hash(&get_v(&c, b, "disk.img", v).await),
            *hash,
            "version {i}"
        );
    }
    g.fsck_clean().await;
}

// ----------------------------------------------------- point-in-time restore

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_line(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{}{}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(o);
    serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn rfc3339(ms: i64) -> String {
    dooz_gateway::meta::lock::rfc3339(ms)
}

/// A pause that puts the next write in a later millisecond than anything
/// before it (version times have millisecond precision).
async fn tick() -> i64 {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let t = dooz_gateway::engine::now_millis();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    t
}

async fn current_state(c: &Client, b: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let r = c.list_objects_v2().bucket(b).send().await.unwrap();
    for o in r.contents() {
        let k = o.key().unwrap();
        out.insert(k.to_owned(), get(c, b, k).await);
    }
    out
}

async fn point_in_time_restore(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    let b = "history";
    c.create_bucket().bucket(b).send().await.unwrap();
    put(&c, b, "before-versioning", b"too old").await;
    let before_versioning = tick().await;
    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    let mut then: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, body) in [
        ("a.txt", pseudo_random(300_000, 1)),
        ("b.txt", b"bee".to_vec()),
        ("c.txt", b"sea".to_vec()),
        ("dir/d.bin", pseudo_random(2 * MIB, 4)),
        ("dir/gone.txt", b"to be deleted".to_vec()),
    ] {
        put(&c, b, k, &body).await;
        then.insert(k.to_owned(), body);
    }
    then.insert("before-versioning".into(), b"too old".to_vec());
    let t = tick().await;
    // Everything that happens after T.
    put(&c, b, "a.txt", b"a, overwritten").await;
    c.delete_object()
        .bucket(b)
        .key("b.txt")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket(b)
        .key("c.txt")
        .send()
        .await
        .unwrap();
    put(&c, b, "c.txt", b"c, deleted and recreated").await;
    put(&c, b, "dir/d.bin", &pseudo_random(2 * MIB, 5)).await;
    put(&c, b, "dir/d.bin", &pseudo_random(MIB, 6)).await;
    c.delete_object()
        .bucket(b)
        .key("dir/gone.txt")
        .send()
        .await
        .unwrap();
    put(&c, b, "e-new.txt", b"created after T").await;
    put(&c, b, "dir/new.txt", b"also after T").await;
    let now_state = current_state(&c, b).await;
    let backend_before = g.backend_bytes().await;

    // What the bucket held then, through the CLI.
    let ls = json_line(&g.dooz(&["admin", "bucket", "ls", b, "--at", &rfc3339(t), "--json"]));
    let listed: BTreeMap<String, u64> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                e["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = then
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as u64))
        .collect();
    assert_eq!(listed, want);

    // A dry run names every change and changes nothing.
    let dry = json_line(&g.dooz(&[
        "admin",
        "bucket",
        "restore",
        b,
        "--at",
        &rfc3339(t),
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["restored"], 5, "{dry}");
    assert_eq!(dry["deleted"], 2, "{dry}");
    assert_eq!(dry["unchanged"], 1, "{dry}");
    assert_eq!(dry["actions"].as_array().unwrap().len(), 7, "{dry}");
    assert_eq!(
        current_state(&c, b).await,
        now_state,
        "a dry run changes nothing"
    );

    // A prefix restores only that part.
    let part = json_line(&g.dooz(&[
        "admin",
        "bucket",
        "restore",
        b,
        "--at",
        &rfc3339(t),
        "--prefix",
        "dir/",
        "--json",
    ]));
    assert_eq!(
        (part["restored"].as_u64(), part["deleted"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(get(&c, b, "a.txt").await, b"a, overwritten");

    // The whole bucket, in text mode: changes, then a summary.
    let out = g.dooz(&["admin", "bucket", "restore", b, "--at", &rfc3339(t)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("restore a.txt from version"), "{text}");
    assert!(text.contains("delete e-new.txt"), "{text}");
    assert!(
        text.contains("3 restored") && text.contains("1 deleted"),
        "{text}"
    );
    // Object by object, the bucket is what it was at T.
    assert_eq!(current_state(&c, b).await, then);
    for k in ["e-new.txt", "dir/new.txt"] {
        assert_eq!(
            code(c.get_object().bucket(b).key(k).send().await),
            "NoSuchKey"
        );
    }
    // New versions referencing old chunks: nothing was copied or uploaded.
    assert_eq!(g.backend_bytes().await, backend_before);
    // History is kept: the overwritten content is still a version.
    let versions = all_versions(&c, b, "a.txt", 100).await;
    assert_eq!(versions.len(), 3);

    // Again: nothing to do.
    let again = json_line(&g.dooz(&[
        "admin",
        "bucket",
        "restore",
        b,
        "--at",
        &rfc3339(t),
        "--json",
    ]));
    assert_eq!(
        (again["restored"].as_u64(), again["deleted"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(again["unchanged"], 8, "{again}");

    // Refused before versioning was enabled, and after a suspension.
    let out = g.dooz(&[
        "admin",
        "bucket",
        "restore",
        b,
        "--at",
        &rfc3339(before_versioning),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("versioning was unversioned then"), "{err}");
    let out = g.dooz(&["admin", "bucket", "restore", b, "--at", "not a time"]);
    assert!(!out.status.success());
    set_versioning(&c, b, BucketVersioningStatus::Suspended).await;
    let out = g.dooz(&["admin", "bucket", "restore", b, "--at", &rfc3339(t)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("suspended"));
    assert_eq!(
        current_state(&c, b).await,
        then,
        "a refused restore changes nothing"
    );
    g.fsck_clean().await;
}

macro_rules! both_stores {
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

both_stores!(versioning_lifecycle);
both_stores!(list_object_versions_pages);
both_stores!(point_in_time_restore);

mod twenty_versions_cost_only_their_changes {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_seaweedfs() {
        super::twenty_versions_cost_only_their_changes(Meta::Postgres, Backend::Seaweed).await
    }
}
