//! The Claude Messages client: an [`Upstream`] over reqwest, and the only code in breakwater
//! that touches the network.
//!
//! It makes exactly one attempt per call and classifies whatever happens into a [`Failure`]:
//! an error status by its status and `error.type`, a refused or reset connection as
//! [`Class::Connect`], a local timeout as [`Class::Timeout`], an unreadable body as
//! [`Class::ServerError`]. Retrying is the engine's job, never the client's.

mod credentials;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::api::{self, Message, MessageStreamEvent, MessagesRequest, ResponseMeta};
use crate::engine::{Class, EventStream, Failure, Outcome, Reply, Target, Upstream};
use crate::wallclock;

pub use credentials::{Credentials, Secret};

/// The public API's address, used when neither the config nor `ANTHROPIC_BASE_URL` names one.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version sent when none is configured.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";

/// How to reach the API. Every field has a default; see [`ClientConfig::from_env`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientConfig {
    /// The API's base URL, without `/v1`. Default: `https://api.anthropic.com`.
    pub base_url: String,
    /// The `anthropic-version` header. Default: `2023-06-01`.
    pub api_version: String,
    /// Beta flags sent as `anthropic-beta`. Default: none.
    pub betas: Vec<String>,
    /// Time allowed to establish a connection. Default: 5s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for a whole non-streamed response, and for a stream's headers.
    /// Default: 10m (the official SDKs' default).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest silence allowed between two reads of a streamed body. Default: 60s.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// The credentials; never part of a config file, only of the environment.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            betas: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(600),
            read_timeout: Duration::from_secs(60),
            credentials: None,
        }
    }
}

impl ClientConfig {
    /// The defaults, with `ANTHROPIC_BASE_URL` as the base URL and credentials from
    /// `ANTHROPIC_API_KEY` (sent as `x-api-key`) or else `ANTHROPIC_AUTH_TOKEN` (sent as
    /// `Authorization: Bearer`), when set and not empty.
    pub fn from_env() -> Self {
        let mut config = Self {
            credentials: Credentials::from_env(),
            ..Self::default()
        };
        if let Some(base_url) = non_empty_env("ANTHROPIC_BASE_URL") {
            config.base_url = base_url;
        }
        config
    }

    /// Sets the base URL.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }
}

pub(crate) fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// A bad client configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL cannot be parsed, or is not http(s).
    #[error("invalid base-url {url:?}: {reason}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header value (version, beta flag or credential) contains characters HTTP forbids.
    #[error("invalid {field}: not a valid HTTP header value")]
    Header {
        /// Which setting is bad.
        field: &'static str,
    },
    /// reqwest could not build its client.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// The Claude Messages API as an [`Upstream`]. Cheap to clone; clones share one
/// connection pool.
#[derive(Clone, Debug)]
pub struct ClaudeClient {
    http: reqwest::Client,
    messages_url: Arc<str>,
    request_timeout: Duration,
}

impl ClaudeClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`ClientError`] naming the bad setting: an unparseable base URL, or a header value
    /// HTTP cannot carry.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let messages_url = messages_url(&config.base_url)?;
        let http = reqwest::Client::builder()
            .default_headers(default_headers(config)?)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(concat!("breakwater/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            messages_url: messages_url.into(),
            request_timeout: config.request_timeout,
        })
    }

    /// The URL requests are posted to.
    pub fn messages_url(&self) -> &str {
        &self.messages_url
    }

    async fn post(
        &self,
        target: &Target,
        request: &MessagesRequest,
        stream: bool,
    ) -> Result<reqwest::Response, Failure> {
        let mut builder = self
            .http
            .post(&*self.messages_url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(request.to_body(target.model(), stream));
        if stream {
            builder = builder.header(header::ACCEPT, "text/event-stream");
        } else {
            builder = builder.timeout(self.request_timeout);
        }
        let sent = tokio::time::timeout(self.request_timeout, builder.send()).await;
        match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(transport_failure(&error)),
            Err(_) => Err(timed_out(self.request_timeout)),
        }
    }

    async fn complete(&self, target: &Target, request: &MessagesRequest) -> Outcome<Message> {
        let response = self.post(target, request, false).await?;
        let status = response.status();
        let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_failure(&error))?;
        if !status.is_success() {
            return Err(api::failure(status.as_u16(), meta, &body));
        }
        match serde_json::from_slice::<Message>(&body) {
            Ok(message) => Ok(reply(message, meta)),
            Err(error) => Err(unreadable(status, &meta, &error)),
        }
    }

    async fn open(
        &self,
        target: &Target,
        request: &MessagesRequest,
    ) -> Outcome<EventStream<MessageStreamEvent>> {
        let response = self.post(target, request, true).await?;
        let status = response.status();
        let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
        if !status.is_success() {
            let body = response
                .bytes()
                .await
                .map_err(|error| transport_failure(&error))?;
            return Err(api::failure(status.as_u16(), meta, &body));
        }
        let events = stream::events(response.bytes_stream(), meta.request_id.clone());
        Ok(reply(events, meta))
    }
}

impl Upstream for ClaudeClient {
    type Request = MessagesRequest;
    type Response = Message;
    type Event = MessageStreamEvent;

    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a MessagesRequest,
    ) -> BoxFuture<'a, Outcome<Message>> {
        Box::pin(self.complete(target, request))
    }

    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a MessagesRequest,
    ) -> BoxFuture<'a, Outcome<EventStream<MessageStreamEvent>>> {
        Box::pin(self.open(target, request))
    }
}

fn reply<T>(value: T, meta: ResponseMeta) -> Reply<T> {
    Reply {
        value,
        request_id: meta.request_id,
        limits: meta.limits,
    }
}

fn messages_url(base_url: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BaseUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(base_url).map_err(|error| bad(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment"));
    }
    Ok(format!(
        "{}/v1/messages",
        url.as_str().trim_end_matches('/')
    ))
}

fn default_headers(config: &ClientConfig) -> Result<HeaderMap, ClientError> {
    let value =
        |field, text: &str| HeaderValue::from_str(text).map_err(|_| ClientError::Header { field });
    let mut headers = HeaderMap::new();
    headers.insert(
        "anthropic-version",
        value("api-version", &config.api_version)?,
    );
    if !config.betas.is_empty() {
        headers.insert("anthropic-beta", value("betas", &config.betas.join(","))?);
    }
    if let Some(credentials) = &config.credentials {
        let (name, value) = credentials.header()?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Classifies a transport error: nothing in it may carry the key, and reqwest's own message
/// is kept without the URL.
pub(crate) fn transport_failure(error: &reqwest::Error) -> Failure {
    let class = if error.is_timeout() {
        Class::Timeout
    } else {
        Class::Connect
    };
    let mut message = describe(error);
    if error.is_connect() {
        message = format!("connection failed: {message}");
    }
    Failure::new(class, message)
}

fn describe(error: &reqwest::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn timed_out(after: Duration) -> Failure {
    Failure::new(Class::Timeout, format!("no response within {after:?}"))
}

fn unreadable(status: StatusCode, meta: &ResponseMeta, error: &serde_json::Error) -> Failure {
    let mut failure = Failure::new(
        Class::ServerError,
        format!("unreadable response body: {error}"),
    )
    .with_status(status.as_u16());
    if let Some(request_id) = &meta.request_id {
        failure = failure.with_request_id(request_id.clone());
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_url_appends_the_path_once() {
        assert_eq!(
            messages_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/v1/messages"
        );
        assert_eq!(
            messages_url("https://gw.example/proxy/").unwrap(),
            "https://gw.example/proxy/v1/messages"
        );
    }

    #[test]
    fn bad_base_urls_are_named() {
        let err = messages_url("ftp://x").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid base-url \"ftp://x\": the scheme must be http or https"
        );
        assert!(
            messages_url("not a url")
                .unwrap_err()
                .to_string()
                .starts_with("invalid base-url \"not a url\"")
        );
    }

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
}
