//! The API's error body and its `error.type`, with an unknown fallback so new types parse.
//!
//! Classification matches on [`ErrorType`] and the status, never on the message text, which
//! changes without notice.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// An error response body: `{"type": "error", "error": {...}, "request_id": "req_..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The object type, always `"error"`. Default: `"error"`.
    #[serde(rename = "type", default = "error_kind")]
    pub kind: String,
    /// The error itself.
    pub error: ApiError,
    /// The request id, when the API included it (older responses do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn error_kind() -> String {
    "error".to_owned()
}

impl ErrorBody {
    /// An error body of `kind` saying `message`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind: error_kind(),
            error: ApiError {
                kind,
                message: message.into(),
                details: None,
                extra: Map::new(),
            },
            request_id: None,
        }
    }

    /// Sets the body's request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }
}

/// The `error` object of an error body or of an in-stream `error` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of error.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// A human-readable description. Never match on it: it changes without notice.
    /// Default: "" (an error without one still has its type, and so its class).
    #[serde(default)]
    pub message: String,
    /// Machine-readable details (`{"error_code": "enforced_spend_limit_reached"}`): `None` when
    /// absent, `Some(Value::Null)` when sent as an explicit `null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub details: Option<Value>,
    /// Every other field, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// Keeps an explicit `null` distinct from an absent field, so it survives a round trip.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The API's `error.type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `invalid_request_error` (400, and other 4xx such as user-set spend limits).
    InvalidRequest,
    /// `authentication_error` (401).
    Authentication,
    /// `billing_error` (402).
    Billing,
    /// `permission_error` (403).
    Permission,
    /// `not_found_error` (404).
    NotFound,
    /// `conflict_error` (409).
    Conflict,
    /// `request_too_large` (413).
    RequestTooLarge,
    /// `rate_limit_error` (429).
    RateLimit,
    /// `api_error` (500).
    Api,
    /// `timeout_error` (504).
    Timeout,
    /// `overloaded_error` (529).
    Overloaded,
    /// A type this version does not know, kept verbatim.
    Unknown(String),
}

impl ErrorType {
    const KNOWN: [(ErrorType, &'static str, u16); 11] = [
        (Self::InvalidRequest, "invalid_request_error", 400),
        (Self::Authentication, "authentication_error", 401),
        (Self::Billing, "billing_error", 402),
        (Self::Permission, "permission_error", 403),
        (Self::NotFound, "not_found_error", 404),
        (Self::Conflict, "conflict_error", 409),
        (Self::RequestTooLarge, "request_too_large", 413),
        (Self::RateLimit, "rate_limit_error", 429),
        (Self::Api, "api_error", 500),
        (Self::Timeout, "timeout_error", 504),
        (Self::Overloaded, "overloaded_error", 529),
    ];

    /// The API's name for this type.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(name) => name,
            known => Self::KNOWN
                .iter()
                .find(|(k, ..)| k == known)
                .map_or("", |(_, name, _)| name),
        }
    }

    /// The status the API answers with for this type (500 for unknown types).
    pub fn default_status(&self) -> u16 {
        Self::KNOWN
            .iter()
            .find(|(k, ..)| k == self)
            .map_or(500, |(.., status)| *status)
    }
}

impl From<&str> for ErrorType {
    fn from(name: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(_, known, _)| *known == name)
            .map_or_else(|| Self::Unknown(name.to_owned()), |(kind, ..)| kind.clone())
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::from(name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_known_type_round_trips_through_its_name() {
        for (kind, name, status) in ErrorType::KNOWN {
            assert_eq!(ErrorType::from(name), kind);
            assert_eq!(kind.to_string(), name);
            assert_eq!(kind.default_status(), status);
        }
        let unknown = ErrorType::from("new_kind_error");
        assert_eq!(unknown, ErrorType::Unknown("new_kind_error".into()));
        assert_eq!(
            (unknown.as_str(), unknown.default_status()),
            ("new_kind_error", 500)
        );
    }

    #[test]
    fn new_builds_the_api_shape() {
        let body = ErrorBody::new(ErrorType::Overloaded, "Overloaded").with_request_id("req_1");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                   "request_id": "req_1"})
        );
    }

    #[test]
    fn an_error_without_a_message_keeps_its_type() {
        let raw = json!({"type": "error", "error": {"type": "overloaded_error"}});
        let body: ErrorBody = serde_json::from_value(raw).unwrap();
        assert_eq!(body.error.kind, ErrorType::Overloaded);
        assert_eq!(body.error.message, "");
    }

    #[test]
    fn explicit_null_details_survive() {
        let raw = json!({"type": "error", "error": {"type": "api_error", "message": "x", "details": null}});
        let body: ErrorBody = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(body.error.details, Some(Value::Null));
        assert_eq!(serde_json::to_value(&body).unwrap(), raw);
    }
}
