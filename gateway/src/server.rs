//! `dooz serve`: builds the engine from the config, binds the S3 and admin
//! endpoints, and shuts down gracefully (in-flight requests finish; nothing
//! is half-committed because every commit is one transaction).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dooz_keyvault::{KeyVault, LocalKek, OpenBaoConfig, OpenBaoKek};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::admin::auth::AdminAuth;
use crate::admin::http::AdminService;
use crate::audit::AuditLog;
use crate::budget::MemoryBudget;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::meta::{MetaStore, Policy};
use crate::net::{self, Limits};
use crate::s3::front::{Front, FrontConfig};
use crate::store::Backends;
use crate::tenancy::{self, CredentialCache, NewTenant};
use crate::tls::ServerTls;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("metadata store: {0}")]
    Meta(#[from] crate::meta::MetaError),
    #[error("backend: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("keys: {0}")]
    Keys(#[from] dooz_keyvault::KeyError),
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("admin endpoint: {0}")]
    Admin(#[from] crate::admin::auth::AdminAuthError),
    #[error("audit log: {0}")]
    Audit(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How long a looked-up credential is trusted before it is read again.
const CREDENTIAL_TTL: Duration = Duration::from_secs(30);

/// The key vault with the providers the config names.
pub fn key_vault(cfg: &Config) -> Result<KeyVault, ServeError> {
    let mut vault = KeyVault::new(Duration::from_secs(cfg.kms.cache_ttl_secs), 10_000);
    let root_file = cfg
        .kms
        .root_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("root.key"));
    if let Some(parent) = root_file.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| ServeError::Config(format!("creating {}: {e}", parent.display())))?;
    }
    vault.add_provider(Arc::new(LocalKek::from_env_or_file(
        "DOOZ_ROOT_KEY",
        &root_file,
    )?));
    if let Some(ob) = &cfg.kms.openbao {
        // Every copy of the token is zeroized when dropped; OpenBaoKek keeps
        // its own (zeroized) copy and the sensitive request header.
        let token: Zeroizing<String> = match (&ob.token, &ob.token_file) {
            (Some(t), _) => Zeroizing::new(t.expose().to_owned()),
            (None, Some(f)) => {
                let raw =
                    Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                        ServeError::Config(format!("reading {}: {e}", f.display()))
                    })?);
                Zeroizing::new(raw.trim().to_owned())
            }
            (None, None) => Zeroizing::new(
                std::env::var("BAO_TOKEN")
                    .or_else(|_| std::env::var("VAULT_TOKEN"))
                    .map_err(|_| {
                        ServeError::Config(
                            "kms.openbao needs token, token_file, BAO_TOKEN or VAULT_TOKEN".into(),
                        )
                    })?,
            ),
        };
        vault.add_provider(Arc::new(OpenBaoKek::new(OpenBaoConfig {
            addr: ob.addr.clone(),
            token: token.as_str().to_owned(),
            mount: ob.mount.clone(),
            ..OpenBaoConfig::default()
        })?));
    }
    Ok(vault)
}

/// Everything `serve` and the admin commands share.
#[derive(Clone)]
pub struct Context {
    pub cfg: Config,
    pub meta: Arc<dyn MetaStore>,
    pub engine: Engine,
}

impl Context {
    pub async fn open(cfg: Config) -> Result<Self, ServeError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            ServeError::Config(format!("creating data dir {}: {e}", cfg.data_dir.display()))
        })?;
        let meta = crate::meta::open(&cfg.meta).await?;
        let backends = Backends::open(&cfg.backends)?.with_limits(&cfg.limits);
        let vault = key_vault(&cfg)?;
        let mut engine_cfg = EngineConfig::from_config(&cfg.chunking, &cfg.default_backend);
        engine_cfg.lifecycle_day_ms = cfg.lifecycle.day_ms();
        if let Some(secs) = cfg.lifecycle.debug_day_secs {
            tracing::warn!(
                debug_day_secs = secs,
                "lifecycle.debug_day_secs is set: a lifecycle day lasts {secs} seconds, so every \
                 Days rule expires and aborts data that many SECONDS after it was written. \
                 This setting is for tests only; never set it in production"
            );
        }
        // Never smaller than the largest single reservation, so every
        // request can run, alone if it must.
        let budget = MemoryBudget::new(
            cfg.chunking.memory_budget,
            engine_cfg
                .upload_reservation()
                .max(crate::s3::front::MAX_XML_BODY),
            Duration::from_secs(cfg.server.memory_wait_secs),
        );
        let engine = Engine::new(meta.clone(), backends, vault, engine_cfg, budget)?;
        Ok(Self { cfg, meta, engine })
    }

    pub fn default_key_ref(&self) -> String {
        match (&self.cfg.kms.default_provider[..], &self.cfg.kms.openbao) {
            ("openbao", Some(ob)) => ob.key.clone(),
            _ => "root".to_owned(),
        }
    }
}

/// The root tenant, created with the configured defaults if this database
/// has none yet (first start, or an operator command before it).
pub async fn ensure_root_tenant(ctx: &Context) -> Result<crate::meta::Tenant, ServeError> {
    if let Some(t) = ctx.meta.get_tenant_by_name("root").await? {
        return Ok(t);
    }
    let created = tenancy::create_tenant(
        ctx.meta.as_ref(),
        ctx.engine.vault(),
        NewTenant {
            name: "root",
            provider: &ctx.cfg.kms.default_provider,
            key_ref: &ctx.default_key_ref(),
            cipher: &ctx.cfg.kms.default_cipher,
        },
    )
    .await;
    match created {
        Ok(t) => Ok(t),
        // Another gateway on the same database won the race.
        Err(_) => ctx
            .meta
            .get_tenant_by_name("root")
            .await?
            .ok_or_else(|| ServeError::Config("cannot create the root tenant".into())),
    }
}

/// Root credentials printed on first start (or taken from the environment).
pub struct Bootstrap {
    pub access_key: String,
    pub secret_key: Option<Zeroizing<String>>,
}

/// Creates the root tenant and its admin user on first start; with
/// DOOZ_ROOT_ACCESS_KEY / DOOZ_ROOT_SECRET_KEY set, makes sure that user exists.
pub async fn bootstrap(ctx: &Context) -> Result<Option<Bootstrap>, ServeError> {
    let env_keys = match (
        std::env::var("DOOZ_ROOT_ACCESS_KEY"),
        std::env::var("DOOZ_ROOT_SECRET_KEY"),
    ) {
        (Ok(a), Ok(s)) => Some((a, Zeroizing::new(s))),
        _ => None,
    };
    let root = ensure_root_tenant(ctx).await?;
    let users = ctx.meta.list_users(Some(root.id)).await?;
    match env_keys {
        Some((access, secret)) => {
            if users.iter().any(|u| u.access_key == access) {
                return Ok(None);
            }
            tenancy::create_user(
                ctx.meta.as_ref(),
                ctx.engine.vault(),
                &root,
                "root-admin",
                Policy::Admin,
                Some((access.clone(), secret)),
            )
            .await?;
            Ok(Some(Bootstrap {
                access_key: access,
                secret_key: None,
            }))
        }
        None if users.is_empty() => {
            let (user, secret) = tenancy::create_user(
                ctx.meta.as_ref(),
                ctx.engine.vault(),
                &root,
                "root-admin",
                Policy::Admin,
                None,
            )
            .await?;
            Ok(Some(Bootstrap {
                access_key: user.access_key,
                secret_key: Some(secret),
            }))
        }
        None => Ok(None),
    }
}

/// A running gateway: its addresses and the switch that stops it.
pub struct Running {
    pub s3_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub engine: Engine,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    jobs: crate::jobs::Jobs,
    /// The audit writer: it ends once the last request handle is gone and
    /// its queue is drained.
    audit: (AuditLog, JoinHandle<()>),
}

/// How long shutdown waits for queued audit records to be appended.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), stops the background jobs, then appends the audit records
    /// still queued.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.jobs.stop().await;
        let (handle, writer) = self.audit;
        drop(handle);
        if tokio::time::timeout(AUDIT_DRAIN, writer).await.is_err() {
            tracing::warn!(target: "dooz::audit", "audit writer still busy at shutdown");
        }
    }
}

/// Reloads the limit overrides of `dooz admin limits` until stopped.
async fn refresh_limits(
    throttle: Arc<crate::throttle::Throttle>,
    meta: Arc<dyn crate::meta::MetaStore>,
    mut stop: watch::Receiver<bool>,
) {
    let every = throttle.refresh_interval();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match throttle.refresh(meta.as_ref()).await {
            Ok(true) => tracing::info!("throttle: limit overrides changed; taken up"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "throttle: reloading limit overrides failed"),
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Binds both endpoints and serves until `shutdown` is called.
pub async fn start(ctx: Context) -> Result<Running, ServeError> {
    let credentials = Arc::new(CredentialCache::new(ctx.engine.clone(), CREDENTIAL_TTL));
    let buckets = Arc::new(crate::s3::access::BucketAccessCache::new(
        ctx.engine.clone(),
        &ctx.cfg.access,
    ));
    let secure = ctx.cfg.server.tls_cert_file.is_some() && ctx.cfg.server.tls_key_file.is_some();
    let throttle = Arc::new(crate::throttle::Throttle::new(&ctx.cfg.limits));
    // Overrides apply from the first request; later changes within
    // `limits.refresh_secs`.
    if let Err(e) = throttle.refresh(ctx.meta.as_ref()).await {
        tracing::warn!(error = %e, "throttle: limit overrides not loaded yet; retrying");
    }
    let throttle_for_refresh = throttle.clone();
    let s3 = crate::s3::service(
        ctx.engine.clone(),
        credentials.clone(),
        &ctx.cfg.region,
        &ctx.cfg.domains,
        &crate::s3::AccessOptions {
            buckets: buckets.clone(),
            secure,
            throttle: throttle.clone(),
        },
    );
    let admin_auth = AdminAuth::from_config(&ctx.cfg.admin, ctx.cfg.admin_listen)?;
    let tls = match (&ctx.cfg.server.tls_cert_file, &ctx.cfg.server.tls_key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(ServerTls::load(cert, key)?)),
        _ => None,
    };
    let s3_listener = bind(ctx.cfg.listen).await?;
    let admin_listener = bind(ctx.cfg.admin_listen).await?;
    let s3_addr = s3_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: ctx.cfg.listen,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: ctx.cfg.admin_listen,
            source,
        })?;
    let key = crate::audit::chain_key(&ctx)
        .await
        .map_err(|e| ServeError::Audit(e.to_string()))?;
    let (audit, writer) = AuditLog::start(ctx.meta.clone(), key, &ctx.cfg.audit);
    // The upload lease is held before the first upload can arrive.
    let jobs = crate::jobs::Jobs::start(&ctx.engine, &ctx.cfg.gc, &ctx.cfg.lifecycle).await?;
    let (stop, stop_rx) = watch::channel(false);
    let limits = Limits::from_config(&ctx.cfg.server);
    let front = Front::new(
        s3,
        FrontConfig {
            budget: ctx.engine.budget().clone(),
            body_stall: limits.body_stall,
            domains: ctx.cfg.domains.clone(),
        },
    )
    .with_audit(audit.clone())
    .with_throttle(throttle.clone())
    .with_cors(ctx.engine.clone())
    .with_post_object(crate::s3::PostObject {
        engine: ctx.engine.clone(),
        credentials,
        buckets,
        secure,
        throttle,
    });
    let admin = AdminService::new(ctx.clone(), admin_auth);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut tasks = vec![
        tokio::spawn(net::serve_loop(
            s3_listener,
            front,
            stop_rx.clone(),
            "s3",
            limits.clone(),
            tls.clone(),
        )),
        tokio::spawn(net::serve_loop(
            admin_listener,
            admin,
            stop_rx.clone(),
            "admin",
            limits,
            tls.clone(),
        )),
    ];
    tasks.push(tokio::spawn(refresh_limits(
        throttle_for_refresh,
        ctx.meta.clone(),
        stop_rx.clone(),
    )));
    if let Some(tls) = tls {
        tasks.push(tokio::spawn(reload_on_sighup(tls, stop_rx)));
    }
    tracing::info!(%s3_addr, %admin_addr, scheme, meta = ctx.meta.kind(), "dooz is serving");
    Ok(Running {
        s3_addr,
        admin_addr,
        engine: ctx.engine,
        stop,
        tasks,
        jobs,
        audit: (audit, writer),
    })
}

/// Re-reads the certificate and key on SIGHUP. New connections get the new
/// certificate; open ones keep the session they have.
async fn reload_on_sighup(tls: Arc<ServerTls>, mut stop: watch::Receiver<bool>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; TLS certificates will not reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hup.recv() => match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one"),
            },
            _ = stop.changed() => return,
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
