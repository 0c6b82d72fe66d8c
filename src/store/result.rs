//! [`ItemResult`]: a final result as the store keeps it, in the Message Batches API's `result`
//! shape (`{"type":"succeeded","message":...}` or `{"type":"errored","error":...}`). The
//! batch runner writes it to its output file as it is; the runtime's deferred requests read
//! it back into a ticket's status.

use crate::api::{Message, WireMessage};

/// A result as the store keeps it and the batch output writes it: the Message Batches API's
/// `result` object (`type` first).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ItemResult {
    /// Answered.
    Succeeded {
        /// The answer.
        message: Message,
    },
    /// Refused for good.
    Errored {
        /// Why.
        error: ErrorDetail,
    },
}

/// An errored result's error.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ErrorDetail {
    /// The API's `error.type`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Its message.
    pub(crate) message: String,
}

impl ItemResult {
    /// A succeeded result holding the answer as the upstream sent it (not re-serialized,
    /// so its numbers and key order reach the output unchanged).
    pub(crate) fn succeeded_json(message: &WireMessage) -> String {
        let message = message.bytes();
        format!(
            "{{\"type\":\"succeeded\",\"message\":{}}}",
            String::from_utf8_lossy(&message)
        )
    }

    /// An errored result of this `error.type` and message, as JSON text.
    pub(crate) fn errored_json(kind: &str, message: &str) -> String {
        let error = ErrorDetail {
            kind: kind.to_owned(),
            message: message.to_owned(),
        };
        serde_json::to_string(&ItemResult::Errored { error }).unwrap_or_default()
    }
}
