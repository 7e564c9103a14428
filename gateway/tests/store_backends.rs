//! PackStore against real backends: a local directory and SeaweedFS over S3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use dooz_gateway::store::{BackendConfig, PackStore, StoreError};

async fn exercise(store: &PackStore) {
    let id: [u8; 16] = rand::random();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    store
        .put_pack(&id, Bytes::from(body.clone()))
        .await
        .expect("put");

    // Create-only: a second write under the same name is refused, and the
    // first pack stays intact.
    let again = store.put_pack(&id, Bytes::from_static(b"other")).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(
        store.get_pack(&id).await.unwrap(),
        Bytes::from(body.clone())
    );
    assert_eq!(
        store.get_range(&id, 1000..1010).await.unwrap(),
        Bytes::copy_from_slice(&body[1000..1010])
    );
    assert_eq!(store.pack_size(&id).await.unwrap(), body.len() as u64);
    let listed = store.list_packs().await.unwrap();
    assert!(listed.contains(&(id, body.len() as u64)), "{listed:?}");
    store.probe().await.unwrap();

    store.delete_pack(&id).await.unwrap();
    assert!(matches!(
        store.get_pack(&id).await,
        Err(StoreError::NotFound { .. })
    ));
    // Deleting what is gone is not an error (GC may retry).
    store.delete_pack(&id).await.unwrap();
}

#[tokio::test]
async fn local_directory_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = PackStore::open(
        "local",
        &BackendConfig::Local {
            path: dir.path().join("packs"),
        },
    )
    .unwrap();
    exercise(&store).await;
}

#[tokio::test]
async fn seaweedfs_s3_backend_and_outage() {
    let mut sw = support::seaweed_with_bucket("packs").await;
    let store = PackStore::open("sw", &support::seaweed_backend(&sw, "packs")).unwrap();
    exercise(&store).await;

    let id: [u8; 16] = rand::random();
    store
        .put_pack(&id, Bytes::from_static(b"survives"))
        .await
        .unwrap();

    sw.stop();
    let err = store
        .put_pack(&rand::random(), Bytes::from_static(b"x"))
        .await
        .expect_err("backend is down");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(matches!(
        store.get_pack(&id).await,
        Err(StoreError::Unavailable { .. })
    ));
    assert!(store.probe().await.is_err());

    let sw = tokio::task::spawn_blocking(move || {
        sw.restart().expect("SeaweedFS restarts");
        sw
    })
    .await
    .unwrap();
    // Recovery needs nothing from us: the next request simply works.
    assert_eq!(
        store.get_pack(&id).await.unwrap(),
        Bytes::from_static(b"survives")
    );
    drop(sw);
}
