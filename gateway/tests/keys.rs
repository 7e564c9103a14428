//! Key lifecycle through the gateway: encryption epochs, local root key
//! rotation with re-wrapping, and a tenant whose KEK lives in a real OpenBao.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{get, put};

use aws_sdk_s3::Client;
use dooz_conformance::Bao;
use dooz_gateway::config::OpenBaoSection;
use dooz_keyvault::{LocalKek, RotationFilter, WrappedTmk};
use support::gateway::{Backend, Meta, Options, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_and_root_key_rotation_keep_everything_readable() {
    let g = start(Options::new(Meta::Sqlite, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("keys").send().await.unwrap();
    let old = vec![1u8; 300_000];
    let new = vec![2u8; 300_000];
    put(&c, "keys", "old", &old).await;

    let meta = g.engine().meta().clone();
    let epoch = dooz_gateway::keys::new_epoch(meta.as_ref(), &g.tenant)
        .await
        .unwrap();
    assert_eq!(epoch, 1);
    put(&c, "keys", "new", &new).await;
    let epoch_of = |key: &'static str| {
        let meta = meta.clone();
        let tenant = g.tenant.id;
        async move {
            let v = meta.get_object("keys", key, None).await.unwrap().unwrap();
            let ids: Vec<_> = v.manifest.chunks.iter().map(|c| c.id).collect();
            meta.chunk_locations(tenant, &ids).await.unwrap()[0].1.epoch
        }
    };
    assert_eq!(epoch_of("old").await, 0);
    assert_eq!(epoch_of("new").await, 1);
    assert_eq!(get(&c, "keys", "old").await, old);
    assert_eq!(get(&c, "keys", "new").await, new);

    // Rotate the local root key, re-wrap every tenant, retire the old version:
    // what `dooz keys rotate-root` and `dooz keys rotate` do, in a process of
    // their own while the gateway keeps serving.
    let (_other, ak, sk) = g.new_tenant("second").await;
    let root = g.cfg.kms.root_key_file.clone().unwrap();
    let kek = LocalKek::open(&root).unwrap();
    assert_eq!(kek.rotate().unwrap(), 2);
    let cli_vault = dooz_gateway::server::key_vault(&g.cfg).unwrap();
    let mut batches = 0;
    let report = dooz_gateway::keys::rotate(
        meta.clone(),
        &cli_vault,
        RotationFilter::all(),
        None,
        1,
        &mut |_| batches += 1,
    )
    .await
    .unwrap();
    assert_eq!(report.scanned, 2);
    assert_eq!(
        (report.rewrapped, report.already_current, report.failed),
        (2, 0, 0)
    );
    assert!(batches >= 2, "progress is reported per batch");
    for t in meta.list_tenants().await.unwrap() {
        assert_eq!(
            WrappedTmk::from_bytes(&t.wrapped_tmk).unwrap().kek_version,
            2
        );
    }
    kek.retire(1).unwrap();
    // The serving gateway picks the new records up (its cache is dropped so
    // the next request must unwrap under version 2).
    g.engine().vault().clear();
    assert_eq!(get(&c, "keys", "old").await, old);
    assert_eq!(get(&c, "keys", "new").await, new);
    let other = g.client_as(&ak, &sk);
    other.create_bucket().bucket("second").send().await.unwrap();
    put(&other, "second", "k", &[3u8; 10]).await;
    assert_eq!(get(&other, "second", "k").await, vec![3u8; 10]);
    g.fsck_clean().await;
}

/// Bring your own key: a tenant wrapped by OpenBao transit works end to end;
/// when OpenBao is gone and the cached key has expired, requests get 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_tenant_and_kms_outage() {
    let mut bao = tokio::task::spawn_blocking(Bao::start_dev)
        .await
        .unwrap()
        .unwrap();
    bao.create_key("byok-tenant").unwrap();
    let mut opts = Options::new(Meta::Sqlite, Backend::Local);
    opts.openbao = Some(OpenBaoSection {
        addr: bao.addr(),
        token: Some(bao.token.clone().into()),
        token_file: None,
        mount: "transit".into(),
        key: "byok-tenant".into(),
    });
    let g = start(opts).await;
    let (t, ak, sk) = g.new_tenant_with("byok", "openbao", "byok-tenant").await;
    let w = WrappedTmk::from_bytes(&t.wrapped_tmk).unwrap();
    assert_eq!(
        (w.provider.as_str(), w.key_ref.as_str()),
        ("openbao", "byok-tenant")
    );
    let c = g.client_as(&ak, &sk);
    c.create_bucket().bucket("byok").send().await.unwrap();
    put(&c, "byok", "k", b"kept by the tenant's own key").await;
    assert_eq!(get(&c, "byok", "k").await, b"kept by the tenant's own key");

    bao.stop();
    g.engine().vault().clear();
    let no_retry = Client::from_conf(
        c.config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = no_retry
        .get_object()
        .bucket("byok")
        .key("k")
        .send()
        .await
        .unwrap_err();
    let code = err.as_service_error().and_then(|e| {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        e.code().map(str::to_owned)
    });
    assert_eq!(code.as_deref(), Some("ServiceUnavailable"), "{err:?}");
    // Tenants on the local KEK are unaffected.
    let root = g.client();
    root.create_bucket()
        .bucket("local-tenant")
        .send()
        .await
        .unwrap();
    put(&root, "local-tenant", "k", &[5u8; 1000]).await;
    assert_eq!(get(&root, "local-tenant", "k").await, vec![5u8; 1000]);
}
