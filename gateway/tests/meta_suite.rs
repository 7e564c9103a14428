//! The metadata store suite: every test runs against SQLite (a temp file) and
//! PostgreSQL (a database of its own, dropped afterwards). PostgreSQL must be
//! reachable (DOOZ_TEST_PG, default host=127.0.0.1 user=postgres): its tests
//! fail, never skip, without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "meta_suite/access.rs"]
mod access;
#[path = "meta_suite/bucket_config.rs"]
mod bucket_config;
mod common;
#[path = "meta_suite/limits.rs"]
mod limits;
#[path = "meta_suite/tagging.rs"]
mod tagging;
#[path = "meta_suite/versions.rs"]
mod versions;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use common::{ChunkRow, Kind, TestDb};
use dooz_gateway::meta::{
    self, Bucket, ChunkKey, ChunkLocation, ChunkMove, CommitOutcome, LeaseGrant, LeaseRequest,
    Manifest, ManifestChunk, ManifestPart, MetaError, MetaStore, MultipartUpload, NewChunk,
    NewPack, ObjectAttrs, ObjectCommit, PackKey, Part, PartCommit, Policy, Repoint, Tenant,
    TenantId, User, Versioning, WriteConditions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

for_both_stores!(
    migrations_are_idempotent_and_refuse_newer_schemas,
    concurrent_opens_apply_each_migration_once,
    tenants_and_users,
    buckets_namespace_and_emptiness,
    bucket_name_race_has_one_owner,
    commit_then_get_round_trips,
    overwrite_releases_the_old_version,
    reuse_increments_and_revives_zombies,
    vanished_reused_chunk_rolls_the_commit_back,
    lost_races_are_counted,
    concurrent_commits_of_one_new_chunk,
    write_conditions,
    create_only_race_has_exactly_one_winner,
    delete_releases_and_versions_match_exactly,
    listing_order_prefix_and_pages,
    listing_100k_keys_scans_an_index_range,
    lookup_touches_zombies_and_locations_batch,
    multipart_replace_complete_and_abort,
    multipart_listing,
    concurrent_writers_sharing_chunks_stay_consistent,
    random_operations_keep_fsck_clean,
    fsck_reports_corruption,
    bad_rows_are_corrupt_not_panics,
    corrupt_refcounts_do_not_block_deletes,
    commit_latency_of_a_1000_chunk_manifest,
    leases_acquire_renew_take_over_and_revoke,
    commits_fenced_by_a_lost_lease_roll_back,
    collector_deletes_only_old_zombies_and_unreferenced_packs,
    repoint_moves_live_rows_compare_and_set,
    space_counts_live_zombie_dead_and_reclaimable,
);

// ---------------------------------------------------------------- fixtures

fn cid(n: u32) -> ChunkKey {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

fn frame_len(n: u32) -> u32 {
    100 + n
}

fn plain_len(n: u32) -> u32 {
    1000 + n
}

fn new_tenant(name: &str) -> Tenant {
    Tenant {
        id: uuid::Uuid::new_v4(),
        name: name.to_owned(),
        cipher: "aes-256-gcm-siv".into(),
        current_epoch: 0,
        wrapped_tmk: vec![7; 40],
        created_at: 1_700_000_000_000,
    }
}

struct Fx {
    store: Arc<dyn MetaStore>,
    tenant: TenantId,
    bucket: String,
}

async fn fixture(db: &TestDb) -> Fx {
    let store = db.open().await;
    let t = new_tenant("acme");
    store.create_tenant(&t).await.unwrap();
    store
        .create_bucket(&Bucket {
            name: "bkt".into(),
            tenant_id: t.id,
            backend: "local".into(),
            created_at: 1,
            versioning: Versioning::Unversioned,
            object_lock: None,
        })
        .await
        .unwrap();
    Fx {
        store,
        tenant: t.id,
        bucket: "bkt".into(),
    }
}

fn manifest(chunks: &[u32]) -> Manifest {
    Manifest::single(
        chunks
            .iter()
            .map(|&n| ManifestChunk::whole(cid(n), plain_len(n)))
            .collect(),
    )
}

fn attrs(m: &Manifest, etag: &str) -> ObjectAttrs {
    let mut a = ObjectAttrs {
        size: m.size(),
        etag: format!("\"{etag}\""),
        content_type: Some("text/plain".into()),
        ..ObjectAttrs::default()
    };
    a.user_metadata.insert("colour".into(), "blue".into());
    a.checksums.insert("CRC32".into(), "AAAAAA==".into());
    a.checksum_type = Some("FULL_OBJECT".into());
    a
}

/// Frames for `fresh` (distinct, in order) in one new pack.
fn new_frames(fresh: &[u32]) -> (Vec<NewChunk>, Vec<NewPack>) {
    if fresh.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let pack: PackKey = rand::random();
    let mut offset = 0u64;
    let mut chunks = Vec::new();
    for &n in fresh {
        chunks.push(NewChunk {
            id: cid(n),
            loc: ChunkLocation {
                pack_id: pack,
                offset,
                len: frame_len(n),
                plain_len: plain_len(n),
                epoch: 0,
            },
        });
        offset += u64::from(frame_len(n));
    }
    let packs = vec![NewPack {
        id: pack,
        backend: "local".into(),
        size: offset + 64,
        fence: None,
    }];
    (chunks, packs)
}

fn object_commit(fx: &Fx, key: &str, chunks: &[u32], fresh: &[u32], etag: &str) -> ObjectCommit {
    let m = manifest(chunks);
    let (new_chunks, new_packs) = new_frames(fresh);
    ObjectCommit {
        tenant_id: fx.tenant,
        bucket: fx.bucket.clone(),
        key: key.to_owned(),
        attrs: attrs(&m, etag),
        created_at: 1_700_000_000_000,
        manifest: m,
        new_chunks,
        new_packs,
        conditions: WriteConditions::default(),
        lock: None,
    }
}

/// What the engine does: ask which chunks exist, store the others.
async fn missing(fx: &Fx, chunks: &[u32]) -> Vec<u32> {
    let mut distinct: Vec<u32> = Vec::new();
    for &n in chunks {
        if !distinct.contains(&n) {
            distinct.push(n);
        }
    }
    let ids: Vec<ChunkKey> = distinct.iter().map(|&n| cid(n)).collect();
    let found = fx.store.lookup_chunks(fx.tenant, &ids).await.unwrap();
    distinct
        .into_iter()
        .filter(|&n| !found.contains(&cid(n)))
        .collect()
}

async fn enable_versioning(fx: &Fx) {
    fx.store
        .set_bucket_versioning(&fx.bucket, Versioning::Enabled, 1_700_000_000_000)
        .await
        .unwrap();
}

async fn put(fx: &Fx, key: &str, chunks: &[u32]) -> CommitOutcome {
    let fresh = missing(fx, chunks).await;
    let commit = object_commit(fx, key, chunks, &fresh, &format!("{key}-{chunks:?}"));
    fx.store.commit_object(commit).await.unwrap()
}

fn row(rows: &[ChunkRow], n: u32) -> Option<&ChunkRow> {
    rows.iter().find(|r| r.id == cid(n))
}

fn refcount(rows: &[ChunkRow], n: u32) -> i64 {
    row(rows, n).map_or(-1, |r| r.refcount)
}

async fn live_bytes(fx: &Fx) -> BTreeMap<PackKey, u64> {
    let packs = fx.store.list_packs(Some(fx.tenant)).await.unwrap();
    packs.into_iter().map(|p| (p.id, p.live_bytes)).collect()
}

/// The invariants, checked from raw rows (not through fsck's code): states
/// follow refcounts, and pack live bytes sum the live chunks in them. Then
/// fsck must agree that all is clean.
async fn assert_consistent(db: &TestDb, store: &Arc<dyn MetaStore>) {
    let rows = db.chunk_rows().await;
    let mut live: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for r in &rows {
        if r.refcount > 0 {
            assert_eq!(r.state, "live", "{r:?}");
            assert_eq!(r.zombie_since, None, "{r:?}");
            *live.entry(r.pack.clone()).or_default() += r.len as u64;
        } else {
            assert_eq!(r.state, "zombie", "{r:?}");
            assert!(r.zombie_since.is_some(), "{r:?}");
        }
    }
    for p in store.list_packs(None).await.unwrap() {
        assert_eq!(
            p.live_bytes,
            live.get(p.id.as_slice()).copied().unwrap_or(0),
            "live bytes of pack {}",
            hex::encode(p.id)
        );
    }
    let report = store.fsck().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

fn precondition_failed<T: std::fmt::Debug>(r: meta::MetaResult<T>) -> bool {
    matches!(r, Err(MetaError::PreconditionFailed(_)))
}

// ------------------------------------------------------------ migrations

async fn migrations_are_idempotent_and_refuse_newer_schemas(db: &TestDb) {
    for _ in 0..3 {
        let store = meta::open(&db.url()).await.unwrap();
        let expected = match db.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        };
        assert_eq!(store.kind(), expected);
        store.ping().await.unwrap();
    }
    assert_eq!(
        db.ints("SELECT COUNT(*), MIN(version), MAX(version) FROM schema_migrations")
            .await,
        vec![vec![
            Some(meta::SCHEMA_VERSION),
            Some(1),
            Some(meta::SCHEMA_VERSION)
        ]]
    );
    db.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)")
        .await;
    match db.try_open().await {
        Err(MetaError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (9999, meta::SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {:?}", other.map(|s| s.kind())),
    }
}

async fn concurrent_opens_apply_each_migration_once(db: &TestDb) {
    let opens = (0..4).map(|_| db.try_open());
    for r in futures::future::join_all(opens).await {
        r.unwrap();
    }
    assert_eq!(
        db.ints("SELECT COUNT(*) FROM schema_migrations").await,
        vec![vec![Some(meta::SCHEMA_VERSION)]]
    );
}

// ------------------------------------------------------ tenants and users

async fn tenants_and_users(db: &TestDb) {
    let store = db.open().await;
    let a = new_tenant("alpha");
    let b = new_tenant("beta");
    store.create_tenant(&a).await.unwrap();
    store.create_tenant(&b).await.unwrap();
    assert!(matches!(
        store.create_tenant(&new_tenant("alpha")).await,
        Err(MetaError::AlreadyExists { .. })
    ));
    let mut same_id = new_tenant("gamma");
    same_id.id = a.id;
    assert!(matches!(
        store.create_tenant(&same_id).await,
        Err(MetaError::AlreadyExists { .. })
    ));
    assert_eq!(store.get_tenant(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.get_tenant_by_name("beta").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.get_tenant_by_name("nobody").await.unwrap(), None);
    let names: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    store.set_tenant_epoch(a.id, 3).await.unwrap();
    assert_eq!(
        store.get_tenant(a.id).await.unwrap().unwrap().current_epoch,
        3
    );
    assert!(matches!(
        store.set_tenant_epoch(uuid::Uuid::new_v4(), 1).await,
        Err(MetaError::NotFound { .. })
    ));
    assert!(
        store
            .replace_wrapped_tmk(a.id, &[7; 40], &[9; 40])
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_wrapped_tmk(a.id, &[7; 40], &[8; 40])
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_tenant(a.id).await.unwrap().unwrap().wrapped_tmk,
        vec![9; 40]
    );

    let mut by_id = [a.id, b.id];
    by_id.sort();
    let first = store.list_tenants_after(None, 1).await.unwrap();
    assert_eq!(first.iter().map(|t| t.id).collect::<Vec<_>>(), [by_id[0]]);
    let rest = store.list_tenants_after(Some(by_id[0]), 10).await.unwrap();
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), [by_id[1]]);

    let user = |key: &str, tenant: TenantId| User {
        access_key: key.into(),
        tenant_id: tenant,
        name: format!("user {key}"),
        secret_sealed: vec![1, 2, 3],
        policy: Policy::ReadWrite,
        created_at: 5,
    };
    store.create_user(&user("AK1", a.id)).await.unwrap();
    store.create_user(&user("AK2", b.id)).await.unwrap();
    store.create_user(&user("AK0", a.id)).await.unwrap();
    assert!(matches!(
        store.create_user(&user("AK1", b.id)).await,
        Err(MetaError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.create_user(&user("AK9", uuid::Uuid::new_v4())).await,
        Err(MetaError::NotFound { .. })
    ));
    assert_eq!(
        store.get_user("AK1").await.unwrap(),
        Some(user("AK1", a.id))
    );
    let of_a: Vec<String> = store
        .list_users(Some(a.id))
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.access_key)
        .collect();
    assert_eq!(of_a, ["AK0", "AK1"]);
    assert_eq!(store.list_users(None).await.unwrap().len(), 3);
    assert!(store.delete_user("AK1").await.unwrap());
    assert!(!store.delete_user("AK1").await.unwrap());
    assert_eq!(store.get_user("AK1").await.unwrap(), None);
}

async fn buckets_namespace_and_emptiness(db: &TestDb) {
    let fx = fixture(db).await;
    let other = new_tenant("other");
    fx.store.create_tenant(&other).await.unwrap();
    let bucket = |name: &str, tenant: TenantId| Bucket {
        name: name.into(),
        tenant_id: tenant,
        backend: "local".into(),
        created_at: 2,
        versioning: Versioning::Unversioned,
        object_lock: None,
    };
    assert!(matches!(
        fx.store.create_bucket(&bucket("bkt", fx.tenant)).await,
        Err(MetaError::BucketAlreadyOwnedByYou(_))
    ));
    assert!(matches!(
        fx.store.create_bucket(&bucket("bkt", other.id)).await,
        Err(MetaError::BucketAlreadyExists(_))
    ));
    assert!(matches!(
        fx.store
            .create_bucket(&bucket("nope", uuid::Uuid::new_v4()))
            .await,
        Err(MetaError::NotFound { .. })
    ));
    fx.store
        .create_bucket(&bucket("abc", fx.tenant))
        .await
        .unwrap();
    fx.store
        .create_bucket(&bucket("zzz", other.id))
        .await
        .unwrap();
    let mine: Vec<String> = fx
        .store
        .list_buckets(fx.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(mine, ["abc", "bkt"]);
    assert_eq!(
        fx.store.get_bucket("zzz").await.unwrap(),
        Some(bucket("zzz", other.id))
    );

    put(&fx, "k", &[1]).await;
    assert!(matches!(
        fx.store.delete_bucket("bkt").await,
        Err(MetaError::BucketNotEmpty(_))
    ));
    fx.store
        .delete_object("bkt", "k", None, false)
        .await
        .unwrap();
    fx.store
        .create_multipart(&upload(&fx, "u1", "k"))
        .await
        .unwrap();
    assert!(matches!(
        fx.store.delete_bucket("bkt").await,
        Err(MetaError::BucketNotEmpty(_))
    ));
    fx.store.abort_multipart("u1").await.unwrap();
    fx.store.delete_bucket("bkt").await.unwrap();
    assert_eq!(fx.store.get_bucket("bkt").await.unwrap(), None);
    assert!(matches!(
        fx.store.delete_bucket("bkt").await,
        Err(MetaError::NoSuchBucket(_))
    ));
    // The name is free again, for anyone.
    fx.store
        .create_bucket(&bucket("bkt", other.id))
        .await
        .unwrap();
}

async fn bucket_name_race_has_one_owner(db: &TestDb) {
    let stores = [db.open().await, db.open().await];
    let tenants = [new_tenant("t1"), new_tenant("t2")];
    for t in &tenants {
        stores[0].create_tenant(t).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        let tenant = tenants[i % 2].id;
        tasks.push(tokio::spawn(async move {
            let r = store
                .create_bucket(&Bucket {
                    name: "contested".into(),
                    tenant_id: tenant,
                    backend: "local".into(),
                    created_at: i as i64,
                    versioning: Versioning::Unversioned,
                    object_lock: None,
                })
                .await;
            (tenant, r)
        }));
    }
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<TenantId> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (tenant, r) in &results {
        match r {
            Ok(()) => {}
            Err(MetaError::BucketAlreadyOwnedByYou(_)) => assert_eq!(*tenant, winners[0]),
            Err(MetaError::BucketAlreadyExists(_)) => assert_ne!(*tenant, winners[0]),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let owner = stores[1].get_bucket("contested").await.unwrap().unwrap();
    assert_eq!(owner.tenant_id, winners[0]);
}

// ---------------------------------------------------------------- commits

async fn commit_then_get_round_trips(db: &TestDb) {
    let fx = fixture(db).await;
    let commit = object_commit(&fx, "dir/file.txt", &[1, 2, 3, 2], &[1, 2, 3], "e1");
    let expected_manifest = commit.manifest.clone();
    let expected_attrs = commit.attrs.clone();
    let locations: Vec<(ChunkKey, ChunkLocation)> =
        commit.new_chunks.iter().map(|c| (c.id, c.loc)).collect();
    let out = fx.store.commit_object(commit).await.unwrap();
    assert_eq!(
        out,
        CommitOutcome {
            version_id: "null".into(),
            replaced: None,
            lost_races: 0
        }
    );

    for version in [None, Some("null")] {
        let v = fx
            .store
            .get_object("bkt", "dir/file.txt", version)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.bucket, "bkt");
        assert_eq!(v.key, "dir/file.txt");
        assert_eq!(v.version_id, "null");
        assert!(v.is_latest);
        assert!(!v.delete_marker);
        assert_eq!(v.attrs, expected_attrs);
        assert_eq!(v.created_at, 1_700_000_000_000);
        assert_eq!(v.manifest, expected_manifest);
    }
    assert_eq!(
        fx.store
            .get_object("bkt", "dir/file.txt", Some("v9"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        fx.store.get_object("bkt", "other", None).await.unwrap(),
        None
    );

    let ids: Vec<ChunkKey> = [3, 1, 2, 99].iter().map(|&n| cid(n)).collect();
    let mut got = fx.store.chunk_locations(fx.tenant, &ids).await.unwrap();
    got.sort_by_key(|(id, _)| *id);
    let mut want = locations;
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(got, want);

    let rows = db.chunk_rows().await;
    assert_eq!(
        (refcount(&rows, 1), refcount(&rows, 2), refcount(&rows, 3)),
        (1, 2, 1)
    );
    let usage = fx.store.usage(Some(fx.tenant)).await.unwrap();
    assert_eq!(usage.objects, 1);
    assert_eq!(usage.logical_bytes, expected_manifest.size());
    assert_eq!(usage.chunks, 3);
    assert_eq!(
        usage.chunk_stored_bytes,
        u64::from(frame_len(1) + frame_len(2) + frame_len(3))
    );
    assert_eq!(usage.packs, 1);
    assert_eq!(fx.store.usage(None).await.unwrap(), usage);
    assert_eq!(
        fx.store.usage(Some(uuid::Uuid::new_v4())).await.unwrap(),
        meta::UsageStats::default()
    );
    assert_consistent(db, &fx.store).await;

    // A commit into a missing bucket writes nothing.
    let mut lost = object_commit(&fx, "k", &[50], &[50], "x");
    lost.bucket = "no-such-bucket".into();
    assert!(matches!(
        fx.store.commit_object(lost).await,
        Err(MetaError::NoSuchBucket(_))
    ));
    assert!(row(&db.chunk_rows().await, 50).is_none());
}

async fn overwrite_releases_the_old_version(db: &TestDb) {
    let fx = fixture(db).await;
    let first = object_commit(&fx, "k", &[1, 2, 3], &[1, 2, 3], "a");
    let pack_a = first.new_packs[0].id;
    fx.store.commit_object(first).await.unwrap();
    let before = db.chunk_rows().await;
    assert!(before.iter().all(|r| r.zombie_since.is_none()));

    let second = object_commit(&fx, "k", &[3, 4], &[4], "b");
    let pack_b = second.new_packs[0].id;
    let out = fx.store.commit_object(second).await.unwrap();
    assert_eq!(out.replaced.as_deref(), Some("null"));
    assert_eq!(out.lost_races, 0);

    let rows = db.chunk_rows().await;
    for n in [1, 2] {
        let r = row(&rows, n).unwrap();
        assert_eq!((r.refcount, r.state.as_str()), (0, "zombie"));
        assert!(r.zombie_since.is_some());
    }
    for n in [3, 4] {
        let r = row(&rows, n).unwrap();
        assert_eq!(
            (r.refcount, r.state.as_str(), r.zombie_since),
            (1, "live", None)
        );
    }
    let live = live_bytes(&fx).await;
    assert_eq!(live[&pack_a], u64::from(frame_len(3)));
    assert_eq!(live[&pack_b], u64::from(frame_len(4)));
    let v = fx
        .store
        .get_object("bkt", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.manifest, manifest(&[3, 4]));
    assert_consistent(db, &fx.store).await;
}

async fn reuse_increments_and_revives_zombies(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "k1", &[1, 2, 1]).await;
    let rows = db.chunk_rows().await;
    assert_eq!((refcount(&rows, 1), refcount(&rows, 2)), (2, 1));
    let pack = row(&rows, 1).unwrap().pack.clone();

    // Pure dedup: no new chunks, no new pack.
    let reuse = object_commit(&fx, "k2", &[1, 2], &[], "r");
    assert!(reuse.new_packs.is_empty());
    fx.store.commit_object(reuse).await.unwrap();
    let rows = db.chunk_rows().await;
    assert_eq!((refcount(&rows, 1), refcount(&rows, 2)), (3, 2));

    fx.store
        .delete_object("bkt", "k1", None, false)
        .await
        .unwrap();
    let rows = db.chunk_rows().await;
    assert_eq!((refcount(&rows, 1), refcount(&rows, 2)), (1, 1));
    fx.store
        .delete_object("bkt", "k2", None, false)
        .await
        .unwrap();
    let rows = db.chunk_rows().await;
    assert_eq!(row(&rows, 1).unwrap().state, "zombie");
    assert_eq!(live_bytes(&fx).await.values().sum::<u64>(), 0);

    // A zombie found by lookup is reused: it comes back to life in its old
    // pack, whose live bytes grow again.
    assert!(missing(&fx, &[1]).await.is_empty());
    fx.store
        .commit_object(object_commit(&fx, "k3", &[1, 1, 1], &[], "z"))
        .await
        .unwrap();
    let rows = db.chunk_rows().await;
    let r = row(&rows, 1).unwrap();
    assert_eq!(
        (r.refcount, r.state.as_str(), r.zombie_since),
        (3, "live", None)
    );
    let live = live_bytes(&fx).await;
    let pack: PackKey = pack.try_into().unwrap();
    assert_eq!(live[&pack], u64::from(frame_len(1)));
    assert_eq!(row(&rows, 2).unwrap().state, "zombie");
    assert_consistent(db, &fx.store).await;
}

async fn vanished_reused_chunk_rolls_the_commit_back(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "k", &[1]).await;
    let packs_before = fx.store.list_packs(None).await.unwrap().len();
    // Claims reuse of chunk 77, which has no row; stores chunk 5 as new.
    let commit = object_commit(&fx, "k", &[5, 1, 77], &[5], "v");
    match fx.store.commit_object(commit).await {
        Err(MetaError::ChunkVanished(id)) => assert_eq!(id, hex::encode(cid(77))),
        other => panic!("expected ChunkVanished, got {other:?}"),
    }
    let rows = db.chunk_rows().await;
    assert!(row(&rows, 5).is_none(), "the new chunk row was rolled back");
    assert!(row(&rows, 77).is_none());
    assert_eq!(refcount(&rows, 1), 1, "reused chunk untouched");
    assert_eq!(fx.store.list_packs(None).await.unwrap().len(), packs_before);
    let v = fx
        .store
        .get_object("bkt", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.manifest, manifest(&[1]), "the old version stays");
    assert_consistent(db, &fx.store).await;
}

async fn lost_races_are_counted(db: &TestDb) {
    let fx = fixture(db).await;
    let first = object_commit(&fx, "a", &[1, 2], &[1, 2], "a");
    let pack_a = first.new_packs[0].id;
    fx.store.commit_object(first).await.unwrap();
    // An upload that looked before `a` committed and stored 1 and 3 again.
    let second = object_commit(&fx, "b", &[1, 3], &[1, 3], "b");
    let pack_b = second.new_packs[0].id;
    let out = fx.store.commit_object(second).await.unwrap();
    assert_eq!(out.lost_races, 1);
    let rows = db.chunk_rows().await;
    assert_eq!(refcount(&rows, 1), 2);
    assert_eq!(
        row(&rows, 1).unwrap().pack,
        pack_a.to_vec(),
        "the first row wins"
    );
    let live = live_bytes(&fx).await;
    assert_eq!(live[&pack_a], u64::from(frame_len(1) + frame_len(2)));
    assert_eq!(live[&pack_b], u64::from(frame_len(3)), "lost frame is dead");

    // The same chunk twice among one upload's frames: the second is dead too.
    let twice = object_commit(&fx, "c", &[9, 9], &[9, 9], "c");
    let pack_c = twice.new_packs[0].id;
    assert_eq!(twice.new_chunks.len(), 2);
    assert_eq!(fx.store.commit_object(twice).await.unwrap().lost_races, 1);
    assert_eq!(live_bytes(&fx).await[&pack_c], u64::from(frame_len(9)));
    assert_eq!(refcount(&db.chunk_rows().await, 9), 2);

    // A frame the manifest does not reference is an engine bug.
    let mut stray = object_commit(&fx, "d", &[10], &[10, 11], "d");
    stray.manifest = manifest(&[10]);
    assert!(matches!(
        fx.store.commit_object(stray).await,
        Err(MetaError::Internal(_))
    ));
    assert!(row(&db.chunk_rows().await, 10).is_none());
    assert_consistent(db, &fx.store).await;
}

async fn concurrent_commits_of_one_new_chunk(db: &TestDb) {
    let fx = fixture(db).await;
    let second = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let store = if i % 2 == 0 {
            fx.store.clone()
        } else {
            second.clone()
        };
        let commit = object_commit(&fx, &format!("k{i}"), &[42, 100 + i], &[42, 100 + i], "c");
        tasks.push(tokio::spawn(
            async move { store.commit_object(commit).await },
        ));
    }
    let mut lost = 0;
    for t in tasks {
        lost += t.await.unwrap().unwrap().lost_races;
    }
    assert_eq!(lost, 7, "exactly one upload's frame of chunk 42 is kept");
    assert_eq!(refcount(&db.chunk_rows().await, 42), 8);
    assert_consistent(db, &fx.store).await;
}

async fn write_conditions(db: &TestDb) {
    let fx = fixture(db).await;
    let with = |c: &mut ObjectCommit, m: Option<&str>, n: Option<&str>| {
        c.conditions = WriteConditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
        };
    };
    let mut c = object_commit(&fx, "k", &[1], &[1], "one");
    with(&mut c, Some("*"), None);
    assert!(
        precondition_failed(fx.store.commit_object(c).await),
        "If-Match * needs an object"
    );

    let mut c = object_commit(&fx, "k", &[1], &[1], "one");
    with(&mut c, None, Some("*"));
    fx.store.commit_object(c).await.unwrap();

    let packs = fx.store.list_packs(None).await.unwrap().len();
    let mut c = object_commit(&fx, "k", &[2], &[2], "two");
    with(&mut c, None, Some("*"));
    assert!(precondition_failed(fx.store.commit_object(c).await));
    let mut c = object_commit(&fx, "k", &[2], &[2], "two");
    with(&mut c, None, Some("\"one\""));
    assert!(precondition_failed(fx.store.commit_object(c).await));
    let mut c = object_commit(&fx, "k", &[2], &[2], "two");
    with(&mut c, Some("\"nope\""), None);
    assert!(precondition_failed(fx.store.commit_object(c).await));
    // Nothing of the failed commits was written.
    assert_eq!(fx.store.list_packs(None).await.unwrap().len(), packs);
    assert!(row(&db.chunk_rows().await, 2).is_none());
    assert_eq!(
        fx.store
            .get_object("bkt", "k", None)
            .await
            .unwrap()
            .unwrap()
            .attrs
            .etag,
        "\"one\""
    );

    let mut c = object_commit(&fx, "k", &[2], &[2], "two");
    with(&mut c, Some("one"), Some("\"other\""));
    fx.store.commit_object(c).await.unwrap();
    let mut c = object_commit(&fx, "k", &[3], &[3], "three");
    with(&mut c, Some("*"), None);
    fx.store.commit_object(c).await.unwrap();
    let v = fx
        .store
        .get_object("bkt", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.attrs.etag, "\"three\"");
    assert_consistent(db, &fx.store).await;
}

async fn create_only_race_has_exactly_one_winner(db: &TestDb) {
    let fx = fixture(db).await;
    // Two store instances: two gateway processes on one database.
    let stores = [fx.store.clone(), db.open().await];
    let mut tasks = Vec::new();
    for i in 0..10u32 {
        let store = stores[i as usize % 2].clone();
        // Every contender stored the shared chunk 7 too, as racing uploads
        // that all missed it would.
        let mut c = object_commit(&fx, "once", &[7, 200 + i], &[7, 200 + i], &format!("w{i}"));
        c.conditions.if_none_match = Some("*".into());
        tasks.push(tokio::spawn(
            async move { (i, store.commit_object(c).await) },
        ));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match r {
            Ok(_) => winners.push(i),
            Err(MetaError::PreconditionFailed(_)) => {}
            Err(e) => panic!("contender {i}: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let w = winners[0];
    let v = fx
        .store
        .get_object("bkt", "once", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.attrs.etag, format!("\"w{w}\""));
    let rows = db.chunk_rows().await;
    assert_eq!(refcount(&rows, 7), 1);
    assert_eq!(refcount(&rows, 200 + w), 1);
    assert_eq!(rows.len(), 2, "losers left no chunk rows");
    assert_eq!(
        fx.store.list_packs(None).await.unwrap().len(),
        1,
        "nor pack rows"
    );
    assert_consistent(db, &fx.store).await;
}

async fn delete_releases_and_versions_match_exactly(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "k", &[1, 2]).await;
    let out = fx
        .store
        .delete_object("bkt", "k", None, false)
        .await
        .unwrap();
    assert_eq!(out.deleted_version.as_deref(), Some("null"));
    assert!(!out.delete_marker);
    let rows = db.chunk_rows().await;
    assert!(rows.iter().all(|r| r.refcount == 0 && r.state == "zombie"));
    assert_eq!(fx.store.get_object("bkt", "k", None).await.unwrap(), None);
    let again = fx
        .store
        .delete_object("bkt", "k", None, false)
        .await
        .unwrap();
    assert_eq!(again.deleted_version, None);
    assert!(matches!(
        fx.store.delete_object("nope", "k", None, false).await,
        Err(MetaError::NoSuchBucket(_))
    ));

    // Explicit version ids are matched exactly; deleting the latest promotes
    // the newest remaining version.
    put(&fx, "v", &[3]).await;
    enable_versioning(&fx).await;
    let mut c = object_commit(&fx, "v", &[3, 4], &[4], "v1");
    c.created_at += 10;
    let out = fx.store.commit_object(c).await.unwrap();
    assert_eq!(out.replaced, None);
    let v1 = out.version_id;
    assert_ne!(v1, "null");
    let latest = fx
        .store
        .get_object("bkt", "v", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version_id, v1);
    let null = fx
        .store
        .get_object("bkt", "v", Some("null"))
        .await
        .unwrap()
        .unwrap();
    assert!(!null.is_latest);
    assert_eq!(refcount(&db.chunk_rows().await, 3), 2);

    let out = fx
        .store
        .delete_object("bkt", "v", Some("00000000000000090000000000000000"), false)
        .await
        .unwrap();
    assert_eq!(out.deleted_version, None);
    let out = fx
        .store
        .delete_object("bkt", "v", Some(&v1), false)
        .await
        .unwrap();
    assert_eq!(out.deleted_version.as_deref(), Some(v1.as_str()));
    assert_eq!(out.created_marker, None);
    let latest = fx
        .store
        .get_object("bkt", "v", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.version_id.as_str(), latest.is_latest),
        ("null", true)
    );
    let rows = db.chunk_rows().await;
    assert_eq!((refcount(&rows, 3), refcount(&rows, 4)), (1, 0));
    assert_consistent(db, &fx.store).await;
}

// --------------------------------------------------------------- listings

async fn list_all(fx: &Fx, prefix: &str, after: Option<&str>, page: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = after.map(str::to_owned);
    loop {
        let p = fx
            .store
            .list_objects("bkt", prefix, cursor.as_deref(), page)
            .await
            .unwrap();
        assert!(p.items.len() <= page);
        keys.extend(p.items.iter().map(|s| s.key.clone()));
        if !p.truncated {
            return keys;
        }
        assert_eq!(p.items.len(), page, "a truncated page is full");
        cursor = p.items.last().map(|s| s.key.clone());
    }
}

async fn listing_order_prefix_and_pages(db: &TestDb) {
    let fx = fixture(db).await;
    let keys = [
        "z",
        "é",
        "a",
        "~",
        "b",
        "a/1",
        "a/2",
        "a%",
        "a_",
        "a_b",
        "aé",
        "a\u{10FFFF}",
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&fx, k, &[i as u32]).await;
    }
    let mut by_bytes: Vec<&str> = keys.to_vec();
    by_bytes.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(list_all(&fx, "", None, 1000).await, by_bytes);
    for page in [1, 2, 5] {
        assert_eq!(list_all(&fx, "", None, page).await, by_bytes);
    }
    assert_eq!(
        list_all(&fx, "a", None, 3).await,
        ["a", "a%", "a/1", "a/2", "a_", "a_b", "aé", "a\u{10FFFF}"]
    );
    assert_eq!(
        list_all(&fx, "a%", None, 10).await,
        ["a%"],
        "% is not a wildcard"
    );
    assert_eq!(
        list_all(&fx, "a_", None, 10).await,
        ["a_", "a_b"],
        "_ is not a wildcard"
    );
    assert_eq!(list_all(&fx, "é", None, 10).await, ["é"]);
    assert_eq!(list_all(&fx, "a/", Some("a/1"), 10).await, ["a/2"]);
    assert_eq!(list_all(&fx, "a", Some("a/"), 10).await[0], "a/1");
    assert_eq!(
        list_all(&fx, "a", Some("0"), 2).await.len(),
        8,
        "marker before the prefix"
    );
    assert!(
        list_all(&fx, "a", Some("b"), 10).await.is_empty(),
        "marker after the prefix"
    );
    assert!(list_all(&fx, "q", None, 10).await.is_empty());

    let p = fx.store.list_objects("bkt", "", None, 3).await.unwrap();
    assert!(p.truncated);
    assert_eq!(p.items[0].size, manifest(&[2]).size());
    assert_eq!(p.items[0].etag, "\"a-[2]\"");
    let p = fx
        .store
        .list_objects("bkt", "", Some("é"), 3)
        .await
        .unwrap();
    assert!(!p.truncated && p.items.is_empty());
    assert!(matches!(
        fx.store.list_objects("nope", "", None, 3).await,
        Err(MetaError::NoSuchBucket(_))
    ));

    // Non-latest versions are not listed.
    enable_versioning(&fx).await;
    let c = object_commit(&fx, "b", &[1], &[], "b2");
    fx.store.commit_object(c).await.unwrap();
    let p = fx.store.list_objects("bkt", "b", None, 10).await.unwrap();
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].etag, "\"b2\"");
}

async fn listing_100k_keys_scans_an_index_range(db: &TestDb) {
    let fx = fixture(db).await;
    let insert = match db.kind {
        Kind::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999) \
             INSERT INTO objects (bucket, key, version_id, is_latest, delete_marker, size, etag, attrs, created_at, manifest) \
             SELECT 'bkt', printf('dir%02d/key%06d', i % 50, i), 'null', 1, 0, 1, '\"e\"', '{}', 0, x'' FROM n; \
             ANALYZE;"
        }
        Kind::Postgres => {
            "INSERT INTO objects (bucket, key, version_id, is_latest, delete_marker, size, etag, attrs, created_at, manifest) \
             SELECT 'bkt', format('dir%s/key%s', lpad((i % 50)::text, 2, '0'), lpad(i::text, 6, '0')), 'null', TRUE, FALSE, 1, '\"e\"', '{}', 0, ''::bytea \
             FROM generate_series(0, 99999) AS i; \
             ANALYZE objects;"
        }
    };
    db.exec(insert).await;

    let started = Instant::now();
    let p = fx
        .store
        .list_objects("bkt", "dir17/", None, 1000)
        .await
        .unwrap();
    let first = started.elapsed();
    assert_eq!(p.items.len(), 1000);
    assert!(p.truncated);
    assert!(p.items.iter().all(|s| s.key.starts_with("dir17/")));
    let started = Instant::now();
    let p2 = fx
        .store
        .list_objects(
            "bkt",
            "dir17/",
            p.items.last().map(|s| s.key.as_str()),
            1000,
        )
        .await
        .unwrap();
    let second = started.elapsed();
    assert_eq!(p2.items.len(), 1000);
    assert!(!p2.truncated);
    assert!(p2.items[0].key > p.items[999].key);
    let started = Instant::now();
    let tail = fx
        .store
        .list_objects("bkt", "dir49/key099", None, 10)
        .await
        .unwrap();
    let narrow = started.elapsed();
    assert_eq!(tail.items.len(), 10);
    println!(
        "{:?}: 100k keys, page of 1000 in {first:?}, next page in {second:?}, 10 keys in {narrow:?}",
        db.kind
    );

    // The statement the store runs for a prefix listing, as planned by the
    // database itself: a range over a (bucket, key) index.
    let plan = db
        .plan(
            "SELECT key, size, etag, created_at FROM objects \
             WHERE bucket = $1 AND is_latest AND NOT delete_marker AND key >= $2 AND key < $3 \
             ORDER BY key LIMIT 1001",
            &["bkt", "dir17/", "dir170"],
        )
        .await;
    println!("{plan}");
    match db.kind {
        Kind::Sqlite => assert!(
            plan.contains("SEARCH objects USING INDEX") && plan.contains("key>? AND key<?"),
            "{plan}"
        ),
        // The planner may take the latest-version index or the versions
        // index (both range over (bucket, key)); either is a bounded range.
        Kind::Postgres => assert!(
            plan.contains("Index Scan using objects_")
                && plan.contains("key >= 'dir17/'::text")
                && plan.contains("key < 'dir170'::text")
                && !plan.contains("Seq Scan"),
            "{plan}"
        ),
    }
}

// ------------------------------------------------------- lookups, locations

async fn lookup_touches_zombies_and_locations_batch(db: &TestDb) {
    let fx = fixture(db).await;
    let all: Vec<u32> = (0..1200).collect();
    put(&fx, "big", &all).await;
    put(&fx, "small", &[5000]).await;
    fx.store
        .delete_object("bkt", "small", None, false)
        .await
        .unwrap();
    db.exec("UPDATE chunks SET zombie_since = 1 WHERE state = 'zombie'")
        .await;

    let mut ids: Vec<ChunkKey> = all.iter().map(|&n| cid(n)).collect();
    ids.push(cid(5000));
    ids.push(cid(9999));
    ids.push(cid(3)); // duplicates come back once
    let found = fx.store.lookup_chunks(fx.tenant, &ids).await.unwrap();
    assert_eq!(found.len(), 1201);
    assert_eq!(found[0], cid(0), "input order");
    assert_eq!(found[1200], cid(5000));
    let rows = db.chunk_rows().await;
    let z = row(&rows, 5000).unwrap();
    assert_eq!(z.state, "zombie");
    assert!(
        z.zombie_since.unwrap() > 1_600_000_000_000,
        "touched: {z:?}"
    );
    assert!(
        row(&rows, 7).unwrap().zombie_since.is_none(),
        "live rows untouched"
    );

    let started = Instant::now();
    let locs = fx.store.chunk_locations(fx.tenant, &ids).await.unwrap();
    println!(
        "{:?}: chunk_locations of 1203 ids in {:?}",
        db.kind,
        started.elapsed()
    );
    assert_eq!(locs.len(), 1201);
    let (id, loc) = locs[10];
    assert_eq!(id, cid(10));
    assert_eq!(loc.len, frame_len(10));
    assert_eq!(loc.plain_len, plain_len(10));
    assert_eq!(
        loc.offset,
        (0..10).map(|n| u64::from(frame_len(n))).sum::<u64>()
    );
    // Another tenant sees none of them.
    assert!(
        fx.store
            .lookup_chunks(uuid::Uuid::new_v4(), &ids)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------- multipart

fn upload(fx: &Fx, id: &str, key: &str) -> MultipartUpload {
    MultipartUpload {
        upload_id: id.into(),
        bucket: fx.bucket.clone(),
        key: key.into(),
        tenant_id: fx.tenant,
        attrs: ObjectAttrs {
            content_type: Some("application/zip".into()),
            ..ObjectAttrs::default()
        },
        checksum_algorithm: Some("CRC32C".into()),
        created_at: 11,
        object_lock: None,
    }
}

async fn put_part(fx: &Fx, upload_id: &str, number: u32, chunks: &[u32]) -> Part {
    let fresh = missing(fx, chunks).await;
    let (new_chunks, new_packs) = new_frames(&fresh);
    let m = manifest(chunks);
    let mut checksums = BTreeMap::new();
    checksums.insert("CRC32C".into(), format!("part{number}"));
    let part = Part {
        part_number: number,
        size: m.size(),
        etag: format!("\"p{number}-{chunks:?}\""),
        checksums,
        created_at: 12,
        manifest: m,
    };
    fx.store
        .commit_part(PartCommit {
            tenant_id: fx.tenant,
            upload_id: upload_id.into(),
            part: part.clone(),
            new_chunks,
            new_packs,
        })
        .await
        .unwrap();
    part
}

/// What the engine commits to complete with these parts.
fn completion(fx: &Fx, key: &str, parts: &[&Part]) -> ObjectCommit {
    let mut m = Manifest::default();
    for p in parts {
        m.parts.push(ManifestPart {
            part_number: p.part_number,
            size: p.size,
            chunk_count: p.manifest.chunks.len() as u32,
            etag: p.etag.clone(),
            lead: 0,
        });
        m.chunks.extend(p.manifest.chunks.iter().cloned());
    }
    ObjectCommit {
        tenant_id: fx.tenant,
        bucket: fx.bucket.clone(),
        key: key.into(),
        attrs: attrs(&m, &format!("mp-{}", parts.len())),
        created_at: 13,
        manifest: m,
        new_chunks: Vec::new(),
        new_packs: Vec::new(),
        conditions: WriteConditions::default(),
        lock: None,
    }
}

async fn multipart_replace_complete_and_abort(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "big", &[1]).await; // to be replaced by the completion
    fx.store
        .create_multipart(&upload(&fx, "up1", "big"))
        .await
        .unwrap();
    assert!(matches!(
        fx.store.create_multipart(&upload(&fx, "up1", "big")).await,
        Err(MetaError::AlreadyExists { .. })
    ));
    assert_eq!(
        fx.store.get_multipart("up1").await.unwrap(),
        Some(upload(&fx, "up1", "big"))
    );
    let p1 = put_part(&fx, "up1", 1, &[10, 11, 10]).await;
    let _old2 = put_part(&fx, "up1", 2, &[20, 21]).await;
    let p2 = put_part(&fx, "up1", 2, &[21, 22]).await; // replaces part 2
    let p3 = put_part(&fx, "up1", 3, &[30, 1]).await;
    let rows = db.chunk_rows().await;
    assert_eq!(
        refcount(&rows, 20),
        0,
        "the replaced part released its chunks"
    );
    assert_eq!(refcount(&rows, 21), 1);
    assert_eq!(refcount(&rows, 10), 2);
    assert_eq!(refcount(&rows, 1), 2, "parts hold references too");
    assert_consistent(db, &fx.store).await;

    let page = fx.store.list_parts("up1", 0, 2).await.unwrap();
    assert!(page.truncated);
    assert_eq!(page.items, vec![p1.clone(), p2.clone()]);
    let page = fx.store.list_parts("up1", 2, 2).await.unwrap();
    assert!(!page.truncated);
    assert_eq!(page.items, vec![p3.clone()]);

    // Completion with parts 1 and 3 only; part 2 is released.
    let mut wrong = completion(&fx, "big", &[&p1, &p3]);
    wrong.manifest.parts[1].etag = "\"nope\"".into();
    assert!(matches!(
        fx.store.complete_multipart("up1", wrong).await,
        Err(MetaError::NotFound { what: "part", .. })
    ));
    let elsewhere = completion(&fx, "other-key", &[&p1, &p3]);
    assert!(matches!(
        fx.store.complete_multipart("up1", elsewhere).await,
        Err(MetaError::NoSuchUpload(_))
    ));
    let done = completion(&fx, "big", &[&p1, &p3]);
    let expected_manifest = done.manifest.clone();
    let out = fx.store.complete_multipart("up1", done).await.unwrap();
    assert_eq!(out.replaced.as_deref(), Some("null"));
    assert_eq!(out.lost_races, 0);
    let rows = db.chunk_rows().await;
    assert_eq!(refcount(&rows, 10), 2, "moved from the part to the object");
    assert_eq!(refcount(&rows, 11), 1);
    assert_eq!(refcount(&rows, 30), 1);
    assert_eq!(
        refcount(&rows, 1),
        1,
        "the replaced object released its reference"
    );
    assert_eq!(
        (refcount(&rows, 21), refcount(&rows, 22)),
        (0, 0),
        "unchosen part"
    );
    assert_eq!(row(&rows, 22).unwrap().state, "zombie");
    let v = fx
        .store
        .get_object("bkt", "big", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.manifest, expected_manifest);
    assert_eq!(fx.store.get_multipart("up1").await.unwrap(), None);
    assert!(matches!(
        fx.store.list_parts("up1", 0, 10).await,
        Err(MetaError::NoSuchUpload(_))
    ));
    assert!(matches!(
        fx.store
            .complete_multipart("up1", completion(&fx, "big", &[&p1]))
            .await,
        Err(MetaError::NoSuchUpload(_))
    ));
    assert_consistent(db, &fx.store).await;

    // Conditions apply to completion too, and a failure keeps the upload.
    fx.store
        .create_multipart(&upload(&fx, "up2", "big"))
        .await
        .unwrap();
    let q1 = put_part(&fx, "up2", 1, &[40, 10]).await;
    let mut guarded = completion(&fx, "big", &[&q1]);
    guarded.conditions.if_none_match = Some("*".into());
    assert!(precondition_failed(
        fx.store.complete_multipart("up2", guarded).await
    ));
    assert!(fx.store.get_multipart("up2").await.unwrap().is_some());
    fx.store.abort_multipart("up2").await.unwrap();
    let rows = db.chunk_rows().await;
    assert_eq!(refcount(&rows, 40), 0);
    assert_eq!(refcount(&rows, 10), 2, "the object's references stay");
    assert!(matches!(
        fx.store.abort_multipart("up2").await,
        Err(MetaError::NoSuchUpload(_))
    ));
    let stray = PartCommit {
        tenant_id: fx.tenant,
        upload_id: "up2".into(),
        part: q1,
        new_chunks: Vec::new(),
        new_packs: Vec::new(),
    };
    assert!(matches!(
        fx.store.commit_part(stray).await,
        Err(MetaError::NoSuchUpload(_))
    ));
    assert_consistent(db, &fx.store).await;
}

async fn multipart_listing(db: &TestDb) {
    let fx = fixture(db).await;
    for (id, key) in [
        ("u3", "b"),
        ("u1", "a"),
        ("u2", "a"),
        ("u4", "é"),
        ("u0", "a/x"),
    ] {
        fx.store
            .create_multipart(&upload(&fx, id, key))
            .await
            .unwrap();
    }
    let ids = |p: &meta::Page<MultipartUpload>| {
        p.items
            .iter()
            .map(|u| format!("{}:{}", u.key, u.upload_id))
            .collect::<Vec<_>>()
    };
    let all = fx.store.list_multipart("bkt", "", None, 10).await.unwrap();
    assert_eq!(ids(&all), ["a:u1", "a:u2", "a/x:u0", "b:u3", "é:u4"]);
    let p = fx.store.list_multipart("bkt", "a", None, 2).await.unwrap();
    assert_eq!(ids(&p), ["a:u1", "a:u2"]);
    assert!(p.truncated);
    let p = fx
        .store
        .list_multipart("bkt", "a", Some(("a", "u1")), 2)
        .await
        .unwrap();
    assert_eq!(ids(&p), ["a:u2", "a/x:u0"]);
    assert!(!p.truncated);
    let p = fx
        .store
        .list_multipart("bkt", "", Some(("b", "u3")), 5)
        .await
        .unwrap();
    assert_eq!(ids(&p), ["é:u4"]);
}

// ------------------------------------------------------------- concurrency

async fn concurrent_writers_sharing_chunks_stay_consistent(db: &TestDb) {
    let fx = Arc::new(fixture(db).await);
    let second = db.open().await;
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let fx = fx.clone();
        let store = if w % 2 == 0 {
            fx.store.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(w);
            for round in 0..6 {
                let key = format!("k{}", rng.random_range(0..4));
                // Overlapping chunk sets in random order: transactions
                // touch the same rows and must not deadlock for good.
                let n = rng.random_range(1..12);
                let chunks: Vec<u32> = (0..n).map(|_| rng.random_range(0..24)).collect();
                if round % 3 == 2 {
                    store.delete_object("bkt", &key, None, false).await.unwrap();
                    continue;
                }
                let fresh = missing(&fx, &chunks).await;
                let c = object_commit(&fx, &key, &chunks, &fresh, &format!("w{w}r{round}"));
                // Rows are never deleted, so not even ChunkVanished may
                // happen here: every commit must go through.
                if let Err(e) = store.commit_object(c).await {
                    panic!("writer {w}: {e:?}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Refcounts equal the references of what is stored now.
    let mut expected: HashMap<Vec<u8>, i64> = HashMap::new();
    for k in 0..4 {
        if let Some(v) = fx
            .store
            .get_object("bkt", &format!("k{k}"), None)
            .await
            .unwrap()
        {
            for (id, n) in v.manifest.ref_counts() {
                *expected.entry(id.to_vec()).or_default() += n;
            }
        }
    }
    for r in db.chunk_rows().await {
        assert_eq!(
            r.refcount,
            expected.get(&r.id).copied().unwrap_or(0),
            "{r:?}"
        );
    }
    assert_consistent(db, &fx.store).await;
}

// ------------------------------------------------- random sequence, fsck

/// The model: what every key and part references. Refcounts must equal it.
#[derive(Default)]
struct Model {
    objects: BTreeMap<String, Vec<u32>>,
    uploads: BTreeMap<String, BTreeMap<u32, Part>>,
}

impl Model {
    fn refcounts(&self) -> HashMap<Vec<u8>, i64> {
        let mut out: HashMap<Vec<u8>, i64> = HashMap::new();
        let objects = self.objects.values().flatten().copied();
        let parts = self
            .uploads
            .values()
            .flat_map(|u| u.values())
            .flat_map(|p| p.manifest.chunks.iter().map(|c| c.id));
        for id in objects.map(cid).chain(parts) {
            *out.entry(id.to_vec()).or_default() += 1;
        }
        out
    }
}

async fn random_operations_keep_fsck_clean(db: &TestDb) {
    let fx = fixture(db).await;
    let mut rng = StdRng::seed_from_u64(0x00d0_0d5e);
    let mut model = Model::default();
    let mut next_upload = 0;
    let chunks = |rng: &mut StdRng| -> Vec<u32> {
        let n = rng.random_range(0..8);
        (0..n).map(|_| rng.random_range(0..40)).collect()
    };
    for _ in 0..160 {
        let key = format!("k{}", rng.random_range(0..6));
        match rng.random_range(0..10) {
            0..=3 => {
                let c = chunks(&mut rng);
                put(&fx, &key, &c).await;
                model.objects.insert(key, c);
            }
            4 | 5 => {
                let out = fx
                    .store
                    .delete_object("bkt", &key, None, false)
                    .await
                    .unwrap();
                assert_eq!(
                    out.deleted_version.is_some(),
                    model.objects.remove(&key).is_some()
                );
            }
            6 => {
                next_upload += 1;
                let id = format!("up{next_upload}");
                fx.store
                    .create_multipart(&upload(&fx, &id, &key))
                    .await
                    .unwrap();
                model.uploads.insert(id, BTreeMap::new());
            }
            7 | 8 => {
                let Some(id) = model
                    .uploads
                    .keys()
                    .nth(rng.random_range(0..model.uploads.len().max(1)))
                    .cloned()
                else {
                    continue;
                };
                let number = rng.random_range(1..5);
                let part = put_part(&fx, &id, number, &chunks(&mut rng)).await;
                model.uploads.get_mut(&id).unwrap().insert(number, part);
            }
            _ => {
                let Some(id) = model.uploads.keys().next().cloned() else {
                    continue;
                };
                let parts = model.uploads.remove(&id).unwrap();
                if rng.random_bool(0.3) {
                    fx.store.abort_multipart(&id).await.unwrap();
                    continue;
                }
                let chosen: Vec<&Part> = parts.values().filter(|_| rng.random_bool(0.7)).collect();
                let up = fx.store.get_multipart(&id).await.unwrap().unwrap();
                fx.store
                    .complete_multipart(&id, completion(&fx, &up.key, &chosen))
                    .await
                    .unwrap();
                let ids: Vec<u32> = chosen
                    .iter()
                    .flat_map(|p| p.manifest.chunks.iter())
                    .map(|c| (0..40).find(|&n| cid(n) == c.id).unwrap())
                    .collect();
                model.objects.insert(up.key, ids);
            }
        }
    }
    let expected = model.refcounts();
    let rows = db.chunk_rows().await;
    assert!(
        rows.len() > 20,
        "the sequence created chunks: {}",
        rows.len()
    );
    for r in &rows {
        assert_eq!(
            r.refcount,
            expected.get(&r.id).copied().unwrap_or(0),
            "{r:?}"
        );
    }
    for id in expected.keys() {
        assert!(rows.iter().any(|r| &r.id == id), "missing row");
    }
    let report = fx.store.fsck().await.unwrap();
    assert_eq!(report.objects_checked, model.objects.len() as u64);
    assert_eq!(
        report.parts_checked,
        model.uploads.values().map(|u| u.len() as u64).sum::<u64>()
    );
    assert_eq!(report.chunks_checked, rows.len() as u64);
    assert_consistent(db, &fx.store).await;
}

async fn fsck_reports_corruption(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "a", &[1, 2, 2]).await;
    put(&fx, "b", &[3]).await;
    assert!(fx.store.fsck().await.unwrap().is_clean());
    let hex_id = |n: u32| hex::encode(cid(n));
    let blob = |h: String| match db.kind {
        Kind::Sqlite => format!("x'{h}'"),
        Kind::Postgres => format!("'\\x{h}'::bytea"),
    };
    db.exec(&format!(
        "UPDATE chunks SET refcount = refcount + 5 WHERE chunk_id = {}",
        blob(hex_id(2))
    ))
    .await;
    let report = fx.store.fsck().await.unwrap();
    assert_eq!(report.refcount_mismatches, vec![(fx.tenant, cid(2), 7, 2)]);
    assert!(report.missing_chunks.is_empty() && report.live_bytes_mismatches.is_empty());

    let pack_b = row(&db.chunk_rows().await, 3).unwrap().pack.clone();
    db.exec(&format!(
        "DELETE FROM chunks WHERE chunk_id = {}; UPDATE packs SET live_bytes = live_bytes + 9 WHERE id = {}",
        blob(hex_id(1)),
        blob(hex::encode(&pack_b))
    ))
    .await;
    let report = fx.store.fsck().await.unwrap();
    assert_eq!(report.missing_chunks, vec![(fx.tenant, cid(1))]);
    let live_b = u64::from(frame_len(3));
    assert!(report.live_bytes_mismatches.contains(&(
        pack_b.clone().try_into().unwrap(),
        live_b + 9,
        live_b
    )));
    db.exec(&format!(
        "DELETE FROM packs WHERE id = {}",
        blob(hex::encode(&pack_b))
    ))
    .await;
    let report = fx.store.fsck().await.unwrap();
    assert_eq!(
        report.missing_pack_rows,
        vec![<PackKey>::try_from(pack_b).unwrap()]
    );
    assert!(!report.is_clean());
}

async fn bad_rows_are_corrupt_not_panics(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "a", &[1]).await;
    put(&fx, "b", &[2]).await;
    db.exec("UPDATE objects SET attrs = 'not json' WHERE key = 'a'")
        .await;
    assert!(matches!(
        fx.store.get_object("bkt", "a", None).await,
        Err(MetaError::Corrupt(_))
    ));
    let garbage = match db.kind {
        Kind::Sqlite => "x'0102'",
        Kind::Postgres => "'\\x0102'::bytea",
    };
    db.exec(&format!(
        "UPDATE objects SET manifest = {garbage} WHERE key = 'b'"
    ))
    .await;
    assert!(matches!(
        fx.store.get_object("bkt", "b", None).await,
        Err(MetaError::Corrupt(_))
    ));
    assert!(matches!(fx.store.fsck().await, Err(MetaError::Corrupt(_))));
    // Overwriting a version whose manifest is unreadable would lose track of
    // its references: refused, and nothing changes.
    assert!(matches!(
        fx.store
            .commit_object(object_commit(&fx, "b", &[1], &[], "n"))
            .await,
        Err(MetaError::Corrupt(_))
    ));
    assert_eq!(refcount(&db.chunk_rows().await, 1), 1);
}

async fn corrupt_refcounts_do_not_block_deletes(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "a", &[1, 1, 1]).await;
    put(&fx, "b", &[2, 3]).await;
    let blob = |n: u32| match db.kind {
        Kind::Sqlite => format!("x'{}'", hex::encode(cid(n))),
        Kind::Postgres => format!("'\\x{}'::bytea", hex::encode(cid(n))),
    };
    // Refcount 1 where the manifest holds 3; and chunk 2's row gone.
    db.exec(&format!(
        "UPDATE chunks SET refcount = 1 WHERE chunk_id = {}; DELETE FROM chunks WHERE chunk_id = {}",
        blob(1),
        blob(2)
    ))
    .await;
    fx.store
        .delete_object("bkt", "a", None, false)
        .await
        .unwrap();
    fx.store
        .delete_object("bkt", "b", None, false)
        .await
        .unwrap();
    let rows = db.chunk_rows().await;
    let one = row(&rows, 1).unwrap();
    assert_eq!(
        (one.refcount, one.state.as_str()),
        (0, "zombie"),
        "clamped at zero"
    );
    assert!(one.zombie_since.is_some());
    assert_eq!(refcount(&rows, 3), 0);
    let report = fx.store.fsck().await.unwrap();
    assert!(report.refcount_mismatches.is_empty() && report.missing_chunks.is_empty());
    // Only the frame of the deleted row is still counted live in its pack.
    let live: u64 = live_bytes(&fx).await.values().sum();
    assert_eq!(live, u64::from(frame_len(2)));
    assert_eq!(report.live_bytes_mismatches.len(), 1);
}

async fn commit_latency_of_a_1000_chunk_manifest(db: &TestDb) {
    let fx = fixture(db).await;
    let chunks: Vec<u32> = (0..1000).collect();
    let timed = |c: ObjectCommit| {
        let store = fx.store.clone();
        async move {
            let started = Instant::now();
            let out = store.commit_object(c).await.unwrap();
            (started.elapsed(), out)
        }
    };
    let (new, _) = timed(object_commit(&fx, "a", &chunks, &chunks, "a")).await;
    let (reuse, _) = timed(object_commit(&fx, "b", &chunks, &[], "b")).await;
    let (same, out) = timed(object_commit(&fx, "b", &chunks, &[], "b2")).await;
    assert_eq!(out.replaced.as_deref(), Some("null"));
    let shifted: Vec<u32> = (500..1500).collect();
    let fresh: Vec<u32> = (1000..1500).collect();
    let (half, _) = timed(object_commit(&fx, "a", &shifted, &fresh, "a2")).await;
    let started = Instant::now();
    fx.store
        .delete_object("bkt", "a", None, false)
        .await
        .unwrap();
    let delete = started.elapsed();
    println!(
        "{:?}: 1000-chunk commit: all new {new:?}, all reused {reuse:?}, \
         overwrite with same chunks {same:?}, overwrite half new {half:?}, delete {delete:?}",
        db.kind
    );
    let rows = db.chunk_rows().await;
    assert_eq!(
        (
            refcount(&rows, 0),
            refcount(&rows, 999),
            refcount(&rows, 1499)
        ),
        (1, 1, 0)
    );
    assert_consistent(db, &fx.store).await;
}

// ------------------------------------------------------ outside the matrix

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    let started = Instant::now();
    match meta::open("host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=2").await
    {
        Err(MetaError::Unavailable(msg)) => assert!(msg.contains("PostgreSQL"), "{msg}"),
        other => panic!("expected Unavailable, got {:?}", other.map(|s| s.kind())),
    }
    assert!(started.elapsed().as_secs() < 10);
}

#[tokio::test]
async fn unopenable_sqlite_path_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // A directory cannot be created below a regular file.
    let r = meta::open(file.join("meta.db").to_str().unwrap()).await;
    assert!(
        matches!(r, Err(MetaError::Unavailable(_))),
        "{:?}",
        r.map(|s| s.kind())
    );
}

#[tokio::test]
async fn open_dispatches_on_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    let store = meta::open(plain.to_str().unwrap()).await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    assert!(plain.exists());
    let store = meta::open("sqlite::memory:").await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    store.create_tenant(&new_tenant("m")).await.unwrap();
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    let pg = common::PgDatabase::create().await;
    let url = format!("postgresql://postgres@127.0.0.1:5432/{}", pg.name);
    if std::env::var("DOOZ_TEST_PG").is_err() {
        assert_eq!(meta::open(&url).await.unwrap().kind(), "postgres");
    }
    assert_eq!(meta::open(&pg.conninfo).await.unwrap().kind(), "postgres");
}

/// A deadlock victim is rolled back and run again: the test holds one chunk
/// row and then asks for the other, which the commit holds while it waits
/// for ours. The commit waited first, so PostgreSQL aborts it (SQLSTATE
/// 40P01); our second lock then succeeds, and the commit must still succeed.
#[tokio::test]
async fn postgres_deadlock_victim_is_retried() {
    let db = TestDb::new(Kind::Postgres).await;
    let fx = fixture(&db).await;
    put(&fx, "a", &[1, 2]).await;
    let (lo, hi) = if cid(1) < cid(2) {
        (cid(1), cid(2))
    } else {
        (cid(2), cid(1))
    };
    let mut raw = common::pg_connect(&db.url()).await;
    let tx = raw.transaction().await.unwrap();
    const LOCK: &str = "SELECT refcount FROM chunks WHERE chunk_id = $1 FOR UPDATE";
    tx.query(LOCK, &[&hi.as_slice()]).await.unwrap();

    let store = fx.store.clone();
    let commit = object_commit(&fx, "b", &[1, 2], &[], "b");
    let committing = tokio::spawn(async move { store.commit_object(commit).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!committing.is_finished(), "the commit waits for our row");
    tx.query(LOCK, &[&lo.as_slice()])
        .await
        .expect("the commit, not we, is the deadlock victim");
    tx.commit().await.unwrap();
    committing.await.unwrap().unwrap();
    let rows = db.chunk_rows().await;
    assert_eq!((refcount(&rows, 1), refcount(&rows, 2)), (2, 2));
    assert_consistent(&db, &fx.store).await;
}

// ------------------------------------------------- leases and the collector

fn lease_request(name: &str, holder: &str, now: i64, ttl: i64) -> LeaseRequest {
    LeaseRequest {
        name: name.into(),
        holder: holder.into(),
        owner: format!("test {holder}"),
        now,
        expires_at: now + ttl,
        low_water: Some(now),
        expired_before: now,
    }
}

fn acquired(g: LeaseGrant) -> meta::LeaseRecord {
    match g {
        LeaseGrant::Acquired(r) => r,
        other => panic!("expected the lease, got {other:?}"),
    }
}

async fn leases_acquire_renew_take_over_and_revoke(db: &TestDb) {
    let store = db.open().await;
    let now = 1_700_000_000_000;
    let a = acquired(
        store
            .acquire_lease(&lease_request("gc", "a", now, 1000))
            .await
            .unwrap(),
    );
    match store
        .acquire_lease(&lease_request("gc", "b", now + 500, 1000))
        .await
        .unwrap()
    {
        LeaseGrant::Busy(Some(holder)) => assert_eq!(holder, a),
        other => panic!("a held lease is busy: {other:?}"),
    }
    assert!(
        store
            .renew_lease(&a.fence(), now + 2000, None)
            .await
            .unwrap()
    );
    // Expired (renewed no more): b takes it over, a's renewals fail.
    let b = acquired(
        store
            .acquire_lease(&lease_request("gc", "b", now + 2001, 1000))
            .await
            .unwrap(),
    );
    assert!(
        !store
            .renew_lease(&a.fence(), now + 5000, None)
            .await
            .unwrap()
    );
    assert!(!store.release_lease(&a.fence()).await.unwrap());
    assert_eq!(store.list_leases("gc").await.unwrap(), vec![b.clone()]);

    let u1 = acquired(
        store
            .acquire_lease(&lease_request("uploads/1", "x", now, 100))
            .await
            .unwrap(),
    );
    let u2 = acquired(
        store
            .acquire_lease(&lease_request("uploads/2", "y", now, 10_000))
            .await
            .unwrap(),
    );
    assert_eq!(
        store.list_leases("uploads/").await.unwrap(),
        vec![u1.clone(), u2.clone()]
    );
    let revoked = store
        .revoke_expired_leases("uploads/", now + 1000)
        .await
        .unwrap();
    assert_eq!(revoked, vec![u1.clone()], "only expired upload leases go");
    assert_eq!(store.list_leases("uploads/").await.unwrap(), vec![u2]);
    assert!(
        !store
            .renew_lease(&u1.fence(), now + 9999, Some(now))
            .await
            .unwrap()
    );
    assert!(store.release_lease(&b.fence()).await.unwrap());
    assert!(store.list_leases("gc").await.unwrap().is_empty());
}

async fn commits_fenced_by_a_lost_lease_roll_back(db: &TestDb) {
    let fx = fixture(db).await;
    let now = dooz_gateway::engine::now_millis();
    let lease = acquired(
        fx.store
            .acquire_lease(&lease_request("uploads/g", "t1", now, 60_000))
            .await
            .unwrap(),
    );
    let mut ok = object_commit(&fx, "a", &[1, 2], &[1, 2], "a");
    ok.new_packs[0].fence = Some(lease.fence());
    fx.store.commit_object(ok).await.unwrap();

    assert!(fx.store.release_lease(&lease.fence()).await.unwrap());
    let mut late = object_commit(&fx, "b", &[3], &[3], "b");
    late.new_packs[0].fence = Some(lease.fence());
    match fx.store.commit_object(late).await {
        Err(e @ MetaError::LeaseLost(_)) => assert!(e.nothing_committed()),
        other => panic!("a commit under a lost lease must fail: {other:?}"),
    }
    assert!(
        fx.store
            .get_object("bkt", "b", None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(fx.store.list_packs(None).await.unwrap().len(), 1);
    assert_consistent(db, &fx.store).await;
}

async fn collector_deletes_only_old_zombies_and_unreferenced_packs(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "one", &[1, 2, 3]).await;
    put(&fx, "two", &[3, 4]).await;
    fx.store
        .delete_object("bkt", "one", None, false)
        .await
        .unwrap();
    let rows = db.chunk_rows().await;
    let z = row(&rows, 2).unwrap().zombie_since.unwrap();
    let far = z + 3_600_000;

    // Chunk 1 is looked up again (an upload may reuse it): its grace restarts.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(missing(&fx, &[1]).await.is_empty());
    let listed = fx.store.gc_zombies(far, None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    let cut = z + 1;
    let ids: Vec<(TenantId, ChunkKey)> = listed.iter().map(|z| (z.tenant, z.id)).collect();
    let gone = fx.store.gc_collect_zombies(cut, &ids).await.unwrap();
    assert_eq!(gone.iter().map(|z| z.id).collect::<Vec<_>>(), vec![cid(2)]);
    assert_eq!(gone[0].len, u64::from(frame_len(2)));

    // A zombie revived between listing and collection stays.
    let listed = fx.store.gc_zombies(far, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|z| z.id).collect::<Vec<_>>(),
        vec![cid(1)]
    );
    fx.store
        .commit_object(object_commit(&fx, "three", &[1], &[], "r"))
        .await
        .unwrap();
    let ids: Vec<(TenantId, ChunkKey)> = listed.iter().map(|z| (z.tenant, z.id)).collect();
    assert!(
        fx.store
            .gc_collect_zombies(far, &ids)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        fx.store
            .gc_unreferenced_packs(far, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_consistent(db, &fx.store).await;

    // Everything deleted and collected: both packs have no rows left.
    for k in ["two", "three"] {
        fx.store.delete_object("bkt", k, None, false).await.unwrap();
    }
    let dry = fx
        .store
        .gc_unreferenced_packs(far, Some(far), None, 10)
        .await
        .unwrap();
    assert_eq!(
        dry.len(),
        2,
        "a dry run sees the packs collection would empty"
    );
    let all: Vec<(TenantId, ChunkKey)> = fx
        .store
        .gc_zombies(far, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|z| (z.tenant, z.id))
        .collect();
    assert_eq!(
        fx.store.gc_collect_zombies(far, &all).await.unwrap().len(),
        3
    );
    let empty = fx
        .store
        .gc_unreferenced_packs(far, None, None, 10)
        .await
        .unwrap();
    assert_eq!(empty.len(), 2);
    for p in &empty {
        assert_eq!(
            fx.store.gc_drop_pack(&p.id, far).await.unwrap().as_ref(),
            Some(p)
        );
        assert_eq!(fx.store.gc_drop_pack(&p.id, far).await.unwrap(), None);
    }
    assert!(fx.store.list_packs(None).await.unwrap().is_empty());
    assert_consistent(db, &fx.store).await;
}

async fn repoint_moves_live_rows_compare_and_set(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "old", &[1, 2, 3, 4]).await;
    put(&fx, "keep", &[3, 4]).await;
    fx.store
        .delete_object("bkt", "old", None, false)
        .await
        .unwrap();
    let before = fx.store.list_packs(None).await.unwrap();
    assert_eq!(before.len(), 1);
    let old = before[0].clone();
    let candidates = fx
        .store
        .gc_compaction_candidates(900, None, 10)
        .await
        .unwrap();
    assert_eq!(candidates, vec![old.clone()]);
    assert!(
        fx.store
            .gc_compaction_candidates(100, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let rows = fx.store.gc_pack_chunks(&old.id).await.unwrap();
    assert_eq!(rows.len(), 4);
    let live: Vec<_> = rows.iter().filter(|c| c.live).collect();
    assert_eq!(
        live.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![cid(3), cid(4)]
    );
    let new_id: PackKey = rand::random();
    let mut moves: Vec<ChunkMove> = Vec::new();
    let mut to = 21u64;
    for c in &live {
        moves.push(ChunkMove {
            id: c.id,
            from: old.id,
            from_offset: c.loc.offset,
            to_offset: to,
        });
        to += u64::from(c.loc.len);
    }
    // A move whose source location is stale changes nothing.
    moves.push(ChunkMove {
        id: cid(1),
        from: old.id,
        from_offset: 999_999,
        to_offset: to,
    });
    let out = fx
        .store
        .gc_repoint(Repoint {
            tenant: fx.tenant,
            new_pack: NewPack {
                id: new_id,
                backend: "local".into(),
                size: to + 200,
                fence: None,
            },
            moves,
        })
        .await
        .unwrap();
    assert_eq!((out.moved, out.skipped), (2, 1));
    assert_eq!(out.live_bytes, u64::from(frame_len(3) + frame_len(4)));
    let live = live_bytes(&fx).await;
    assert_eq!(live[&old.id], 0);
    assert_eq!(live[&new_id], out.live_bytes);
    let loc = fx
        .store
        .chunk_locations(fx.tenant, &[cid(3)])
        .await
        .unwrap();
    assert_eq!((loc[0].1.pack_id, loc[0].1.offset), (new_id, 21));
    assert_consistent(db, &fx.store).await;

    // The old pack is retired: kept while readers may hold its locations.
    let far = dooz_gateway::engine::now_millis() + 3_600_000;
    let zombies: Vec<(TenantId, ChunkKey)> = [1, 2].iter().map(|&n| (fx.tenant, cid(n))).collect();
    assert_eq!(
        fx.store
            .gc_collect_zombies(far, &zombies)
            .await
            .unwrap()
            .len(),
        2
    );
    let long_ago = 1;
    assert!(
        fx.store
            .gc_unreferenced_packs(long_ago, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fx.store.gc_drop_pack(&old.id, long_ago).await.unwrap(),
        None
    );
    assert!(fx.store.gc_drop_pack(&old.id, far).await.unwrap().is_some());
    assert_consistent(db, &fx.store).await;
}

async fn space_counts_live_zombie_dead_and_reclaimable(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "a", &[1, 2]).await;
    put(&fx, "b", &[3]).await;
    fx.store
        .delete_object("bkt", "a", None, false)
        .await
        .unwrap();
    fx.store
        .delete_object("bkt", "b", None, false)
        .await
        .unwrap();
    put(&fx, "c", &[3]).await;
    let space = fx.store.gc_space(500).await.unwrap();
    assert_eq!(space.len(), 1);
    let s = &space[0];
    assert_eq!(s.tenant, fx.tenant);
    assert_eq!(s.live_bytes, u64::from(frame_len(3)));
    assert_eq!(s.zombie_bytes, u64::from(frame_len(1) + frame_len(2)));
    let packs = fx.store.list_packs(None).await.unwrap();
    let pack_bytes: u64 = packs.iter().map(|p| p.size).sum();
    assert_eq!((s.packs, s.pack_bytes), (2, pack_bytes));
    assert_eq!(s.dead_bytes, pack_bytes - s.live_bytes);
    // The pack of a (no live chunks) is reclaimable whole; b's pack is live.
    let a_pack = packs.iter().find(|p| p.live_bytes == 0).unwrap();
    assert_eq!(s.reclaimable_bytes, a_pack.size);
}
