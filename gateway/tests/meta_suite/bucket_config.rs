//! A bucket's configuration documents (CORS, default encryption) on both
//! stores: stored per bucket and kind, replaced, removed, refused for a
//! bucket that does not exist, and gone with their bucket.

use super::*;
use dooz_gateway::meta::ConfigKind;

crate::for_both_stores!(bucket_configs_are_per_bucket_and_kind);

async fn bucket_configs_are_per_bucket_and_kind(db: &TestDb) {
    let fx = fixture(db).await;
    let s = &fx.store;
    let b = fx.bucket.as_str();
    assert_eq!(s.bucket_config(b, ConfigKind::Cors).await.unwrap(), None);
    s.set_bucket_config(b, ConfigKind::Cors, Some("{\"rules\":[1]}"))
        .await
        .unwrap();
    s.set_bucket_config(b, ConfigKind::Encryption, Some("{\"e\":1}"))
        .await
        .unwrap();
    assert_eq!(
        s.bucket_config(b, ConfigKind::Cors)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"rules\":[1]}")
    );
    // Replaced in place; the other kind is untouched.
    s.set_bucket_config(b, ConfigKind::Cors, Some("{\"rules\":[2]}"))
        .await
        .unwrap();
    assert_eq!(
        s.bucket_config(b, ConfigKind::Cors)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"rules\":[2]}")
    );
    assert_eq!(
        s.bucket_config(b, ConfigKind::Encryption)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"e\":1}")
    );
    // Removed; removing again is not an error.
    s.set_bucket_config(b, ConfigKind::Cors, None)
        .await
        .unwrap();
    s.set_bucket_config(b, ConfigKind::Cors, None)
        .await
        .unwrap();
    assert_eq!(s.bucket_config(b, ConfigKind::Cors).await.unwrap(), None);

    // A bucket that does not exist: NoSuchBucket, nothing stored.
    let missing = s
        .set_bucket_config("nope", ConfigKind::Cors, Some("{}"))
        .await;
    assert!(
        matches!(missing, Err(MetaError::NoSuchBucket(_))),
        "{missing:?}"
    );
    let read = s.bucket_config("nope", ConfigKind::Cors).await;
    assert!(matches!(read, Err(MetaError::NoSuchBucket(_))), "{read:?}");
    assert_eq!(
        db.ints("SELECT COUNT(*) FROM bucket_configs WHERE bucket = 'nope'")
            .await,
        vec![vec![Some(0)]]
    );

    // The rows go with their bucket.
    s.delete_bucket(b).await.unwrap();
    assert_eq!(
        db.ints("SELECT COUNT(*) FROM bucket_configs").await,
        vec![vec![Some(0)]]
    );
}
