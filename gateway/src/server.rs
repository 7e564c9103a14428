//! `dooz serve`: builds the engine from the config, binds the S3 and admin
//! endpoints, and shuts down gracefully (in-flight requests finish; nothing
//! is half-committed because every commit is one transaction).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dooz_keyvault::{KeyVault, LocalKek, OpenBaoConfig, OpenBaoKek};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::admin::http::AdminService;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig};
use crate::meta::{MetaStore, Policy};
use crate::s3::front::Front;
use crate::store::Backends;
use crate::tenancy::{self, CredentialCache, NewTenant};

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
    #[error("audit log: {0}")]
    Audit(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
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
        let token = match (&ob.token, &ob.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| ServeError::Config(format!("reading {}: {e}", f.display())))?
                .trim()
                .to_owned(),
            (None, None) => std::env::var("BAO_TOKEN")
                .or_else(|_| std::env::var("VAULT_TOKEN"))
                .map_err(|_| {
                    ServeError::Config(
                        "kms.openbao needs token, token_file, BAO_TOKEN or VAULT_TOKEN".into(),
                    )
                })?,
        };
        vault.add_provider(Arc::new(OpenBaoKek::new(OpenBaoConfig {
            addr: ob.addr.clone(),
            token: Zeroizing::new(token).to_string(),
            mount: ob.mount.clone(),
            ..OpenBaoConfig::default()
        })?));
    }
    Ok(vault)
}

/// Everything `serve` and the admin commands share.
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
        let backends = Backends::open(&cfg.backends)?;
        let vault = key_vault(&cfg)?;
        let engine = Engine::new(
            meta.clone(),
            backends,
            vault,
            EngineConfig::from_config(&cfg.chunking, &cfg.default_backend),
            cfg.chunking.upload_memory_budget,
        )?;
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
    /// The audit writer: it ends once the last request handle is gone and
    /// its queue is drained.
    audit: (AuditLog, JoinHandle<()>),
}

/// How long shutdown waits for queued audit records to be appended.
const AUDIT_DRAIN: Duration = Duration::from_secs(10);

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the grace period),
    /// then appends the audit records still queued.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let (handle, writer) = self.audit;
        drop(handle);
        if tokio::time::timeout(AUDIT_DRAIN, writer).await.is_err() {
            tracing::warn!(target: "dooz::audit", "audit writer still busy at shutdown");
        }
    }
}

/// The client's address, in the extensions of every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A connection's service: the inner one, with the peer address attached.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S, B> hyper::service::Service<http::Request<B>> for WithPeer<S>
where
    S: hyper::service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        self.inner.call(req)
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
    let s3 = crate::s3::service(
        ctx.engine.clone(),
        credentials,
        &ctx.cfg.region,
        &ctx.cfg.domains,
    );
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
    let (stop, stop_rx) = watch::channel(false);
    let front = Front::new(s3).with_audit(audit.clone());
    let admin = AdminService::new(ctx.engine.clone());
    let tasks = vec![
        tokio::spawn(serve_loop(s3_listener, front, stop_rx.clone(), "s3")),
        tokio::spawn(serve_loop(admin_listener, admin, stop_rx, "admin")),
    ];
    tracing::info!(%s3_addr, %admin_addr, meta = ctx.meta.kind(), "dooz is serving");
    Ok(Running {
        s3_addr,
        admin_addr,
        engine: ctx.engine,
        stop,
        tasks,
        audit: (audit, writer),
    })
}

async fn serve_loop<S>(
    listener: TcpListener,
    service: S,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<s3s::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = ConnBuilder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(endpoint = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = WithPeer { inner: service.clone(), peer };
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(endpoint = name, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(endpoint = name, "all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(endpoint = name, "grace period over; closing remaining connections"),
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
