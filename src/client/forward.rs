//! Passing a request the gateway does not model (models, Message Batches, Files, routes yet
//! to come) to the upstream as it came, its body streamed both ways and never held whole.
//!
//! The caller (the gateway) decides which of its caller's headers go on; this client adds
//! its own: its credentials, which replace any key the request carries, its configured
//! `anthropic-version` when the request names none, and its configured `anthropic-beta`
//! flags, which the request's (every copy of the header) add to. Without credentials
//! of its own, a key the request carries goes on as it came.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderMap, header};
use tokio::sync::watch;

use super::ClaudeClient;
use super::transport::transport;
use crate::engine::{Class, Failure};

/// A body on its way through: chunks as they come, or the error that ends it.
pub type ForwardStream = BoxStream<'static, Result<Bytes, Box<dyn StdError + Send + Sync>>>;

/// The body of a forwarded answer: the upstream's chunks as they come, ended by a
/// [`Class::Timeout`] failure when the upstream stalls.
pub type AnswerStream = BoxStream<'static, Result<Bytes, Failure>>;

impl ClaudeClient {
    /// Sends a request to `base_url + path and query of head.uri`, with `head`'s method and
    /// headers and `body` streamed as it arrives (`None`: no body), and hands back the
    /// answer as it came, its body streamed too.
    ///
    /// `idle` bounds how long the upstream may go without progress: from the last chunk of
    /// `body` it took to its response head, and between two chunks of its response body.
    /// The connect timeout is the client's; there is no bound on the whole exchange, which
    /// for a large upload or download may rightly take long.
    ///
    /// # Errors
    /// A [`Failure`] when no answer came: [`Class::Timeout`] when the upstream went `idle`
    /// without progress, [`Class::Connect`] when it could not be reached or the request could
    /// not be sent (its message never carries the URL or a key), [`Class::Invalid`] for a
    /// path that cannot make a URL.
    pub async fn forward(
        &self,
        head: http::request::Parts,
        body: Option<ForwardStream>,
        idle: Duration,
    ) -> Result<http::Response<AnswerStream>, Failure> {
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = reqwest::Url::parse(&format!("{}{path}", self.base_url()))
            .map_err(|_| Failure::new(Class::Invalid, "the path cannot be forwarded"))?;
        let mut headers = head.headers;
        let requested: Vec<String> = headers
            .get_all("anthropic-beta")
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        if !requested.is_empty() {
            let merged = crate::api::merge_betas(&self.betas, requested.iter().map(String::as_str));
            if let Ok(value) = http::HeaderValue::from_str(&merged) {
                headers.insert("anthropic-beta", value);
            }
        }
        if self.authenticated {
            headers.remove("x-api-key");
            headers.remove(header::AUTHORIZATION);
        }
        let (progress, mut progressed) = watch::channel(());
        let mut builder = self.http.request(head.method, url).headers(headers);
        if let Some(body) = body {
            let body = body.inspect(move |_| {
                progress.send_replace(());
            });
            builder = builder.body(reqwest::Body::wrap_stream(body));
        }
        let stalled = async {
            // Each chunk the upstream takes restarts the wait; once the body is gone, the
            // head has `idle` to arrive.
            while let Ok(Ok(())) = tokio::time::timeout(idle, progressed.changed()).await {}
            if progressed.has_changed().is_err() {
                tokio::time::sleep(idle).await;
            }
        };
        let response = tokio::select! {
            sent = builder.send() => sent.map_err(|error| {
                let (class, message) = transport(error);
                Failure::new(class, message)
            })?,
            () = stalled => {
                let message = format!("no response from the upstream within {idle:?}");
                return Err(Failure::new(Class::Timeout, message));
            }
        };
        Ok(answer(response, idle))
    }

    /// The base URL forwarded requests go to, without a trailing `/`: the configured one.
    pub fn base_url(&self) -> &str {
        self.messages_url
            .strip_suffix("/v1/messages")
            .unwrap_or(&self.messages_url)
    }

    /// Whether this client sends credentials of its own, which replace any a forwarded
    /// request carries.
    pub fn has_credentials(&self) -> bool {
        self.authenticated
    }
}

/// `response` as an `http` response whose body fails with [`Class::Timeout`] when no chunk
/// comes for `idle`.
fn answer(response: reqwest::Response, idle: Duration) -> http::Response<AnswerStream> {
    let status = response.status();
    let headers: HeaderMap = response.headers().clone();
    let chunks = response.bytes_stream();
    let body = futures::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
            Ok(Some(Err(error))) => {
                let (class, message) = transport(error);
                Some((Err(Failure::new(class, message)), None))
            }
            Ok(None) => None,
            Err(_) => {
                let message = format!("the upstream sent nothing for {idle:?}");
                Some((Err(Failure::new(Class::Timeout, message)), None))
            }
        }
    });
    let mut answer = http::Response::new(body.boxed());
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

impl ClaudeClient {
    /// Every model `GET /v1/models` lists (following `has_more` for at most ten pages),
    /// within `timeout` per page, as far as the catalogue reads them.
    ///
    /// # Errors
    /// A [`Failure`] when a page does not come, or is not a model list.
    pub async fn list_models(
        &self,
        timeout: Duration,
    ) -> Result<Vec<crate::catalog::ModelInfo>, Failure> {
        #[derive(serde::Deserialize)]
        struct Page {
            data: Vec<crate::catalog::ModelInfo>,
            #[serde(default)]
            has_more: bool,
            #[serde(default)]
            last_id: Option<String>,
        }
        let url = format!("{}/v1/models", self.base_url());
        let mut models = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..10 {
            let mut query = vec![("limit", "1000".to_owned())];
            if let Some(after) = &after {
                query.push(("after_id", after.clone()));
            }
            let sent = self
                .http
                .get(&url)
                .query(&query)
                .timeout(timeout)
                .send()
                .await;
            let response = sent.map_err(|error| {
                let (class, message) = transport(error);
                Failure::new(class, message)
            })?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(|error| {
                let (class, message) = transport(error);
                Failure::new(class, message)
            })?;
            if !(200..300).contains(&status) {
                return Err(crate::api::failure(
                    status,
                    crate::api::ResponseMeta::default(),
                    &body,
                ));
            }
            let page: Page = serde_json::from_slice(&body).map_err(|error| {
                Failure::new(
                    Class::ServerError,
                    format!("unreadable model list: {error}"),
                )
            })?;
            models.extend(page.data);
            match (page.has_more, page.last_id) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        Ok(models)
    }
}
