//! Content blocks: the typed pieces breakwater reads (text, thinking, tool use), and everything
//! else kept verbatim.
//!
//! Serialization is written by hand so unknown fields and unknown block types (images, tool
//! results, server tools, blocks the API adds tomorrow) survive a round trip untouched.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One block of a message's content, tagged by its `"type"` field.
#[derive(Clone, Debug, PartialEq)]
pub enum ContentBlock {
    /// `"type": "text"`.
    Text {
        /// The text.
        text: String,
        /// Every other field (`citations`, `cache_control`...), kept as sent.
        extra: Map<String, Value>,
    },
    /// `"type": "thinking"`: the model's extended thinking.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// The signature the API verifies when the block is sent back, if present.
        signature: Option<String>,
        /// Every other field, kept as sent.
        extra: Map<String, Value>,
    },
    /// `"type": "tool_use"`: the model calls a client tool.
    ToolUse {
        /// The call's id, echoed by the matching `tool_result`.
        id: String,
        /// The tool's name.
        name: String,
        /// The tool's input, a JSON object.
        input: Value,
        /// Every other field, kept as sent.
        extra: Map<String, Value>,
    },
    /// Any other block (`tool_result`, `image`, `redacted_thinking`, server tool blocks...), or
    /// a known type whose fields do not have the expected shape, kept verbatim.
    Other(Value),
}

impl ContentBlock {
    /// A text block holding `text`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            extra: Map::new(),
        }
    }

    /// The block's `"type"` tag, when it has one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Self::Text { .. } => Some("text"),
            Self::Thinking { .. } => Some("thinking"),
            Self::ToolUse { .. } => Some("tool_use"),
            Self::Other(value) => value.get("type").and_then(Value::as_str),
        }
    }

    /// Reads a block from JSON, falling back to [`ContentBlock::Other`] for anything that is
    /// not a well-formed text, thinking or tool-use block.
    fn from_value(value: Value) -> Self {
        let Value::Object(mut map) = value else {
            return Self::Other(value);
        };
        let typed = match map.get("type").and_then(Value::as_str) {
            Some("text") if is_str(&map, "text") => {
                let text = take_str(&mut map, "text");
                Some(Self::Text {
                    text,
                    extra: Map::new(),
                })
            }
            Some("thinking") if is_str(&map, "thinking") && opt_str(&map, "signature") => {
                let thinking = take_str(&mut map, "thinking");
                let signature = map.remove("signature").and_then(into_string);
                Some(Self::Thinking {
                    thinking,
                    signature,
                    extra: Map::new(),
                })
            }
            Some("tool_use") if is_str(&map, "id") && is_str(&map, "name") => {
                let Some(input) = map.remove("input") else {
                    return Self::Other(Value::Object(map));
                };
                let id = take_str(&mut map, "id");
                let name = take_str(&mut map, "name");
                Some(Self::ToolUse {
                    id,
                    name,
                    input,
                    extra: Map::new(),
                })
            }
            _ => None,
        };
        let Some(mut block) = typed else {
            return Self::Other(Value::Object(map));
        };
        map.remove("type");
        if let Self::Text { extra, .. }
        | Self::Thinking { extra, .. }
        | Self::ToolUse { extra, .. } = &mut block
        {
            *extra = map;
        }
        block
    }
}

fn is_str(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(Value::is_string)
}

// A null or non-string signature would not survive a round trip as `Option<String>`.
fn opt_str(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_string)
}

fn take_str(map: &mut Map<String, Value>, key: &str) -> String {
    map.remove(key).and_then(into_string).unwrap_or_default()
}

fn into_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (kind, fields, extra): (&str, Vec<(&str, Value)>, &Map<String, Value>) = match self {
            Self::Other(value) => return value.serialize(serializer),
            Self::Text { text, extra } => ("text", vec![("text", text.as_str().into())], extra),
            Self::Thinking {
                thinking,
                signature,
                extra,
            } => {
                let mut fields = vec![("thinking", thinking.as_str().into())];
                if let Some(signature) = signature {
                    fields.push(("signature", signature.as_str().into()));
                }
                ("thinking", fields, extra)
            }
            Self::ToolUse {
                id,
                name,
                input,
                extra,
            } => {
                let fields = vec![
                    ("id", id.as_str().into()),
                    ("name", name.as_str().into()),
                    ("input", input.clone()),
                ];
                ("tool_use", fields, extra)
            }
        };
        let mut map = serializer.serialize_map(Some(1 + fields.len() + extra.len()))?;
        map.serialize_entry("type", kind)?;
        for (key, value) in &fields {
            map.serialize_entry(key, value)?;
        }
        for (key, value) in extra {
            // The typed fields win over a colliding key put into `extra` by hand.
            if key != "type" && !fields.iter().any(|(k, _)| k == key) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom("a content block must be a JSON object"));
        }
        Ok(Self::from_value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_blocks_keep_unknown_fields() {
        let raw = json!({"type": "text", "text": "hi", "citations": [], "future": 1});
        let block: ContentBlock = serde_json::from_value(raw.clone()).unwrap();
        assert!(
            matches!(&block, ContentBlock::Text { text, extra } if text == "hi" && extra.len() == 2)
        );
        assert_eq!(serde_json::to_value(&block).unwrap(), raw);
    }

    #[test]
    fn unknown_and_malformed_blocks_are_verbatim() {
        for raw in [
            json!({"type": "image", "source": {"type": "base64", "data": "AA=="}}),
            json!({"type": "thinking", "thinking": "x", "signature": null}),
            json!({"type": "tool_use", "id": "t", "name": "n"}),
        ] {
            let block: ContentBlock = serde_json::from_value(raw.clone()).unwrap();
            assert_eq!(block, ContentBlock::Other(raw.clone()));
            assert_eq!(serde_json::to_value(&block).unwrap(), raw);
        }
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(serde_json::from_value::<ContentBlock>(json!("text")).is_err());
    }
}
