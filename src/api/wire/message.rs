//! A complete answer as the upstream sent it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::api::response::Message;

/// A complete Messages answer: the upstream's bytes, checked to be a message, or a typed
/// [`Message`] (from the simulator or a test) serialized only when its bytes are asked for.
#[derive(Clone, PartialEq)]
pub struct WireMessage(Repr);

#[derive(Clone, PartialEq)]
enum Repr {
    Bytes(Bytes),
    Typed(Arc<Message>),
}

/// The fields every answer has; their presence is what is checked.
#[derive(Deserialize)]
#[allow(dead_code)] // Read to check that they are there.
struct Head {
    id: IgnoredAny,
    content: IgnoredAny,
    usage: IgnoredAny,
}

impl WireMessage {
    /// An answer body, checked to be JSON with `id`, `content` and `usage` (the rest is not
    /// parsed).
    ///
    /// # Errors
    /// The parser's error when it is not.
    pub fn from_json(body: Bytes) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<Head>(&body)?;
        Ok(Self(Repr::Bytes(body)))
    }

    /// A typed answer.
    pub fn typed(message: Message) -> Self {
        Self(Repr::Typed(Arc::new(message)))
    }

    /// The answer's JSON: the upstream's bytes as they came.
    pub fn bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Bytes(bytes) => bytes.clone(),
            // Cannot fail: every map key is a string.
            Repr::Typed(message) => serde_json::to_vec(&**message).unwrap_or_default().into(),
        }
    }

    /// The typed answer.
    ///
    /// # Errors
    /// The parser's error when the bytes do not hold a [`Message`].
    pub fn message(&self) -> Result<Message, serde_json::Error> {
        match &self.0 {
            Repr::Bytes(bytes) => serde_json::from_slice(bytes),
            Repr::Typed(message) => Ok((**message).clone()),
        }
    }
}

impl From<Message> for WireMessage {
    fn from(message: Message) -> Self {
        Self::typed(message)
    }
}

impl fmt::Debug for WireMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Bytes(bytes) => write!(f, "WireMessage({} bytes)", bytes.len()),
            Repr::Typed(message) => write!(f, "WireMessage({:?})", message.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_as_they_came() {
        let body = r#"{"usage":{"output_tokens":1e0},"content":[{"type":"tool_use","id":"t","name":"n","input":{"n":123456789012345678901234}}],"id":"msg_1","role":"assistant","model":"m","type":"message"}"#;
        let wire = WireMessage::from_json(Bytes::from(body)).unwrap();
        assert_eq!(wire.bytes(), body.as_bytes());
    }

    #[test]
    fn what_is_not_a_message_is_refused() {
        for body in ["", "{}", "[1]", r#"{"id":"x","content":[]}"#, "<html>"] {
            assert!(WireMessage::from_json(Bytes::from(body)).is_err(), "{body}");
        }
    }
}
