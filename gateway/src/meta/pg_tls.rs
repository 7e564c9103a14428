//! TLS to PostgreSQL with rustls, by libpq's `sslmode`:
//!
//! | sslmode | here |
//! |---|---|
//! | absent, `disable`, `prefer` | no TLS (`prefer` never upgraded before either) |
//! | `require` | TLS, the certificate is not checked — unless `sslrootcert` is given, then as `verify-ca` (libpq does the same) |
//! | `verify-ca` | TLS, the chain must lead to a trusted root |
//! | `verify-full` | TLS, the chain and the host name must check |
//!
//! Trusted roots, as libpq: those in `sslrootcert=FILE` when given, else the
//! system's.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::conninfo;
use super::{MetaError, MetaResult};
use crate::tls;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Off,
    Unverified,
    VerifyCa,
    VerifyFull,
}

/// The connection string without the TLS settings tokio-postgres does not
/// know, and the connector those settings ask for.
pub(crate) fn prepare(url: &str) -> MetaResult<(tokio_postgres::Config, RustlsConnect)> {
    let (rest, taken) = conninfo::take_params(url, &["sslmode", "sslrootcert"]);
    let get = |k: &str| taken.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v);
    let root: Option<PathBuf> = get("sslrootcert").map(PathBuf::from);
    let mode = match get("sslmode").map(String::as_str) {
        None | Some("disable" | "prefer" | "allow") => Mode::Off,
        Some("require") if root.is_some() => Mode::VerifyCa,
        Some("require") => Mode::Unverified,
        Some("verify-ca") => Mode::VerifyCa,
        Some("verify-full") => Mode::VerifyFull,
        Some(other) => {
            return Err(MetaError::Internal(format!(
                "invalid PostgreSQL sslmode {other:?} (disable, prefer, require, verify-ca, verify-full)"
            )));
        }
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| MetaError::Internal(format!("invalid PostgreSQL connection string: {e}")))?;
    config.ssl_mode(if mode == Mode::Off {
        SslMode::Disable
    } else {
        SslMode::Require
    });
    let tls_err = |e: tls::TlsError| MetaError::Internal(format!("PostgreSQL TLS: {e}"));
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Mode::Off | Mode::Unverified => Arc::new(AnyCertificate),
        Mode::VerifyCa => Arc::new(ChainOnly(
            tls::webpki_verifier(tls::root_store_libpq(root.as_deref()).map_err(tls_err)?)
                .map_err(tls_err)?,
        )),
        Mode::VerifyFull => {
            tls::webpki_verifier(tls::root_store_libpq(root.as_deref()).map_err(tls_err)?)
                .map_err(tls_err)?
        }
    };
    let client = tls::client_config(verifier).map_err(tls_err)?;
    Ok((
        config,
        RustlsConnect {
            config: Arc::new(client),
        },
    ))
}

/// `MakeTlsConnect` for tokio-postgres over tokio-rustls.
#[derive(Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

pub(crate) struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, Self::Error> {
        Ok(RustlsConnector {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_owned())?,
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<RustlsStream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM-SHA-256 works, SCRAM-SHA-256-PLUS is not
    /// offered.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// `sslmode=require` without roots: encrypted, not authenticated, as libpq.
#[derive(Debug)]
struct AnyCertificate;

fn supported_schemes() -> Vec<SignatureScheme> {
    rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .supported_schemes()
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        supported_schemes()
    }
}

/// `verify-ca`: the chain must check, the name need not.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
