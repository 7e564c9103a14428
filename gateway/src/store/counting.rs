//! The HTTP client under S3 backends, wrapped so every attempt is seen:
//! object_store retries inside one call, and only the transport knows how
//! many attempts a pack read or write took.

use std::cell::Cell;
use std::future::Future;

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
}

#[derive(Debug)]
struct CountingService {
    inner: reqwest::Client,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(self.settings.connect_timeout)
            .timeout(self.settings.request_timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
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
