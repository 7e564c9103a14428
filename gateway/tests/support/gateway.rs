//! A Dooz gateway running in-process on free ports, with its own data
//! directory and metadata store, and credentials for one admin user.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::Client;
use dooz_conformance::Seaweed;
use dooz_gateway::config::Config;
use dooz_gateway::jobs::{Collector, GcConfig, GcReport};
use dooz_gateway::meta::{Policy, Tenant};
use dooz_gateway::server::{self, Context, Running};
use dooz_gateway::store::BackendConfig;
use dooz_gateway::tenancy::{self, NewTenant};
use zeroize::Zeroizing;

use super::pg::PgDb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    Seaweed,
}

/// A collector that deletes as soon as nothing references: grace 0, one
/// clock. The background worker is off; tests run the collector themselves.
pub fn eager() -> GcConfig {
    GcConfig {
        enabled: false,
        grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        max_rewrite_bytes_per_sec: 0,
        max_deletes_per_sec: 0,
        lease_ttl: Duration::from_secs(3),
        ..GcConfig::default()
    }
}

/// One collection run over the gateway's stores, as its worker makes it.
pub async fn collect(g: &Gateway) -> GcReport {
    Collector::new(g.engine().clone(), g.cfg.gc.clone())
        .run(false, &mut |_| {})
        .await
        .unwrap_or_else(|f| panic!("gc run failed: {} ({:?})", f.error, f.report))
}

/// Where the metadata lives; shared when two gateways use one database.
pub enum MetaHandle {
    Sqlite,
    Postgres(std::sync::Arc<PgDb>),
}

pub struct Gateway {
    pub running: Option<Running>,
    pub endpoint: String,
    pub admin: String,
    pub access_key: String,
    pub secret_key: String,
    pub tenant: Tenant,
    pub cfg: Config,
    pub data_dir: tempfile::TempDir,
    pub seaweed: Option<Seaweed>,
    pub meta: MetaHandle,
}

pub struct Options {
    pub meta: Meta,
    pub backend: Backend,
    /// Chunk sizes (min, avg, max); small ones keep tests quick.
    pub chunking: Option<(u32, u32, u32)>,
    pub pack_target: Option<usize>,
    /// Use this backend instead of starting one (a second gateway of a deployment).
    pub backend_config: Option<BackendConfig>,
    /// OpenBao transit as a second KEK provider.
    pub openbao: Option<dooz_gateway::config::OpenBaoSection>,
    /// The collector's settings (default: `[gc]` defaults).
    pub gc: Option<dooz_gateway::jobs::GcConfig>,
    /// Connection limits and timeouts (`[server]`).
    pub server: Option<dooz_gateway::config::ServerConfig>,
    /// `[admin]` (token).
    pub admin: Option<dooz_gateway::config::AdminConfig>,
    /// `chunking.memory_budget`.
    pub memory_budget: Option<usize>,
    /// Appended to a PostgreSQL connection string (e.g. TLS settings).
    pub meta_params: Option<String>,
    /// `[limits]`.
    pub limits: Option<dooz_gateway::throttle::LimitsConfig>,
}

impl Options {
    pub fn new(meta: Meta, backend: Backend) -> Self {
        Self {
            meta,
            backend,
            chunking: None,
            pack_target: None,
            backend_config: None,
            openbao: None,
            gc: None,
            server: None,
            admin: None,
            memory_budget: None,
            meta_params: None,
            limits: None,
        }
    }
}

pub fn local_packs_dir(g: &Gateway) -> PathBuf {
    g.data_dir.path().join("packs")
}

pub async fn start(opts: Options) -> Gateway {
    let meta = match opts.meta {
        Meta::Sqlite => MetaHandle::Sqlite,
        Meta::Postgres => MetaHandle::Postgres(std::sync::Arc::new(PgDb::create().await)),
    };
    start_with(opts, meta, None).await
}

/// Starts a gateway; with `meta` naming an existing database (and `seaweed`
/// an existing backend) it joins another gateway's deployment.
pub async fn start_with(opts: Options, meta: MetaHandle, seaweed: Option<Seaweed>) -> Gateway {
    let data_dir = tempfile::Builder::new()
        .prefix("dooz-it-")
        .tempdir()
        .expect("tempdir");
    let mut cfg = Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    cfg.meta = match &meta {
        MetaHandle::Sqlite => format!("sqlite://{}", data_dir.path().join("meta.db").display()),
        MetaHandle::Postgres(db) => match &opts.meta_params {
            Some(p) => format!("{} {p}", db.url()),
            None => db.url(),
        },
    };
    let seaweed = match (opts.backend, seaweed) {
        _ if opts.backend_config.is_some() => None,
        (Backend::Seaweed, Some(sw)) => Some(sw),
        (Backend::Seaweed, None) => Some(super::seaweed_with_bucket("packs").await),
        (Backend::Local, _) => None,
    };
    let mut backends = BTreeMap::new();
    match &seaweed {
        _ if opts.backend_config.is_some() => {
            backends.insert(
                "main".to_owned(),
                opts.backend_config.clone().expect("checked"),
            );
        }
        Some(sw) => {
            backends.insert("main".to_owned(), super::seaweed_backend(sw, "packs"));
        }
        None => {
            backends.insert(
                "main".to_owned(),
                BackendConfig::Local {
                    path: data_dir.path().join("packs"),
                },
            );
        }
    }
    cfg.backends = backends;
    cfg.default_backend = "main".into();
    cfg.domains = vec!["dooz.test".into()];
    if let Some((min, avg, max)) = opts.chunking {
        cfg.chunking.min_size = min;
        cfg.chunking.avg_size = avg;
        cfg.chunking.max_size = max;
    }
    if let Some(p) = opts.pack_target {
        cfg.chunking.pack_target_size = p;
    }
    cfg.kms.openbao = opts.openbao.clone();
    if let Some(gc) = &opts.gc {
        cfg.gc = gc.clone();
    }
    if let Some(server) = &opts.server {
        cfg.server = server.clone();
    }
    if let Some(admin) = &opts.admin {
        cfg.admin = admin.clone();
    }
    if let Some(l) = &opts.limits {
        cfg.limits = l.clone();
    }
    if let Some(b) = opts.memory_budget {
        cfg.chunking.memory_budget = b;
    }
    // A shared root key, so gateways of one deployment open each other's tenants.
    cfg.kms.root_key_file = Some(shared_root_key(&meta, &data_dir));
    let cfg = cfg.finish().expect("config");
    let ctx = Context::open(cfg.clone()).await.expect("open context");
    let tenant = match ctx.meta.get_tenant_by_name("root").await.expect("meta") {
        Some(t) => t,
        None => tenancy::create_tenant(
            ctx.meta.as_ref(),
            ctx.engine.vault(),
            NewTenant {
                name: "root",
                provider: "local",
                key_ref: "root",
                cipher: "aes-256-gcm-siv",
            },
        )
        .await
        .expect("root tenant"),
    };
    let (user, secret) = tenancy::create_user(
        ctx.meta.as_ref(),
        ctx.engine.vault(),
        &tenant,
        "admin",
        Policy::Admin,
        None,
    )
    .await
    .expect("admin user");
    let running = server::start(ctx).await.expect("start gateway");
    Gateway {
        endpoint: format!("http://{}", running.s3_addr),
        admin: format!("http://{}", running.admin_addr),
        running: Some(running),
        access_key: user.access_key,
        secret_key: secret.to_string(),
        tenant,
        cfg,
        data_dir,
        seaweed,
        meta,
    }
}

fn shared_root_key(meta: &MetaHandle, dir: &tempfile::TempDir) -> PathBuf {
    match meta {
        MetaHandle::Postgres(db) => std::env::temp_dir().join(format!("{}.rootkey", db.name)),
        MetaHandle::Sqlite => dir.path().join("root.key"),
    }
}

impl Gateway {
    pub fn client(&self) -> Client {
        super::s3_client(&self.endpoint, &self.access_key, &self.secret_key)
    }

    pub fn client_as(&self, access: &str, secret: &str) -> Client {
        super::s3_client(&self.endpoint, access, secret)
    }

    pub fn engine(&self) -> &dooz_gateway::engine::Engine {
        &self.running.as_ref().expect("running").engine
    }

    /// Creates another tenant and an admin user in it.
    pub async fn new_tenant(&self, name: &str) -> (Tenant, String, Zeroizing<String>) {
        self.new_tenant_with(name, "local", "root").await
    }

    /// A tenant whose master key the named KEK provider wraps.
    pub async fn new_tenant_with(
        &self,
        name: &str,
        provider: &str,
        key_ref: &str,
    ) -> (Tenant, String, Zeroizing<String>) {
        let e = self.engine();
        let t = tenancy::create_tenant(
            e.meta().as_ref(),
            e.vault(),
            NewTenant {
                name,
                provider,
                key_ref,
                cipher: "chacha20-poly1305",
            },
        )
        .await
        .expect("tenant");
        let (u, s) = tenancy::create_user(
            e.meta().as_ref(),
            e.vault(),
            &t,
            "admin",
            Policy::Admin,
            None,
        )
        .await
        .expect("user");
        (t, u.access_key, s)
    }

    pub async fn user(&self, name: &str, policy: Policy) -> (String, Zeroizing<String>) {
        let e = self.engine();
        let (u, s) = tenancy::create_user(
            e.meta().as_ref(),
            e.vault(),
            &self.tenant,
            name,
            policy,
            None,
        )
        .await
        .expect("user");
        (u.access_key, s)
    }

    /// Bytes of packs on the backend.
    pub async fn backend_bytes(&self) -> u64 {
        let store = self
            .engine()
            .backends()
            .get("main")
            .expect("backend")
            .clone();
        store
            .list_packs()
            .await
            .expect("list packs")
            .iter()
            .map(|(_, s)| *s)
            .sum()
    }

    /// Every pack's bytes, for scans.
    pub async fn all_pack_bytes(&self) -> Vec<Vec<u8>> {
        let store = self
            .engine()
            .backends()
            .get("main")
            .expect("backend")
            .clone();
        let mut out = Vec::new();
        for (id, _) in store.list_packs().await.expect("list") {
            out.push(store.get_pack(&id).await.expect("get").to_vec());
        }
        out
    }

    /// Runs the `dooz` binary on this gateway's configuration (written to a
    /// TOML file in its data directory) and metadata, as an operator would.
    pub fn dooz(&self, args: &[&str]) -> std::process::Output {
        let config = self.data_dir.path().join("cli.toml");
        std::fs::write(&config, toml::to_string(&self.cfg).expect("config as TOML"))
            .expect("write the config");
        std::process::Command::new(env!("CARGO_BIN_EXE_dooz"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run dooz")
    }

    pub async fn fsck_clean(&self) {
        let report = dooz_gateway::fsck::run(self.engine(), true, self.cfg.gc.threshold_permille())
            .await
            .expect("fsck");
        assert!(report.is_clean(), "fsck: {}", report.render());
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Starts the stopped gateway again on the same data, on new ports.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "stop the gateway first");
        let ctx = Context::open(self.cfg.clone()).await.expect("open context");
        let running = server::start(ctx).await.expect("restart gateway");
        self.endpoint = format!("http://{}", running.s3_addr);
        self.admin = format!("http://{}", running.admin_addr);
        self.running = Some(running);
    }

    /// The gateway's configuration as a file, for the `dooz` binary.
    pub fn config_file(&self) -> PathBuf {
        let path = self.data_dir.path().join("dooz.toml");
        let text = toml::to_string(&self.cfg).expect("config as TOML");
        std::fs::write(&path, text).expect("write config");
        path
    }
}
