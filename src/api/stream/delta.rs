//! The `delta` of a `content_block_delta` event: typed for text, tool input JSON, thinking
//! and signatures, and kept verbatim otherwise (`citations_delta`, future kinds).
//!
//! Like [`ContentBlock`](crate::api::ContentBlock), a delta is typed on its required key and
//! keeps every other field in `extra`, so a field the API adds tomorrow neither hides the
//! text nor is lost on a round trip.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The `delta` of a `content_block_delta` event, tagged by its `"type"` field.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    /// `text_delta`: text to append to a text block.
    Text {
        /// The text.
        text: String,
        /// Every other field, kept as sent.
        extra: Map<String, Value>,
    },
    /// `input_json_delta`: a fragment of a tool call's input JSON.
    InputJson {
        /// The fragment; fragments concatenate into the input.
        partial_json: String,
        /// Every other field, kept as sent.
        extra: Map<String, Value>,
    },
    /// `thinking_delta`: thinking text to append to a thinking block.
    Thinking {
        /// The text.
        thinking: String,
        /// Every other field, kept as sent.
        extra: Map<String, Value>,
    },
    /// `signature_delta`: the thinking block's signature.
    Signature {
        /// The signature.
        signature: String,
        /// Every other field, kept as sent.
        extra: Map<String, Value>,
    },
    /// Any other delta (`citations_delta`...), or a known type without its string field,
    /// kept verbatim.
    Other(Value),
}

/// The typed deltas: tag, required key, and how to build the variant.
type Build = fn(String, Map<String, Value>) -> Delta;
const TYPED: [(&str, &str, Build); 4] = [
    ("text_delta", "text", |text, extra| Delta::Text {
        text,
        extra,
    }),
    ("input_json_delta", "partial_json", |partial_json, extra| {
        Delta::InputJson {
            partial_json,
            extra,
        }
    }),
    ("thinking_delta", "thinking", |thinking, extra| {
        Delta::Thinking { thinking, extra }
    }),
    ("signature_delta", "signature", |signature, extra| {
        Delta::Signature { signature, extra }
    }),
];

/// A typed delta taken apart: its tag, its key, its text and its other fields.
type Parts<'a> = (&'static str, &'static str, &'a str, &'a Map<String, Value>);

impl Delta {
    /// A `text_delta` carrying `text` and nothing else.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            extra: Map::new(),
        }
    }

    /// The tag, the key, the text and the other fields of a typed delta, or the raw value.
    fn parts(&self) -> Result<Parts<'_>, &Value> {
        match self {
            Self::Text { text, extra } => Ok(("text_delta", "text", text, extra)),
            Self::InputJson {
                partial_json,
                extra,
            } => Ok(("input_json_delta", "partial_json", partial_json, extra)),
            Self::Thinking { thinking, extra } => {
                Ok(("thinking_delta", "thinking", thinking, extra))
            }
            Self::Signature { signature, extra } => {
                Ok(("signature_delta", "signature", signature, extra))
            }
            Self::Other(value) => Err(value),
        }
    }

    fn from_map(mut map: Map<String, Value>) -> Self {
        let kind = map.get("type").and_then(Value::as_str);
        let Some((_, key, build)) = TYPED.iter().find(|(tag, ..)| Some(*tag) == kind) else {
            return Self::Other(Value::Object(map));
        };
        if !map.get(*key).is_some_and(Value::is_string) {
            return Self::Other(Value::Object(map));
        }
        let text = match map.remove(*key) {
            Some(Value::String(text)) => text,
            _ => String::new(),
        };
        map.remove("type");
        build(text, map)
    }
}

impl Serialize for Delta {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.parts() {
            Ok((kind, key, value, extra)) => {
                let mut map = serializer.serialize_map(Some(2 + extra.len()))?;
                map.serialize_entry("type", kind)?;
                map.serialize_entry(key, value)?;
                for (name, value) in extra {
                    // The typed fields win over a colliding key put into `extra` by hand.
                    if name != "type" && name != key {
                        map.serialize_entry(name, value)?;
                    }
                }
                map.end()
            }
            Err(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Object(map) => Ok(Self::from_map(map)),
            _ => Err(D::Error::custom("a delta must be a JSON object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_delta_with_extra_fields_keeps_its_text_and_the_fields() {
        let raw = json!({"type": "text_delta", "text": "Hi", "future": {"a": 1}});
        let delta: Delta = serde_json::from_value(raw.clone()).unwrap();
        let Delta::Text { text, extra } = &delta else {
            panic!("typed as text: {delta:?}");
        };
        assert_eq!(text, "Hi");
        assert_eq!(extra.get("future"), Some(&json!({"a": 1})));
        assert_eq!(serde_json::to_value(&delta).unwrap(), raw);
    }

    #[test]
    fn every_typed_delta_round_trips() {
        for (tag, key, _) in TYPED {
            let raw = json!({"type": tag, key: "x", "extra_field": true});
            let delta: Delta = serde_json::from_value(raw.clone()).unwrap();
            assert!(!matches!(delta, Delta::Other(_)), "{tag}");
            assert_eq!(serde_json::to_value(&delta).unwrap(), raw, "{tag}");
        }
    }

    #[test]
    fn unknown_and_malformed_deltas_are_verbatim() {
        for raw in [
            json!({"type": "citations_delta", "citation": {"cited_text": "x"}}),
            json!({"type": "text_delta", "text": 5}),
            json!({"type": "text_delta"}),
        ] {
            let delta: Delta = serde_json::from_value(raw.clone()).unwrap();
            assert_eq!(delta, Delta::Other(raw.clone()));
            assert_eq!(serde_json::to_value(&delta).unwrap(), raw);
        }
        assert!(serde_json::from_value::<Delta>(json!("text")).is_err());
    }
}
