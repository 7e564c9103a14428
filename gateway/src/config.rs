//! Configuration: built-in defaults, then a TOML file, then `DOOZ_*`
//! environment variables, then command-line flags — each overriding the last.
//!
//! Every key of the file can be set from the environment: nested keys join
//! with a double underscore, e.g. `chunking.avg_size` is `DOOZ_CHUNKING__AVG_SIZE`
//! and `backends.main.endpoint` is `DOOZ_BACKENDS__MAIN__ENDPOINT`. Values are
//! read as TOML when they parse (numbers, booleans, arrays) and as strings
//! otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::BackendConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded metadata, the local packs and the root key live.
    pub data_dir: PathBuf,
    /// S3 endpoint address.
    pub listen: SocketAddr,
    /// Admin endpoint: /metrics, /health/live, /health/ready.
    pub admin_listen: SocketAddr,
    /// Metadata store: empty for SQLite in the data dir, `sqlite://PATH`,
    /// or `postgres://user@host/db` (TLS with `sslmode=require`,
    /// `verify-ca` or `verify-full`, and `sslrootcert=FILE`). May carry a
    /// password: `dooz config` and `Debug` redact it.
    pub meta: String,
    /// Region reported to clients and expected in signatures.
    pub region: String,
    /// Base domains for virtual-hosted-style requests (`bucket.DOMAIN`).
    pub domains: Vec<String>,
    /// Backend new buckets write to.
    pub default_backend: String,
    /// Named backends; when empty, `local` = `<data_dir>/packs`.
    pub backends: BTreeMap<String, BackendConfig>,
    pub chunking: ChunkingConfig,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub kms: KmsConfig,
    pub log: LogConfig,
    /// Space reclamation: garbage collection, compaction, orphan sweep.
    pub gc: crate::jobs::GcConfig,
    /// The audit log (`[audit]`).
    pub audit: crate::audit::AuditConfig,
    /// Lifecycle rules' background worker (`[lifecycle]`).
    pub lifecycle: crate::jobs::LifecycleConfig,
    /// Access defaults (`[access]`): Block Public Access.
    pub access: crate::policy::AccessConfig,
    /// Request-rate and bandwidth limits (`[limits]`).
    pub limits: crate::throttle::LimitsConfig,
}

/// A secret from the configuration (a token, a key, a password): zeroized
/// when dropped; `Debug` and serialization (`dooz config`) show
/// `<redacted>`, so it can be read only through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Secret(Zeroizing<String>);

const REDACTED: &str = "<redacted>";

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(Zeroizing::new(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() { "\"\"" } else { REDACTED })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_empty() { "" } else { REDACTED })
    }
}

/// The connection limits that keep slow or hostile clients from holding the
/// gateway, and TLS. `[server]` in the config file; both endpoints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// A request's headers must arrive within this many seconds. On
    /// HTTP/1.1 this clock also runs while a kept-alive connection waits for
    /// its next request (hyper starts it when it starts reading a request).
    pub header_read_timeout_secs: u64,
    /// A connection with no request in progress and no bytes moving for this
    /// long is closed (HTTP/1.1 and HTTP/2).
    pub idle_timeout_secs: u64,
    /// A request body that delivers nothing for this long fails the request
    /// (400 RequestTimeout) and gives back the memory it held.
    pub body_stall_timeout_secs: u64,
    /// A response the client does not read for this long closes the
    /// connection and gives back the memory it held.
    pub send_stall_timeout_secs: u64,
    /// Connections open at once, per endpoint; more wait in the listen
    /// backlog. Keep it below the process's file descriptor limit.
    pub max_connections: usize,
    /// How long a request waits for data-path memory
    /// (`chunking.memory_budget`) before it is refused with 503 SlowDown.
    pub memory_wait_secs: u64,
    /// PEM certificate chain and private key: both endpoints then speak
    /// HTTPS only. Re-read on SIGHUP; open connections keep their session.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            body_stall_timeout_secs: 30,
            send_stall_timeout_secs: 60,
            max_connections: 1024,
            memory_wait_secs: 60,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// Who may use the admin endpoint. `/metrics` and `/health/*` are open on a
/// loopback address; everything else, and everything on any other address,
/// needs `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token; prefer `token_file` or DOOZ_ADMIN__TOKEN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// A file holding the token (surrounding whitespace ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Paths answered without the token on any address: some of
    /// `/health/live`, `/health/ready`, `/metrics` (Kubernetes probes cannot
    /// send a token). On a loopback address all three are open anyway.
    pub open_paths: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Content-defined chunk sizes in bytes (even numbers, min < avg < max).
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// zstd level; 0 turns compression off.
    pub compression_level: i32,
    /// A pack is shipped once it holds this many bytes.
    pub pack_target_size: usize,
    /// Packs one upload may have in flight to the backend at once.
    pub packs_in_flight: usize,
    /// Bytes the whole data path may hold at once: uploads' pack buffers,
    /// chunking, lookup and sealing batches, GET read-ahead and decrypted
    /// buffers, buffered XML bodies. A request reserves what it needs to
    /// make progress before it starts and waits (back-pressure) while that
    /// is not free; extra parallelism (more packs in flight, read-ahead) is
    /// taken only when free. See docs/SECURITY.md, "Memory". Configs
    /// written for 0.1 call it `upload_memory_budget`; that name still works.
    #[serde(alias = "upload_memory_budget")]
    pub memory_budget: usize,
    /// Ranged pack reads one GET keeps in flight ahead of the client, when
    /// the memory budget has room for them.
    pub read_ahead: usize,
    /// CompleteMultipartUpload re-chunks the bytes around part boundaries
    /// so a multipart object gets the chunks one PutObject of the same
    /// bytes would, and dedups against it (costs two to three average
    /// chunks re-read and re-sealed per part; see docs/OPERATIONS.md).
    pub heal_boundaries: bool,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
            compression_level: dooz_chunker::CompressionPolicy::DEFAULT_LEVEL,
            pack_target_size: 16 * 1024 * 1024,
            packs_in_flight: 2,
            memory_budget: 256 * 1024 * 1024,
            read_ahead: 4,
            heal_boundaries: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KmsConfig {
    /// KEK provider new tenants use: "local" or "openbao".
    pub default_provider: String,
    /// The local root key; default `<data_dir>/root.key` (created 0600 on
    /// first start). `DOOZ_ROOT_KEY` (64 hex characters) takes precedence.
    pub root_key_file: Option<PathBuf>,
    /// OpenBao / Vault transit.
    pub openbao: Option<OpenBaoSection>,
    /// How long unwrapped tenant keys stay cached, in seconds.
    pub cache_ttl_secs: u64,
    /// Cipher for new tenants: "aes-256-gcm-siv" or "chacha20-poly1305".
    pub default_cipher: String,
}

impl Default for KmsConfig {
    fn default() -> Self {
        Self {
            default_provider: "local".into(),
            root_key_file: None,
            openbao: None,
            cache_ttl_secs: 300,
            default_cipher: "aes-256-gcm-siv".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoSection {
    /// e.g. "https://bao.example:8200"
    pub addr: String,
    /// Token; prefer `token_file` or the VAULT_TOKEN / BAO_TOKEN environment.
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_transit_mount")]
    pub mount: String,
    /// Transit key new tenants are wrapped with (BYOK tenants name their own).
    pub key: String,
}

fn default_transit_mount() -> String {
    "transit".into()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// "text" or "json".
    pub format: String,
    /// A tracing filter, e.g. "info" or "dooz_gateway=debug,info". RUST_LOG wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./dooz-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            meta: String::new(),
            region: "us-east-1".into(),
            domains: Vec::new(),
            default_backend: "local".into(),
            backends: BTreeMap::new(),
            chunking: ChunkingConfig::default(),
            server: ServerConfig::default(),
            admin: AdminConfig::default(),
            kms: KmsConfig::default(),
            log: LogConfig::default(),
            gc: crate::jobs::GcConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            lifecycle: crate::jobs::LifecycleConfig::default(),
            access: crate::policy::AccessConfig::default(),
            limits: crate::throttle::LimitsConfig::default(),
        }
    }
}

const ENV_PREFIX: &str = "DOOZ_";

impl Config {
    /// Defaults ← file (if any) ← environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let file_path = file.map(Path::to_path_buf).unwrap_or_default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let from_file: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            merge(&mut value, toml::Value::Table(from_file));
        }
        let known: Vec<String> = match &value {
            toml::Value::Table(t) => t.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (var, raw) in overrides {
            let path: Vec<String> = var[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            // Variables that are not config keys (DOOZ_ROOT_SECRET_KEY, test
            // settings, ...) belong to someone else.
            if path.first().is_none_or(|top| !known.contains(top)) {
                continue;
            }
            set_path(&mut value, &path, parse_env_value(&raw)).map_err(|message| {
                ConfigError::Env {
                    var: var.clone(),
                    message,
                }
            })?;
        }
        let cfg: Config = value.try_into().map_err(|e: toml::de::Error| {
            if file.is_some() {
                ConfigError::Parse {
                    path: file_path.clone(),
                    message: e.to_string(),
                }
            } else {
                ConfigError::Invalid(e.to_string())
            }
        })?;
        Ok(cfg)
    }

    /// Fills what derives from the data dir and checks the whole.
    pub fn finish(mut self) -> Result<Self, ConfigError> {
        if self.backends.is_empty() {
            self.backends.insert(
                "local".into(),
                BackendConfig::Local {
                    path: self.data_dir.join("packs"),
                },
            );
        }
        if !self.backends.contains_key(&self.default_backend) {
            return Err(ConfigError::Invalid(format!(
                "default_backend = {:?} names no configured backend (have: {})",
                self.default_backend,
                self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if self.meta.is_empty() {
            self.meta = format!("sqlite://{}", self.data_dir.join("meta.db").display());
        }
        if self.kms.root_key_file.is_none() {
            self.kms.root_key_file = Some(self.data_dir.join("root.key"));
        }
        let c = &self.chunking;
        if c.packs_in_flight == 0 || c.read_ahead == 0 {
            return Err(ConfigError::Invalid(
                "chunking.packs_in_flight and chunking.read_ahead must be at least 1".into(),
            ));
        }
        if c.memory_budget < c.pack_target_size {
            return Err(ConfigError::Invalid(
                "chunking.memory_budget must hold at least one pack".into(),
            ));
        }
        let s = &self.server;
        if s.max_connections == 0
            || s.header_read_timeout_secs == 0
            || s.idle_timeout_secs == 0
            || s.body_stall_timeout_secs == 0
            || s.send_stall_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "server.max_connections and the server timeouts must be at least 1".into(),
            ));
        }
        if s.tls_cert_file.is_some() != s.tls_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "server.tls_cert_file and server.tls_key_file go together".into(),
            ));
        }
        self.gc.validate().map_err(ConfigError::Invalid)?;
        self.limits.validate().map_err(ConfigError::Invalid)?;
        if let Some(name) = self
            .limits
            .backends
            .keys()
            .find(|n| !self.backends.contains_key(*n))
        {
            return Err(ConfigError::Invalid(format!(
                "limits.backends.{name} names no configured backend (have: {})",
                self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        self.lifecycle.validate().map_err(ConfigError::Invalid)?;
        Ok(self)
    }

    /// A copy that is safe to print: secrets are redacted by their type, the
    /// metadata URL's password here.
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        shown.meta = crate::meta::conninfo::redact_password(&self.meta);
        shown
    }
}

/// `Debug` prints the redacted configuration, so a stray `{cfg:?}` cannot
/// leak a password.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match toml::to_string(&self.redacted()) {
            Ok(t) => write!(f, "Config {{\n{t}}}"),
            Err(_) => f.write_str("Config { <unprintable> }"),
        }
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    // `x = <raw>` parses numbers, booleans, arrays and quoted strings.
    match toml::from_str::<toml::Table>(&format!("x = {raw}")) {
        Ok(mut t) => t
            .remove("x")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn set_path(root: &mut toml::Value, path: &[String], v: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut cur = root;
    for p in parents {
        let table = cur
            .as_table_mut()
            .ok_or_else(|| format!("{p} is not a table"))?;
        cur = table
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    let table = cur
        .as_table_mut()
        .ok_or_else(|| format!("parent of {last} is not a table"))?;
    // Keep strings strings where the default is a string ("0123" stays text).
    let v = match (table.get(last.as_str()), v) {
        (Some(toml::Value::String(_)), other) if !other.is_str() => {
            toml::Value::String(other.to_string().trim_matches('"').to_owned())
        }
        (_, other) => other,
    };
    table.insert(last.clone(), v);
    Ok(())
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dooz.toml");
        std::fs::write(
            &file,
            r#"
listen = "127.0.0.1:7000"
default_backend = "sw"
[chunking]
avg_size = 2097152
[backends.sw]
type = "s3"
endpoint = "http://127.0.0.1:8333"
bucket = "packs"
"#,
        )
        .unwrap();
        let cfg = Config::load_from(
            Some(&file),
            env(&[
                ("DOOZ_LISTEN", "127.0.0.1:7100"),
                ("DOOZ_CHUNKING__COMPRESSION_LEVEL", "1"),
                ("DOOZ_BACKENDS__SW__PREFIX", "dooz/"),
                ("DOOZ_ROOT_SECRET_KEY", "not a config key"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap()
        .finish()
        .unwrap();
        assert_eq!(cfg.listen.port(), 7100);
        assert_eq!(cfg.chunking.avg_size, 2 * 1024 * 1024);
        assert_eq!(cfg.chunking.compression_level, 1);
        assert_eq!(cfg.chunking.min_size, 256 * 1024);
        match &cfg.backends["sw"] {
            BackendConfig::S3(s3) => {
                assert_eq!(s3.prefix, "dooz/");
                assert_eq!(s3.bucket, "packs");
            }
            other => panic!("{other:?}"),
        }
        assert!(cfg.meta.starts_with("sqlite://"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dooz.toml");
        std::fs::write(&file, "listn = \"x\"\n").unwrap();
        let err = Config::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");

        let err = Config::load_from(None, env(&[("DOOZ_LISTEN", "not-an-address")])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");

        let err = Config::load_from(None, env(&[("DOOZ_DEFAULT_BACKEND", "nope")]))
            .unwrap()
            .finish()
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    /// The documented example must stay a valid configuration.
    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dooz.example.toml");
        let cfg = Config::load_from(Some(&path), env(&[]))
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(cfg.backends.len(), 2);
        assert_eq!(cfg.kms.openbao.as_ref().unwrap().key, "dooz");
        assert_eq!(cfg.chunking, ChunkingConfig::default());
        assert_eq!(cfg.gc, crate::jobs::GcConfig::default());
    }

    #[test]
    fn data_dir_derives_defaults() {
        let cfg = Config::load_from(None, env(&[("DOOZ_DATA_DIR", "/srv/dooz")]))
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(cfg.meta, "sqlite:///srv/dooz/meta.db");
        assert_eq!(
            cfg.kms.root_key_file.as_deref(),
            Some(Path::new("/srv/dooz/root.key"))
        );
        assert_eq!(
            cfg.backends["local"],
            BackendConfig::Local {
                path: "/srv/dooz/packs".into()
            }
        );
    }
}
