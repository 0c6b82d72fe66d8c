//! Amazon Bedrock's Anthropic-native Messages endpoint, `{base}/anthropic/v1/messages`: the
//! same body and events as the Claude API, authenticated with a Bedrock API key
//! (`Authorization: Bearer KEY`) or a SigV4 signature for service `bedrock-mantle` over
//! exactly the bytes sent, as the official Python SDK's `AnthropicBedrockMantle` client does
//! (the reference for both). [`BedrockRoute`] holds its own HTTP client with no default
//! headers, so the Claude API's key never reaches Bedrock.
//!
//! Bedrock's answers carry `x-amzn-requestid`, not `request-id`; the reply's request id is
//! read from it (`ResponseMeta::from_headers`).
//!
//! Bedrock's errors carry no `retry-after` and no rate-limit headers: a 429
//! (`ThrottlingException`) is [`Class::RateLimited`], a 503 (`ServiceUnavailableException`)
//! or 529 [`Class::Overloaded`], and every message names Bedrock, so a 403 for a bad
//! signature or key reads as Bedrock's refusal, never the Claude API's.

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

use super::aws_chain::AwsChain;
use super::bedrock_auth::BedrockAuth;
use super::config::ClientConfig;
use super::config::messages_url_at;
use super::error::ClientError;
use super::platform::{self, PlatformError};
use super::sigv4::{Payload, RequestToSign, SigV4Signer};
use crate::api::json::Chunks;
use crate::api::{ResponseMeta, WireRequest};
use crate::engine::{Class, Failure};

/// The upstream name of Bedrock targets (`Target::via`).
pub const BEDROCK_UPSTREAM: &str = "bedrock";

/// The path under the base URL.
const PATH: &str = "/anthropic/v1/messages";

/// How requests to Bedrock are authenticated.
#[derive(Clone, Debug)]
enum Signing {
    /// `Authorization: Bearer KEY`, marked sensitive.
    ApiKey(HeaderValue),
    SigV4(Box<SigV4Signer>),
    /// SigV4 with whatever credentials the chain holds at the time of each request.
    Chain {
        chain: AwsChain,
        region: String,
    },
}

/// Where and how Bedrock is reached.
#[derive(Clone, Debug)]
pub(super) struct BedrockRoute {
    pub(super) http: reqwest::Client,
    pub(super) url: reqwest::Url,
    signing: Signing,
    api_version: String,
}

impl BedrockRoute {
    pub(super) fn new(
        base_url: &str,
        region: &str,
        auth: BedrockAuth,
        config: &ClientConfig,
    ) -> Result<Self, ClientError> {
        let url = messages_url_at(base_url, PATH)?;
        let signing = match auth {
            BedrockAuth::ApiKey(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| ClientError::Header {
                        field: "Bedrock API key",
                    })?;
                value.set_sensitive(true);
                Signing::ApiKey(value)
            }
            BedrockAuth::SigV4(credentials) => {
                Signing::SigV4(Box::new(SigV4Signer::bedrock(credentials, region)))
            }
            BedrockAuth::Chain(chain) => Signing::Chain {
                chain,
                region: region.to_owned(),
            },
        };
        let http = platform::http_client(config)?;
        Ok(Self {
            http,
            url,
            signing,
            api_version: config.api_version.clone(),
        })
    }

    /// The headers of one request carrying `body`: `content-type`, `anthropic-version` (the
    /// request's own, else the default), `anthropic-beta` (the configured betas and the
    /// request's), and the key (`authorization: Bearer`) or the signature over them, `host`
    /// and the body.
    pub(super) async fn headers(
        &self,
        request: &WireRequest,
        betas: &[String],
        body: &Chunks,
        at: Duration,
    ) -> Result<HeaderMap, Failure> {
        let invalid = |what: &str| Failure::new(Class::Invalid, format!("Bedrock: {what}"));
        let mut headers =
            platform::common_headers("Bedrock", request, betas, Some(&self.api_version))?;
        let from_chain;
        let signer = match &self.signing {
            Signing::ApiKey(bearer) => {
                headers.insert(header::AUTHORIZATION, bearer.clone());
                return Ok(headers);
            }
            Signing::SigV4(signer) => signer,
            Signing::Chain { chain, region } => {
                let credentials = chain.current().await.map_err(|error| {
                    // The profile's credential_process or file failed: Bedrock cannot be
                    // reached with credentials for now, as for a refused connection.
                    Failure::new(
                        Class::Connect,
                        format!("Bedrock: no AWS credentials: {error}"),
                    )
                })?;
                from_chain = Box::new(SigV4Signer::bedrock(credentials, region.clone()));
                &from_chain
            }
        };
        let hash = sha256_hex(body);
        let to_sign = RequestToSign {
            method: "POST",
            url: self.url.as_str(),
            headers: &headers,
            payload: Payload::Sha256Hex(&hash),
        };
        let signed = signer
            .sign(&to_sign, at)
            .map_err(|error| invalid(&error.to_string()))?;
        headers.extend(signed);
        Ok(headers)
    }
}

fn sha256_hex(body: &Chunks) -> String {
    let mut hasher = Sha256::new();
    for part in body.parts() {
        hasher.update(part);
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The failure for Bedrock's error response: its class by Bedrock's statuses, its message
/// (`message`, or the Claude API's `error.message`) prefixed with `Bedrock`. A 401 or 403 is
/// Bedrock refusing breakwater's own credentials, not the caller's request: the target is
/// unusable for now ([`Class::ServerError`]: the request moves on down its chain, the
/// target's breaker hears of it), and the message says what to fix.
pub(super) fn failure(status: u16, meta: &ResponseMeta, body: &[u8]) -> Failure {
    let error = PlatformError::read(body, &["/message", "/error/message"]);
    let text = &error.text;
    let (class, message) = match status {
        429 => (
            Class::RateLimited,
            format!("Bedrock throttled the request: {text}"),
        ),
        503 | 529 => (Class::Overloaded, format!("Bedrock is unavailable: {text}")),
        401 | 403 => (
            Class::ServerError,
            format!("Bedrock refused the credentials or the signature (HTTP {status}): {text}"),
        ),
        _ => (error.api_class(status), format!("Bedrock: {text}")),
    };
    error.failure(class, message, status, meta)
}

#[cfg(test)]
mod tests {
    use super::super::credentials::Secret;
    use super::super::sigv4::AwsCredentials;
    use super::*;

    fn meta() -> ResponseMeta {
        ResponseMeta::from_headers(&HeaderMap::new(), Duration::ZERO)
    }

    async fn headers_with(auth: BedrockAuth) -> HeaderMap {
        let route = BedrockRoute::new(
            "https://bedrock-mantle.us-east-1.api.aws",
            "us-east-1",
            auth,
            &ClientConfig::default(),
        )
        .unwrap();
        let body = br#"{"model":"claude-x","max_tokens":8,"messages":[]}"#;
        let request = WireRequest::from_json(bytes::Bytes::from_static(body)).unwrap();
        let chunks = Chunks::from(bytes::Bytes::from_static(body));
        route
            .headers(&request, &[], &chunks, Duration::from_secs(1_700_000_000))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_api_key_goes_as_a_sensitive_bearer_token_as_the_sdk_sends_it() {
        let headers = headers_with(BedrockAuth::ApiKey(Secret::new("bedrock-api-key"))).await;
        assert_eq!(headers["authorization"], "Bearer bedrock-api-key");
        assert!(headers["authorization"].is_sensitive());
        assert!(headers.get("x-api-key").is_none(), "{headers:?}");
        assert!(!format!("{headers:?}").contains("bedrock-api-key"));
    }

    #[tokio::test]
    async fn signatures_are_scoped_to_the_bedrock_mantle_service_as_the_sdks() {
        let credentials = AwsCredentials::new("AKIDEXAMPLE", Secret::new("secret"), None);
        let headers = headers_with(BedrockAuth::SigV4(credentials)).await;
        let auth = headers["authorization"].to_str().unwrap();
        assert!(
            auth.contains("/us-east-1/bedrock-mantle/aws4_request"),
            "{auth}"
        );
        assert!(headers.get("x-api-key").is_none());
    }

    #[test]
    fn bedrock_statuses_are_classified_by_bedrock_rules() {
        let body = br#"{"message":"Too many requests, please wait before trying again."}"#;
        let throttled = failure(429, &meta(), body);
        assert_eq!(throttled.class(), Class::RateLimited);
        assert!(throttled.message().contains("Too many requests"));
        assert_eq!(failure(503, &meta(), b"{}").class(), Class::Overloaded);
        assert_eq!(failure(529, &meta(), b"").class(), Class::Overloaded);
        let denied = failure(
            403,
            &meta(),
            br#"{"message":"The request signature we calculated does not match"}"#,
        );
        assert_eq!(
            denied.class(),
            Class::ServerError,
            "breakwater's credentials, not the caller's request"
        );
        assert!(
            denied.message().starts_with("Bedrock refused"),
            "{}",
            denied.message()
        );
        assert_eq!(failure(500, &meta(), b"oops").class(), Class::ServerError);
    }
}
