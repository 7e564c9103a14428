//! A real OpenBao in dev mode (in-memory, unsealed, transit enabled) on a
//! free 127.0.0.1 port, as the KMS in gateway tests.

use std::process::Command;
use std::time::Duration;

use crate::process::ChildGuard;
use crate::{KitError, find_tool, free_port, wait_for_port};

pub struct Bao {
    pub port: u16,
    pub token: String,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

impl Bao {
    /// Starts `bao server -dev` and enables the transit engine at `transit/`.
    pub fn start_dev() -> Result<Self, KitError> {
        let bao = find_tool("bao")?;
        let dir = tempfile::Builder::new()
            .prefix("dooz-bao-")
            .tempdir()
            .map_err(KitError::io("creating OpenBao directory"))?;
        // Dev mode also listens on port + 1 for its cluster.
        let port = loop {
            let p = free_port();
            if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let token = format!("dooz-{}", hex::encode(rand::random::<[u8; 12]>()));
        let mut cmd = Command::new(bao);
        cmd.arg("server")
            .arg("-dev")
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={token}"))
            .arg("-dev-no-store-token")
            .env("HOME", dir.path());
        let child = ChildGuard::spawn("OpenBao", cmd, &dir.path().join("bao.log"))?;
        let bao = Self {
            port,
            token,
            dir,
            child: Some(child),
        };
        if !wait_for_port(port, Duration::from_secs(30)) {
            return Err(KitError::StartTimeout {
                what: "OpenBao".into(),
                secs: 30,
                log: bao.log_tail(),
            });
        }
        bao.api("POST", "sys/mounts/transit", r#"{"type":"transit"}"#)?;
        Ok(bao)
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        crate::process::log_tail(&self.dir.path().join("bao.log"), 30)
    }

    /// One authenticated API call with curl; the body of the answer.
    pub fn api(&self, method: &str, path: &str, body: &str) -> Result<String, KitError> {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "-X", method])
            .args(["-H", &format!("X-Vault-Token: {}", self.token)])
            .args(["-H", "Content-Type: application/json"])
            .args(["--data", body])
            .arg(format!("{}/v1/{path}", self.addr()))
            .output()
            .map_err(KitError::io("running curl"))?;
        if !out.status.success() {
            return Err(KitError::Io {
                what: format!("OpenBao {method} {path}"),
                source: std::io::Error::other(String::from_utf8_lossy(&out.stdout).into_owned()),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a transit key (aes256-gcm96).
    pub fn create_key(&self, name: &str) -> Result<(), KitError> {
        self.api("POST", &format!("transit/keys/{name}"), "{}")
            .map(|_| ())
    }

    /// Simulates a KMS outage.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }
}
