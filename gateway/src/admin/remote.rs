//! `dooz admin --endpoint URL --token T`: the admin commands against a
//! remote gateway's admin API, with no metadata store credentials. Answers
//! arrive as the same typed results `ops.rs` returns locally.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::ops::{AdminError, AdminResult};

/// Who runs the command, sent for the gateway's audit record (the token is
/// what authorizes; this only says which operator used it).
pub const OPERATOR_HEADER: &str = "x-dooz-operator";

pub struct Remote {
    http: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
    operator: String,
}

impl Remote {
    /// `ca_file`: roots to trust besides the system's (a private CA).
    pub fn new(
        endpoint: &str,
        token: Zeroizing<String>,
        ca_file: Option<&Path>,
    ) -> AdminResult<Self> {
        let endpoint = endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(AdminError::Invalid(format!(
                "--endpoint {endpoint}: give the admin listener's URL, e.g. http://127.0.0.1:9001"
            )));
        }
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| AdminError::Invalid(format!("--ca-file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| AdminError::Invalid(format!("--ca-file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(AdminError::Invalid(format!(
                    "--ca-file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| AdminError::Internal(format!("HTTP client: {e}")))?;
        let operator = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        Ok(Self {
            http,
            base: format!("{endpoint}/admin/v1"),
            token,
            operator,
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> AdminResult<String> {
        if query.is_empty() {
            return Ok(format!("{}{path}", self.base));
        }
        let q = serde_urlencoded::to_string(query)
            .map_err(|e| AdminError::Internal(format!("query string: {e}")))?;
        Ok(format!("{}{path}?{q}", self.base))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> AdminResult<T> {
        let mut req = self
            .http
            .request(method, self.url(path, query)?)
            .bearer_auth(self.token.as_str())
            .header(OPERATOR_HEADER, &self.operator);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| AdminError::Unavailable(format!("admin endpoint {}: {e}", self.base)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| AdminError::Unavailable(format!("reading the answer: {e}")))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                AdminError::Internal(format!("unexpected answer from {}: {e}", self.base))
            });
        }
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{status}: {}", text.trim()));
        Err(match status {
            StatusCode::BAD_REQUEST => AdminError::Invalid(message),
            StatusCode::NOT_FOUND => AdminError::NotFound(message),
            StatusCode::CONFLICT => AdminError::Conflict(message),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                AdminError::Invalid(format!("{message} (check --token / DOOZ_ADMIN_TOKEN)"))
            }
            StatusCode::SERVICE_UNAVAILABLE => AdminError::Unavailable(message),
            _ => AdminError::Internal(message),
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> AdminResult<T> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &impl Serialize,
    ) -> AdminResult<T> {
        let body = serde_json::to_vec(body).map_err(|e| AdminError::Internal(e.to_string()))?;
        self.call(Method::POST, path, query, Some(body)).await
    }

    /// PUT with a body that is JSON already (e.g. a policy document as the
    /// operator wrote it).
    pub async fn put_json<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> AdminResult<T> {
        self.call(Method::PUT, path, &[], Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> AdminResult<T> {
        self.call(Method::DELETE, path, query, None).await
    }
}

/// Path segments (access keys, bucket names) are plain ASCII by their own
/// rules, but a user's typo must not become another route.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
