//! Google Cloud Vertex AI's Claude endpoint: `POST {base}/v1/projects/{project}/locations/
//! {region}/publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict` for a stream),
//! the model in the URL and not in the body, the body carrying `anthropic_version`
//! (`vertex-2023-10-16`), authenticated with an OAuth access token as `Authorization: Bearer`.
//! [`VertexRoute`] holds its own HTTP client with no default headers, so the Claude API's key
//! never reaches Google.
//!
//! Tokens come from [`VertexAuth`]: a ready token (`GOOGLE_OAUTH_ACCESS_TOKEN`, never
//! refreshed), or a `gcp_auth` provider (a service-account file, gcloud's application-default
//! credentials, the metadata server, the gcloud CLI) that caches each token and fetches the
//! next 20 s before it expires.
//!
//! Vertex's own errors are Google's (`{"error": {"code", "message", "status"}}`), the model's
//! are the Claude API's; neither carries `retry-after` or rate-limit headers. A 429
//! (`RESOURCE_EXHAUSTED`) is [`Class::RateLimited`], a 503 or 529 [`Class::Overloaded`], a 401
//! or 403 [`Class::Invalid`] naming Vertex AI and the token.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};

use super::config::{ClientConfig, messages_url_at};
use super::credentials::Secret;
use super::env::non_empty_env;
use super::error::ClientError;
use crate::api::{self, ResponseMeta, WireRequest};
use crate::engine::{Class, Failure};

/// The upstream name of Vertex AI targets (`Target::via`).
pub const VERTEX_UPSTREAM: &str = "vertex";

/// The `anthropic_version` Vertex AI requires in the body, unless configured otherwise.
pub const VERTEX_BODY_VERSION: &str = "vertex-2023-10-16";

/// The OAuth scope Vertex AI's prediction calls need.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The variable holding a ready access token.
pub const VERTEX_TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";

/// How requests to Vertex AI authenticate. `Debug` shows the kind, never a token.
#[derive(Clone)]
pub enum VertexAuth {
    /// A ready access token, sent as it is and never refreshed: when it expires, Vertex AI
    /// answers 401 until it is replaced.
    Token(Secret),
    /// Tokens from a `gcp_auth` provider, fetched when first needed and again shortly before
    /// each expires.
    Provider(Arc<dyn gcp_auth::TokenProvider>),
}

impl fmt::Debug for VertexAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VertexAuth::Token(_) => f.write_str("VertexAuth::Token(***)"),
            VertexAuth::Provider(_) => f.write_str("VertexAuth::Provider"),
        }
    }
}

/// Why no Vertex AI credentials could be set up.
#[derive(Debug, thiserror::Error)]
#[error("Vertex AI credentials: {0}")]
pub struct VertexAuthError(String);

impl VertexAuth {
    /// A ready token from `GOOGLE_OAUTH_ACCESS_TOKEN`, when set.
    pub fn from_env() -> Option<Self> {
        non_empty_env(VERTEX_TOKEN_ENV).map(|token| VertexAuth::Token(Secret::new(token)))
    }

    /// Tokens for the service account whose key file is at `path` (the JSON file Google
    /// Cloud issues), fetched from the file's `token_uri`.
    ///
    /// # Errors
    /// [`VertexAuthError`] naming the file and what is wrong with it.
    pub fn service_account_file(path: &Path) -> Result<Self, VertexAuthError> {
        let account = gcp_auth::CustomServiceAccount::from_file(path).map_err(|error| {
            VertexAuthError(format!(
                "cannot read the service-account file {}: {error}",
                path.display()
            ))
        })?;
        Ok(VertexAuth::Provider(Arc::new(account)))
    }

    /// The standard Google chain: `GOOGLE_APPLICATION_CREDENTIALS` (a service-account file),
    /// gcloud's application-default credentials, the metadata server, the gcloud CLI.
    ///
    /// # Errors
    /// [`VertexAuthError`] when none of them gives credentials.
    pub async fn discover() -> Result<Self, VertexAuthError> {
        let provider = gcp_auth::provider().await.map_err(|error| {
            VertexAuthError(format!(
                "none found ({error}): set {VERTEX_TOKEN_ENV} to an access token, or \
                 GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run \
                 `gcloud auth application-default login`"
            ))
        })?;
        Ok(VertexAuth::Provider(provider))
    }

    /// The token to send now.
    async fn token(&self) -> Result<Secret, Failure> {
        match self {
            VertexAuth::Token(token) => Ok(token.clone()),
            VertexAuth::Provider(provider) => match provider.token(&[SCOPE]).await {
                Ok(token) => Ok(Secret::new(token.as_str())),
                // The token service could not be reached or refused the credentials: the
                // platform cannot be reached for now, as for a refused connection.
                Err(error) => Err(Failure::new(
                    Class::Connect,
                    format!("Vertex AI: cannot get an access token: {error}"),
                )),
            },
        }
    }
}

/// Where and how Vertex AI is reached.
#[derive(Clone, Debug)]
pub(super) struct VertexRoute {
    pub(super) http: reqwest::Client,
    /// `{base}/v1/projects/{project}/locations/{region}/publishers/anthropic/models`.
    pub(super) models_url: String,
    auth: VertexAuth,
    body_version: String,
    api_version: String,
}

impl VertexRoute {
    pub(super) fn new(
        base_url: &str,
        project: &str,
        region: &str,
        auth: VertexAuth,
        config: &ClientConfig,
    ) -> Result<Self, ClientError> {
        let path = format!("/v1/projects/{project}/locations/{region}/publishers/anthropic/models");
        let models_url = messages_url_at(base_url, &path)?.to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("breakwater/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            models_url,
            auth,
            body_version: VERTEX_BODY_VERSION.to_owned(),
            api_version: config.api_version.clone(),
        })
    }

    /// The `anthropic_version` the body carries.
    pub(super) fn body_version(&self) -> &str {
        &self.body_version
    }

    /// The URL of one call to `model` (its Vertex id): `:rawPredict`, or `:streamRawPredict`.
    pub(super) fn url(&self, model: &str, stream: bool) -> Result<reqwest::Url, Failure> {
        let valid = !model.is_empty()
            && model
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
        if !valid {
            return Err(Failure::new(
                Class::Invalid,
                format!("Vertex AI: {model:?} cannot be a model id in a URL"),
            ));
        }
        let method = if stream {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        reqwest::Url::parse(&format!("{}/{model}:{method}", self.models_url)).map_err(|error| {
            Failure::new(
                Class::Invalid,
                format!("Vertex AI: bad URL for {model}: {error}"),
            )
        })
    }

    /// The headers of one request: `content-type`, `anthropic-version` (the request's own,
    /// else the default), `anthropic-beta` (the configured betas and the request's), and the
    /// bearer token.
    pub(super) async fn headers(
        &self,
        request: &WireRequest,
        betas: &[String],
    ) -> Result<HeaderMap, Failure> {
        let invalid = |what: &str| Failure::new(Class::Invalid, format!("Vertex AI: {what}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let version = request
            .headers()
            .version
            .as_deref()
            .unwrap_or(&self.api_version);
        let version = HeaderValue::from_str(version)
            .map_err(|_| invalid("anthropic-version is not a valid header value"))?;
        headers.insert("anthropic-version", version);
        let beta = api::merge_betas(betas, request.headers().beta.as_deref());
        if !beta.is_empty() {
            let beta = HeaderValue::from_str(&beta)
                .map_err(|_| invalid("anthropic-beta is not a valid header value"))?;
            headers.insert("anthropic-beta", beta);
        }
        let token = self.auth.token().await?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| invalid("the access token is not a valid header value"))?;
        bearer.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, bearer);
        Ok(headers)
    }
}

/// The failure for Vertex AI's error response: its class by Vertex's statuses, its message
/// (Google's `error.message`, or the Claude API's) prefixed with `Vertex AI`.
pub(super) fn failure(status: u16, meta: &ResponseMeta, body: &[u8]) -> Failure {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    // The Claude API's errors have a string `type`; Google's a string `status`.
    let error_type = error.and_then(|e| e.get("type")).and_then(|t| t.as_str());
    let google_status = error.and_then(|e| e.get("status")).and_then(|t| t.as_str());
    let text = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            str::to_owned,
        );
    let text = match google_status {
        Some(kind) => format!("{kind}: {text}"),
        None => text,
    };
    let (class, message) = match status {
        429 => (
            Class::RateLimited,
            format!("Vertex AI refused the request for quota: {text}"),
        ),
        503 | 529 => (
            Class::Overloaded,
            format!("Vertex AI is unavailable: {text}"),
        ),
        401 => (
            Class::Invalid,
            format!(
                "Vertex AI refused the access token (HTTP 401; expired, revoked or not a \
                 token: {VERTEX_TOKEN_ENV} is never refreshed): {text}"
            ),
        ),
        403 => (
            Class::Invalid,
            format!(
                "Vertex AI denied the caller (HTTP 403; it needs aiplatform.endpoints.predict on the project): {text}"
            ),
        ),
        _ => (
            api::classify(status, error_type.map(api::ErrorType::from).as_ref()),
            format!("Vertex AI: {text}"),
        ),
    };
    let mut failure =
        api::answered(class, message, status, meta.request_id.as_deref()).with_limits(meta.limits);
    if let Some(kind) = error_type {
        failure = failure.with_error_type(kind);
    }
    failure
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn meta() -> ResponseMeta {
        ResponseMeta::from_headers(&HeaderMap::new(), Duration::ZERO)
    }

    #[test]
    fn vertex_statuses_are_classified_by_vertex_rules() {
        let quota = br#"{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model","status":"RESOURCE_EXHAUSTED"}}"#;
        let throttled = failure(429, &meta(), quota);
        assert_eq!(throttled.class(), Class::RateLimited);
        assert!(
            throttled
                .message()
                .contains("RESOURCE_EXHAUSTED: Quota exceeded")
        );
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let overloaded = failure(529, &meta(), overloaded);
        assert_eq!(overloaded.class(), Class::Overloaded);
        assert_eq!(overloaded.error_type(), Some("overloaded_error"));
        assert_eq!(failure(503, &meta(), b"").class(), Class::Overloaded);
        let expired = br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        let expired = failure(401, &meta(), expired);
        assert_eq!(expired.class(), Class::Invalid);
        assert!(
            expired
                .message()
                .starts_with("Vertex AI refused the access token"),
            "{}",
            expired.message()
        );
        assert!(expired.message().contains("UNAUTHENTICATED"));
        assert_eq!(failure(403, &meta(), b"{}").class(), Class::Invalid);
        assert_eq!(failure(500, &meta(), b"oops").class(), Class::ServerError);
    }

    #[test]
    fn model_ids_go_into_the_url_and_nothing_else_does() {
        let route = VertexRoute::new(
            "https://aiplatform.googleapis.com",
            "my-project",
            "global",
            VertexAuth::Token(Secret::new("t")),
            &ClientConfig::default(),
        )
        .unwrap();
        assert_eq!(
            route
                .url("claude-haiku-4-5@20251001", false)
                .unwrap()
                .as_str(),
            "https://aiplatform.googleapis.com/v1/projects/my-project/locations/global/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict"
        );
        assert!(
            route
                .url("claude-opus-5-5", true)
                .unwrap()
                .as_str()
                .ends_with("/models/claude-opus-5-5:streamRawPredict")
        );
        for bad in ["", "a/b", "a?b", "../x", "a b"] {
            let error = route.url(bad, false).unwrap_err();
            assert_eq!(error.class(), Class::Invalid, "{bad}");
        }
        assert_eq!(
            format!("{:?}", VertexAuth::Token(Secret::new("ya29.secret"))),
            "VertexAuth::Token(***)"
        );
    }
}
