//! The phases of `dooz bench`, each run against every endpoint in turn.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::data::{self, Kind};
use super::report::{Better, Figures};
use super::{BenchArgs, BenchError, split_pair};

const BUCKET: &str = "dooz-bench";
const MIB: f64 = 1024.0 * 1024.0;

struct Endpoint {
    name: String,
    client: Client,
    baseline: bool,
    admin: Option<String>,
    pid: Option<u32>,
}

pub(super) struct Plan {
    endpoints: Vec<Endpoint>,
    args: BenchArgs,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn client(url: &str, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "dooz-bench"))
        // The same work for every endpoint: no client-side CRCs, payloads
        // sent unsigned (see `put_file`), so the client is never the bottleneck.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// The whole source chain: the SDK's top-level message alone ("streaming
/// error", "dispatch failure") does not say what went wrong.
fn s3_err(ep: &str, step: &str, e: impl std::error::Error) -> BenchError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    BenchError::S3 {
        endpoint: ep.to_owned(),
        step: step.to_owned(),
        message,
    }
}

impl Plan {
    pub(super) fn from_args(args: &BenchArgs) -> Result<Self, BenchError> {
        let lookup = |list: &[String], name: &str| -> Result<Option<String>, BenchError> {
            for s in list {
                let (k, v) = split_pair(s)?;
                if k == name {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        };
        let mut endpoints = Vec::new();
        let all = args
            .targets
            .iter()
            .map(|t| (t, false))
            .chain(args.baselines.iter().map(|b| (b, true)));
        for (spec, baseline) in all {
            let (name, url) = split_pair(spec)?;
            let env = env_name(&name);
            let key = |suffix: &str| std::env::var(format!("BENCH_{env}_{suffix}")).ok();
            let (Some(access), Some(secret)) = (key("ACCESS_KEY"), key("SECRET_KEY")) else {
                return Err(BenchError::Credentials(name, env));
            };
            let pid = match lookup(&args.pids, &name)? {
                Some(p) => Some(p.parse().map_err(|_| BenchError::Arg(p))?),
                None => None,
            };
            endpoints.push(Endpoint {
                client: client(&url, &access, &secret),
                admin: lookup(&args.admins, &name)?,
                pid,
                name,
                baseline,
            });
        }
        let (dir, tmp) = match &args.work_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("dooz-bench-")
                    .tempdir()
                    .map_err(io("creating a work directory"))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        Ok(Self {
            endpoints,
            args: args.clone(),
            dir,
            _tmp: tmp,
        })
    }

    fn large_bytes(&self) -> u64 {
        self.args.large_mib << 20
    }

    fn prepare_inputs(&self) -> Result<(), BenchError> {
        let size = self.large_bytes();
        let want = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.len() != size)
                .unwrap_or(true)
        };
        for (name, kind, seed) in [
            ("random.bin", Kind::Random, self.args.seed),
            ("text.bin", Kind::Text, self.args.seed + 1),
        ] {
            let p = self.dir.join(name);
            if want(&p) {
                eprintln!("bench: generating {} ({} MiB)", p.display(), size >> 20);
                data::write_file(&p, kind, size, seed).map_err(io(format!("writing {name}")))?;
            }
        }
        data::write_edited_copy(
            &self.dir.join("random.bin"),
            &self.dir.join("edited.bin"),
            self.args.delta_kib << 10,
            self.args.seed + 2,
        )
        .map_err(io("writing edited.bin"))?;
        for i in 0..self.args.mixed_clients / 2 {
            let p = self.dir.join(format!("mixed-{i}.bin"));
            let size = self.args.mixed_mib << 20;
            if std::fs::metadata(&p)
                .map(|m| m.len() != size)
                .unwrap_or(true)
            {
                eprintln!("bench: generating {}", p.display());
                data::write_file(&p, Kind::Random, size, self.args.seed + 1000 + i as u64)
                    .map_err(io("writing mixed inputs"))?;
            }
        }
        for i in 0..self.args.parallel_puts {
            let p = self.dir.join(format!("parallel-{i}.bin"));
            if want(&p) {
                eprintln!("bench: generating {}", p.display());
                data::write_file(&p, Kind::Random, size, self.args.seed + 100 + i as u64)
                    .map_err(io("writing parallel inputs"))?;
            }
        }
        Ok(())
    }

    pub(super) async fn run(self) -> Result<Figures, BenchError> {
        self.prepare_inputs()?;
        let mut fig = Figures::new(
            self.endpoints
                .iter()
                .map(|e| (e.name.clone(), e.baseline))
                .collect(),
        );
        for ep in &self.endpoints {
            ensure_bucket(ep).await?;
        }
        if self.args.only_mixed {
            let file = self.dir.join("random.bin");
            for ep in self.endpoints.iter().filter(|e| !e.baseline) {
                eprintln!("bench: {}: PUT large-random", ep.name);
                put_file(ep, "large-random", &file).await?;
                self.mixed(ep, &mut fig).await?;
            }
            self.record_rss(&mut fig);
            return Ok(fig);
        }
        for kind in [Kind::Random, Kind::Text] {
            let file = self.dir.join(format!("{}.bin", kind.label()));
            let crc = file_crc(&file)?;
            let key = format!("large-{}", kind.label());
            for ep in &self.endpoints {
                eprintln!("bench: {}: PUT {key}", ep.name);
                let secs = put_file(ep, &key, &file).await?;
                fig.set(
                    &format!("large PUT {} (MB/s)", kind.label()),
                    &ep.name,
                    self.large_bytes() as f64 / MIB / secs,
                    Better::Higher,
                );
            }
            for ep in &self.endpoints {
                eprintln!("bench: {}: GET {key}", ep.name);
                let (secs, got) = get_crc(ep, &key).await?;
                if got != crc {
                    return Err(BenchError::Mismatch {
                        endpoint: ep.name.clone(),
                        step: format!("GET {key}"),
                    });
                }
                fig.set(
                    &format!("large GET {} (MB/s)", kind.label()),
                    &ep.name,
                    self.large_bytes() as f64 / MIB / secs,
                    Better::Higher,
                );
            }
        }
        for ep in &self.endpoints {
            eprintln!("bench: {}: small PUT x{}", ep.name, self.args.small_count);
            let lat = self.small(ep, true).await?;
            lat.record(&mut fig, "small PUT", &ep.name);
        }
        for ep in &self.endpoints {
            eprintln!("bench: {}: small GET x{}", ep.name, self.args.small_count);
            let lat = self.small(ep, false).await?;
            lat.record(&mut fig, "small GET", &ep.name);
        }
        for ep in &self.endpoints {
            let Some(admin) = &ep.admin else { continue };
            eprintln!("bench: {}: delta re-upload", ep.name);
            let before = backend_written(admin).await?;
            put_file(ep, "large-random-edited", &self.dir.join("edited.bin")).await?;
            let after = backend_written(admin).await?;
            fig.set(
                "delta re-upload: backend bytes written (MiB)",
                &ep.name,
                (after - before) / MIB,
                Better::Lower,
            );
        }
        if self.args.parallel_puts > 0 {
            // Targets only: this phase exists for their memory figure.
            for ep in self.endpoints.iter().filter(|e| !e.baseline) {
                eprintln!(
                    "bench: {}: {} large PUTs at once",
                    ep.name, self.args.parallel_puts
                );
                let started = Instant::now();
                let mut puts = FuturesUnordered::new();
                for i in 0..self.args.parallel_puts {
                    let path = self.dir.join(format!("parallel-{i}.bin"));
                    puts.push(async move { put_file(ep, &format!("parallel-{i}"), &path).await });
                }
                while let Some(r) = puts.next().await {
                    r?;
                }
                let total = self.large_bytes() as f64 * self.args.parallel_puts as f64;
                fig.set(
                    &format!("{} parallel large PUTs (MB/s)", self.args.parallel_puts),
                    &ep.name,
                    total / MIB / started.elapsed().as_secs_f64(),
                    Better::Higher,
                );
            }
        }
        if self.args.mixed_clients > 0 {
            for ep in self.endpoints.iter().filter(|e| !e.baseline) {
                self.mixed(ep, &mut fig).await?;
            }
        }
        self.record_rss(&mut fig);
        Ok(fig)
    }

    fn record_rss(&self, fig: &mut Figures) {
        for ep in &self.endpoints {
            if let Some(kib) = ep.pid.and_then(peak_rss_kib) {
                fig.set(
                    "server peak RSS (MiB)",
                    &ep.name,
                    kib as f64 / 1024.0,
                    Better::Lower,
                );
            }
        }
    }

    /// `mixed_clients` at once: half PUT distinct random objects, half GET
    /// the large random object (checked against its CRC).
    async fn mixed(&self, ep: &Endpoint, fig: &mut Figures) -> Result<(), BenchError> {
        let n = self.args.mixed_clients;
        eprintln!("bench: {}: {n} mixed PUT/GET clients at once", ep.name);
        let crc = file_crc(&self.dir.join("random.bin"))?;
        let started = Instant::now();
        let mut clients = FuturesUnordered::new();
        for i in 0..n {
            let dir = &self.dir;
            clients.push(async move {
                if i % 2 == 0 {
                    let path = dir.join(format!("mixed-{}.bin", i / 2));
                    put_file(ep, &format!("mixed-{i}"), &path).await?;
                    Ok::<u64, BenchError>(self.args.mixed_mib << 20)
                } else {
                    let (_, got) = get_crc(ep, "large-random").await?;
                    if got != crc {
                        return Err(BenchError::Mismatch {
                            endpoint: ep.name.clone(),
                            step: "mixed GET".into(),
                        });
                    }
                    Ok(self.large_bytes())
                }
            });
        }
        let mut bytes = 0u64;
        while let Some(r) = clients.next().await {
            bytes += r?;
        }
        fig.set(
            &format!("{n} mixed PUT/GET clients (MB/s)"),
            &ep.name,
            bytes as f64 / MIB / started.elapsed().as_secs_f64(),
            Better::Higher,
        );
        Ok(())
    }

    async fn small(&self, ep: &Endpoint, put: bool) -> Result<Latencies, BenchError> {
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let mut workers = FuturesUnordered::new();
        for _ in 0..self.args.concurrency {
            let next = next.clone();
            let (count, size, seed) = (
                self.args.small_count,
                self.args.small_kib << 10,
                self.args.seed,
            );
            workers.push(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let key = format!("small/{i:06}");
                    let body = data::small_object(seed, i, size);
                    let t = Instant::now();
                    if put {
                        ep.client
                            .put_object()
                            .bucket(BUCKET)
                            .key(&key)
                            .body(ByteStream::from(body))
                            .send()
                            .await
                            .map_err(|e| s3_err(&ep.name, "small PUT", e))?;
                    } else {
                        let got = ep
                            .client
                            .get_object()
                            .bucket(BUCKET)
                            .key(&key)
                            .send()
                            .await
                            .map_err(|e| s3_err(&ep.name, "small GET", e))?
                            .body
                            .collect()
                            .await
                            .map_err(|e| s3_err(&ep.name, "small GET body", e))?
                            .into_bytes();
                        if got.as_ref() != body.as_slice() {
                            return Err(BenchError::Mismatch {
                                endpoint: ep.name.clone(),
                                step: format!("small GET {key}"),
                            });
                        }
                    }
                    lat.push(t.elapsed());
                }
                Ok::<_, BenchError>(lat)
            });
        }
        let mut all = Vec::new();
        while let Some(r) = workers.next().await {
            all.extend(r?);
        }
        Ok(Latencies::new(all, started.elapsed()))
    }
}

struct Latencies {
    sorted: Vec<Duration>,
    wall: Duration,
}

impl Latencies {
    fn new(mut v: Vec<Duration>, wall: Duration) -> Self {
        v.sort_unstable();
        Self { sorted: v, wall }
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let idx = ((self.sorted.len() as f64 * q).ceil() as usize).clamp(1, self.sorted.len());
        self.sorted[idx - 1].as_secs_f64() * 1000.0
    }

    fn record(&self, fig: &mut Figures, what: &str, ep: &str) {
        let ops = self.sorted.len() as f64 / self.wall.as_secs_f64();
        fig.set(&format!("{what} (ops/s)"), ep, ops, Better::Higher);
        fig.set(
            &format!("{what} p50 (ms)"),
            ep,
            self.quantile_ms(0.50),
            Better::Lower,
        );
        fig.set(
            &format!("{what} p99 (ms)"),
            ep,
            self.quantile_ms(0.99),
            Better::Lower,
        );
    }
}

async fn ensure_bucket(ep: &Endpoint) -> Result<(), BenchError> {
    match ep.client.create_bucket().bucket(BUCKET).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = e.into_service_error();
            if e.is_bucket_already_owned_by_you() {
                Ok(())
            } else {
                Err(s3_err(&ep.name, "CreateBucket", e))
            }
        }
    }
}

/// One PUT of a whole file, streamed from disk with an unsigned payload;
/// the seconds it took.
async fn put_file(ep: &Endpoint, key: &str, path: &Path) -> Result<f64, BenchError> {
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| s3_err(&ep.name, "opening input", e))?;
    let started = Instant::now();
    ep.client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body)
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|e| s3_err(&ep.name, &format!("PUT {key}"), e))?;
    Ok(started.elapsed().as_secs_f64())
}

/// GET streamed to a CRC; the seconds it took and the CRC.
async fn get_crc(ep: &Endpoint, key: &str) -> Result<(f64, u32), BenchError> {
    let started = Instant::now();
    let mut body = ep
        .client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_err(&ep.name, &format!("GET {key}"), e))?
        .body;
    let mut crc = crc32fast::Hasher::new();
    while let Some(bytes) = body
        .try_next()
        .await
        .map_err(|e| s3_err(&ep.name, &format!("GET {key} body"), e))?
    {
        crc.update(&bytes);
    }
    Ok((started.elapsed().as_secs_f64(), crc.finalize()))
}

fn file_crc(path: &Path) -> Result<u32, BenchError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io(format!("reading {}", path.display())))?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io(format!("reading {}", path.display())))?;
        if n == 0 {
            return Ok(crc.finalize());
        }
        crc.update(&buf[..n]);
    }
}

/// Sum of `dooz_backend_written_bytes_total` over all backends.
async fn backend_written(admin: &str) -> Result<f64, BenchError> {
    let url = format!("{}/metrics", admin.trim_end_matches('/'));
    let text = reqwest::get(&url)
        .await
        .map_err(|e| s3_err(admin, "scraping /metrics", e))?
        .text()
        .await
        .map_err(|e| s3_err(admin, "scraping /metrics", e))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("dooz_backend_written_bytes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
