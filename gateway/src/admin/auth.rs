//! Who may use the admin endpoint — the one check every admin route goes
//! through, the admin API's (`/admin/v1/…`) included.
//!
//! - On a loopback address, `/metrics` and `/health/*` are open; every other
//!   path needs `Authorization: Bearer <token>`.
//! - On any other address, every path needs the token, and the gateway
//!   refuses to start without one.
//!
//! Only a BLAKE3 hash of the token is kept; the presented token is hashed
//! the same way and the hashes are compared in constant time, so neither
//! the token's bytes nor its length leak through timing.

use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode};
use s3s::Body;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::AdminConfig;

#[derive(Debug, thiserror::Error)]
pub enum AdminAuthError {
    #[error("reading admin.token_file {path}: {source}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("admin.token is empty")]
    EmptyToken,
    #[error("admin.open_paths: {0} cannot be opened (only /health/live, /health/ready, /metrics)")]
    NotOpenable(String),
    #[error(
        "admin_listen {0} is not a loopback address: set admin.token or admin.token_file (every admin request then needs it)"
    )]
    TokenRequired(SocketAddr),
}

#[derive(Clone)]
pub struct AdminAuth {
    token_hash: Option<[u8; 32]>,
    loopback: bool,
    /// `admin.open_paths`: open on any address.
    open: Vec<String>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token_hash.map(|_| "<set>"))
            .field("loopback", &self.loopback)
            .field("open", &self.open)
            .finish()
    }
}

const OPEN_ON_LOOPBACK: &[&str] = &["/metrics", "/health/live", "/health/ready"];

impl AdminAuth {
    /// From `[admin]`, for an endpoint bound to `listen`.
    pub fn from_config(cfg: &AdminConfig, listen: SocketAddr) -> Result<Self, AdminAuthError> {
        let token: Option<Zeroizing<String>> = match (&cfg.token, &cfg.token_file) {
            (Some(t), _) => Some(Zeroizing::new(t.expose().trim().to_owned())),
            (None, Some(path)) => Some(Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|source| AdminAuthError::TokenFile {
                        path: path.display().to_string(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            )),
            (None, None) => None,
        };
        if token.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(AdminAuthError::EmptyToken);
        }
        if let Some(p) = cfg
            .open_paths
            .iter()
            .find(|p| !OPEN_ON_LOOPBACK.contains(&p.as_str()))
        {
            return Err(AdminAuthError::NotOpenable(p.clone()));
        }
        let loopback = listen.ip().is_loopback();
        // Without a token and with nothing open, such an endpoint could
        // answer nothing: a mistake, said at start rather than at 3 am.
        if !loopback && token.is_none() && cfg.open_paths.is_empty() {
            return Err(AdminAuthError::TokenRequired(listen));
        }
        Ok(Self {
            token_hash: token.map(|t| *blake3::hash(t.as_bytes()).as_bytes()),
            loopback,
            open: cfg.open_paths.clone(),
        })
    }

    /// Whether a request for `path` carrying this `Authorization` header
    /// may proceed.
    pub fn allows(&self, path: &str, authorization: Option<&HeaderValue>) -> bool {
        if (self.loopback && OPEN_ON_LOOPBACK.contains(&path))
            || self.open.iter().any(|p| p == path)
        {
            return true;
        }
        let Some(expected) = &self.token_hash else {
            return false;
        };
        let Some(presented) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let presented = blake3::hash(presented.trim().as_bytes());
        bool::from(presented.as_bytes().ct_eq(expected))
    }

    /// Ok when the request may proceed, otherwise the 401 to send.
    pub fn require<B>(&self, req: &Request<B>) -> Result<(), Box<Response<Body>>> {
        if self.allows(
            req.uri().path(),
            req.headers().get(http::header::AUTHORIZATION),
        ) {
            return Ok(());
        }
        // No hint whether a token was missing or wrong.
        let body = super::api::error_body(
            "Unauthorized",
            "admin token required: Authorization: Bearer <[admin] token>",
        );
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"dooz-admin\""),
        );
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        Err(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn auth(token: Option<&str>, addr: &str) -> Result<AdminAuth, AdminAuthError> {
        AdminAuth::from_config(
            &AdminConfig {
                token: token.map(Secret::from),
                token_file: None,
                open_paths: Vec::new(),
            },
            addr.parse().unwrap(),
        )
    }

    #[test]
    fn loopback_opens_metrics_and_health_only() {
        let a = auth(Some("s3cret-token"), "127.0.0.1:9001").unwrap();
        let ok = HeaderValue::from_static("Bearer s3cret-token");
        let bad = HeaderValue::from_static("Bearer s3cret-tokeN");
        assert!(a.allows("/metrics", None));
        assert!(a.allows("/health/ready", None));
        assert!(!a.allows("/admin/anything", None));
        assert!(!a.allows("/admin/anything", Some(&bad)));
        assert!(a.allows("/admin/anything", Some(&ok)));
        assert!(!a.allows("/metrics/../admin", None));
        let none = auth(None, "[::1]:9001").unwrap();
        assert!(none.allows("/health/live", None));
        assert!(!none.allows("/other", Some(&ok)));
    }

    #[test]
    fn other_addresses_need_the_token_everywhere() {
        assert!(matches!(
            auth(None, "0.0.0.0:9001"),
            Err(AdminAuthError::TokenRequired(_))
        ));
        assert!(matches!(
            auth(Some("  "), "127.0.0.1:9001"),
            Err(AdminAuthError::EmptyToken)
        ));
        let a = auth(Some("t0ken"), "10.1.2.3:9001").unwrap();
        assert!(!a.allows("/metrics", None));
        assert!(a.allows("/metrics", Some(&HeaderValue::from_static("Bearer t0ken"))));
        assert!(!a.allows("/metrics", Some(&HeaderValue::from_static("Basic t0ken"))));
        assert!(!format!("{a:?}").contains("t0ken"));
    }

    #[test]
    fn open_paths_open_probes_on_any_address_and_nothing_else() {
        let cfg = |token: Option<&str>, open: &[&str]| AdminConfig {
            token: token.map(Secret::from),
            token_file: None,
            open_paths: open.iter().map(|p| (*p).to_owned()).collect(),
        };
        let addr: SocketAddr = "0.0.0.0:9001".parse().unwrap();
        let a =
            AdminAuth::from_config(&cfg(None, &["/health/live", "/health/ready"]), addr).unwrap();
        assert!(a.allows("/health/live", None));
        assert!(a.allows("/health/ready", None));
        assert!(!a.allows("/metrics", None));
        assert!(!a.allows("/admin/v1/tenants", None));
        let bearer = HeaderValue::from_static("Bearer anything");
        assert!(
            !a.allows("/metrics", Some(&bearer)),
            "no token configured: nothing else opens"
        );
        assert!(matches!(
            AdminAuth::from_config(&cfg(Some("t"), &["/admin/v1/tenants"]), addr),
            Err(AdminAuthError::NotOpenable(_))
        ));
        assert!(matches!(
            AdminAuth::from_config(&cfg(None, &[]), addr),
            Err(AdminAuthError::TokenRequired(_))
        ));
    }
}
