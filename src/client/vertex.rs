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
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};

use super::config::{ClientConfig, messages_url_at};
use super::credentials::Secret;
use super::env::non_empty_env;
use super::error::ClientError;
use super::platform::{self, PlatformError};
use crate::api::json;
use crate::api::{ResponseMeta, WireRequest};
use crate::engine::{Class, Failure};

/// The upstream name of Vertex AI targets (`Target::via`).
pub const VERTEX_UPSTREAM: &str = "vertex";

/// The `anthropic_version` Vertex AI documents for the body, sent when the caller names no
/// API version of its own.
pub const VERTEX_BODY_VERSION: &str = "vertex-2023-10-16";

/// The OAuth scope Vertex AI's prediction calls need.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The longest a token may take to come (gcp_auth's own HTTP client has no timeout).
const TOKEN_WITHIN: Duration = Duration::from_secs(10);

/// The longest the Google chain may take to find credentials at start (the metadata server's
/// probe included).
const DISCOVER_WITHIN: Duration = Duration::from_secs(30);

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
        let found = tokio::time::timeout(DISCOVER_WITHIN, gcp_auth::provider())
            .await
            .unwrap_or_else(|_| {
                Err(gcp_auth::Error::Str(
                    "no answer from the Google credential chain within 30s",
                ))
            });
        let provider = found.map_err(|error| {
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
            VertexAuth::Provider(provider) => {
                // The token service could not be reached, took too long, or refused the
                // credentials: the platform cannot be reached for now, as for a refused
                // connection.
                let cannot = |why: String| {
                    Failure::new(
                        Class::Connect,
                        format!("Vertex AI: cannot get an access token: {why}"),
                    )
                };
                match tokio::time::timeout(TOKEN_WITHIN, provider.token(&[SCOPE])).await {
                    Ok(Ok(token)) => Ok(Secret::new(token.as_str())),
                    Ok(Err(error)) => Err(cannot(error.to_string())),
                    Err(_) => Err(cannot(format!(
                        "no answer within {}s",
                        TOKEN_WITHIN.as_secs()
                    ))),
                }
            }
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
        let http = platform::http_client(config)?;
        Ok(Self {
            http,
            models_url,
            auth,
        })
    }

    /// The `anthropic_version` to put in the body of `request`, `None` when the body has
    /// its own (kept, as the official SDK keeps it): the version the caller asked for in
    /// `anthropic-version`, so a fallback to Vertex AI answers by the same API version, else
    /// [`VERTEX_BODY_VERSION`], the one Vertex AI documents.
    pub(super) fn body_version(request: &WireRequest) -> Option<&str> {
        let body = request.body();
        let has_own = json::root(body)
            .and_then(|object| json::members(body, object))
            .is_ok_and(|members| members.iter().any(|m| m.is("anthropic_version")));
        if has_own {
            return None;
        }
        Some(
            request
                .headers()
                .version
                .as_deref()
                .unwrap_or(VERTEX_BODY_VERSION),
        )
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

    /// The headers of one request: `content-type`, `anthropic-beta` (the configured betas
    /// and the request's) and the bearer token. No `anthropic-version`: on Vertex AI the
    /// version is the body's `anthropic_version` (see [`VertexRoute::body_version`]), and the
    /// official SDK sends no header.
    pub(super) async fn headers(
        &self,
        request: &WireRequest,
        betas: &[String],
    ) -> Result<HeaderMap, Failure> {
        let invalid = |what: &str| Failure::new(Class::Invalid, format!("Vertex AI: {what}"));
        let mut headers = platform::common_headers("Vertex AI", request, betas, None)?;
        headers.remove("anthropic-version");
        let token = self.auth.token().await?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| invalid("the access token is not a valid header value"))?;
        bearer.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, bearer);
        Ok(headers)
    }
}

/// The failure for Vertex AI's error response: its class by Vertex's statuses, its message
/// (Google's `error.message` and `error.status`, or the Claude API's) prefixed with
/// `Vertex AI`. A 401 or 403 is Vertex AI refusing breakwater's own token, not the caller's
/// request: the target is unusable for now ([`Class::ServerError`]: the request moves on down
/// its chain, the target's breaker hears of it), and the message says what to fix.
pub(super) fn failure(status: u16, meta: &ResponseMeta, body: &[u8]) -> Failure {
    let error = PlatformError::read(body, &["/error/message"]);
    let text = match &error.google_status {
        Some(kind) => format!("{kind}: {}", error.text),
        None => error.text.clone(),
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
            Class::ServerError,
            format!(
                "Vertex AI refused breakwater's access token (HTTP 401: expired, revoked or not \
                 a token; a token given in {VERTEX_TOKEN_ENV} is never refreshed): {text}"
            ),
        ),
        403 => (
            Class::ServerError,
            format!(
                "Vertex AI denied breakwater's credentials (HTTP 403: they need \
                 aiplatform.endpoints.predict on the project): {text}"
            ),
        ),
        _ => (error.api_class(status), format!("Vertex AI: {text}")),
    };
    error.failure(class, message, status, meta)
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
        assert_eq!(expired.class(), Class::ServerError);
        assert!(
            expired
                .message()
                .starts_with("Vertex AI refused breakwater's access token"),
            "{}",
            expired.message()
        );
        assert!(expired.message().contains("UNAUTHENTICATED"));
        assert_eq!(failure(403, &meta(), b"{}").class(), Class::ServerError);
        assert_eq!(failure(500, &meta(), b"oops").class(), Class::ServerError);
    }

    #[test]
    fn the_body_version_is_the_callers_else_vertexs_and_a_bodys_own_is_kept() {
        let request = |body: &'static str| {
            WireRequest::from_json(bytes::Bytes::from_static(body.as_bytes())).unwrap()
        };
        let plain = r#"{"model":"m","max_tokens":1,"messages":[]}"#;
        assert_eq!(
            VertexRoute::body_version(&request(plain)),
            Some(VERTEX_BODY_VERSION)
        );
        let versioned = request(plain).with_headers(crate::api::RequestHeaders {
            version: Some("2026-10-21".into()),
            ..Default::default()
        });
        assert_eq!(VertexRoute::body_version(&versioned), Some("2026-10-21"));
        let own =
            r#"{"model":"m","anthropic_version":"vertex-2023-10-16","max_tokens":1,"messages":[]}"#;
        assert_eq!(VertexRoute::body_version(&request(own)), None);
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
