//! Structured logs through `tracing`: text or JSON, filter from RUST_LOG or the config.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Targets whose debug output carries credentials: s3s logs whole requests
/// (Authorization headers, presigned signatures), the HTTP stacks log headers
/// at trace level. They are held at `info` whatever the filter asks for.
const CREDENTIAL_BEARING: &[&str] = &["s3s", "hyper", "hyper_util", "h2", "reqwest"];

pub fn init(cfg: &LogConfig) {
    let filter = secret_safe(
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&cfg.level))
            .unwrap_or_else(|_| EnvFilter::new("info")),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = if cfg.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = res {
        eprintln!("dooz: logging already initialised: {e}");
    }
}

fn secret_safe(mut filter: EnvFilter) -> EnvFilter {
    for target in CREDENTIAL_BEARING {
        match format!("{target}=info").parse() {
            Ok(d) => filter = filter.add_directive(d),
            Err(e) => eprintln!("dooz: log filter for {target}: {e}"),
        }
    }
    filter
}
