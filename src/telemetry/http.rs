//! The exporter's HTTP client: breakwater's own reqwest client (rustls, so `https://`
//! collectors work), sending on the application's Tokio runtime. The SDK's batch processor
//! exports from a thread of its own, where an async client would find no runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// How long one export may take (the OTLP exporter's default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends OTLP requests with reqwest on a Tokio runtime.
#[derive(Debug)]
pub(super) struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Whether a failed export was logged: once is enough to tell the operator.
    warned: AtomicBool,
}

impl Client {
    pub(super) fn new(runtime: tokio::runtime::Handle) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .user_agent(concat!("breakwater/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            runtime,
            warned: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let response = http.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = match sent.await? {
            Ok(answer) => answer,
            Err(error) => {
                // Without its URL: an endpoint may carry credentials.
                let error = error.without_url();
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "cannot export traces to the OTLP endpoint");
                }
                return Err(error.into());
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
