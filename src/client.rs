//! The Claude Messages client: an [`Upstream`] over reqwest, and the only code in breakwater
//! that touches the network.
//!
//! It makes exactly one attempt per call and classifies whatever happens into a [`Failure`]:
//! an error status by its status and `error.type`, a refused or reset connection as
//! [`Class::Connect`], a local timeout or a stalled stream as [`Class::Timeout`], an
//! unreadable body as [`Class::ServerError`]. Retrying is the engine's job, never the client's.

mod config;
mod credentials;
mod env;
mod error;
mod forward;
mod stream;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::header;

use crate::api::adapt::{self, Verdict};
use crate::api::json::{Chunks, ObjectEdit};
use crate::api::{self, ErrorType, ResponseMeta, WireEvent, WireMessage, WireRequest};
use crate::catalog::{AdaptMode, Catalog};
use crate::engine::policy::Cost;
use crate::engine::{Class, EventStream, Failure, Outcome, Reply, Target, Upstream};
use crate::{telemetry, wallclock};
use transport::transport;

pub use config::{ClientConfig, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
pub use credentials::{Credentials, Secret};
pub(crate) use env::non_empty_env;
pub use error::ClientError;
pub use forward::{AnswerStream, ForwardStream};

/// The Claude Messages API as an [`Upstream`]. Cheap to clone; clones share one
/// connection pool.
#[derive(Clone, Debug)]
pub struct ClaudeClient {
    http: reqwest::Client,
    messages_url: Arc<str>,
    /// `messages_url`, parsed once rather than per request.
    messages_target: reqwest::Url,
    request_timeout: Duration,
    read_timeout: Duration,
    /// Whether requests carry credentials of this client's own (see `forward`).
    authenticated: bool,
    catalog: Arc<Catalog>,
    adapt: AdaptMode,
}

/// An attempt's body, and what was changed in it for its target.
struct Prepared {
    body: Chunks,
    changes: Vec<&'static str>,
    /// Whether this is the second, minimal form sent after a refusal.
    resent: bool,
}

/// An answer passed through as it came (see [`ClaudeClient::forward_count_tokens`]).
#[derive(Clone, Debug)]
pub struct Forwarded {
    /// Its HTTP status.
    pub status: u16,
    /// Its `request-id` header.
    pub request_id: Option<String>,
    /// Its body.
    pub body: bytes::Bytes,
}

/// A `count_tokens` answer.
#[derive(serde::Deserialize)]
struct Counted {
    input_tokens: u64,
}

impl ClaudeClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`ClientError`] naming the bad setting: an unparseable base URL, or a header value
    /// HTTP cannot carry.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let messages_url = config::messages_url(&config.base_url)?;
        // No client-wide read timeout: reqwest's also runs while waiting for the response
        // headers, which for a non-streamed call only come once the whole generation is done.
        // `read_timeout` is a per-event stall on streams instead (see `stream::events`).
        let http = reqwest::Client::builder()
            .default_headers(config::default_headers(config)?)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("breakwater/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            messages_url: messages_url.as_str().into(),
            messages_target: messages_url,
            request_timeout: config.request_timeout,
            read_timeout: config.read_timeout,
            authenticated: config.credentials.is_some(),
            catalog: Catalog::builtin(),
            adapt: AdaptMode::default(),
        })
    }

    /// The same client, adapting requests to fallback targets by `catalog`, and as `adapt`
    /// says for requests that do not say otherwise ([`WireRequest::with_adapt`]).
    #[must_use]
    pub fn with_catalog(mut self, catalog: Arc<Catalog>, adapt: AdaptMode) -> Self {
        self.catalog = catalog;
        self.adapt = adapt;
        self
    }

    /// The body of an attempt of `request` at `target`: as it came but for the model, or
    /// adapted to the target's rules when it is not the model asked for (see
    /// [`adapt::adapt`]). A target that cannot take the request is a [`Class::Unsuitable`]
    /// failure, as is one that would need adapting under `adapt = "skip"`.
    fn prepare(
        &self,
        target: &Target,
        request: &WireRequest,
        stream: bool,
    ) -> Result<Prepared, Failure> {
        let verdict = match self.catalog.get(target.model()) {
            Some(spec) if target.model() != request.model() => {
                adapt::adapt(request.body(), self.catalog.get(request.model()), spec)
                    .unwrap_or(Verdict::Same)
            }
            _ => Verdict::Same,
        };
        let (edit, changes) = match verdict {
            Verdict::Same => (ObjectEdit::new(), Vec::new()),
            Verdict::Refused(why) => return Err(Failure::new(Class::Unsuitable, why)),
            Verdict::Adapted { .. } if request.adapt().unwrap_or(self.adapt) == AdaptMode::Skip => {
                let message = format!(
                    "{} would need the request adapted, and adapt = \"skip\"",
                    target.model()
                );
                return Err(Failure::new(Class::Unsuitable, message));
            }
            Verdict::Adapted { edit, changes } => (edit, changes),
        };
        for change in &changes {
            metrics::counter!("breakwater_adapt_changes_total", "change" => *change).increment(1);
        }
        let body = request
            .body_with(target.model(), stream, edit)
            .map_err(|error| {
                Failure::new(Class::Invalid, format!("cannot build the body: {error}"))
            })?;
        Ok(Prepared {
            body,
            changes,
            resent: false,
        })
    }

    /// The safety net for what the catalogue does not know: a fallback target that refused
    /// an attempt with 400 `invalid_request_error` gets one more, in the minimal safe form
    /// (see [`adapt::minimal`]), when that form differs. Never for the model asked for (its
    /// own 400 comes back as it came), never twice.
    fn safer(
        &self,
        target: &Target,
        request: &WireRequest,
        sent: &Prepared,
        failure: &Failure,
    ) -> Option<Prepared> {
        let refused = failure.status() == Some(400)
            && failure.error_type() == Some(ErrorType::InvalidRequest.as_str());
        if !refused || sent.resent || target.model() == request.model() {
            return None;
        }
        let body = sent.body.join();
        let verdict = adapt::minimal(&body, self.catalog.get(target.model())).ok()??;
        let Verdict::Adapted { edit, changes } = verdict else {
            return None;
        };
        let body = edit.apply(&body).ok()?;
        metrics::counter!("breakwater_adapt_resends_total").increment(1);
        let mut all = sent.changes.clone();
        all.extend(changes);
        all.sort_unstable();
        all.dedup();
        Some(Prepared {
            body,
            changes: all,
            resent: true,
        })
    }

    /// Counts the input tokens of `request` on `model` with `POST /v1/messages/count_tokens`
    /// (the fields the endpoint takes: `messages`, `system`, `tools`, `tool_choice`,
    /// `thinking`), within `timeout`.
    ///
    /// # Errors
    /// The [`Failure`] the call ended with, classified as an attempt's would be.
    pub async fn count_tokens(
        &self,
        model: &str,
        request: &WireRequest,
        timeout: Duration,
    ) -> Result<u64, Failure> {
        let body = request.count_tokens_body(model);
        let (status, meta, body) = self
            .post_count_tokens(body, request.headers(), timeout)
            .await?;
        if !(200..300).contains(&status) {
            return Err(api::failure(status, meta, &body));
        }
        serde_json::from_slice::<Counted>(&body)
            .map(|counted| counted.input_tokens)
            .map_err(|error| {
                let message = format!("unreadable count_tokens body: {error}");
                api::answered(
                    Class::ServerError,
                    message,
                    status,
                    meta.request_id.as_deref(),
                )
            })
    }

    /// Posts `body` to `POST /v1/messages/count_tokens` as it is, with this client's
    /// credentials and `headers`, and hands back the answer as it came: its status, its
    /// `request-id` and its body. The gateway's pass-through; [`ClaudeClient::count_tokens`]
    /// is the typed call.
    ///
    /// # Errors
    /// A [`Failure`] when no answer came (connection, timeout).
    pub async fn forward_count_tokens(
        &self,
        body: bytes::Bytes,
        headers: &api::RequestHeaders,
        timeout: Duration,
    ) -> Result<Forwarded, Failure> {
        let (status, meta, body) = self.post_count_tokens(body, headers, timeout).await?;
        Ok(Forwarded {
            status,
            request_id: meta.request_id,
            body,
        })
    }

    /// One `POST /v1/messages/count_tokens`: the status, headers read and body.
    async fn post_count_tokens(
        &self,
        body: bytes::Bytes,
        headers: &api::RequestHeaders,
        timeout: Duration,
    ) -> Result<(u16, ResponseMeta, bytes::Bytes), Failure> {
        let url = format!("{}/count_tokens", self.messages_url);
        let builder = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout);
        let response = match with_headers(builder, headers, self.authenticated)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                let (class, message) = transport(error);
                return Err(Failure::new(class, message));
            }
        };
        let status = response.status().as_u16();
        let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
        let body = read_body(response, &meta).await?;
        Ok((status, meta, body))
    }

    /// The URL requests are posted to.
    pub fn messages_url(&self) -> &str {
        &self.messages_url
    }

    async fn post(
        &self,
        request: &WireRequest,
        body: Chunks,
        stream: bool,
    ) -> Result<reqwest::Response, Failure> {
        let mut builder = self
            .http
            .post(self.messages_target.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(http_body(body));
        builder = with_headers(builder, request.headers(), self.authenticated);
        let sent = if stream {
            builder = builder.header(header::ACCEPT, "text/event-stream");
            // Only until the head: the body is bounded per event (`read_timeout`).
            tokio::time::timeout(self.request_timeout, builder.send()).await
        } else {
            // Covers the body too, which `bytes()` reads after `send` returns.
            Ok(builder.timeout(self.request_timeout).send().await)
        };
        match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                let (class, message) = transport(error);
                Err(Failure::new(class, message))
            }
            Err(_) => Err(Failure::new(
                Class::Timeout,
                format!("no response within {:?}", self.request_timeout),
            )),
        }
    }

    async fn complete(&self, target: &Target, request: &WireRequest) -> Outcome<WireMessage> {
        let mut prepared = self.prepare(target, request, false)?;
        let (status, meta, body) = loop {
            let response = self.post(request, prepared.body.clone(), false).await?;
            let status = response.status().as_u16();
            let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
            let body = read_body(response, &meta).await?;
            if (200..300).contains(&status) {
                break (status, meta, body);
            }
            let failure = api::failure(status, meta, &body);
            match self.safer(target, request, &prepared, &failure) {
                Some(safer) => prepared = safer,
                None => return Err(failure),
            }
        };
        telemetry::spans::answered(&body, &prepared.changes);
        match WireMessage::from_json(body) {
            Ok(message) => Ok(reply(message, meta, &prepared.changes)),
            Err(error) => Err(api::answered(
                Class::ServerError,
                format!("unreadable response body: {error}"),
                status,
                meta.request_id.as_deref(),
            )),
        }
    }

    async fn open(
        &self,
        target: &Target,
        request: &WireRequest,
    ) -> Outcome<EventStream<WireEvent>> {
        let mut prepared = self.prepare(target, request, true)?;
        let (response, meta) = loop {
            let response = self.post(request, prepared.body.clone(), true).await?;
            let status = response.status().as_u16();
            let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
            if (200..300).contains(&status) {
                break (response, meta);
            }
            let body = read_body(response, &meta).await?;
            let failure = api::failure(status, meta, &body);
            match self.safer(target, request, &prepared, &failure) {
                Some(safer) => prepared = safer,
                None => return Err(failure),
            }
        };
        let events = stream::events(
            response.bytes_stream(),
            meta.request_id.clone(),
            self.read_timeout,
        );
        let events = telemetry::spans::observed(events, &prepared.changes);
        Ok(reply(events, meta, &prepared.changes))
    }
}

impl Upstream for ClaudeClient {
    type Request = WireRequest;
    type Response = WireMessage;
    type Event = WireEvent;

    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a WireRequest,
    ) -> BoxFuture<'a, Outcome<WireMessage>> {
        Box::pin(self.complete(target, request))
    }

    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a WireRequest,
    ) -> BoxFuture<'a, Outcome<EventStream<WireEvent>>> {
        Box::pin(self.open(target, request))
    }
    fn cost(&self, request: &WireRequest) -> Cost {
        Cost::new(
            request.estimated_input_tokens(),
            u64::from(request.max_tokens()),
        )
    }

    fn attempt_span(
        &self,
        parent: &tracing::Span,
        target: &Target,
        request: &WireRequest,
    ) -> tracing::Span {
        telemetry::spans::attempt_span(parent, target, request, &self.messages_url)
    }
}

/// `builder` with the request's own `anthropic-version` / `anthropic-beta`, which replace
/// the client's configured ones, and, for a client without credentials, the caller's key.
fn with_headers(
    mut builder: reqwest::RequestBuilder,
    headers: &api::RequestHeaders,
    authenticated: bool,
) -> reqwest::RequestBuilder {
    if !authenticated {
        builder = match &headers.credentials {
            Some(Credentials::ApiKey(key)) => builder.header("x-api-key", key.expose()),
            Some(Credentials::Bearer(token)) => builder.bearer_auth(token.expose()),
            None => builder,
        };
    }
    if let Some(version) = &headers.version {
        builder = builder.header("anthropic-version", version);
    }
    if let Some(beta) = &headers.beta {
        builder = builder.header("anthropic-beta", beta);
    }
    builder
}

/// A request body: the one buffer as it is, or its slices without joining them.
fn http_body(body: Chunks) -> reqwest::Body {
    match body.parts() {
        [one] => reqwest::Body::from(one.clone()),
        _ => reqwest::Body::wrap(body),
    }
}

fn reply<T>(value: T, meta: ResponseMeta, changes: &[&str]) -> Reply<T> {
    Reply {
        value,
        request_id: meta.request_id,
        limits: meta.limits,
        changes: (!changes.is_empty()).then(|| changes.join(",").into()),
    }
}

/// Reads a whole body. The status and headers have arrived, so a failure here keeps the
/// status and the request id.
async fn read_body(
    response: reqwest::Response,
    meta: &ResponseMeta,
) -> Result<bytes::Bytes, Failure> {
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) => Ok(body),
        Err(error) => {
            let (class, message) = transport(error);
            Err(api::answered(
                class,
                message,
                status,
                meta.request_id.as_deref(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_header_values_name_the_setting() {
        let config = ClientConfig {
            api_version: "2023\n".into(),
            ..ClientConfig::default()
        };
        assert_eq!(
            ClaudeClient::new(&config).unwrap_err().to_string(),
            "invalid api-version: not a valid HTTP header value"
        );
    }

    #[tokio::test]
    async fn transport_messages_never_carry_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/v1/messages?secret-marker");
        let error = reqwest::Client::new().get(&url).send().await.unwrap_err();
        let (class, message) = transport(error);
        assert_eq!(class, Class::Connect);
        assert!(message.starts_with("connection failed: "), "{message}");
        assert!(!message.contains("secret-marker"), "{message}");
        assert!(!message.contains("/v1/messages"), "{message}");
    }
}
