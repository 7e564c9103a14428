//! The `openbao` KEK provider: the transit secrets engine of OpenBao or
//! HashiCorp Vault, over its HTTP API with token authentication.
//!
//! | operation | endpoint |
//! |---|---|
//! | [`KekProvider::generate`] | `POST /v1/<mount>/datakey/plaintext/<key>` |
//! | [`KekProvider::wrap`] | `POST /v1/<mount>/encrypt/<key>` |
//! | [`KekProvider::unwrap`] | `POST /v1/<mount>/decrypt/<key>` |
//! | [`KekProvider::rewrap`] | `POST /v1/<mount>/rewrap/<key>` |
//! | [`KekProvider::current_version`] | `GET /v1/<mount>/keys/<key>` |
//! | [`KekProvider::describe`] | `GET /v1/sys/health` |
//!
//! The record's `ciphertext` is the transit ciphertext string
//! (`vault:v<N>:<base64>`) as UTF-8 bytes; its version must equal the record's
//! `kek_version`. The TMK never leaves this process except inside TLS (use an
//! `https://` address in production) to the KMS.
//!
//! Failure mapping: connection errors, timeouts, HTTP 429 and 5xx (including a
//! sealed server) are retried with exponential backoff and jitter, then
//! reported as [`KeyError::Unavailable`]. A missing key (`encryption key not
//! found`, 404) or a version below `min_decryption_version` is
//! [`KeyError::Revoked`] when unwrapping or rewrapping an existing record;
//! 403 is [`KeyError::Denied`]; an authentication failure of the ciphertext is
//! [`KeyError::Tampered`].
//!
//! Note: transit `encrypt` creates a missing key ("upsert") when the token may
//! create keys. Give the gateway's token a policy with `update` only on
//! `<mount>/encrypt/*`, `decrypt/*`, `rewrap/*`, `datakey/plaintext/*` and
//! `read` on `<mount>/keys/*`, so that a mistyped `key_ref` fails instead.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::keys::Tmk;
use crate::provider::{KekProvider, check_record_owner};
use crate::record::{ProviderInfo, WRAPPED_TMK_FORMAT_V1, WrappedTmk};
use crate::retry::RetryPolicy;

/// Default provider name of [`OpenBaoKek`].
pub const OPENBAO_PROVIDER: &str = "openbao";
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Connection settings of an [`OpenBaoKek`]. `Debug` hides the token.
#[derive(Clone)]
pub struct OpenBaoConfig {
    /// Base address, e.g. `https://bao.internal:8200`.
    pub addr: String,
    /// A token allowed to use the transit endpoints (sent as `X-Vault-Token`).
    pub token: String,
    /// Mount path of the transit engine, usually `transit`.
    pub mount: String,
    /// Timeout of one HTTP request (connect + answer).
    pub timeout: Duration,
    /// Retries after a transient failure (total attempts = retries + 1).
    pub retries: u32,
}

impl Default for OpenBaoConfig {
    fn default() -> Self {
        OpenBaoConfig {
            addr: "http://127.0.0.1:8200".into(),
            token: String::new(),
            mount: "transit".into(),
            timeout: Duration::from_secs(10),
            retries: 3,
        }
    }
}

impl std::fmt::Debug for OpenBaoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoConfig")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .field("mount", &self.mount)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Facts about one transit key (see [`OpenBaoKek::key_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitKeyInfo {
    /// Newest version (used for encryption).
    pub latest_version: u32,
    /// Oldest version still allowed to decrypt.
    pub min_decryption_version: u32,
    /// Whether the key may be deleted.
    pub deletion_allowed: bool,
    /// Transit key type (`aes256-gcm96`, ...).
    pub key_type: String,
}

/// The OpenBao / Vault transit KEK provider (see the module documentation).
pub struct OpenBaoKek {
    name: String,
    addr: String,
    mount: String,
    client: reqwest::Client,
    /// Token (marked sensitive), request marker, namespace.
    headers: HeaderMap,
    timeout: Duration,
    roots: Vec<reqwest::Certificate>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for OpenBaoKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoKek")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("mount", &self.mount)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A non-success HTTP answer that is not worth retrying.
struct HttpFailure {
    status: StatusCode,
    errors: String,
}

impl OpenBaoKek {
    /// Builds the client. Checks the address, mount and token syntax; does not
    /// contact the server (see [`KekProvider::describe`]).
    pub fn new(cfg: OpenBaoConfig) -> Result<Self, KeyError> {
        let token = Zeroizing::new(cfg.token);
        let addr = cfg.addr.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&addr)
            .map_err(|e| KeyError::config(format!("openbao addr `{addr}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(KeyError::config(format!(
                "openbao addr `{addr}` must be an http:// or https:// URL with a host"
            )));
        }
        if url.scheme() == "http" && !is_loopback(&url) {
            tracing::warn!(addr = %addr, "openbao address is plain http to a non-loopback host; TMKs cross the network in clear");
        }
        let mount = cfg.mount.trim_matches('/').to_string();
        if mount.is_empty() || !mount.split('/').all(valid_segment) {
            return Err(KeyError::config(format!(
                "openbao mount `{mount}` must be `/`-separated segments of [A-Za-z0-9_.-]"
            )));
        }
        if token.trim().is_empty() {
            return Err(KeyError::config("openbao token is empty"));
        }
        let mut token_value = HeaderValue::from_str(token.trim())
            .map_err(|_| KeyError::config("openbao token contains invalid characters"))?;
        token_value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Token", token_value);
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let timeout = cfg.timeout;
        let client = build_client(&headers, timeout, &[])?;
        Ok(OpenBaoKek {
            name: OPENBAO_PROVIDER.into(),
            addr,
            mount,
            client,
            headers,
            timeout,
            roots: Vec::new(),
            retry: RetryPolicy {
                retries: cfg.retries,
                ..RetryPolicy::default()
            },
        })
    }

    /// Also trusts the CA certificate(s) in `pem` (for a KMS behind a private
    /// CA), in addition to the platform's roots.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, KeyError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| KeyError::config(format!("CA certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(KeyError::config(
                "CA certificate bundle holds no certificate",
            ));
        }
        self.roots.extend(certs);
        self.client = build_client(&self.headers, self.timeout, &self.roots)?;
        Ok(self)
    }

    /// Sends requests to an OpenBao / Vault Enterprise namespace
    /// (`X-Vault-Namespace`).
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self, KeyError> {
        let ns = namespace.trim_matches('/');
        if ns.is_empty() || !ns.split('/').all(valid_segment) {
            return Err(KeyError::config(format!(
                "namespace `{ns}` must be `/`-separated segments of [A-Za-z0-9_.-]"
            )));
        }
        self.headers.insert(
            "X-Vault-Namespace",
            HeaderValue::from_str(ns).map_err(|_| KeyError::config("invalid namespace"))?,
        );
        self.client = build_client(&self.headers, self.timeout, &self.roots)?;
        Ok(self)
    }

    /// Registers this provider under another name (e.g. a tenant's own Vault,
    /// `openbao-acme`). Records carry the name; it must stay stable.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Replaces the retry policy (backoff timings; `retries` included).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    // ----- administration (not needed on the data path) -----

    /// Creates transit key `key_ref` (`aes256-gcm96`, not exportable).
    pub async fn create_key(&self, key_ref: &str) -> Result<(), KeyError> {
        check_key_name(key_ref)?;
        let body = serde_json::json!({"type": "aes256-gcm96", "exportable": false});
        self.admin(
            "create_key",
            Method::POST,
            &format!("keys/{key_ref}"),
            Some(body),
            key_ref,
        )
        .await
        .map(drop)
    }

    /// Rotates transit key `key_ref`; returns the new latest version.
    pub async fn rotate_key(&self, key_ref: &str) -> Result<u32, KeyError> {
        check_key_name(key_ref)?;
        self.admin(
            "rotate_key",
            Method::POST,
            &format!("keys/{key_ref}/rotate"),
            None,
            key_ref,
        )
        .await?;
        Ok(self.key_info(key_ref).await?.latest_version)
    }

    /// Reads the versions and policy of transit key `key_ref`.
    pub async fn key_info(&self, key_ref: &str) -> Result<TransitKeyInfo, KeyError> {
        check_key_name(key_ref)?;
        let body = self
            .admin(
                "key_info",
                Method::GET,
                &format!("keys/{key_ref}"),
                None,
                key_ref,
            )
            .await?;
        #[derive(Deserialize)]
        struct Data {
            latest_version: u32,
            min_decryption_version: u32,
            #[serde(default)]
            deletion_allowed: bool,
            #[serde(rename = "type", default)]
            key_type: String,
        }
        let d: Data = self.parse_data("key_info", &body)?;
        Ok(TransitKeyInfo {
            latest_version: d.latest_version,
            min_decryption_version: d.min_decryption_version,
            deletion_allowed: d.deletion_allowed,
            key_type: d.key_type,
        })
    }

    /// Sets `min_decryption_version`: ciphertexts of older versions can no
    /// longer be decrypted (records still under them become [`KeyError::Revoked`]).
    pub async fn set_min_decryption_version(
        &self,
        key_ref: &str,
        version: u32,
    ) -> Result<(), KeyError> {
        check_key_name(key_ref)?;
        let body = serde_json::json!({"min_decryption_version": version});
        self.admin(
            "config_key",
            Method::POST,
            &format!("keys/{key_ref}/config"),
            Some(body),
            key_ref,
        )
        .await
        .map(drop)
    }

    /// Destroys transit key `key_ref` (allows deletion, then deletes). Every
    /// TMK wrapped by it becomes unrecoverable: this is crypto-shredding.
    pub async fn delete_key(&self, key_ref: &str) -> Result<(), KeyError> {
        check_key_name(key_ref)?;
        let body = serde_json::json!({"deletion_allowed": true});
        self.admin(
            "config_key",
            Method::POST,
            &format!("keys/{key_ref}/config"),
            Some(body),
            key_ref,
        )
        .await?;
        self.admin(
            "delete_key",
            Method::DELETE,
            &format!("keys/{key_ref}"),
            None,
            key_ref,
        )
        .await?;
        tracing::info!(provider = %self.name, key_ref, "deleted transit key");
        Ok(())
    }

    async fn admin(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        key_ref: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let body = body.map(|b| Zeroizing::new(b.to_string().into_bytes()));
        let url = format!("{}/v1/{}/{path}", self.addr, self.mount);
        match self
            .send(op, method, &url, body.as_deref().map(|b| &b[..]))
            .await?
        {
            Ok(b) => Ok(b),
            Err(f) => Err(self.classify(op, f, key_ref, false)),
        }
    }

    // ----- transport -----

    /// Sends one request with bounded retries. The outer `Result` is for
    /// transient failures that outlived the retries; the inner one separates
    /// success (2xx body) from a permanent HTTP failure.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Result<Zeroizing<Vec<u8>>, HttpFailure>, KeyError> {
        let attempts = self.retry.retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let pause = self.retry.backoff(attempt - 1);
                tracing::warn!(
                    provider = %self.name,
                    op,
                    attempt = attempt + 1,
                    of = attempts,
                    backoff_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    reason = %last,
                    "KMS request failed; retrying"
                );
                tokio::time::sleep(pause).await;
            }
            let mut req = self.client.request(method.clone(), url);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_vec());
            }
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = error_chain(&e);
                    if last.contains("invalid peer certificate") {
                        // Retrying cannot fix trust: report it as configuration.
                        return Err(KeyError::config(format!(
                            "TLS verification of {} failed (trust its CA with `with_ca_pem`): {last}",
                            self.addr
                        )));
                    }
                    continue;
                }
            };
            let status = resp.status();
            // Sized up front so that growing does not leave stray copies of a
            // plaintext key in freed memory (best effort).
            let hint = resp
                .content_length()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(4096)
                .min(MAX_RESPONSE_BYTES);
            let mut buf = Zeroizing::new(Vec::with_capacity(hint));
            let mut read_err = None;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if buf.len() + c.len() > MAX_RESPONSE_BYTES {
                            return Err(KeyError::Protocol {
                                provider: self.name.clone(),
                                operation: op,
                                reason: format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
                            });
                        }
                        buf.extend_from_slice(&c);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        read_err = Some(error_chain(&e));
                        break;
                    }
                }
            }
            if let Some(e) = read_err {
                last = format!("HTTP {status}: reading body: {e}");
                continue;
            }
            if status.is_success() {
                return Ok(Ok(buf));
            }
            let errors = vault_errors(&buf);
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                last = format!("HTTP {status}: {errors}");
                continue;
            }
            return Ok(Err(HttpFailure { status, errors }));
        }
        Err(KeyError::Unavailable {
            provider: self.name.clone(),
            operation: op,
            attempts,
            reason: last,
        })
    }

    /// POST to a transit endpoint with a JSON body; classifies failures.
    async fn transit(
        &self,
        op: &'static str,
        endpoint: &str,
        key_ref: &str,
        body: &Zeroizing<Vec<u8>>,
        missing_is_revoked: bool,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let url = format!("{}/v1/{}/{endpoint}/{key_ref}", self.addr, self.mount);
        match self.send(op, Method::POST, &url, Some(&body[..])).await? {
            Ok(b) => Ok(b),
            Err(f) => Err(self.classify(op, f, key_ref, missing_is_revoked)),
        }
    }

    fn classify(
        &self,
        op: &'static str,
        f: HttpFailure,
        key_ref: &str,
        missing_is_revoked: bool,
    ) -> KeyError {
        let e = f.errors.to_ascii_lowercase();
        if f.status == StatusCode::FORBIDDEN {
            return KeyError::Denied {
                provider: self.name.clone(),
                reason: format!("{op} on `{key_ref}`: HTTP 403: {}", f.errors),
            };
        }
        if f.status == StatusCode::NOT_FOUND || e.contains("key not found") {
            return if missing_is_revoked {
                KeyError::Revoked {
                    provider: self.name.clone(),
                    key_ref: key_ref.into(),
                    reason: format!("transit key does not exist (deleted?): {}", f.errors),
                }
            } else {
                KeyError::NotFound {
                    what: format!(
                        "transit key `{key_ref}` under mount `{}` of provider `{}`",
                        self.mount, self.name
                    ),
                }
            };
        }
        if e.contains("disallowed by policy") {
            return KeyError::Revoked {
                provider: self.name.clone(),
                key_ref: key_ref.into(),
                reason: format!("the record's key version is retired: {}", f.errors),
            };
        }
        if f.status == StatusCode::BAD_REQUEST
            && (e.contains("authentication failed")
                || e.contains("invalid ciphertext")
                || e.contains("version is too new"))
        {
            return KeyError::Tampered {
                what: format!("transit ciphertext for `{key_ref}`"),
                reason: f.errors,
            };
        }
        if f.status.is_redirection() {
            return KeyError::Protocol {
                provider: self.name.clone(),
                operation: op,
                reason: format!(
                    "HTTP {}: redirects are not followed (they would carry the token); point addr at the active node or its load balancer",
                    f.status
                ),
            };
        }
        KeyError::Protocol {
            provider: self.name.clone(),
            operation: op,
            reason: format!("HTTP {}: {}", f.status, f.errors),
        }
    }

    fn parse_data<T: for<'de> Deserialize<'de>>(
        &self,
        op: &'static str,
        body: &[u8],
    ) -> Result<T, KeyError> {
        #[derive(Deserialize)]
        struct Envelope<T> {
            data: T,
        }
        serde_json::from_slice::<Envelope<T>>(body)
            .map(|e| e.data)
            .map_err(|e| KeyError::Protocol {
                provider: self.name.clone(),
                operation: op,
                // serde_json errors name a position, never the input text.
                reason: format!("unexpected response body: {e}"),
            })
    }

    fn record(&self, key_ref: &str, ct: String, version: u32, tmk: &Tmk) -> WrappedTmk {
        WrappedTmk {
            provider: self.name.clone(),
            key_ref: key_ref.into(),
            kek_version: version,
            ciphertext: ct.into_bytes(),
            commitment: tmk.commitment(),
            format: WRAPPED_TMK_FORMAT_V1,
        }
    }

    fn ciphertext_of<'a>(&self, wrapped: &'a WrappedTmk) -> Result<&'a str, KeyError> {
        check_record_owner(&self.name, wrapped)?;
        check_key_name(&wrapped.key_ref)?;
        let tampered = |reason: String| KeyError::Tampered {
            what: format!("wrapped TMK record for `{}`", wrapped.key_ref),
            reason,
        };
        let ct = std::str::from_utf8(&wrapped.ciphertext)
            .map_err(|_| tampered("ciphertext is not a transit ciphertext string".into()))?;
        let v = ciphertext_version(ct)
            .ok_or_else(|| tampered("ciphertext lacks a `vault:vN:` prefix".into()))?;
        if v != wrapped.kek_version {
            return Err(tampered(format!(
                "record says KEK version {} but the ciphertext is version {v}",
                wrapped.kek_version
            )));
        }
        Ok(ct)
    }

    fn ciphertext_answer(&self, op: &'static str, body: &[u8]) -> Result<(String, u32), KeyError> {
        #[derive(Deserialize)]
        struct Data {
            ciphertext: String,
        }
        let d: Data = self.parse_data(op, body)?;
        let v = ciphertext_version(&d.ciphertext).ok_or_else(|| KeyError::Protocol {
            provider: self.name.clone(),
            operation: op,
            reason: "ciphertext lacks a `vault:vN:` prefix".into(),
        })?;
        Ok((d.ciphertext, v))
    }

    fn tmk_from_plaintext(&self, op: &'static str, b64: &str) -> Result<Tmk, KeyError> {
        let bytes =
            Zeroizing::new(
                STANDARD
                    .decode(b64.trim())
                    .map_err(|_| KeyError::Protocol {
                        provider: self.name.clone(),
                        operation: op,
                        reason: "plaintext is not base64".into(),
                    })?,
            );
        Tmk::try_from_slice(&bytes).map_err(|_| KeyError::Protocol {
            provider: self.name.clone(),
            operation: op,
            reason: format!("plaintext is {} bytes, expected 32", bytes.len()),
        })
    }
}

#[derive(Deserialize)]
struct PlaintextData {
    #[serde(deserialize_with = "de_zeroizing")]
    plaintext: Zeroizing<String>,
}

#[derive(Deserialize)]
struct DatakeyData {
    #[serde(deserialize_with = "de_zeroizing")]
    plaintext: Zeroizing<String>,
    ciphertext: String,
}

fn de_zeroizing<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

#[async_trait]
impl KekProvider for OpenBaoKek {
    fn name(&self) -> &str {
        &self.name
    }

    async fn wrap(&self, key_ref: &str, tmk: &Tmk) -> Result<WrappedTmk, KeyError> {
        check_key_name(key_ref)?;
        let b64 = Zeroizing::new(STANDARD.encode(tmk.expose()));
        let body = Zeroizing::new(
            serde_json::json!({"plaintext": &*b64})
                .to_string()
                .into_bytes(),
        );
        let resp = self
            .transit("wrap", "encrypt", key_ref, &body, false)
            .await?;
        let (ct, v) = self.ciphertext_answer("wrap", &resp)?;
        tracing::debug!(provider = %self.name, key_ref, kek_version = v, "wrapped TMK (transit)");
        Ok(self.record(key_ref, ct, v, tmk))
    }

    async fn generate(&self, key_ref: &str) -> Result<(Tmk, WrappedTmk), KeyError> {
        check_key_name(key_ref)?;
        let body = Zeroizing::new(br#"{"bits":256}"#.to_vec());
        let resp = self
            .transit("generate", "datakey/plaintext", key_ref, &body, false)
            .await?;
        let d: DatakeyData = self.parse_data("generate", &resp)?;
        let tmk = self.tmk_from_plaintext("generate", &d.plaintext)?;
        let v = ciphertext_version(&d.ciphertext).ok_or_else(|| KeyError::Protocol {
            provider: self.name.clone(),
            operation: "generate",
            reason: "ciphertext lacks a `vault:vN:` prefix".into(),
        })?;
        tracing::debug!(provider = %self.name, key_ref, kek_version = v, "generated TMK (transit datakey)");
        let w = self.record(key_ref, d.ciphertext, v, &tmk);
        Ok((tmk, w))
    }

    async fn unwrap(&self, wrapped: &WrappedTmk) -> Result<Tmk, KeyError> {
        let ct = self.ciphertext_of(wrapped)?;
        let body = Zeroizing::new(
            serde_json::json!({"ciphertext": ct})
                .to_string()
                .into_bytes(),
        );
        let resp = self
            .transit("unwrap", "decrypt", &wrapped.key_ref, &body, true)
            .await?;
        let d: PlaintextData = self.parse_data("unwrap", &resp)?;
        let tmk = self.tmk_from_plaintext("unwrap", &d.plaintext)?;
        wrapped.verify(&tmk)?;
        tracing::debug!(
            provider = %self.name,
            key_ref = %wrapped.key_ref,
            kek_version = wrapped.kek_version,
            "unwrapped TMK (transit)"
        );
        Ok(tmk)
    }

    async fn rewrap(&self, wrapped: &WrappedTmk) -> Result<WrappedTmk, KeyError> {
        let ct = self.ciphertext_of(wrapped)?;
        let body = Zeroizing::new(
            serde_json::json!({"ciphertext": ct})
                .to_string()
                .into_bytes(),
        );
        let resp = self
            .transit("rewrap", "rewrap", &wrapped.key_ref, &body, true)
            .await?;
        let (new_ct, v) = self.ciphertext_answer("rewrap", &resp)?;
        if v <= wrapped.kek_version {
            // Already current: keep the stored record unchanged (idempotent).
            return Ok(wrapped.clone());
        }
        tracing::debug!(
            provider = %self.name,
            key_ref = %wrapped.key_ref,
            from = wrapped.kek_version,
            to = v,
            "rewrapped TMK (transit)"
        );
        Ok(WrappedTmk {
            kek_version: v,
            ciphertext: new_ct.into_bytes(),
            ..wrapped.clone()
        })
    }

    async fn describe(&self) -> Result<ProviderInfo, KeyError> {
        // Codes overridden so that every server state answers 200 with JSON.
        let url = format!(
            "{}/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200&drsecondarycode=200",
            self.addr
        );
        let body = match self.send("describe", Method::GET, &url, None).await? {
            Ok(b) => b,
            Err(f) => return Err(self.classify("describe", f, "-", false)),
        };
        #[derive(Deserialize)]
        struct Health {
            initialized: bool,
            sealed: bool,
            #[serde(default)]
            standby: bool,
            #[serde(default)]
            version: String,
        }
        let h: Health = serde_json::from_slice(&body).map_err(|e| KeyError::Protocol {
            provider: self.name.clone(),
            operation: "describe",
            reason: format!("unexpected health answer: {e}"),
        })?;
        let mut details = BTreeMap::new();
        details.insert("server_version".into(), h.version);
        details.insert("initialized".into(), h.initialized.to_string());
        details.insert("sealed".into(), h.sealed.to_string());
        details.insert("standby".into(), h.standby.to_string());
        details.insert("mount".into(), self.mount.clone());
        Ok(ProviderInfo {
            name: self.name.clone(),
            backend: "openbao-transit".into(),
            location: format!("{}/v1/{}", self.addr, self.mount),
            available: h.initialized && !h.sealed,
            current_version: None,
            details,
        })
    }

    async fn current_version(&self, key_ref: &str) -> Result<Option<u32>, KeyError> {
        match self.key_info(key_ref).await {
            Ok(i) => Ok(Some(i.latest_version)),
            // A least-privilege token may not read key metadata: fall back to rewrap.
            Err(KeyError::Denied { .. }) => Ok(None),
            Err(KeyError::NotFound { .. }) => Err(KeyError::Revoked {
                provider: self.name.clone(),
                key_ref: key_ref.into(),
                reason: "transit key does not exist (deleted?)".into(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// `N` from `vault:vN:...`.
pub fn ciphertext_version(ct: &str) -> Option<u32> {
    let rest = ct.strip_prefix("vault:v")?;
    let (n, body) = rest.split_once(':')?;
    if body.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|v| *v >= 1)
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Transit key names go into URL paths: only `[A-Za-z0-9_.-]{1,128}`.
fn check_key_name(key_ref: &str) -> Result<(), KeyError> {
    if valid_segment(key_ref) {
        Ok(())
    } else {
        Err(KeyError::config(format!(
            "transit key name `{}` must be 1..=128 characters of [A-Za-z0-9_.-]",
            key_ref.escape_default()
        )))
    }
}

fn build_client(
    headers: &HeaderMap,
    timeout: Duration,
    roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, KeyError> {
    reqwest::Client::builder()
        .default_headers(headers.clone())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // Never follow redirects: the token header would follow to any host.
        // OpenBao / Vault standbys forward requests to the active node instead.
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(roots.iter().cloned())
        .user_agent(concat!("dooz-keyvault/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| KeyError::config(format!("building HTTP client: {e}")))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `errors` array of a Vault error answer, joined. Only used on non-2xx
/// answers, which never carry key material.
fn vault_errors(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e.errors.join("; ").replace('\n', " "),
        Ok(_) => "(no error message)".into(),
        Err(_) => format!("(non-JSON body of {} bytes)", body.len()),
    }
}

/// An error and its sources, e.g. "error sending request: connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_ciphertext_versions() {
        assert_eq!(ciphertext_version("vault:v1:abc"), Some(1));
        assert_eq!(ciphertext_version("vault:v12:abc"), Some(12));
        for bad in [
            "vault:v0:abc",
            "vault:v1:",
            "vault:vx:abc",
            "vault:v:abc",
            "v1:abc",
            "vault:v+1:a",
        ] {
            assert_eq!(ciphertext_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_names_are_path_safe() {
        for ok in ["tenant-a", "t_1.2", "A"] {
            check_key_name(ok).unwrap();
        }
        for bad in ["", "..", "a/b", "a b", "a%2f", "x?y", &"a".repeat(129)] {
            assert!(check_key_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_debug_hides_token() {
        let cfg = OpenBaoConfig {
            token: "s.supersecret".into(),
            ..OpenBaoConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("supersecret"));
        let p = OpenBaoKek::new(cfg).unwrap();
        assert!(!format!("{p:?}").contains("supersecret"));
    }

    #[test]
    fn rejects_bad_config() {
        let base = OpenBaoConfig {
            token: "t".into(),
            ..OpenBaoConfig::default()
        };
        for cfg in [
            OpenBaoConfig {
                addr: "ftp://x".into(),
                ..base.clone()
            },
            OpenBaoConfig {
                addr: "not a url".into(),
                ..base.clone()
            },
            OpenBaoConfig {
                mount: "../sys".into(),
                ..base.clone()
            },
            OpenBaoConfig {
                token: " ".into(),
                ..base.clone()
            },
            OpenBaoConfig {
                token: "a\nb".into(),
                ..base.clone()
            },
        ] {
            assert!(matches!(OpenBaoKek::new(cfg), Err(KeyError::Config { .. })));
        }
    }
}
