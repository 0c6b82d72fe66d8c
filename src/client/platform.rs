//! What the Bedrock and Vertex AI routes share: the headers every request carries, the HTTP
//! client of their own (no default headers, so the Claude API's key never leaves for another
//! platform), and the shape of their error answers ([`PlatformError`]).

use http::{HeaderMap, HeaderValue, header};

use super::config::ClientConfig;
use super::error::ClientError;
use crate::api::{self, ResponseMeta, WireRequest};
use crate::engine::{Class, Failure};

/// An HTTP client for one platform: the configured connect timeout and user agent, nothing
/// else.
pub(super) fn http_client(config: &ClientConfig) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("breakwater/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ClientError::Build)
}

/// `content-type`, `anthropic-version` (the request's own, else `default_version`; none when
/// `default_version` is `None` and the request has none) and `anthropic-beta` (the configured
/// `betas` and the request's). A value HTTP cannot carry is [`Class::Invalid`], named for
/// `platform`.
pub(super) fn common_headers(
    platform: &str,
    request: &WireRequest,
    betas: &[String],
    default_version: Option<&str>,
) -> Result<HeaderMap, Failure> {
    let invalid = |what: &str| Failure::new(Class::Invalid, format!("{platform}: {what}"));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(version) = request.headers().version.as_deref().or(default_version) {
        let version = HeaderValue::from_str(version)
            .map_err(|_| invalid("anthropic-version is not a valid header value"))?;
        headers.insert("anthropic-version", version);
    }
    let beta = api::merge_betas(betas, request.headers().beta.as_deref());
    if !beta.is_empty() {
        let beta = HeaderValue::from_str(&beta)
            .map_err(|_| invalid("anthropic-beta is not a valid header value"))?;
        headers.insert("anthropic-beta", beta);
    }
    Ok(headers)
}

/// A platform's error answer, read: its message (the platform's own, or the Claude API's
/// `error.message`, else the body's first 200 bytes), the Claude API's `error.type` when the
/// model's own error came through, and Google's `error.status`.
pub(super) struct PlatformError {
    pub(super) text: String,
    pub(super) error_type: Option<String>,
    /// Google's `error.status` (`RESOURCE_EXHAUSTED`, `UNAUTHENTICATED`...), when there.
    pub(super) google_status: Option<String>,
}

impl PlatformError {
    /// Reads `body`, taking the message from the first of `message_paths` (JSON pointers)
    /// that holds a string.
    pub(super) fn read(body: &[u8], message_paths: &[&str]) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let at = |path: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.pointer(path))
                .and_then(|v| v.as_str())
        };
        let text = message_paths.iter().find_map(|path| at(path)).map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            str::to_owned,
        );
        Self {
            text,
            error_type: at("/error/type").map(str::to_owned),
            google_status: at("/error/status").map(str::to_owned),
        }
    }

    /// The failure: `class` and `message` for the answer with `status`, its request id and
    /// limits, and the error type read.
    pub(super) fn failure(
        &self,
        class: Class,
        message: String,
        status: u16,
        meta: &ResponseMeta,
    ) -> Failure {
        let mut failure = api::answered(class, message, status, meta.request_id.as_deref())
            .with_limits(meta.limits);
        if let Some(kind) = &self.error_type {
            failure = failure.with_error_type(kind);
        }
        failure
    }

    /// The class of any status a platform does not give a meaning of its own: as the Claude
    /// API's, by the error type that came through.
    pub(super) fn api_class(&self, status: u16) -> Class {
        let kind = self.error_type.as_deref().map(api::ErrorType::from);
        api::classify(status, kind.as_ref())
    }
}
