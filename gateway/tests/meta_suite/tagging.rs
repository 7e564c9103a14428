//! Tags in the metadata store, on both stores: each version keeps its own
//! tag set, replaced in place without touching its data or references; a
//! bucket's tag set is stored, replaced and removed; missing objects,
//! versions, buckets and delete markers are refused and change nothing.

use super::*;
use dooz_gateway::meta::Tags;

crate::for_both_stores!(
    object_tags_are_per_version_and_replaced_in_place,
    bucket_tags_round_trip_and_refuse_missing_buckets,
);

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn tags_of(fx: &Fx, key: &str, version: Option<&str>) -> Tags {
    fx.store
        .get_object(&fx.bucket, key, version)
        .await
        .unwrap()
        .expect("version exists")
        .attrs
        .tags
}

async fn object_tags_are_per_version_and_replaced_in_place(db: &TestDb) {
    let fx = fixture(db).await;
    enable_versioning(&fx).await;
    // Tags given at commit time (x-amz-tagging) are stored with the version.
    let mut first = object_commit(&fx, "k", &[1, 2], &[1, 2], "\"e1\"");
    first.attrs.tags = tags(&[("team", "a")]);
    let v1 = fx.store.commit_object(first).await.unwrap().version_id;
    let v2 = put(&fx, "k", &[3]).await.version_id;
    assert_eq!(tags_of(&fx, "k", Some(&v1)).await, tags(&[("team", "a")]));
    assert!(tags_of(&fx, "k", None).await.is_empty());

    // Without a version id the latest is tagged; the older keeps its own.
    let set = tags(&[("x", "1"), ("y", "")]);
    let tagged = fx.store.set_object_tags(&fx.bucket, "k", None, &set).await;
    assert_eq!(tagged.unwrap(), v2);
    assert_eq!(tags_of(&fx, "k", Some(&v2)).await, set);
    assert_eq!(tags_of(&fx, "k", Some(&v1)).await, tags(&[("team", "a")]));

    // Replacing the old version's tags leaves its data and references alone.
    let before = fx
        .store
        .get_object(&fx.bucket, "k", Some(&v1))
        .await
        .unwrap();
    let r = fx
        .store
        .set_object_tags(&fx.bucket, "k", Some(&v1), &Tags::new())
        .await;
    assert_eq!(r.unwrap(), v1);
    let after = fx
        .store
        .get_object(&fx.bucket, "k", Some(&v1))
        .await
        .unwrap();
    let (before, after) = (before.unwrap(), after.unwrap());
    assert!(after.attrs.tags.is_empty());
    assert_eq!(after.manifest, before.manifest);
    assert_eq!(after.attrs.etag, before.attrs.etag);
    assert_eq!(after.created_at, before.created_at);
    assert_consistent(db, &fx.store).await;

    // Missing keys, versions and delete markers are refused.
    let missing = fx
        .store
        .set_object_tags(&fx.bucket, "nope", None, &set)
        .await;
    assert!(
        matches!(missing, Err(MetaError::NoSuchKey { .. })),
        "{missing:?}"
    );
    let missing = fx
        .store
        .set_object_tags(
            &fx.bucket,
            "k",
            Some("0000000000000099-ffffffffffffffff"),
            &set,
        )
        .await;
    assert!(
        matches!(missing, Err(MetaError::NoSuchVersion { .. })),
        "{missing:?}"
    );
    fx.store
        .delete_object(&fx.bucket, "k", None, false)
        .await
        .unwrap();
    let marker = fx.store.set_object_tags(&fx.bucket, "k", None, &set).await;
    assert!(
        matches!(marker, Err(MetaError::InvalidRequest(_))),
        "{marker:?}"
    );
    assert_eq!(tags_of(&fx, "k", Some(&v2)).await, set);
}

async fn bucket_tags_round_trip_and_refuse_missing_buckets(db: &TestDb) {
    let fx = fixture(db).await;
    assert_eq!(fx.store.bucket_tags(&fx.bucket).await.unwrap(), None);
    let set: Tags = (0..50)
        .map(|i| (format!("k{i}"), format!("é{i}")))
        .collect();
    fx.store
        .set_bucket_tags(&fx.bucket, Some(&set))
        .await
        .unwrap();
    assert_eq!(fx.store.bucket_tags(&fx.bucket).await.unwrap(), Some(set));
    let one = tags(&[("only", "one")]);
    fx.store
        .set_bucket_tags(&fx.bucket, Some(&one))
        .await
        .unwrap();
    assert_eq!(fx.store.bucket_tags(&fx.bucket).await.unwrap(), Some(one));
    fx.store.set_bucket_tags(&fx.bucket, None).await.unwrap();
    assert_eq!(fx.store.bucket_tags(&fx.bucket).await.unwrap(), None);
    assert!(matches!(
        fx.store.bucket_tags("nope").await,
        Err(MetaError::NoSuchBucket(_))
    ));
    assert!(matches!(
        fx.store.set_bucket_tags("nope", None).await,
        Err(MetaError::NoSuchBucket(_))
    ));
    // A tagged bucket can still be deleted.
    fx.store
        .set_bucket_tags(&fx.bucket, Some(&tags(&[("a", "b")])))
        .await
        .unwrap();
    fx.store.delete_bucket(&fx.bucket).await.unwrap();
}
