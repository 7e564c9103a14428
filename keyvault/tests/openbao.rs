//! The `openbao` provider against real OpenBao servers started by the tests
//! (`bao` on PATH or `$DOOZ_BAO_BIN`; a missing binary fails the tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{BaoServer, LogCapture};
use dooz_keyvault::rotation::{self, MemoryKeyStore, RotationFilter};
use dooz_keyvault::{
    KekProvider, KeyError, KeyVault, OpenBaoConfig, OpenBaoKek, TenantKeys, Tmk, WrappedTmk,
    secrets,
};

fn vault_with(p: OpenBaoKek) -> KeyVault {
    let mut v = KeyVault::new(Duration::from_secs(60), 100);
    v.add_provider(Arc::new(p));
    v
}

fn same_keys(a: &TenantKeys, b: &TenantKeys) -> bool {
    a.id_key() == b.id_key() && a.enc_key(3) == b.enc_key(3) && a.secret_key() == b.secret_key()
}

#[tokio::test]
async fn wrap_unwrap_rewrap_across_kek_rotation() {
    let bao = BaoServer::dev().await;
    let p = bao.provider();
    p.create_key("tenant-kek").await.unwrap();

    // Explicit TMK through encrypt/decrypt.
    let tmk = Tmk::random();
    let w1 = p.wrap("tenant-kek", &tmk).await.unwrap();
    assert_eq!(w1.provider, "openbao");
    assert_eq!(w1.kek_version, 1);
    assert!(w1.ciphertext.starts_with(b"vault:v1:"));
    assert_eq!(w1.commitment, tmk.commitment());
    assert_eq!(p.unwrap(&w1).await.unwrap(), tmk);
    // The stored form round-trips.
    let w1 = WrappedTmk::from_bytes(&w1.to_bytes()).unwrap();

    // Rewrap while current: unchanged record.
    assert_eq!(p.rewrap(&w1).await.unwrap(), w1);
    assert_eq!(p.current_version("tenant-kek").await.unwrap(), Some(1));

    // Rotate the KEK in the middle.
    assert_eq!(p.rotate_key("tenant-kek").await.unwrap(), 2);
    assert_eq!(p.current_version("tenant-kek").await.unwrap(), Some(2));
    // The old record still unwraps (min_decryption_version is 1).
    assert_eq!(p.unwrap(&w1).await.unwrap(), tmk);
    let w2 = p.rewrap(&w1).await.unwrap();
    assert_eq!(w2.kek_version, 2);
    assert!(w2.ciphertext.starts_with(b"vault:v2:"));
    assert_eq!(w2.commitment, w1.commitment);
    assert_eq!(p.unwrap(&w2).await.unwrap(), tmk);
    assert_eq!(p.rewrap(&w2).await.unwrap(), w2, "rewrap is idempotent");
    // New wraps use the newest version.
    assert_eq!(p.wrap("tenant-kek", &tmk).await.unwrap().kek_version, 2);

    // Retire version 1: records still under it are permanently revoked.
    p.set_min_decryption_version("tenant-kek", 2).await.unwrap();
    let err = p.unwrap(&w1).await.unwrap_err();
    assert!(matches!(err, KeyError::Revoked { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(matches!(p.rewrap(&w1).await, Err(KeyError::Revoked { .. })));
    assert_eq!(p.unwrap(&w2).await.unwrap(), tmk);

    let info = p.describe().await.unwrap();
    assert!(info.available);
    assert_eq!(info.backend, "openbao-transit");
    assert!(!info.details["server_version"].is_empty());
}

#[tokio::test]
async fn key_vault_creates_and_caches_tenant_keys_via_datakey() {
    let bao = BaoServer::dev().await;
    let p = bao.provider();
    p.create_key("k").await.unwrap();
    let vault = vault_with(p);

    let (w, keys) = vault.create_tenant_key("openbao", "k").await.unwrap();
    assert_eq!(w.kek_version, 1);
    let again = vault.tenant_keys("t1", &w).await.unwrap();
    assert!(same_keys(&keys, &again));
    let cached = vault.tenant_keys("t1", &w).await.unwrap();
    assert!(Arc::ptr_eq(&again, &cached), "second lookup is a cache hit");

    // Missing key: not found (the key is not created implicitly by datakey).
    let err = vault
        .create_tenant_key("openbao", "no-such-key")
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
    // Unknown provider.
    assert!(matches!(
        vault.create_tenant_key("aws-kms", "x").await,
        Err(KeyError::NotFound { .. })
    ));
    // Key names cannot escape the transit path.
    assert!(matches!(
        vault.create_tenant_key("openbao", "../../sys/seal").await,
        Err(KeyError::Config { .. })
    ));
}

#[tokio::test]
async fn wrong_key_and_tampered_records_are_rejected() {
    let bao = BaoServer::dev().await;
    let p = bao.provider();
    p.create_key("a").await.unwrap();
    p.create_key("b").await.unwrap();
    let (tmk_a, wa) = p.generate("a").await.unwrap();
    let (tmk_b, wb) = p.generate("a").await.unwrap();
    assert_ne!(tmk_a, tmk_b);

    // A flipped bit inside the transit ciphertext.
    let ct = std::str::from_utf8(&wa.ciphertext).unwrap();
    let (prefix, body) = ct.rsplit_once(':').unwrap();
    let mut raw = STANDARD.decode(body).unwrap();
    raw[20] ^= 1;
    let flipped = WrappedTmk {
        ciphertext: format!("{prefix}:{}", STANDARD.encode(&raw)).into_bytes(),
        ..wa.clone()
    };
    let err = p.unwrap(&flipped).await.unwrap_err();
    assert!(matches!(err, KeyError::Tampered { .. }), "{err}");

    // The record claims another KEK version than its ciphertext.
    let relabeled = WrappedTmk {
        kek_version: 2,
        ..wa.clone()
    };
    assert!(matches!(
        p.unwrap(&relabeled).await,
        Err(KeyError::Tampered { .. })
    ));

    // Moved to another KEK: the ciphertext does not authenticate under it.
    let moved = WrappedTmk {
        key_ref: "b".into(),
        ..wa.clone()
    };
    assert!(matches!(
        p.unwrap(&moved).await,
        Err(KeyError::Tampered { .. })
    ));

    // Substituted ciphertext (another tenant's TMK under the same KEK): the
    // KMS decrypts it fine, the commitment catches it before the key is used.
    let substituted = WrappedTmk {
        ciphertext: wb.ciphertext.clone(),
        ..wa.clone()
    };
    let err = p.unwrap(&substituted).await.unwrap_err();
    assert!(matches!(err, KeyError::Commitment { .. }), "{err}");
    let vault = vault_with(bao.provider());
    assert!(matches!(
        vault.tenant_keys("t-a", &substituted).await,
        Err(KeyError::Commitment { .. })
    ));
    assert_eq!(vault.cached_len(), 0);

    // A record of another provider is refused.
    let foreign = WrappedTmk {
        provider: "local".into(),
        ..wa.clone()
    };
    assert!(p.unwrap(&foreign).await.is_err());

    // Garbage instead of a transit ciphertext.
    let garbage = WrappedTmk {
        ciphertext: b"not-a-transit-ciphertext".to_vec(),
        ..wa.clone()
    };
    assert!(matches!(
        p.unwrap(&garbage).await,
        Err(KeyError::Tampered { .. })
    ));
    assert_eq!(p.unwrap(&wa).await.unwrap(), tmk_a);

    // A bad token is a permanent "denied", not an outage.
    let bad = OpenBaoKek::new(OpenBaoConfig {
        token: "not-the-token".into(),
        ..bao.config()
    })
    .unwrap();
    let err = bad.unwrap(&wa).await.unwrap_err();
    assert!(matches!(err, KeyError::Denied { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn rotation_rewraps_every_tenant_in_batches() {
    let bao = BaoServer::dev().await;
    let p = bao.provider();
    p.create_key("kek-1").await.unwrap();
    p.create_key("kek-2").await.unwrap();
    let vault = vault_with(bao.provider());
    let store = MemoryKeyStore::new();
    let mut expected = Vec::new();
    for i in 0..12 {
        let kek = if i % 3 == 0 { "kek-2" } else { "kek-1" };
        let (w, keys) = vault.create_tenant_key("openbao", kek).await.unwrap();
        let tenant = format!("tenant-{i:02}");
        // Some data sealed under the tenant's keys before the rotation.
        let blob = secrets::seal(keys.secret_key(), tenant.as_bytes(), b"backend credential");
        store.put(&tenant, w);
        expected.push((tenant, blob));
    }
    p.rotate_key("kek-1").await.unwrap();
    p.rotate_key("kek-2").await.unwrap();
    p.rotate_key("kek-2").await.unwrap();

    // Only kek-1 first, batch of 5: 12 scanned, 8 rewrapped, 4 filtered out.
    let mut batches = Vec::new();
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::key("openbao", "kek-1"),
        None,
        5,
        &mut |r: &rotation::RotationReport| batches.push(r.scanned),
    )
    .await
    .unwrap();
    assert_eq!(batches, vec![5, 10, 12]);
    assert_eq!(
        (r.scanned, r.rewrapped, r.filtered_out, r.failed),
        (12, 8, 4, 0)
    );
    assert_eq!(r.last_tenant.as_deref(), Some("tenant-11"));

    // Resume mid-way for everything: only the tenants after the cursor.
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        Some("tenant-05".into()),
        4,
        &mut |_: &rotation::RotationReport| {},
    )
    .await
    .unwrap();
    assert_eq!(r.scanned, 6);
    assert_eq!(r.rewrapped, 2, "tenant-06 and tenant-09 use kek-2");
    assert_eq!(r.already_current, 4);

    // A full run finishes the rest; a second one finds everything current.
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        100,
        &mut |_: &rotation::RotationReport| {},
    )
    .await
    .unwrap();
    assert_eq!((r.rewrapped, r.already_current), (2, 10));
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        100,
        &mut |_: &rotation::RotationReport| {},
    )
    .await
    .unwrap();
    assert_eq!((r.rewrapped, r.already_current), (0, 12));

    // Every record is on the newest version and the data still opens.
    for (tenant, blob) in &expected {
        let w = store.get(tenant).unwrap();
        let want = if w.key_ref == "kek-1" { 2 } else { 3 };
        assert_eq!(w.kek_version, want, "{tenant}");
        let keys = vault.tenant_keys(tenant, &w).await.unwrap();
        assert_eq!(
            &secrets::open(keys.secret_key(), tenant.as_bytes(), blob).unwrap()[..],
            b"backend credential"
        );
    }
    // Old versions can now be retired without losing anyone.
    p.set_min_decryption_version("kek-1", 2).await.unwrap();
    p.set_min_decryption_version("kek-2", 3).await.unwrap();
    vault.clear();
    for (tenant, _) in &expected {
        vault
            .tenant_keys(tenant, &store.get(tenant).unwrap())
            .await
            .unwrap();
    }
}

/// Crypto-shredding: deleting the tenant's wrapped TMK and destroying its KEK
/// leaves nothing that can recover the tenant's keys, not even a backup of the
/// metadata database.
#[tokio::test]
async fn crypto_shredding_makes_tenant_data_unreadable() {
    let bao = BaoServer::dev().await;
    let p = bao.provider();
    p.create_key("tenant-x").await.unwrap();
    p.create_key("tenant-y").await.unwrap();
    let vault = vault_with(bao.provider());
    let store = MemoryKeyStore::new();
    let (wx, kx) = vault
        .create_tenant_key("openbao", "tenant-x")
        .await
        .unwrap();
    let (wy, _) = vault
        .create_tenant_key("openbao", "tenant-y")
        .await
        .unwrap();
    store.put("x", wx.clone());
    store.put("y", wy.clone());
    let data = secrets::seal(kx.secret_key(), b"x/obj", b"tenant x data");
    drop(kx);
    vault.tenant_keys("x", &wx).await.unwrap();
    let backup = store.get("x").unwrap().to_bytes(); // e.g. an old DB dump

    // Shred: delete the record, destroy the KEK, drop cached keys.
    store.remove("x");
    p.delete_key("tenant-x").await.unwrap();
    vault.forget("x");

    let restored = WrappedTmk::from_bytes(&backup).unwrap();
    let err = vault.tenant_keys("x", &restored).await.unwrap_err();
    assert!(matches!(err, KeyError::Revoked { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(matches!(
        p.rewrap(&restored).await,
        Err(KeyError::Revoked { .. })
    ));
    // Without K_secret the sealed data cannot be opened (a random key stands
    // in for every key an attacker could try).
    assert!(secrets::open(&dooz_keyvault::SecretKey::random(), b"x/obj", &data).is_err());
    // Other tenants are unaffected.
    vault.tenant_keys("y", &wy).await.unwrap();
    // Rotation over a store that still holds a shredded record counts it as failed and goes on.
    store.put("x", restored);
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        10,
        &mut |_: &rotation::RotationReport| {},
    )
    .await
    .unwrap();
    assert_eq!((r.failed, r.already_current), (1, 1));
    assert_eq!(r.failures[0].0, "x");
}

/// KMS stopped mid-test: a typed, retryable outage error after bounded retries;
/// sealed after restart: still an outage; unsealed: the same stored record
/// unwraps to the same TMK (raft storage, same port).
#[tokio::test]
async fn outage_is_retryable_and_recovery_unwraps_the_same_record() {
    let mut bao = BaoServer::persistent().await;
    let p = bao.provider();
    p.create_key("durable").await.unwrap();
    let vault = vault_with(bao.provider());
    let (w, keys) = vault.create_tenant_key("openbao", "durable").await.unwrap();
    let stored = w.to_bytes();

    bao.stop();
    let w = WrappedTmk::from_bytes(&stored).unwrap();
    let t0 = Instant::now();
    let err = vault.tenant_keys("t", &w).await.unwrap_err();
    let took = t0.elapsed();
    match &err {
        KeyError::Unavailable {
            attempts,
            operation,
            ..
        } => {
            assert_eq!(*attempts, 3, "1 try + 2 retries");
            assert_eq!(*operation, "unwrap");
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    assert!(err.is_retryable());
    // Two backoffs of at most 20 ms and 40 ms, plus fast connection refusals.
    assert!(
        took < Duration::from_secs(3),
        "bounded retries took {took:?}"
    );
    assert!(matches!(
        p.describe().await,
        Err(KeyError::Unavailable { .. })
    ));
    // Rotation stops on an outage instead of counting failures.
    let store = MemoryKeyStore::new();
    store.put("t", w.clone());
    let err = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        10,
        &mut |_: &rotation::RotationReport| {},
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");

    bao.start().await;
    let err = vault.tenant_keys("t", &w).await.unwrap_err();
    assert!(
        matches!(err, KeyError::Unavailable { .. }),
        "sealed server must be an outage: {err}"
    );
    let info = p.describe().await.unwrap();
    assert!(!info.available);
    assert_eq!(info.details["sealed"], "true");

    bao.unseal().await;
    let recovered = vault.tenant_keys("t", &w).await.unwrap();
    assert!(same_keys(&keys, &recovered));
    assert!(p.describe().await.unwrap().available);
}

/// No key bytes or token in logs or Debug output, at TRACE level, across the
/// whole life cycle (create, unwrap, rotate, rewrap, errors).
#[tokio::test]
async fn no_key_material_in_logs_or_debug() {
    let capture = LogCapture::global();
    let bao = BaoServer::dev().await;
    let p = bao.provider();
    p.create_key("logged").await.unwrap();
    let root = dooz_keyvault::SecretKey::random();
    let mut vault = vault_with(bao.provider());
    vault.add_provider(Arc::new(dooz_keyvault::LocalKek::in_memory(root.clone())));

    let (w, keys) = vault.create_tenant_key("openbao", "logged").await.unwrap();
    let (wl, keys_l) = vault.create_tenant_key("local", "logged").await.unwrap();
    let tmk = p.unwrap(&w).await.unwrap();
    let tmk_l = vault.provider("local").unwrap().unwrap(&wl).await.unwrap();
    vault.tenant_keys("t", &w).await.unwrap();
    vault.tenant_keys("tl", &wl).await.unwrap();
    p.rotate_key("logged").await.unwrap();
    let store = MemoryKeyStore::new();
    store.put("t", w.clone());
    rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        10,
        &mut |_: &rotation::RotationReport| {},
    )
    .await
    .unwrap();
    let bad = WrappedTmk {
        ciphertext: p.wrap("logged", &Tmk::random()).await.unwrap().ciphertext,
        ..w.clone()
    };
    let e1 = vault.tenant_keys("t2", &bad).await.unwrap_err();
    let offline = OpenBaoKek::new(OpenBaoConfig {
        addr: "http://127.0.0.1:9".into(),
        ..bao.config()
    })
    .unwrap()
    .with_retry_policy(common::fast_retry());
    let e2 = offline.unwrap(&w).await.unwrap_err();

    let mut secrets_to_find: Vec<Vec<u8>> = vec![
        tmk.expose().to_vec(),
        tmk_l.expose().to_vec(),
        root.expose().to_vec(),
        bao.token.as_bytes().to_vec(),
    ];
    for k in [&keys, &keys_l] {
        secrets_to_find.push(k.id_key().expose().to_vec());
        secrets_to_find.push(k.secret_key().expose().to_vec());
        secrets_to_find.push(k.enc_key(0).expose().to_vec());
    }
    let text = format!(
        "{}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{e1}\n{e1:?}\n{e2}\n{e2:?}\n{:?}\n{:?}",
        capture.text(),
        tmk,
        keys,
        vault,
        p,
        bao.config(),
        offline,
        root,
        w,
        p.describe().await.unwrap()
    );
    assert!(
        capture.text().contains("unwrapped tenant key"),
        "capture works"
    );
    assert!(capture.text().contains("KMS request failed; retrying"));
    for s in &secrets_to_find {
        let forms = [
            hex::encode(s),
            hex::encode_upper(s),
            STANDARD.encode(s),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s),
            format!("{s:?}"),
        ];
        for f in forms {
            if s.len() == 32 || f.len() > 8 {
                assert!(!text.contains(&f), "secret leaked in logs/Debug as {f}");
            }
        }
    }
    assert!(!text.contains(&bao.token), "token leaked");
}

/// HTTPS with a private CA: refused until the CA is trusted, then works.
#[tokio::test]
async fn tls_with_private_ca() {
    let bao = BaoServer::dev_tls().await;
    assert!(bao.addr.starts_with("https://"));
    let untrusted = bao.provider();
    let err = untrusted.create_key("k").await.unwrap_err();
    assert!(
        matches!(err, KeyError::Config { .. }),
        "an untrusted certificate is a configuration error, not an outage: {err}"
    );
    let p = bao.provider().with_ca_pem(&bao.ca_pem()).unwrap();
    p.create_key("k").await.unwrap();
    let (tmk, w) = p.generate("k").await.unwrap();
    assert_eq!(p.unwrap(&w).await.unwrap(), tmk);
    assert!(matches!(
        bao.provider().with_ca_pem(b"not a pem"),
        Err(KeyError::Config { .. })
    ));
}

/// The least-privilege policy recommended in docs/SECURITY.md is enough for
/// the data path and rotation, and cannot create keys by accident.
#[tokio::test]
async fn least_privilege_token_from_the_security_doc() {
    let bao = BaoServer::dev().await;
    let admin = bao.provider();
    admin.create_key("lp").await.unwrap();
    let policy = r#"
path "transit/datakey/plaintext/*" { capabilities = ["update"] }
path "transit/encrypt/*"           { capabilities = ["update"] }
path "transit/decrypt/*"           { capabilities = ["update"] }
path "transit/rewrap/*"            { capabilities = ["update"] }
path "transit/keys/*"              { capabilities = ["read"] }
"#;
    bao.api(
        reqwest::Method::PUT,
        "sys/policies/acl/dooz-gateway",
        Some(serde_json::json!({ "policy": policy })),
    )
    .await;
    let created = bao
        .api(
            reqwest::Method::POST,
            "auth/token/create",
            Some(serde_json::json!({ "policies": ["dooz-gateway"], "ttl": "10m" })),
        )
        .await;
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let p = OpenBaoKek::new(OpenBaoConfig {
        token,
        ..bao.config()
    })
    .unwrap()
    .with_retry_policy(common::fast_retry());

    let (tmk, w) = p.generate("lp").await.unwrap();
    assert_eq!(p.unwrap(&w).await.unwrap(), tmk);
    let w2 = p.wrap("lp", &tmk).await.unwrap();
    assert_eq!(p.current_version("lp").await.unwrap(), Some(1));
    admin.rotate_key("lp").await.unwrap();
    assert_eq!(p.rewrap(&w2).await.unwrap().kek_version, 2);
    // No key management with this token.
    assert!(matches!(
        p.rotate_key("lp").await,
        Err(KeyError::Denied { .. })
    ));
    assert!(matches!(
        p.delete_key("lp").await,
        Err(KeyError::Denied { .. })
    ));
    // A mistyped key_ref is an error, not a silently created KEK.
    let err = p.wrap("typo", &tmk).await.unwrap_err();
    assert!(matches!(err, KeyError::Denied { .. }), "{err}");
    assert!(matches!(
        admin.key_info("typo").await,
        Err(KeyError::NotFound { .. })
    ));
}
