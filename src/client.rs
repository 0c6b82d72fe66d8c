//! The Claude Messages client: an [`Upstream`] over HTTP (the Claude API's attempts on hyper's
//! pooled client, `direct.rs`; Bedrock's, Vertex AI's, count_tokens and forwarded routes on
//! reqwest), and the only code in breakwater that touches the network.
//!
//! It makes exactly one attempt per call and classifies whatever happens into a [`Failure`]:
//! an error status by its status and `error.type`, a refused or reset connection as
//! [`Class::Connect`], a local timeout or a stalled stream as [`Class::Timeout`], an
//! unreadable body as [`Class::ServerError`]. Retrying is the engine's job, never the client's.
//!
//! [`Failure`]: crate::engine::Failure
//! [`Class::Connect`]: crate::engine::Class::Connect
//! [`Class::Timeout`]: crate::engine::Class::Timeout
//! [`Class::ServerError`]: crate::engine::Class::ServerError

mod attempt;
mod aws_chain;
mod bedrock;
mod bedrock_auth;
mod config;
mod count;
mod credentials;
mod direct;
mod env;
mod error;
mod forward;
mod platform;
mod prepare;
mod response;
mod roots;
mod route;
mod sigv4;
mod stream;
mod transport;
mod vertex;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::client::proxy::matcher::Matcher;

use crate::api::{WireEvent, WireMessage, WireRequest};
use crate::catalog::{AdaptMode, Catalog};
use crate::engine::policy::Cost;
use crate::engine::{EventStream, Outcome, Target, Upstream};
use crate::telemetry;

pub use aws_chain::AwsChain;
pub use bedrock::BEDROCK_UPSTREAM;
pub use bedrock_auth::BedrockAuth;
pub use config::{ClientConfig, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
pub use count::Forwarded;
pub use credentials::{Credentials, Secret};
pub(crate) use env::non_empty_env;
pub use error::ClientError;
pub use forward::{AnswerStream, ForwardStream};
pub use sigv4::{AwsCredentials, BEDROCK_SERVICE, Payload, RequestToSign, SigV4Error, SigV4Signer};
pub use vertex::{
    VERTEX_BODY_VERSION, VERTEX_TOKEN_ENV, VERTEX_UPSTREAM, VertexAuth, VertexAuthError,
};

/// The Claude Messages API as an [`Upstream`]. Cheap to clone; clones share its connection
/// pools.
#[derive(Clone, Debug)]
pub struct ClaudeClient {
    /// The other routes' client: count_tokens and forwarded requests, and the Messages
    /// attempts too when a proxy applies (see `direct`).
    http: reqwest::Client,
    /// The Messages API's own: every attempt at a target of the Claude API. `None` when a
    /// proxy from the environment applies to the API's URL: attempts then go through
    /// reqwest, which speaks to the proxy (`HTTPS_PROXY` and the like, `NO_PROXY`).
    direct: Option<direct::Direct>,
    messages_url: Arc<str>,
    request_timeout: Duration,
    read_timeout: Duration,
    /// Whether requests carry credentials of this client's own (see `forward`).
    authenticated: bool,
    /// The configured `anthropic-beta` flags; a request's own add to them.
    betas: Arc<[String]>,
    catalog: Arc<Catalog>,
    adapt: AdaptMode,
    config: Arc<ClientConfig>,
    bedrock: Option<Arc<bedrock::BedrockRoute>>,
    vertex: Option<Arc<vertex::VertexRoute>>,
}

impl ClaudeClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`ClientError`] naming the bad setting: an unparseable base URL, a header value
    /// HTTP cannot carry, or a `ca-file` that cannot be read or holds no certificate.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let messages_url = config::messages_url(&config.base_url)?;
        // No client-wide read timeout: reqwest's also runs while waiting for the response
        // headers, which for a non-streamed call only come once the whole generation is done.
        // `read_timeout` is a per-event stall on streams instead (see `stream::events`).
        let extra = match &config.ca_file {
            Some(path) => roots::extra(path)?,
            None => Vec::new(),
        };
        let mut http = reqwest::Client::builder()
            .default_headers(config::default_headers(config)?)
            .connect_timeout(config.connect_timeout)
            .user_agent(direct::USER_AGENT);
        for certificate in &extra {
            let certificate =
                reqwest::Certificate::from_der(certificate).map_err(ClientError::Build)?;
            http = http.add_root_certificate(certificate);
        }
        let http = http.build().map_err(ClientError::Build)?;
        let direct = if direct::proxied(&messages_url, &Matcher::from_system()) {
            None
        } else {
            Some(direct::Direct::new(config, &messages_url, &extra)?)
        };
        Ok(Self {
            http,
            direct,
            messages_url: messages_url.as_str().into(),
            request_timeout: config.request_timeout,
            read_timeout: config.read_timeout,
            authenticated: config.credentials.is_some(),
            betas: config.betas.iter().cloned().collect(),
            catalog: Catalog::builtin(),
            adapt: AdaptMode::default(),
            config: Arc::new(ClientConfig {
                credentials: None,
                ..config.clone()
            }),
            bedrock: None,
            vertex: None,
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

    /// The same client, also serving targets via [`BEDROCK_UPSTREAM`]: they go to
    /// `{base_url}/anthropic/v1/messages` (`base_url` as `https://bedrock-mantle.{region}.api.aws`),
    /// authenticated by `auth`, signatures scoped to `region`.
    ///
    /// # Errors
    ///
    /// [`ClientError::BaseUrl`] for a base URL that is not http(s), [`ClientError::Header`]
    /// for an API key that cannot be a header value.
    pub fn with_bedrock(
        mut self,
        base_url: &str,
        region: &str,
        auth: BedrockAuth,
    ) -> Result<Self, ClientError> {
        let route = bedrock::BedrockRoute::new(base_url, region, auth, &self.config)?;
        self.bedrock = Some(Arc::new(route));
        Ok(self)
    }

    /// The same client, also serving targets via [`VERTEX_UPSTREAM`]: they go to
    /// `{base_url}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/
    /// {model}:rawPredict` (`base_url` as `https://aiplatform.googleapis.com`), with a bearer
    /// token from `auth`.
    ///
    /// # Errors
    ///
    /// [`ClientError::BaseUrl`] for a base URL that is not http(s).
    pub fn with_vertex(
        mut self,
        base_url: &str,
        project: &str,
        region: &str,
        auth: VertexAuth,
    ) -> Result<Self, ClientError> {
        let route = vertex::VertexRoute::new(base_url, project, region, auth, &self.config)?;
        self.vertex = Some(Arc::new(route));
        Ok(self)
    }

    /// The model catalogue requests are adapted by.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The URL requests are posted to.
    pub fn messages_url(&self) -> &str {
        &self.messages_url
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
        let url = match (target.upstream(), &self.bedrock, &self.vertex) {
            (Some(BEDROCK_UPSTREAM), Some(bedrock), _) => bedrock.url.as_str(),
            (Some(VERTEX_UPSTREAM), _, Some(vertex)) => &vertex.models_url,
            _ => &self.messages_url,
        };
        telemetry::spans::attempt_span(parent, target, request, url)
    }
}

#[cfg(test)]
mod tests {
    use super::transport::transport;
    use super::*;
    use crate::engine::Class;

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

    #[tokio::test]
    async fn the_messages_pool_s_messages_never_carry_the_url_or_the_key() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let config = ClientConfig::default()
            .with_base_url(format!("http://user:pw-marker@{addr}/path-marker"))
            .with_credentials(Credentials::ApiKey(Secret::new("sk-marker")));
        let client = ClaudeClient::new(&config).unwrap();
        let request = WireRequest::from_json(bytes::Bytes::from_static(
            br#"{"model":"m","max_tokens":1,"messages":[]}"#,
        ))
        .unwrap();
        let failure = client.send(&Target::new("m"), &request).await.unwrap_err();
        assert_eq!(failure.class(), Class::Connect, "{failure}");
        let message = failure.message();
        assert!(message.starts_with("connection failed: "), "{message}");
        for marker in ["path-marker", "pw-marker", "sk-marker", "/v1/messages"] {
            assert!(!message.contains(marker), "{message}");
        }
    }
}
