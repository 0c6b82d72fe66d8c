//! How the client reaches the API ([`ClientConfig`]), what is wrong when it cannot
//! ([`ClientError`]), and the checks that turn a config into a URL and default headers.
//!
//! Nothing here may echo a secret: credentials only ever become sensitive header values, and
//! a base URL's userinfo is redacted before it appears in an error.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::credentials::Credentials;
use super::env::non_empty_env;
use super::error::ClientError;

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
    /// Time allowed for a whole non-streamed response, headers and body, however long the
    /// model takes to generate it; for a streamed response, time allowed until its status and
    /// headers arrive. Default: 10m (the official SDKs' default).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest silence allowed between two events of a streamed body (pings count); a stall
    /// ends the stream with a [`Class::Timeout`](crate::engine::Class::Timeout) failure.
    /// Not applied to non-streamed responses, whose body only arrives once generation is
    /// done: [`request_timeout`](Self::request_timeout) bounds those. Default: 60s.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Count each request's input tokens with `POST /v1/messages/count_tokens` before it is
    /// sent, for pacing against the token rate limits, instead of estimating them at four
    /// characters a token. Costs one extra round trip per request; a count that fails or
    /// takes over a second falls back to the estimate. Default: false.
    pub count_tokens: bool,
    /// A PEM file of root certificates trusted for the upstream on top of the public ones
    /// (the webpki roots): a TLS-inspecting proxy, a private gateway with its own CA.
    /// Read once, when the client is built. Default: none.
    pub ca_file: Option<PathBuf>,
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
            count_tokens: false,
            ca_file: None,
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

/// The URL requests are posted to: `base_url` + `/v1/messages`.
pub(super) fn messages_url(base_url: &str) -> Result<reqwest::Url, ClientError> {
    messages_url_at(base_url, "/v1/messages")
}

/// `path` (starting with `/`) under `base_url`, checked as [`messages_url`] checks it.
pub(super) fn messages_url_at(base_url: &str, path: &str) -> Result<reqwest::Url, ClientError> {
    let bad = |reason: &str| ClientError::BaseUrl {
        url: redact_userinfo(base_url),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(base_url).map_err(|error| bad(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment"));
    }
    let joined = format!("{}{path}", url.as_str().trim_end_matches('/'));
    reqwest::Url::parse(&joined).map_err(|error| bad(&error.to_string()))
}

/// `url` with everything before the authority's last `@` replaced by `***`. Works on the raw
/// text, so it also redacts URLs that do not parse.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_at(url.find("://").map_or(0, |at| at + 3));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The headers every request carries: version, betas and credentials.
pub(super) fn default_headers(config: &ClientConfig) -> Result<HeaderMap, ClientError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_url_appends_the_path_once() {
        assert_eq!(
            messages_url("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/v1/messages"
        );
        assert_eq!(
            messages_url("https://gw.example/proxy/").unwrap().as_str(),
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
    fn base_url_errors_never_echo_userinfo() {
        let err = messages_url("ftp://user:pass@host/x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid base-url \"ftp://***@host/x\": the scheme must be http or https"
        );
        let err = messages_url("https://user:pa ss@host?q=1").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid base-url \"https://***@host?q=1\""),
            "{text}"
        );
        assert!(!text.contains("pa ss") && !text.contains("user"), "{text}");
        assert_eq!(redact_userinfo("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact_userinfo("u:p@host"), "***@host");
    }
}
