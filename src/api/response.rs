//! The Messages response body: a complete [`Message`] and its [`Usage`].
//!
//! `stop_reason` and `stop_sequence` are written as `null` when unset, as the API does, so a
//! response survives a round trip unchanged; unknown fields ride along in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::ContentBlock;
use super::request::Role;

/// A complete answer from the Messages API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The message id (`msg_...`).
    pub id: String,
    /// The object type, always `"message"`. Default: `"message"`.
    #[serde(rename = "type", default = "message_kind")]
    pub kind: String,
    /// Who wrote it: always the assistant.
    pub role: Role,
    /// The model that answered.
    pub model: String,
    /// What it said.
    pub content: Vec<ContentBlock>,
    /// Why generation stopped (`end_turn`, `max_tokens`, `tool_use`...); `null` until known.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The custom stop sequence that was hit, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// What the request cost.
    pub usage: Usage,
    /// Every other field, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn message_kind() -> String {
    "message".to_owned()
}

impl Message {
    /// The text of every text block, concatenated.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Token counts billed for a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens generated.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Every other field (`service_tier`, `server_tool_use`...), kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_concatenates_text_blocks_only() {
        let message: Message = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "tool_use", "id": "t", "name": "n", "input": {}},
                {"type": "text", "text": "b"},
            ],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 2},
        }))
        .unwrap();
        assert_eq!(message.text(), "ab");
        let round = serde_json::to_value(&message).unwrap();
        assert_eq!(round["stop_sequence"], Value::Null);
        assert!(round.as_object().unwrap().contains_key("stop_reason"));
    }

    #[test]
    fn message_start_usage_parses_with_missing_counts() {
        let usage: Usage = serde_json::from_value(json!({"input_tokens": 3})).unwrap();
        assert_eq!(usage.output_tokens, 0);
        assert_eq!(
            serde_json::to_value(&usage).unwrap(),
            json!({"input_tokens": 3, "output_tokens": 0})
        );
    }
}
