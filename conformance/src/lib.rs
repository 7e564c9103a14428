//! The test kit: starts the real peers Dooz is tested against (SeaweedFS as an
//! S3 backend, `dooz` itself as a process) on free 127.0.0.1 ports, and tears
//! them down on drop. Used by the gateway's integration tests, the conformance
//! suite and the benchmarks.

pub mod bao;
pub mod ports;
pub mod process;
pub mod seaweed;

pub use bao::Bao;
pub use ports::free_port;
pub use process::{ChildGuard, wait_for_port};
pub use seaweed::Seaweed;

/// Finds a peer's executable: `$DOOZ_<NAME>_BIN`, else on `PATH`.
pub fn find_tool(name: &str) -> Result<std::path::PathBuf, KitError> {
    let var = format!("DOOZ_{}_BIN", name.to_uppercase());
    if let Ok(p) = std::env::var(&var) {
        return Ok(p.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(KitError::MissingTool {
        name: name.to_owned(),
        hint: format!(
            "install the test peers with scripts/install-test-deps and put its bin directory on PATH, or set {var}"
        ),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("`{name}` not found: {hint}")]
    MissingTool { name: String, hint: String },
    #[error("{what} did not start within {secs} s; log tail:\n{log}")]
    StartTimeout {
        what: String,
        secs: u64,
        log: String,
    },
    #[error("i/o error while {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl KitError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KitError {
        let what = what.into();
        move |source| KitError::Io { what, source }
    }
}
