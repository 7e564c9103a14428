//! The `local` provider, the key cache and rotation without a KMS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dooz_keyvault::rotation::{
    self, MemoryKeyStore, RotationFilter, RotationReport, WrappedKeyStore,
};
use dooz_keyvault::{
    KekProvider, KeyError, KeyVault, LocalKek, ProviderInfo, SecretKey, TenantKeys, Tmk, WrappedTmk,
};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn keyring_file_is_created_private_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/root.keyring");
    let kek = LocalKek::open_or_create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(kek.versions(), vec![1]);

    let tmk = Tmk::random();
    let w = kek.wrap("tenant-a", &tmk).await.unwrap();
    assert_eq!((w.provider.as_str(), w.kek_version), ("local", 1));
    let stored = w.to_bytes();
    drop(kek);

    // A restart opens the same keyring and unwraps the stored record.
    let kek = LocalKek::open_or_create(&path).unwrap();
    let w = WrappedTmk::from_bytes(&stored).unwrap();
    assert_eq!(kek.unwrap(&w).await.unwrap(), tmk);
    let info = kek.describe().await.unwrap();
    assert_eq!(info.current_version, Some(1));
    assert!(info.location.ends_with("root.keyring"));

    // A different keyring cannot unwrap it.
    let other = LocalKek::open_or_create(&dir.path().join("other.keyring")).unwrap();
    assert!(matches!(
        other.unwrap(&w).await,
        Err(KeyError::Tampered { .. })
    ));
}

#[tokio::test]
async fn mounted_secret_file_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    // A mounted secret holding one bare base64 key is version 1.
    let path = dir.path().join("mounted");
    std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let kek = LocalKek::open(&path).unwrap();
    assert_eq!(kek.versions(), vec![1]);
    let tmk = Tmk::random();
    let w = kek.wrap("t", &tmk).await.unwrap();
    // The same key supplied in memory unwraps it: the file content is the key.
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mem = LocalKek::in_memory(SecretKey::from_bytes(raw));
    assert_eq!(mem.unwrap(&w).await.unwrap(), tmk);
    // A rotation needs a writable keyring file, not an in-memory one.
    assert!(matches!(mem.rotate(), Err(KeyError::Config { .. })));

    // World-writable keyring: refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(matches!(
        LocalKek::open(&path),
        Err(KeyError::Config { .. })
    ));
    // Missing file for `open`: an I/O error naming the path.
    let err = LocalKek::open(&dir.path().join("absent")).unwrap_err();
    assert!(err.to_string().contains("absent"));
    // Garbage: malformed, and the message does not echo the content.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "1:c2VjcmV0LXNlY3JldA==\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = LocalKek::open(&bad).unwrap_err();
    assert!(matches!(err, KeyError::Malformed { .. }));
    assert!(!err.to_string().contains("c2VjcmV0"));
}

/// A set variable wins over the file, which is then not created; an empty
/// one falls back to the file (created 0600); a bad one is an error that does
/// not echo the value.
#[test]
fn from_value_or_file_prefers_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("fallback.keyring");
    let value = |v: &str| Some(zeroize::Zeroizing::new(v.to_string()));
    let k = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let from_env = LocalKek::from_value_or_file(
        "DOOZ_KV_TEST_ROOT",
        value(&format!("1:{k},2:{k}")),
        &fallback,
    )
    .unwrap();
    assert_eq!(from_env.versions(), vec![1, 2]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let info: ProviderInfo = rt.block_on(from_env.describe()).unwrap();
    assert!(info.location.starts_with("env:"), "{}", info.location);
    assert!(
        !fallback.exists(),
        "the file must not be created when the variable is set"
    );

    let from_file =
        LocalKek::from_value_or_file("DOOZ_KV_TEST_ROOT", value(""), &fallback).unwrap();
    assert_eq!(from_file.versions(), vec![1]);
    assert_eq!(mode(&fallback), 0o600);
    let none = LocalKek::from_value_or_file("DOOZ_KV_TEST_ROOT", None, &fallback).unwrap();
    assert_eq!(none.versions(), vec![1]);

    let err = LocalKek::from_value_or_file("DOOZ_KV_TEST_ROOT", value("not-a-key"), &fallback)
        .unwrap_err();
    assert!(err.to_string().contains("DOOZ_KV_TEST_ROOT"));
    assert!(!err.to_string().contains("not-a-key"));
}

#[tokio::test]
async fn local_records_are_bound_and_committed() {
    let kek = LocalKek::in_memory(SecretKey::random());
    let tmk = Tmk::random();
    let w = kek.wrap("tenant-a", &tmk).await.unwrap();
    assert_eq!(kek.unwrap(&w).await.unwrap(), tmk);

    let mut flipped = w.clone();
    flipped.ciphertext[30] ^= 1;
    assert!(matches!(
        kek.unwrap(&flipped).await,
        Err(KeyError::Tampered { .. })
    ));
    // key_ref is authenticated: a record cannot be relabeled to another KEK reference.
    let relabeled = WrappedTmk {
        key_ref: "tenant-b".into(),
        ..w.clone()
    };
    assert!(matches!(
        kek.unwrap(&relabeled).await,
        Err(KeyError::Tampered { .. })
    ));
    // Unknown version: revoked (retired or foreign keyring).
    let future = WrappedTmk {
        kek_version: 9,
        ..w.clone()
    };
    assert!(matches!(
        kek.unwrap(&future).await,
        Err(KeyError::Revoked { .. })
    ));
    // Commitment swapped for another tenant's: detected, key not returned.
    let other = kek.wrap("tenant-a", &Tmk::random()).await.unwrap();
    let swapped = WrappedTmk {
        commitment: other.commitment,
        ..w.clone()
    };
    assert!(matches!(
        kek.unwrap(&swapped).await,
        Err(KeyError::Commitment { .. })
    ));
    let substituted = WrappedTmk {
        ciphertext: other.ciphertext.clone(),
        ..w.clone()
    };
    assert!(matches!(
        kek.unwrap(&substituted).await,
        Err(KeyError::Commitment { .. })
    ));
    // Bad key_ref on wrap.
    assert!(matches!(
        kek.wrap("", &tmk).await,
        Err(KeyError::Config { .. })
    ));
    assert!(matches!(
        kek.wrap("a\nb", &tmk).await,
        Err(KeyError::Config { .. })
    ));
}

#[tokio::test]
async fn local_root_key_rotation_rewrap_and_retire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.keyring");
    let kek = Arc::new(LocalKek::open_or_create(&path).unwrap());
    let mut vault = KeyVault::new(Duration::from_secs(60), 100);
    vault.add_provider(kek.clone());
    let store = MemoryKeyStore::new();
    let mut tmks = Vec::new();
    for i in 0..25 {
        let (w, keys) = vault.create_tenant_key("local", "default").await.unwrap();
        store.put(&format!("t{i:02}"), w);
        tmks.push(keys);
    }
    assert_eq!(kek.rotate().unwrap(), 2);
    assert_eq!(mode(&path), 0o600);
    // Another process sees the rotation after reopening the file.
    assert_eq!(LocalKek::open(&path).unwrap().versions(), vec![1, 2]);
    let w0 = store.get("t00").unwrap();
    assert_eq!(w0.kek_version, 1);
    let w0b = kek.rewrap(&w0).await.unwrap();
    assert_eq!(w0b.kek_version, 2);
    assert_eq!(kek.rewrap(&w0b).await.unwrap(), w0b, "idempotent");
    assert_eq!(
        kek.unwrap(&w0).await.unwrap(),
        kek.unwrap(&w0b).await.unwrap()
    );
    // Cannot retire the newest version.
    assert!(matches!(kek.retire(2), Err(KeyError::Config { .. })));

    // Batched rewrap of all 25 tenants with progress after each batch of 10.
    let mut seen = Vec::new();
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::provider("local"),
        None,
        10,
        &mut |r: &RotationReport| seen.push((r.scanned, r.last_tenant.clone())),
    )
    .await
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (10, Some("t09".to_string())),
            (20, Some("t19".to_string())),
            (25, Some("t24".to_string()))
        ]
    );
    assert_eq!((r.scanned, r.rewrapped, r.already_current), (25, 25, 0));
    // Safe to retire v1 now; every tenant still opens to the same keys.
    kek.retire(1).unwrap();
    assert_eq!(kek.versions(), vec![2]);
    vault.clear();
    for (i, keys) in tmks.iter().enumerate() {
        let w = store.get(&format!("t{i:02}")).unwrap();
        assert_eq!(w.kek_version, 2);
        let k = vault.tenant_keys(&format!("t{i:02}"), &w).await.unwrap();
        assert_eq!(k.id_key(), keys.id_key());
    }
    // A record left behind on the retired version is permanently revoked.
    assert!(matches!(
        kek.unwrap(&w0).await,
        Err(KeyError::Revoked { .. })
    ));
}

/// A store that loses every compare-and-set (records changed concurrently).
struct RacingStore(MemoryKeyStore);

#[async_trait]
impl WrappedKeyStore for RacingStore {
    async fn list_wrapped(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, WrappedTmk)>, KeyError> {
        self.0.list_wrapped(after, limit).await
    }
    async fn replace_wrapped(
        &self,
        _: &str,
        _: &WrappedTmk,
        _: &WrappedTmk,
    ) -> Result<bool, KeyError> {
        Ok(false)
    }
}

#[tokio::test]
async fn rotation_leaves_concurrently_changed_records_alone() {
    let dir = tempfile::tempdir().unwrap();
    let kek = Arc::new(LocalKek::open_or_create(&dir.path().join("k")).unwrap());
    let mut vault = KeyVault::new(Duration::from_secs(60), 10);
    vault.add_provider(kek.clone());
    let store = RacingStore(MemoryKeyStore::new());
    for i in 0..3 {
        store.0.put(
            &format!("t{i}"),
            vault.create_tenant_key("local", "d").await.unwrap().0,
        );
    }
    kek.rotate().unwrap();
    let r = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        2,
        &mut |_: &RotationReport| {},
    )
    .await
    .unwrap();
    assert_eq!((r.scanned, r.skipped_changed, r.rewrapped), (3, 3, 0));
    // Records of an unconfigured provider stop the run with a clear error.
    store.0.put(
        "u",
        WrappedTmk {
            provider: "aws-kms".into(),
            ..store.0.get("t0").unwrap()
        },
    );
    let err = rotation::rewrap_all(
        &vault,
        &store,
        RotationFilter::all(),
        None,
        10,
        &mut |_: &RotationReport| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
}

/// Counts unwraps and can be slowed down or made to lie.
struct Spy {
    inner: LocalKek,
    unwraps: AtomicUsize,
    delay: Duration,
    lie: bool,
}

#[async_trait]
impl KekProvider for Spy {
    fn name(&self) -> &str {
        "local"
    }
    async fn wrap(&self, key_ref: &str, tmk: &Tmk) -> Result<WrappedTmk, KeyError> {
        self.inner.wrap(key_ref, tmk).await
    }
    async fn unwrap(&self, wrapped: &WrappedTmk) -> Result<Tmk, KeyError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.lie {
            // A broken or malicious provider that skips the commitment check.
            return Ok(Tmk::random());
        }
        self.inner.unwrap(wrapped).await
    }
    async fn rewrap(&self, wrapped: &WrappedTmk) -> Result<WrappedTmk, KeyError> {
        self.inner.rewrap(wrapped).await
    }
    async fn describe(&self) -> Result<ProviderInfo, KeyError> {
        self.inner.describe().await
    }
}

fn spy(delay: Duration, lie: bool) -> Arc<Spy> {
    Arc::new(Spy {
        inner: LocalKek::in_memory(SecretKey::random()),
        unwraps: AtomicUsize::new(0),
        delay,
        lie,
    })
}

#[tokio::test]
async fn cache_ttl_capacity_forget_and_fingerprint() {
    let s = spy(Duration::ZERO, false);
    let mut vault = KeyVault::new(Duration::from_millis(200), 2);
    vault.add_provider(s.clone());
    let (wa, ka) = vault.create_tenant_key("local", "k").await.unwrap();
    let (wb, _) = vault.create_tenant_key("local", "k").await.unwrap();
    let (wc, _) = vault.create_tenant_key("local", "k").await.unwrap();
    let n = || s.unwraps.load(Ordering::SeqCst);

    let a1 = vault.tenant_keys("a", &wa).await.unwrap();
    let a2 = vault.tenant_keys("a", &wa).await.unwrap();
    assert!(Arc::ptr_eq(&a1, &a2));
    assert_eq!(a1.id_key(), ka.id_key());
    assert_eq!(n(), 1);

    // Capacity 2: a third tenant evicts the oldest.
    vault.tenant_keys("b", &wb).await.unwrap();
    vault.tenant_keys("c", &wc).await.unwrap();
    assert_eq!(vault.cached_len(), 2);
    assert_eq!(n(), 3);
    vault.tenant_keys("a", &wa).await.unwrap();
    assert_eq!(n(), 4, "a was evicted");

    // A different record for the same tenant is a miss (after a rewrap, say).
    vault.tenant_keys("a", &wb).await.unwrap();
    assert_eq!(n(), 5);
    vault.tenant_keys("a", &wb).await.unwrap();
    assert_eq!(n(), 5);

    // forget drops the entry.
    vault.forget("a");
    vault.tenant_keys("a", &wb).await.unwrap();
    assert_eq!(n(), 6);

    // TTL: not sliding; expired entries are purged.
    tokio::time::sleep(Duration::from_millis(250)).await;
    vault.purge_expired();
    assert_eq!(vault.cached_len(), 0);
    vault.tenant_keys("a", &wb).await.unwrap();
    assert_eq!(n(), 7);

    // Capacity 0 disables caching.
    let mut nocache = KeyVault::new(Duration::from_secs(60), 0);
    nocache.add_provider(s.clone());
    nocache.tenant_keys("a", &wa).await.unwrap();
    nocache.tenant_keys("a", &wa).await.unwrap();
    assert_eq!(n(), 9);
    assert_eq!(nocache.cached_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_unwrap_once() {
    let s = spy(Duration::from_millis(100), false);
    let mut vault = KeyVault::new(Duration::from_secs(60), 10);
    vault.add_provider(s.clone());
    let (w, k) = vault.create_tenant_key("local", "k").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (v, w) = (vault.clone(), w.clone());
        tasks.push(tokio::spawn(async move { v.tenant_keys("t", &w).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().id_key(), k.id_key());
    }
    assert_eq!(s.unwraps.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn vault_rejects_a_provider_that_returns_a_wrong_key() {
    let honest = LocalKek::in_memory(SecretKey::random());
    let w = honest.wrap("k", &Tmk::random()).await.unwrap();
    let mut vault = KeyVault::new(Duration::from_secs(60), 10);
    vault.add_provider(spy(Duration::ZERO, true));
    let err = vault.tenant_keys("t", &w).await.unwrap_err();
    assert!(matches!(err, KeyError::Commitment { .. }), "{err}");
    assert_eq!(vault.cached_len(), 0);
}

#[tokio::test]
async fn error_kinds_are_classified() {
    let vault = KeyVault::new(Duration::from_secs(1), 1);
    let err = vault.provider("openbao").err().unwrap();
    assert!(matches!(err, KeyError::NotFound { .. }));
    assert!(!err.is_retryable());
    let tk = TenantKeys::derive(&Tmk::random());
    assert_eq!(format!("{tk:?}"), "TenantKeys(<redacted>)");
    assert!(
        KeyError::Unavailable {
            provider: "p".into(),
            operation: "unwrap",
            attempts: 1,
            reason: "r".into()
        }
        .is_retryable()
    );
}
