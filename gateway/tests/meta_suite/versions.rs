//! Versioning, delete markers and Object Lock in the metadata store, on both
//! stores: every version holds its chunk references; the version listing
//! orders and pages; locks hold against every delete path, the database's
//! own trigger included.

use super::*;
use dooz_gateway::meta::{
    BucketLock, DefaultRetention, LockUpdate, ObjectLock, Retention, RetentionMode,
    RetentionPeriod, VersionSummary,
};

crate::for_both_stores!(
    versioned_writes_keep_every_version_and_its_references,
    suspended_buckets_replace_the_null_version,
    version_listing_orders_and_pages,
    object_lock_holds_against_every_delete,
    retention_changes_follow_s3_rules,
    random_versioned_operations_keep_fsck_clean,
);

fn now() -> i64 {
    dooz_gateway::engine::now_millis()
}

async fn all_versions(fx: &Fx, prefix: &str, page: usize) -> Vec<VersionSummary> {
    let mut out = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let cursor = after.as_ref().map(|(k, v)| (k.as_str(), Some(v.as_str())));
        let p = fx
            .store
            .list_versions(&fx.bucket, prefix, cursor, page)
            .await
            .unwrap();
        assert!(p.items.len() <= page);
        if let Some(last) = p.items.last() {
            after = Some((last.key.clone(), last.version_id.clone()));
        }
        out.extend(p.items);
        if !p.truncated {
            return out;
        }
    }
}

fn ids(vs: &[VersionSummary]) -> Vec<(&str, &str, bool, bool)> {
    vs.iter()
        .map(|v| {
            (
                v.key.as_str(),
                v.version_id.as_str(),
                v.is_latest,
                v.delete_marker,
            )
        })
        .collect()
}

async fn versioned_writes_keep_every_version_and_its_references(db: &TestDb) {
    let fx = fixture(db).await;
    enable_versioning(&fx).await;
    let v1 = put(&fx, "k", &[1, 2]).await;
    let v2 = put(&fx, "k", &[2, 3]).await;
    let v3 = put(&fx, "k", &[3]).await;
    for out in [&v1, &v2, &v3] {
        assert_ne!(out.version_id, "null");
        assert_eq!(out.replaced, None, "a versioned write replaces nothing");
    }
    let (v1, v2, v3) = (v1.version_id, v2.version_id, v3.version_id);
    assert!(v1 != v2 && v2 != v3 && v1 != v3);
    let listed = all_versions(&fx, "", 10).await;
    assert_eq!(
        ids(&listed),
        [
            ("k", v3.as_str(), true, false),
            ("k", v2.as_str(), false, false),
            ("k", v1.as_str(), false, false)
        ]
    );
    let rows = db.chunk_rows().await;
    assert_eq!(
        (refcount(&rows, 1), refcount(&rows, 2), refcount(&rows, 3)),
        (1, 2, 2),
        "every version holds its references"
    );
    let old = fx
        .store
        .get_object("bkt", "k", Some(&v1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.manifest, manifest(&[1, 2]));
    assert!(!old.is_latest);
    assert_consistent(db, &fx.store).await;

    // A delete without a version id adds a delete marker and frees nothing.
    let out = fx
        .store
        .delete_object("bkt", "k", None, false)
        .await
        .unwrap();
    let marker = out.created_marker.clone().unwrap();
    assert_eq!(out.deleted_version, None);
    let latest = fx
        .store
        .get_object("bkt", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert!(latest.delete_marker && latest.is_latest);
    assert_eq!(latest.version_id, marker);
    assert!(
        fx.store
            .list_objects("bkt", "", None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "a deleted key is not listed"
    );
    assert_eq!(refcount(&db.chunk_rows().await, 2), 2);
    // Another delete adds another marker, as in S3.
    let again = fx
        .store
        .delete_object("bkt", "k", None, false)
        .await
        .unwrap();
    let marker2 = again.created_marker.unwrap();
    assert_ne!(marker2, marker);

    // With a version id: gone for good, references released.
    let out = fx
        .store
        .delete_object("bkt", "k", Some(&v2), false)
        .await
        .unwrap();
    assert_eq!(out.deleted_version.as_deref(), Some(v2.as_str()));
    assert!(!out.delete_marker && out.created_marker.is_none());
    let rows = db.chunk_rows().await;
    assert_eq!((refcount(&rows, 2), refcount(&rows, 3)), (1, 1));
    // Removing both markers makes v3 current again.
    for m in [&marker2, &marker] {
        let out = fx
            .store
            .delete_object("bkt", "k", Some(m), false)
            .await
            .unwrap();
        assert!(out.delete_marker, "the removed version was a marker");
    }
    let latest = fx
        .store
        .get_object("bkt", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.version_id.as_str(), latest.is_latest),
        (v3.as_str(), true)
    );
    assert_eq!(
        ids(&all_versions(&fx, "", 10).await),
        [
            ("k", v3.as_str(), true, false),
            ("k", v1.as_str(), false, false)
        ]
    );
    assert_consistent(db, &fx.store).await;

    // Multipart completion on a versioned bucket adds a version too.
    fx.store
        .create_multipart(&upload(&fx, "up", "k"))
        .await
        .unwrap();
    let p1 = put_part(&fx, "up", 1, &[5, 6]).await;
    let out = fx
        .store
        .complete_multipart("up", completion(&fx, "k", &[&p1]))
        .await
        .unwrap();
    assert!(out.version_id != "null" && out.replaced.is_none());
    assert_eq!(all_versions(&fx, "", 10).await.len(), 3);
    assert_consistent(db, &fx.store).await;
}

async fn suspended_buckets_replace_the_null_version(db: &TestDb) {
    let fx = fixture(db).await;
    put(&fx, "k", &[1]).await; // unversioned: the "null" version
    enable_versioning(&fx).await;
    let v1 = put(&fx, "k", &[2]).await.version_id;
    fx.store
        .set_bucket_versioning("bkt", Versioning::Suspended, 1_700_000_000_500)
        .await
        .unwrap();
    let out = put(&fx, "k", &[3]).await;
    assert_eq!(out.version_id, "null");
    assert_eq!(out.replaced.as_deref(), Some("null"));
    let rows = db.chunk_rows().await;
    assert_eq!(
        (refcount(&rows, 1), refcount(&rows, 2), refcount(&rows, 3)),
        (0, 1, 1),
        "the old null version's references went with it"
    );
    // The new null version is the newest, ahead of v1.
    assert_eq!(
        ids(&all_versions(&fx, "", 10).await),
        [("k", "null", true, false), ("k", v1.as_str(), false, false)]
    );
    // A delete removes the null version and leaves a null delete marker.
    let out = fx
        .store
        .delete_object("bkt", "k", None, false)
        .await
        .unwrap();
    assert_eq!(out.deleted_version.as_deref(), Some("null"));
    assert_eq!(out.created_marker.as_deref(), Some("null"));
    assert_eq!(refcount(&db.chunk_rows().await, 3), 0);
    assert_eq!(
        ids(&all_versions(&fx, "", 10).await),
        [("k", "null", true, true), ("k", v1.as_str(), false, false)]
    );
    // A put replaces the null marker.
    let out = put(&fx, "k", &[4]).await;
    assert_eq!(out.replaced.as_deref(), Some("null"));
    assert_eq!(all_versions(&fx, "", 10).await.len(), 2);

    // Never back to unversioned; the history keeps every change, in order.
    assert!(matches!(
        fx.store
            .set_bucket_versioning("bkt", Versioning::Unversioned, 1_700_000_000_900)
            .await,
        Err(MetaError::InvalidRequest(_))
    ));
    // Setting the current state again records nothing.
    fx.store
        .set_bucket_versioning("bkt", Versioning::Suspended, 1_700_000_000_950)
        .await
        .unwrap();
    let history: Vec<(i64, Versioning)> = fx
        .store
        .versioning_history("bkt")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.at, c.status))
        .collect();
    assert_eq!(
        history,
        [
            (1, Versioning::Unversioned),
            (1_700_000_000_000, Versioning::Enabled),
            (1_700_000_000_500, Versioning::Suspended)
        ]
    );
    let b = fx.store.get_bucket("bkt").await.unwrap().unwrap();
    assert_eq!(b.versioning, Versioning::Suspended);
    assert_consistent(db, &fx.store).await;
}

async fn version_listing_orders_and_pages(db: &TestDb) {
    let fx = fixture(db).await;
    enable_versioning(&fx).await;
    // Keys in byte order; each key's versions newest first.
    let mut expected: Vec<(String, String, bool)> = Vec::new();
    for (i, key) in ["a", "b/1", "b/2", "c", "é"].iter().enumerate() {
        let mut versions = Vec::new();
        for n in 0..=(i as u32 % 3 + 1) {
            versions.push((put(&fx, key, &[n]).await.version_id, false));
        }
        if i % 2 == 1 {
            let m = fx
                .store
                .delete_object("bkt", key, None, false)
                .await
                .unwrap();
            versions.push((m.created_marker.unwrap(), true));
        }
        for (v, marker) in versions.into_iter().rev() {
            expected.push(((*key).to_owned(), v, marker));
        }
    }
    let shape = |vs: &[VersionSummary]| -> Vec<(String, String, bool)> {
        vs.iter()
            .map(|v| (v.key.clone(), v.version_id.clone(), v.delete_marker))
            .collect()
    };
    for page in [1, 2, 3, 7, 1000] {
        let all = all_versions(&fx, "", page).await;
        assert_eq!(shape(&all), expected, "page size {page}");
        // Exactly the first entry of each key is the latest.
        let mut prev = "";
        for v in &all {
            assert_eq!(v.is_latest, v.key != prev, "{v:?}");
            prev = &v.key;
        }
    }
    let b_only: Vec<_> = expected
        .iter()
        .filter(|e| e.0.starts_with("b/"))
        .cloned()
        .collect();
    assert_eq!(shape(&all_versions(&fx, "b/", 2).await), b_only);

    // (key, None) resumes after every version of the key.
    let p = fx
        .store
        .list_versions("bkt", "", Some(("b/1", None)), 100)
        .await
        .unwrap();
    assert_eq!(p.items[0].key, "b/2");
    // A marker before the prefix does not narrow it; one after empties it.
    let p = fx
        .store
        .list_versions("bkt", "b/", Some(("a", None)), 100)
        .await
        .unwrap();
    assert_eq!(shape(&p.items), b_only);
    let p = fx
        .store
        .list_versions("bkt", "b/", Some(("c", None)), 100)
        .await
        .unwrap();
    assert!(p.items.is_empty() && !p.truncated);

    // A page can resume after a version deleted since: its id says where.
    let c_versions: Vec<_> = expected.iter().filter(|e| e.0 == "c").cloned().collect();
    assert!(c_versions.len() >= 3);
    let gone = &c_versions[1].1;
    fx.store
        .delete_object("bkt", "c", Some(gone), false)
        .await
        .unwrap();
    let p = fx
        .store
        .list_versions("bkt", "c", Some(("c", Some(gone))), 100)
        .await
        .unwrap();
    let rest: Vec<_> = c_versions[2..].to_vec();
    assert_eq!(shape(&p.items), rest);
    assert!(matches!(
        fx.store.list_versions("nope", "", None, 10).await,
        Err(MetaError::NoSuchBucket(_))
    ));
    assert_consistent(db, &fx.store).await;
}

async fn lock_bucket(fx: &Fx, name: &str, default: Option<DefaultRetention>) {
    fx.store
        .create_bucket(&Bucket {
            name: name.into(),
            tenant_id: fx.tenant,
            backend: "local".into(),
            created_at: 5,
            versioning: Versioning::Enabled,
            object_lock: Some(BucketLock {
                default_retention: default,
            }),
        })
        .await
        .unwrap();
}

/// Commits `chunks` to `key` in `bucket` with the lock asked for.
async fn put_locked(
    fx: &Fx,
    bucket: &str,
    key: &str,
    chunks: &[u32],
    lock: Option<ObjectLock>,
) -> dooz_gateway::meta::MetaResult<String> {
    let fresh = missing(fx, chunks).await;
    let mut c = object_commit(fx, key, chunks, &fresh, "locked");
    c.bucket = bucket.into();
    c.created_at = now();
    c.lock = lock;
    fx.store.commit_object(c).await.map(|o| o.version_id)
}

fn retention(mode: RetentionMode, until: i64) -> Option<ObjectLock> {
    Some(ObjectLock {
        retention: Some(Retention { mode, until }),
        legal_hold: false,
    })
}

async fn object_lock_holds_against_every_delete(db: &TestDb) {
    let fx = fixture(db).await;
    lock_bucket(&fx, "vault", None).await;
    let hour = now() + 3_600_000;
    let compliance = put_locked(
        &fx,
        "vault",
        "k",
        &[1],
        retention(RetentionMode::Compliance, hour),
    )
    .await
    .unwrap();
    let governance = put_locked(
        &fx,
        "vault",
        "k",
        &[2],
        retention(RetentionMode::Governance, hour),
    )
    .await
    .unwrap();
    let held = put_locked(
        &fx,
        "vault",
        "k",
        &[3],
        Some(ObjectLock {
            retention: None,
            legal_hold: true,
        }),
    )
    .await
    .unwrap();
    let v = fx
        .store
        .get_object("vault", "k", Some(&compliance))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        v.lock.retention,
        Some(Retention {
            mode: RetentionMode::Compliance,
            until: hour
        })
    );

    // COMPLIANCE: nobody, bypass or not.
    for bypass in [false, true] {
        assert!(matches!(
            fx.store
                .delete_object("vault", "k", Some(&compliance), bypass)
                .await,
            Err(MetaError::Locked(_))
        ));
    }
    // Legal hold: nobody while it is on.
    assert!(matches!(
        fx.store
            .delete_object("vault", "k", Some(&held), true)
            .await,
        Err(MetaError::Locked(_))
    ));
    // GOVERNANCE: only with the bypass.
    assert!(matches!(
        fx.store
            .delete_object("vault", "k", Some(&governance), false)
            .await,
        Err(MetaError::Locked(_))
    ));
    // Delete markers never remove data, so locks do not stop them.
    let marker = fx
        .store
        .delete_object("vault", "k", None, false)
        .await
        .unwrap();
    assert!(marker.created_marker.is_some());
    // The database refuses too, whatever code path asks.
    for v in [&compliance, &held] {
        let err = db
            .try_exec(&format!(
                "DELETE FROM objects WHERE bucket = 'vault' AND key = 'k' AND version_id = '{v}'"
            ))
            .await
            .unwrap_err();
        assert!(err.contains("Object Lock"), "{err}");
    }
    assert!(matches!(
        fx.store.delete_bucket("vault").await,
        Err(MetaError::BucketNotEmpty(_))
    ));
    let rows = db.chunk_rows().await;
    assert!(
        [1, 2, 3].iter().all(|&n| refcount(&rows, n) == 1),
        "locked versions hold their references, so GC cannot collect them"
    );

    fx.store
        .delete_object("vault", "k", Some(&governance), true)
        .await
        .unwrap();
    fx.store
        .update_object_lock(
            "vault",
            "k",
            Some(&held),
            LockUpdate::LegalHold(false),
            now(),
        )
        .await
        .unwrap();
    fx.store
        .delete_object("vault", "k", Some(&held), false)
        .await
        .unwrap();

    // A retention that ran out no longer protects.
    let short = put_locked(
        &fx,
        "vault",
        "short",
        &[4],
        retention(RetentionMode::Compliance, now() + 1500),
    )
    .await
    .unwrap();
    assert!(matches!(
        fx.store
            .delete_object("vault", "short", Some(&short), false)
            .await,
        Err(MetaError::Locked(_))
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    fx.store
        .delete_object("vault", "short", Some(&short), false)
        .await
        .unwrap();

    // Lock requests on a bucket without Object Lock are refused.
    assert!(matches!(
        put_locked(
            &fx,
            "bkt",
            "x",
            &[5],
            retention(RetentionMode::Governance, hour)
        )
        .await,
        Err(MetaError::InvalidRequest(_))
    ));
    let mut u = upload(&fx, "up-nolock", "x");
    u.object_lock = retention(RetentionMode::Governance, hour);
    assert!(matches!(
        fx.store.create_multipart(&u).await,
        Err(MetaError::InvalidRequest(_))
    ));
    // Object Lock needs versioning, and keeps it enabled.
    assert!(matches!(
        fx.store
            .set_bucket_object_lock("bkt", BucketLock::default())
            .await,
        Err(MetaError::InvalidBucketState(_))
    ));
    assert!(matches!(
        fx.store
            .set_bucket_versioning("vault", Versioning::Suspended, now())
            .await,
        Err(MetaError::InvalidBucketState(_))
    ));

    // Default retention applies to versions that ask for none; a completed
    // upload gets the lock its creation asked for.
    let days = DefaultRetention {
        mode: RetentionMode::Governance,
        period: RetentionPeriod::Days(2),
    };
    fx.store
        .set_bucket_object_lock(
            "vault",
            BucketLock {
                default_retention: Some(days),
            },
        )
        .await
        .unwrap();
    let b = fx.store.get_bucket("vault").await.unwrap().unwrap();
    assert_eq!(b.object_lock.unwrap().default_retention, Some(days));
    let d = put_locked(&fx, "vault", "d", &[6], None).await.unwrap();
    let v = fx
        .store
        .get_object("vault", "d", Some(&d))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.lock.retention, Some(days.starting_at(v.created_at)));
    let mut u = upload(&fx, "up-lock", "m");
    u.bucket = "vault".into();
    u.object_lock = retention(RetentionMode::Compliance, hour);
    fx.store.create_multipart(&u).await.unwrap();
    let got = fx.store.get_multipart("up-lock").await.unwrap().unwrap();
    assert_eq!(got.object_lock, u.object_lock);
    let p = put_part(&fx, "up-lock", 1, &[7]).await;
    let mut done = completion(&fx, "m", &[&p]);
    done.bucket = "vault".into();
    done.lock = got.object_lock;
    let m = fx
        .store
        .complete_multipart("up-lock", done)
        .await
        .unwrap()
        .version_id;
    assert!(matches!(
        fx.store.delete_object("vault", "m", Some(&m), true).await,
        Err(MetaError::Locked(_))
    ));
    assert_consistent(db, &fx.store).await;
}

async fn retention_changes_follow_s3_rules(db: &TestDb) {
    let fx = fixture(db).await;
    lock_bucket(&fx, "vault", None).await;
    let hour = now() + 3_600_000;
    let v = put_locked(
        &fx,
        "vault",
        "k",
        &[1],
        retention(RetentionMode::Governance, hour),
    )
    .await
    .unwrap();
    let set = |r: Option<ObjectLock>, bypass: bool| LockUpdate::Retention {
        retention: r.and_then(|l| l.retention),
        bypass_governance: bypass,
    };
    let update = |u: LockUpdate| {
        let store = fx.store.clone();
        let v = v.clone();
        async move {
            store
                .update_object_lock("vault", "k", Some(&v), u, now())
                .await
        }
    };
    // GOVERNANCE shortens only with the bypass.
    assert!(matches!(
        update(set(
            retention(RetentionMode::Governance, hour - 1000),
            false
        ))
        .await,
        Err(MetaError::Locked(_))
    ));
    let l = update(set(retention(RetentionMode::Governance, hour - 1000), true))
        .await
        .unwrap();
    assert_eq!(l.retention.unwrap().until, hour - 1000);
    // Strengthening to COMPLIANCE needs nothing; then it only extends.
    update(set(retention(RetentionMode::Compliance, hour), false))
        .await
        .unwrap();
    for (r, bypass) in [
        (retention(RetentionMode::Compliance, hour - 1), true),
        (retention(RetentionMode::Governance, hour + 1), true),
        (None, true),
    ] {
        assert!(matches!(
            update(set(r, bypass)).await,
            Err(MetaError::Locked(_))
        ));
    }
    update(set(
        retention(RetentionMode::Compliance, hour + 5000),
        false,
    ))
    .await
    .unwrap();
    let got = fx
        .store
        .get_object("vault", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.lock,
        ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Compliance,
                until: hour + 5000
            }),
            legal_hold: false
        }
    );
    // Legal holds go on and off; delete markers and missing versions refuse.
    assert!(
        update(LockUpdate::LegalHold(true))
            .await
            .unwrap()
            .legal_hold
    );
    fx.store
        .delete_object("vault", "k", None, false)
        .await
        .unwrap();
    assert!(matches!(
        fx.store
            .update_object_lock("vault", "k", None, LockUpdate::LegalHold(false), now())
            .await,
        Err(MetaError::InvalidRequest(_))
    ));
    assert!(matches!(
        fx.store
            .update_object_lock(
                "vault",
                "k",
                Some("00000000000000ff0000000000000000"),
                LockUpdate::LegalHold(false),
                now()
            )
            .await,
        Err(MetaError::NoSuchVersion { .. })
    ));
    assert!(matches!(
        fx.store
            .update_object_lock("bkt", "k", None, LockUpdate::LegalHold(true), now())
            .await,
        Err(MetaError::InvalidRequest(_))
    ));
    assert_consistent(db, &fx.store).await;
}

/// Random puts, deletes (with and without version ids) and versioning
/// changes: refcounts equal the references of every version kept.
async fn random_versioned_operations_keep_fsck_clean(db: &TestDb) {
    let fx = fixture(db).await;
    enable_versioning(&fx).await;
    let mut rng = StdRng::seed_from_u64(0x0bad_cafe);
    for i in 0..150 {
        let key = format!("k{}", rng.random_range(0..5));
        match rng.random_range(0..10) {
            0..=4 => {
                let n = rng.random_range(0..6);
                let c: Vec<u32> = (0..n).map(|_| rng.random_range(0..30)).collect();
                put(&fx, &key, &c).await;
            }
            5 | 6 => {
                fx.store
                    .delete_object("bkt", &key, None, false)
                    .await
                    .unwrap();
            }
            7 | 8 => {
                let versions = all_versions(&fx, &key, 1000).await;
                if !versions.is_empty() {
                    let v = &versions[rng.random_range(0..versions.len())];
                    let out = fx
                        .store
                        .delete_object("bkt", &v.key, Some(&v.version_id), false)
                        .await
                        .unwrap();
                    assert_eq!(out.deleted_version.as_ref(), Some(&v.version_id));
                }
            }
            _ => {
                let status = if rng.random_bool(0.5) {
                    Versioning::Enabled
                } else {
                    Versioning::Suspended
                };
                fx.store
                    .set_bucket_versioning("bkt", status, 1_700_000_000_000 + i)
                    .await
                    .unwrap();
            }
        }
    }
    let mut expected: HashMap<Vec<u8>, i64> = HashMap::new();
    let all = all_versions(&fx, "", 7).await;
    assert!(all.len() > 20, "the sequence kept versions: {}", all.len());
    for v in &all {
        let full = fx
            .store
            .get_object("bkt", &v.key, Some(&v.version_id))
            .await
            .unwrap()
            .unwrap();
        for (id, n) in full.manifest.ref_counts() {
            *expected.entry(id.to_vec()).or_default() += n;
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
