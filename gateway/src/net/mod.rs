//! Serving connections to clients that may be slow or hostile: a cap on
//! open connections, TLS, hyper's header-read timeout (it needs a timer to
//! do anything), an idle timeout, a send-stall timeout, and graceful
//! shutdown. Request bodies are guarded in `body` (stall timeout, memory of
//! large aws-chunked chunks); the front door wraps them.

pub mod body;
pub mod io;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::config::ServerConfig;
use crate::metrics::METRICS;
use crate::tls::ServerTls;
use io::{Activity, GuardedIo};

/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Streams one HTTP/2 connection may carry at once.
const MAX_H2_STREAMS: u32 = 100;

/// The `[server]` settings the connection layer applies.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub body_stall: Duration,
    pub send_stall: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(c: &ServerConfig) -> Self {
        Self {
            header_read: Duration::from_secs(c.header_read_timeout_secs),
            idle: Duration::from_secs(c.idle_timeout_secs),
            body_stall: Duration::from_secs(c.body_stall_timeout_secs),
            send_stall: Duration::from_secs(c.send_stall_timeout_secs),
            max_connections: c.max_connections,
        }
    }
}

/// The client's address, in the extensions of every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A service, counted as busy while it handles a request (the idle
/// watchdog leaves such connections alone); each request carries the
/// connection's peer address.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    peer: SocketAddr,
}

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<s3s::Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = Response<s3s::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        let guard = self.activity.request();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(guard);
            res
        })
    }
}

/// Accepts connections until `stop` turns true, then lets open connections
/// finish (up to the grace period).
pub async fn serve_loop<S>(
    listener: TcpListener,
    service: S,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<s3s::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS);
    let builder = Arc::new(builder);
    let gauge = METRICS.connections.with_label_values(&[name]);
    loop {
        // At the cap, stop accepting: new connections wait in the backlog.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(endpoint = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            builder: builder.clone(),
            service: service.clone(),
            stop: stop.clone(),
            name,
            limits: limits.clone(),
            peer,
        };
        let tls = tls.as_ref().map(|t| t.acceptor());
        let gauge = gauge.clone();
        tokio::spawn(async move {
            gauge.inc();
            conn.run(stream, tls).await;
            gauge.dec();
            drop(slot);
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await {
        Ok(_) => tracing::info!(endpoint = name, "all connections closed"),
        Err(_) => tracing::warn!(
            endpoint = name,
            "grace period over; closing remaining connections"
        ),
    }
}

struct Conn<S> {
    builder: Arc<ConnBuilder<TokioExecutor>>,
    service: S,
    stop: watch::Receiver<bool>,
    name: &'static str,
    limits: Limits,
    peer: SocketAddr,
}

impl<S> Conn<S>
where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<s3s::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    async fn run(self, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let activity = Activity::new();
        let closed = |reason: &str| {
            METRICS
                .connections_closed
                .with_label_values(&[self.name, reason])
                .inc();
        };
        match tls {
            None => {
                let io = GuardedIo::new(stream, activity.clone(), self.limits.send_stall);
                self.serve(io, activity).await;
            }
            Some(acceptor) => {
                // The handshake is part of reading the first request.
                match tokio::time::timeout(self.limits.header_read, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let io = GuardedIo::new(tls, activity.clone(), self.limits.send_stall);
                        self.serve(io, activity).await;
                    }
                    Ok(Err(e)) => {
                        closed("tls_handshake");
                        tracing::debug!(endpoint = self.name, error = %e, "TLS handshake failed");
                    }
                    Err(_) => closed("tls_handshake_timeout"),
                }
            }
        }
    }

    async fn serve<T>(self, io: GuardedIo<T>, activity: Arc<Activity>)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            builder,
            service,
            mut stop,
            name,
            limits,
            peer,
        } = self;
        let service = Tracked {
            inner: service,
            activity: activity.clone(),
            peer,
        };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let tick = (limits.idle / 4).max(Duration::from_millis(100));
        let mut watchdog = tokio::time::interval(tick);
        let mut closing = false;
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        // Timeouts and stalls end up here, as do resets.
                        let reason = classify(&*e);
                        METRICS.connections_closed.with_label_values(&[name, reason]).inc();
                        tracing::debug!(endpoint = name, error = %e, reason, "connection ended with an error");
                    }
                    return;
                }
                _ = watchdog.tick(), if !closing => {
                    if activity.idle_for(limits.idle) {
                        METRICS.connections_closed.with_label_values(&[name, "idle"]).inc();
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = stop.changed(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// A short label for why a connection failed.
fn classify(e: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && h.is_timeout()
        {
            return "header_timeout";
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return "send_stall";
        }
        cur = err.source();
    }
    "error"
}
