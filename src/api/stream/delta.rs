//! The `delta` of a `content_block_delta` event: typed for text, tool input JSON, thinking
//! and signatures, and kept verbatim otherwise (`citations_delta`, future kinds).

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The `delta` of a `content_block_delta` event, tagged by its `"type"` field.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    /// `text_delta`: text to append to a text block.
    Text {
        /// The text.
        text: String,
    },
    /// `input_json_delta`: a fragment of a tool call's input JSON.
    InputJson {
        /// The fragment; fragments concatenate into the input.
        partial_json: String,
    },
    /// `thinking_delta`: thinking text to append to a thinking block.
    Thinking {
        /// The text.
        thinking: String,
    },
    /// `signature_delta`: the thinking block's signature.
    Signature {
        /// The signature.
        signature: String,
    },
    /// Any other delta (`citations_delta`...), kept verbatim.
    Other(Value),
}

impl Delta {
    /// The tag, the field name and the text of a typed delta, or the raw value of another.
    fn parts(&self) -> Result<(&'static str, &'static str, &str), &Value> {
        match self {
            Self::Text { text } => Ok(("text_delta", "text", text)),
            Self::InputJson { partial_json } => {
                Ok(("input_json_delta", "partial_json", partial_json))
            }
            Self::Thinking { thinking } => Ok(("thinking_delta", "thinking", thinking)),
            Self::Signature { signature } => Ok(("signature_delta", "signature", signature)),
            Self::Other(value) => Err(value),
        }
    }
}

impl Serialize for Delta {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.parts() {
            Ok((kind, key, value)) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", kind)?;
                map.serialize_entry(key, value)?;
                map.end()
            }
            Err(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Value::Object(map) = &value else {
            return Err(D::Error::custom("a delta must be a JSON object"));
        };
        // Only the exact known shape is typed; anything more stays verbatim to round-trip.
        let text = |key: &str| match map.get(key) {
            Some(Value::String(s)) if map.len() == 2 => Some(s.clone()),
            _ => None,
        };
        let typed = match map.get("type").and_then(Value::as_str) {
            Some("text_delta") => text("text").map(|text| Self::Text { text }),
            Some("input_json_delta") => {
                text("partial_json").map(|partial_json| Self::InputJson { partial_json })
            }
            Some("thinking_delta") => text("thinking").map(|thinking| Self::Thinking { thinking }),
            Some("signature_delta") => {
                text("signature").map(|signature| Self::Signature { signature })
            }
            _ => None,
        };
        Ok(typed.unwrap_or(Self::Other(value)))
    }
}
