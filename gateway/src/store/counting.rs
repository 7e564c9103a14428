//! The HTTP client under S3 backends, wrapped so every attempt is seen:
//! object_store retries inside one call, and only the transport knows how
//! many attempts a pack read or write took.

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;

use async_trait::async_trait;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
};

use super::RetrySettings;

tokio::task_local! {
    /// HTTP attempts made by the backend operation running in this task.
    static ATTEMPTS: Cell<u32>;
}

/// Runs one backend operation and returns its output with the number of HTTP
/// attempts it took (0 for backends that do not speak HTTP).
pub(crate) async fn counting_attempts<F: Future>(f: F) -> (F::Output, u32) {
    ATTEMPTS
        .scope(Cell::new(0), async move {
            let out = f.await;
            (out, ATTEMPTS.with(Cell::get))
        })
        .await
}

/// Builds the reqwest client object_store would, from our retry settings, and
/// counts attempts through it.
#[derive(Debug)]
pub(crate) struct CountingConnector {
    pub(crate) settings: RetrySettings,
    /// CA certificates trusted besides the system's.
    pub(crate) ca_file: Option<PathBuf>,
}

#[derive(Debug)]
struct CountingService {
    inner: reqwest::Client,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let generic = |e: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
            store: "S3",
            source: e,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.settings.connect_timeout)
            .timeout(self.settings.request_timeout)
            .pool_max_idle_per_host(64);
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| generic(format!("reading ca_file {}: {e}", path.display()).into()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| generic(format!("ca_file {}: {e}", path.display()).into()))?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| generic(Box::new(e)))?;
        Ok(HttpClient::new(CountingService { inner: client }))
    }
}

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        // Outside a counted operation (e.g. a credential fetch) there is
        // nothing to add to.
        let _ = ATTEMPTS.try_with(|a| a.set(a.get() + 1));
        HttpService::call(&self.inner, req).await
    }
}
