//! AWS Signature Version 4 for Amazon Bedrock: the credentials ([`AwsCredentials`]) and a
//! [`SigV4Signer`] that signs one outgoing request (method, URL, the headers to sign, the body
//! or its SHA-256) with the `aws-sigv4` crate, returning the headers to add: `authorization`,
//! `x-amz-date` and, with temporary credentials, `x-amz-security-token`, the secret ones
//! marked sensitive.
//!
//! It lives in the client layer, beside [`Credentials`](super::Credentials), because it puts
//! credentials on the wire and nothing else does; the mock checks its signatures with a
//! verifier of its own written from the specification (`mock::sigv4`), never with this code.
//!
//! Signing needs the wall-clock time; it is a parameter (time since the Unix epoch, from
//! [`crate::wallclock::unix_now`] in production), so tests sign at a fixed instant.
//!
//! Secrets never show: [`AwsCredentials`]' `Debug` prints `***` for every field,
//! [`SigV4Error`] names what is wrong (a header, the URL) without any value, and the crate's
//! own trace events (which carry the canonical request) are silenced while it signs.

use std::fmt;
use std::time::Duration;

use aws_credential_types::Credentials as AwsCreds;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracing::subscriber::NoSubscriber;

use super::credentials::Secret;
use super::env::non_empty_env;
use crate::wallclock;

/// The SigV4 service name Bedrock's Anthropic-native endpoint (`bedrock-mantle.REGION.api.aws`)
/// is signed for, as the official Python SDK signs it (`AnthropicBedrockMantle`,
/// `DEFAULT_SERVICE_NAME`).
pub const BEDROCK_SERVICE: &str = "bedrock-mantle";

/// AWS credentials for SigV4: an access key pair and, for temporary credentials, a session
/// token. `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl AwsCredentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token,
        }
    }

    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (both set and not blank), with
    /// `AWS_SESSION_TOKEN` when set; `None` when either of the pair is missing.
    pub fn from_env() -> Option<Self> {
        let access_key_id = non_empty_env("AWS_ACCESS_KEY_ID")?;
        let secret = non_empty_env("AWS_SECRET_ACCESS_KEY")?;
        let token = non_empty_env("AWS_SESSION_TOKEN").map(Secret::new);
        Some(Self::new(access_key_id, Secret::new(secret), token))
    }

    /// The access key id. Not a secret by AWS's rules (it travels in the clear in every
    /// signature), but kept out of `Debug` all the same.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Whether these are temporary credentials, with a session token.
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &"***")
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// What is signed of a request's body.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// The body itself, hashed here.
    Bytes(&'a [u8]),
    /// The body's SHA-256, lowercase hex, hashed by the caller (for a body in chunks).
    Sha256Hex(&'a str),
}

/// One request to sign. Only `headers` are signed (with `host`, taken from `url`, and the
/// `x-amz-*` headers the signature adds), so headers a transport adds later (`user-agent`,
/// `content-length`) need not be known in advance.
#[derive(Clone, Copy, Debug)]
pub struct RequestToSign<'a> {
    /// The HTTP method, such as `POST`.
    pub method: &'a str,
    /// The absolute URL the request goes to, percent-encoded as it will be sent.
    pub url: &'a str,
    /// The headers to sign.
    pub headers: &'a HeaderMap,
    /// The body.
    pub payload: Payload<'a>,
}

/// Why a request could not be signed. Names the part at fault, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// A header to sign has a value that is not visible ASCII text.
    #[error("cannot sign header {name}: its value is not text")]
    Header {
        /// The header's name.
        name: String,
    },
    /// The signer rejected the request or its parameters (an unparseable URL, a region or
    /// service it cannot take).
    #[error("cannot sign the request: {reason}")]
    Signing {
        /// What is wrong, without any header value or credential.
        reason: &'static str,
    },
    /// The signature came out as something HTTP cannot carry (cannot happen with an access
    /// key id of visible ASCII).
    #[error("cannot sign the request: the signed {field} is not a valid HTTP header value")]
    Output {
        /// The header that could not be made.
        field: &'static str,
    },
}

/// Signs requests for one service in one region with one set of credentials. `Debug` shows
/// the region and service only.
#[derive(Clone)]
pub struct SigV4Signer {
    identity: Identity,
    credentials: AwsCredentials,
    region: String,
    service: String,
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("credentials", &self.credentials)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SigV4Signer {
    /// A signer for `service` (such as [`BEDROCK_SERVICE`]) in `region`.
    pub fn new(
        credentials: AwsCredentials,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        let identity = AwsCreds::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose(),
            credentials
                .session_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            None,
            "breakwater",
        )
        .into();
        Self {
            identity,
            credentials,
            region: region.into(),
            service: service.into(),
        }
    }

    /// A signer for Bedrock in `region`.
    pub fn bedrock(credentials: AwsCredentials, region: impl Into<String>) -> Self {
        Self::new(credentials, region, BEDROCK_SERVICE)
    }

    /// The region signatures are scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The credentials this signer signs with.
    pub fn credentials(&self) -> &AwsCredentials {
        &self.credentials
    }

    /// The headers that sign `request` at `at` (time since the Unix epoch): `authorization`,
    /// `x-amz-date` and, with a session token, `x-amz-security-token`. The secret ones are
    /// marked sensitive, so HTTP libraries redact them too.
    pub fn sign(&self, request: &RequestToSign<'_>, at: Duration) -> Result<HeaderMap, SigV4Error> {
        let mut pairs = Vec::with_capacity(request.headers.len());
        for (name, value) in request.headers {
            let text = value.to_str().map_err(|_| SigV4Error::Header {
                name: name.as_str().to_owned(),
            })?;
            pairs.push((name.as_str(), text));
        }
        let body = match request.payload {
            Payload::Bytes(bytes) => SignableBody::Bytes(bytes),
            Payload::Sha256Hex(hash) => SignableBody::Precomputed(hash.to_owned()),
        };
        let signable = SignableRequest::new(request.method, request.url, pairs.into_iter(), body)
            .map_err(|_| SigV4Error::Signing {
            reason: "the URL cannot be parsed",
        })?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(wallclock::system_time(at))
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| SigV4Error::Signing {
                reason: "incomplete signing parameters",
            })?
            .into();
        // aws-sigv4 traces the canonical request, session token included, and the access
        // key id: it signs with no subscriber, so none of that reaches a log or a trace.
        let signed =
            tracing::subscriber::with_default(NoSubscriber::default(), || sign(signable, &params));
        let (instructions, _signature) = signed
            .map_err(|_| SigV4Error::Signing {
                reason: "the request cannot be put in canonical form",
            })?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        let mut signed = HeaderMap::with_capacity(headers.len());
        for header in headers {
            let name = HeaderName::from_static(header.name());
            let mut value =
                HeaderValue::from_str(header.value()).map_err(|_| SigV4Error::Output {
                    field: header.name(),
                })?;
            value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
            signed.insert(name, value);
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn credentials(token: Option<&str>) -> AwsCredentials {
        AwsCredentials::new("AKIDEXAMPLE", Secret::new(SECRET), token.map(Secret::new))
    }

    #[test]
    fn debug_shows_no_credential() {
        let creds = credentials(Some("session-token-value"));
        for text in [
            format!("{creds:?}"),
            format!("{:?}", SigV4Signer::bedrock(creds.clone(), "us-east-1")),
        ] {
            for secret in [SECRET, "session-token-value", "AKIDEXAMPLE"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }

    #[test]
    fn the_aws_test_suite_get_vanilla_signature() {
        // AWS's SigV4 test suite, "get-vanilla": GET / at 20150830T123600Z, service
        // "service", region us-east-1.
        let signer = SigV4Signer::new(credentials(None), "us-east-1", "service");
        let headers = HeaderMap::new();
        let request = RequestToSign {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &headers,
            payload: Payload::Bytes(b""),
        };
        let signed = signer
            .sign(&request, Duration::from_secs(1_440_938_160))
            .unwrap();
        assert_eq!(signed["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            signed["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(signed["authorization"].is_sensitive());
    }

    #[test]
    fn a_session_token_is_sent_and_sensitive() {
        let signer = SigV4Signer::bedrock(credentials(Some("tok")), "us-west-2");
        let headers = HeaderMap::new();
        let request = RequestToSign {
            method: "POST",
            url: "https://bedrock-mantle.us-west-2.api.aws/anthropic/v1/messages",
            headers: &headers,
            payload: Payload::Bytes(b"{}"),
        };
        let signed = signer
            .sign(&request, Duration::from_secs(1_700_000_000))
            .unwrap();
        assert_eq!(signed["x-amz-security-token"], "tok");
        assert!(signed["x-amz-security-token"].is_sensitive());
        let auth = signed["authorization"].to_str().unwrap();
        assert!(
            auth.contains("/us-west-2/bedrock-mantle/aws4_request"),
            "{auth}"
        );
        assert!(auth.contains("x-amz-security-token"), "{auth}");
    }

    #[test]
    fn signing_traces_nothing_even_at_trace_level() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!("before");
            let signer = SigV4Signer::bedrock(credentials(Some("session-marker")), "us-east-1");
            let headers = HeaderMap::new();
            let request = RequestToSign {
                method: "POST",
                url: "https://bedrock-mantle.us-east-1.api.aws/anthropic/v1/messages",
                headers: &headers,
                payload: Payload::Bytes(b"{}"),
            };
            signer
                .sign(&request, Duration::from_secs(1_700_000_000))
                .unwrap();
        });
        let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("before"), "{logged}");
        assert!(!logged.contains("session-marker"), "{logged}");
        assert!(!logged.contains("AKIDEXAMPLE"), "{logged}");
    }

    #[test]
    fn errors_name_no_value() {
        let signer = SigV4Signer::bedrock(credentials(None), "us-east-1");
        let headers = HeaderMap::new();
        let request = RequestToSign {
            method: "POST",
            url: "not a url with secret-marker",
            headers: &headers,
            payload: Payload::Bytes(b""),
        };
        let error = signer
            .sign(&request, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret-marker"), "{error}");
        assert!(!error.contains(SECRET), "{error}");
    }
}
