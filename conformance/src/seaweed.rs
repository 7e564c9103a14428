//! A real SeaweedFS (master, volume, filer and S3 gateway in one process) on
//! free 127.0.0.1 ports, used as the S3 backend in tests and benchmarks.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{ChildGuard, log_tail};
use crate::{KitError, find_tool, free_port};

pub struct Seaweed {
    pub s3_port: u16,
    /// The S3 API over HTTPS as well, when started with a certificate.
    pub https_port: Option<u16>,
    tls: Option<(PathBuf, PathBuf)>,
    pub access_key: String,
    pub secret_key: String,
    ports: Ports,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

#[derive(Clone, Copy)]
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
}

impl Seaweed {
    /// Starts SeaweedFS and waits until its S3 API answers.
    pub fn start() -> Result<Self, KitError> {
        Self::start_inner(None)
    }

    /// Also serves its S3 API over HTTPS with this PEM certificate and key.
    pub fn start_with_tls(cert: PathBuf, key: PathBuf) -> Result<Self, KitError> {
        Self::start_inner(Some((cert, key)))
    }

    fn start_inner(tls: Option<(PathBuf, PathBuf)>) -> Result<Self, KitError> {
        let dir = tempfile::Builder::new()
            .prefix("dooz-seaweed-")
            .tempdir()
            .map_err(KitError::io("creating SeaweedFS directory"))?;
        let access_key = format!("sw{}", hex::encode(rand::random::<[u8; 6]>()));
        let secret_key = hex::encode(rand::random::<[u8; 16]>());
        let identities = format!(
            r#"{{"identities":[{{"name":"dooz","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(dir.path().join("s3.json"), identities)
            .map_err(KitError::io("writing SeaweedFS identities"))?;
        let ports = Ports {
            master: free_port(),
            volume: free_port(),
            filer: free_port(),
            s3: free_port(),
        };
        let mut sw = Self {
            s3_port: ports.s3,
            https_port: tls.as_ref().map(|_| free_port()),
            tls,
            access_key,
            secret_key,
            ports,
            dir,
            child: None,
        };
        sw.launch()?;
        Ok(sw)
    }

    fn launch(&mut self) -> Result<(), KitError> {
        let weed = find_tool("weed")?;
        let p = self.ports;
        let d = self.dir.path();
        let mut cmd = Command::new(weed);
        cmd.arg("server")
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-dir={}", d.display()))
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master + 10000))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume + 10000))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer + 10000))
            .arg("-s3")
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3 + 10000))
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .arg("-master.volumeSizeLimitMB=256")
            .arg("-volume.max=0")
            .arg("-debug.port=0")
            .arg("-metricsPort=0");
        if let (Some((cert, key)), Some(port)) = (&self.tls, self.https_port) {
            cmd.arg(format!("-s3.cert.file={}", cert.display()))
                .arg(format!("-s3.key.file={}", key.display()))
                .arg(format!("-s3.port.https={port}"));
        }
        let child = ChildGuard::spawn("SeaweedFS", cmd, &self.log_path())?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    /// The S3 API is up once an unauthenticated request gets an HTTP answer
    /// and the filer accepts writes; a bucket creation proves both.
    fn wait_ready(&self, timeout: Duration) -> Result<(), KitError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if crate::wait_for_port(self.s3_port, Duration::from_millis(200))
                && crate::wait_for_port(self.ports.filer, Duration::from_millis(200))
                && self.filer_ready()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(KitError::StartTimeout {
            what: "SeaweedFS".into(),
            secs: timeout.as_secs(),
            log: log_tail(&self.log_path(), 30),
        })
    }

    fn filer_ready(&self) -> bool {
        // A volume must be assignable before the first PUT succeeds.
        let url = format!("127.0.0.1:{}", self.ports.master);
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{url}/dir/assign"))
            .output();
        matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout) == "200")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// `https://127.0.0.1:PORT` when started with a certificate.
    pub fn https_endpoint(&self) -> Option<String> {
        self.https_port.map(|p| format!("https://127.0.0.1:{p}"))
    }

    /// Bytes SeaweedFS holds on disk (volumes included), for dedup checks.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Simulates an outage: the whole server dies.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Brings the same server (same data, same ports) back after `stop`.
    pub fn restart(&mut self) -> Result<(), KitError> {
        self.stop();
        self.launch()
    }
}
