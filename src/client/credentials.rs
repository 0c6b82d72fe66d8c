//! API credentials, kept out of every `Debug`, `Display`, log line and error message.

use std::fmt;

use http::{HeaderName, HeaderValue, header};

use super::env::non_empty_env;
use super::error::ClientError;

/// A secret string. Its `Debug` and `Display` print `***`; only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Call it only to put the secret on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// An API key, sent as `x-api-key`.
    ApiKey(Secret),
    /// An OAuth or gateway token, sent as `Authorization: Bearer`.
    Bearer(Secret),
}

impl Credentials {
    /// `ANTHROPIC_API_KEY` if set and not empty, else `ANTHROPIC_AUTH_TOKEN`, else `None`.
    pub fn from_env() -> Option<Self> {
        non_empty_env("ANTHROPIC_API_KEY")
            .map(|key| Credentials::ApiKey(Secret::new(key)))
            .or_else(|| {
                non_empty_env("ANTHROPIC_AUTH_TOKEN").map(|t| Credentials::Bearer(Secret::new(t)))
            })
    }

    /// The header that carries these credentials, marked sensitive so that HTTP libraries
    /// redact it too.
    pub(crate) fn header(&self) -> Result<(HeaderName, HeaderValue), ClientError> {
        let (name, text) = match self {
            Credentials::ApiKey(key) => (
                HeaderName::from_static("x-api-key"),
                key.expose().to_owned(),
            ),
            Credentials::Bearer(token) => {
                (header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| ClientError::Header {
            field: "credentials",
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_secret() {
        let credentials = Credentials::ApiKey(Secret::new("sk-ant-very-secret"));
        assert_eq!(format!("{credentials:?}"), "ApiKey(***)");
        assert_eq!(Secret::new("sk-ant-very-secret").to_string(), "***");
    }

    #[test]
    fn bearer_is_sent_as_authorization() {
        let (name, value) = Credentials::Bearer(Secret::new("tok")).header().unwrap();
        assert_eq!(name, header::AUTHORIZATION);
        assert_eq!(value.to_str().unwrap(), "Bearer tok");
        assert!(value.is_sensitive());
    }

    #[test]
    fn a_key_that_cannot_be_a_header_does_not_echo_the_key() {
        let err = Credentials::ApiKey(Secret::new("sk\nsecret"))
            .header()
            .unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
