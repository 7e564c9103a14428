//! Structured logs through `tracing`: text or JSON, filter from RUST_LOG or
//! the config, and a filter on what the log layer emits that no directive
//! can loosen: crates that log requests, signatures or connection
//! internals are held to warnings and errors, without their spans, and
//! without the fields that carry request data.

use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogConfig;

/// Targets whose debug output carries credentials or request contents:
/// s3s logs whole requests and the expected signature of a failed check,
/// the HTTP stacks log headers, tokio-postgres logs statement parameters,
/// the AWS SDK (used by `dooz bench`) logs canonical requests.
const CREDENTIAL_BEARING: &[&str] = &[
    "s3s",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tokio_postgres",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_config",
];

/// Fields an event of those targets may carry (s3s's `err`, hyper's
/// messages); anything else (`req`, `resp`, `bytes`, `signature`,
/// `expected`, `string_to_sign`, `trailers`, ...) drops the event.
const ALLOWED_FIELDS: &[&str] = &["message", "op", "err", "error", "duration"];

fn credential_bearing(target: &str) -> bool {
    CREDENTIAL_BEARING.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The filter on the output layer (see the module comment).
#[derive(Clone, Copy, Debug, Default)]
pub struct SecretSafe;

impl<S> Filter<S> for SecretSafe {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        if !credential_bearing(meta.target()) {
            return true;
        }
        meta.is_event()
            && *meta.level() <= Level::WARN
            && meta
                .fields()
                .iter()
                .all(|f| ALLOWED_FIELDS.contains(&f.name()))
    }
}

pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let output: Box<dyn Layer<Registry> + Send + Sync> = if cfg.format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(SecretSafe)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(SecretSafe)
            .boxed()
    };
    if let Err(e) = tracing_subscriber::registry()
        .with(output)
        .with(filter)
        .try_init()
    {
        eprintln!("dooz: logging already initialised: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_whole_crate_names() {
        assert!(credential_bearing("s3s"));
        assert!(credential_bearing("s3s::ops::signature"));
        assert!(credential_bearing("hyper_util::server"));
        assert!(!credential_bearing("s3s_extra"));
        assert!(!credential_bearing("dooz_gateway::s3::front"));
        assert!(!credential_bearing("dooz::access"));
    }
}
