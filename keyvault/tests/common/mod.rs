//! Test harness: real OpenBao servers started and stopped by the tests, and
//! tracing capture.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dooz_keyvault::{OpenBaoConfig, OpenBaoKek, RetryPolicy};

/// The `bao` binary: `$DOOZ_BAO_BIN`, else `bao` on `PATH`. Panics (never skips)
/// when it is missing.
pub fn bao_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DOOZ_BAO_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "DOOZ_BAO_BIN={} is not a file", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let c = dir.join("bao");
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "OpenBao CLI `bao` not found on PATH and DOOZ_BAO_BIN is not set. \
         Install it with scripts/install-test-deps (puts it in ~/.cache/dooz/venv/bin) \
         and run: PATH=$HOME/.cache/dooz/venv/bin:$PATH cargo nextest run -p dooz-keyvault"
    );
}

/// A free TCP port `p` on 127.0.0.1 such that `p + 1` is free too (OpenBao
/// puts its cluster listener there).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair");
}

fn random_hex(n: usize) -> String {
    let b: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex::encode(b)
}

enum Mode {
    /// `bao server -dev`: in-memory, unsealed, root token chosen by us;
    /// with `tls`, `-dev-tls` (HTTPS with a generated CA).
    Dev { tls: bool },
    /// Raft storage in `dir`, initialized with one unseal key; survives restarts.
    Persistent { config: PathBuf },
}

/// A running OpenBao server, killed on drop (also when a test panics).
pub struct BaoServer {
    child: Option<Child>,
    mode: Mode,
    pub addr: String,
    pub port: u16,
    pub token: String,
    unseal_key: Option<String>,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl BaoServer {
    /// A dev-mode server with the transit engine mounted at `transit`.
    pub async fn dev() -> Self {
        Self::dev_mode(false).await
    }

    /// A dev-mode server over HTTPS (`-dev-tls`); see [`BaoServer::ca_pem`].
    pub async fn dev_tls() -> Self {
        Self::dev_mode(true).await
    }

    async fn dev_mode(tls: bool) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port_pair();
            let mut s = Self::blank(Mode::Dev { tls }, port);
            s.spawn();
            match s.wait_listening(Duration::from_secs(20)).await {
                Ok(()) => {
                    s.wait_health_ok().await;
                    s.enable_transit().await;
                    return s;
                }
                Err(e) => last = e, // port race with a parallel test: try another
            }
        }
        panic!("dev OpenBao did not start: {last}");
    }

    /// A server with raft storage, initialized and unsealed, transit mounted.
    /// `stop` + `start` + `unseal` brings back the same keys on the same port.
    pub async fn persistent() -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port_pair();
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("raft");
            std::fs::create_dir_all(&data).unwrap();
            let config = dir.path().join("bao.hcl");
            std::fs::write(
                &config,
                format!(
                    r#"storage "raft" {{
  path = "{data}"
  node_id = "dooz-test"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cport}"
"#,
                    data = data.display(),
                    cport = port + 1
                ),
            )
            .unwrap();
            let mut s = Self::blank_in(Mode::Persistent { config }, port, dir);
            s.spawn();
            match s.wait_listening(Duration::from_secs(20)).await {
                Ok(()) => {
                    s.init().await;
                    s.unseal().await;
                    s.enable_transit().await;
                    return s;
                }
                Err(e) => last = e,
            }
        }
        panic!("persistent OpenBao did not start: {last}");
    }

    fn blank(mode: Mode, port: u16) -> Self {
        Self::blank_in(mode, port, tempfile::tempdir().unwrap())
    }

    fn blank_in(mode: Mode, port: u16, dir: tempfile::TempDir) -> Self {
        let log = dir.path().join("bao.log");
        let scheme = if matches!(mode, Mode::Dev { tls: true }) {
            "https"
        } else {
            "http"
        };
        BaoServer {
            child: None,
            mode,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            port,
            token: format!("dooz-test-{}", random_hex(12)),
            unseal_key: None,
            dir,
            log,
        }
    }

    fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The CA certificate of a `dev_tls` server.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.certs_dir().join("vault-ca.pem")).unwrap()
    }

    /// A client for the harness's own calls (trusts the dev CA once it exists).
    fn http(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Ok(pem) = std::fs::read(self.certs_dir().join("vault-ca.pem")) {
            b = b.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
        }
        b.build().unwrap()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new(bao_bin());
        cmd.arg("server");
        match &self.mode {
            Mode::Dev { tls } => {
                if *tls {
                    std::fs::create_dir_all(self.certs_dir()).unwrap();
                    cmd.arg("-dev-tls")
                        .arg(format!("-dev-tls-cert-dir={}", self.certs_dir().display()));
                }
                cmd.arg("-dev")
                    .arg(format!("-dev-listen-address=127.0.0.1:{}", self.port))
                    .arg(format!("-dev-root-token-id={}", self.token))
                    .arg("-dev-no-store-token");
            }
            Mode::Persistent { config } => {
                cmd.arg(format!("-config={}", config.display()));
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.env("HOME", self.dir.path())
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawning bao server"));
    }

    /// Kills the server (SIGKILL) and waits for it: an abrupt KMS outage.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the persistent server again on the same port (it comes up sealed).
    pub async fn start(&mut self) {
        assert!(
            matches!(self.mode, Mode::Persistent { .. }),
            "dev mode loses its state"
        );
        self.spawn();
        self.wait_listening(Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("restart failed: {e}"));
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until the HTTP listener answers anything, or the process exits.
    async fn wait_listening(&mut self, limit: Duration) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "bao exited with {status}; log:\n{}",
                    self.log_text()
                ));
            }
            if self
                .http()
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if t0.elapsed() > limit {
                self.stop();
                return Err(format!(
                    "bao did not listen within {limit:?}; log:\n{}",
                    self.log_text()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for `sys/health` to answer 200 (initialized, unsealed, active).
    async fn wait_health_ok(&self) {
        let t0 = Instant::now();
        loop {
            if let Ok(r) = self
                .http()
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "bao not healthy; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn init(&mut self) {
        let r: serde_json::Value = self
            .http()
            .post(format!("{}/v1/sys/init", self.addr))
            .json(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        self.unseal_key = Some(r["keys_base64"][0].as_str().unwrap().to_string());
        self.token = r["root_token"].as_str().unwrap().to_string();
    }

    /// Unseals with the key from `init` and waits until healthy.
    pub async fn unseal(&self) {
        let key = self.unseal_key.as_ref().expect("not a persistent server");
        let r = self
            .http()
            .post(format!("{}/v1/sys/unseal", self.addr))
            .json(&serde_json::json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "unseal: {}", r.status());
        self.wait_health_ok().await;
    }

    /// A root-token API call that must succeed; returns the JSON answer (or null).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = self
            .http()
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    async fn enable_transit(&self) {
        // Right after unsealing, a raft node may still be settling: retry briefly.
        let t0 = Instant::now();
        loop {
            let r = self
                .http()
                .post(format!("{}/v1/sys/mounts/transit", self.addr))
                .header("X-Vault-Token", &self.token)
                .json(&serde_json::json!({"type": "transit"}))
                .send()
                .await;
            if let Ok(r) = r
                && r.status().is_success()
            {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "enabling transit failed; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn config(&self) -> OpenBaoConfig {
        OpenBaoConfig {
            addr: self.addr.clone(),
            token: self.token.clone(),
            mount: "transit".into(),
            timeout: Duration::from_secs(5),
            retries: 2,
        }
    }

    /// A provider with short backoffs (tests stay fast; bounds stay checkable).
    pub fn provider(&self) -> OpenBaoKek {
        OpenBaoKek::new(self.config())
            .unwrap()
            .with_retry_policy(fast_retry())
    }
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 2,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

/// Captures everything logged through `tracing` in this test process.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The process-wide capture, installed as the global default subscriber at
    /// TRACE level on first use. (A thread-local `set_default` can miss events
    /// when tests run as threads of one process: callsite interest is cached
    /// globally.) Under cargo test it also holds other tests' logs, which only
    /// makes a scan for leaked secrets stricter.
    pub fn global() -> &'static LogCapture {
        static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(capture.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in tests");
            capture
        })
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
