//! The Messages request body (`POST /v1/messages`), as callers send it to breakwater and as
//! breakwater forwards it upstream.
//!
//! Unset optional fields are never sent: the newer API version rejects `temperature`, `top_p`
//! and `top_k` when present at all. Unknown fields ride along in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::ContentBlock;

/// A Messages API request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model to ask; breakwater replaces it with each target's model.
    pub model: String,
    /// The most tokens the answer may hold.
    pub max_tokens: u32,
    /// The conversation so far.
    pub messages: Vec<InputMessage>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// Whether to stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling cutoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Custom sequences that stop generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Request metadata (`user_id`), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Tool definitions, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// How the model may use the tools, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Extended thinking configuration, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// Every other top-level field, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Headers sent with this request only, over the client's configured ones; never part
    /// of the body. The gateway fills them from its caller's request.
    #[serde(skip)]
    pub headers: RequestHeaders,
}

/// Per-request API headers: what a caller of the gateway sent, forwarded as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    /// `anthropic-version`, replacing the configured one.
    pub version: Option<String>,
    /// `anthropic-beta` (comma-separated flags), added to the configured ones.
    pub beta: Option<String>,
    /// The caller's own key, sent only by a client that has none of its own (a gateway
    /// without a key and without `require-keys` passes its callers' keys through). Its
    /// `Debug` prints `***`.
    pub credentials: Option<crate::client::Credentials>,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputMessage {
    /// Who spoke.
    pub role: Role,
    /// What they said.
    pub content: MessageContent,
    /// Every other field, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The speaker of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `"user"`.
    User,
    /// `"assistant"`.
    Assistant,
}

/// A message's content: a plain string, or a list of blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// `"content": "..."`.
    Text(String),
    /// `"content": [{...}, ...]`.
    Blocks(Vec<ContentBlock>),
}

/// The system prompt: a plain string, or a list of blocks (which may carry `cache_control`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum System {
    /// `"system": "..."`.
    Text(String),
    /// `"system": [{...}, ...]`.
    Blocks(Vec<ContentBlock>),
}

/// Why a request body could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A required top-level field is absent (or null).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The body is not valid JSON, or a field has the wrong shape.
    #[error("invalid request body: {0}")]
    Invalid(String),
}

impl MessagesRequest {
    /// The required fields of a request body, in the order they are checked.
    const REQUIRED: [&'static str; 3] = ["model", "max_tokens", "messages"];

    /// An empty conversation with `model`, answering in at most `max_tokens` tokens.
    pub fn new(model: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            model: model.into(),
            max_tokens,
            messages: Vec::new(),
            system: None,
            stream: None,
            temperature: None,
            top_p: None,
            top_k: None,
            stop_sequences: None,
            metadata: None,
            tools: None,
            tool_choice: None,
            thinking: None,
            extra: Map::new(),
            headers: RequestHeaders::default(),
        }
    }

    /// About how many input tokens the request spends: a character count of its system
    /// prompt, its messages' text and its tool definitions, at four characters a token (at
    /// least one). Pacing spends this from the target's token windows before the API
    /// counts it exactly.
    pub fn estimated_input_tokens(&self) -> u64 {
        let text = |blocks: &[ContentBlock]| -> usize {
            blocks
                .iter()
                .map(|block| match block {
                    ContentBlock::Text { text, .. } => text.chars().count(),
                    _ => 0,
                })
                .sum()
        };
        let system = match &self.system {
            Some(System::Text(prompt)) => prompt.chars().count(),
            Some(System::Blocks(blocks)) => text(blocks),
            None => 0,
        };
        let messages: usize = self
            .messages
            .iter()
            .map(|message| match &message.content {
                MessageContent::Text(said) => said.chars().count(),
                MessageContent::Blocks(blocks) => text(blocks),
            })
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .flatten()
            .map(|tool| tool.to_string().chars().count())
            .sum();
        u64::try_from(system + messages + tools)
            .unwrap_or(u64::MAX)
            .div_ceil(4)
            .max(1)
    }

    /// Appends a user message holding `text`.
    #[must_use]
    pub fn with_user(mut self, text: impl Into<String>) -> Self {
        self.messages.push(InputMessage {
            role: Role::User,
            content: MessageContent::Text(text.into()),
            extra: Map::new(),
        });
        self
    }

    /// Reads a request body, naming the missing field when a required one is absent.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RequestError> {
        serde_json::from_slice::<Self>(bytes).map_err(|err| Self::explain(bytes, &err))
    }

    /// The error for a body serde refused with `err`: the first required field that is
    /// absent, else serde's own message with its position.
    pub(crate) fn explain(bytes: &[u8], err: &serde_json::Error) -> RequestError {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) {
            let missing = Self::REQUIRED
                .into_iter()
                .find(|field| map.get(*field).is_none_or(Value::is_null));
            if let Some(field) = missing {
                return RequestError::MissingField(field);
            }
        }
        RequestError::Invalid(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_tokens_are_estimated_at_four_characters_each() {
        assert_eq!(MessagesRequest::new("m", 1).estimated_input_tokens(), 1);
        let body = json!({
            "model": "m", "max_tokens": 1,
            "system": [{"type": "text", "text": "a".repeat(40)}],
            "messages": [
                {"role": "user", "content": "b".repeat(41)},
                {"role": "assistant", "content": [{"type": "text", "text": "c".repeat(19)}]},
            ],
            "tools": [{"name": "t"}],
        });
        let request = MessagesRequest::from_json(&serde_json::to_vec(&body).unwrap()).unwrap();
        // 40 + 41 + 19 characters of text and 12 of tool JSON ({"name":"t"}): 112 / 4.
        assert_eq!(request.estimated_input_tokens(), 28);
    }

    #[test]
    fn from_json_names_the_missing_field() {
        let cases: [(&str, &str); 3] = [
            (r#"{"max_tokens": 1, "messages": []}"#, "model"),
            (r#"{"model": "m", "messages": []}"#, "max_tokens"),
            (
                r#"{"model": "m", "max_tokens": 1, "messages": null}"#,
                "messages",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                MessagesRequest::from_json(body.as_bytes()),
                Err(RequestError::MissingField(field))
            );
        }
    }

    #[test]
    fn from_json_reports_other_errors_with_position() {
        let err = MessagesRequest::from_json(b"{\"model\": 1,").unwrap_err();
        assert!(
            matches!(&err, RequestError::Invalid(m) if m.contains("line 1 column")),
            "{err}"
        );
        let err =
            MessagesRequest::from_json(br#"{"model": "m", "max_tokens": -1, "messages": []}"#)
                .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid request body: "),
            "{err}"
        );
    }
}
