//! Streamed answers: one [`MessageStreamEvent`] per server-sent event, and the tools to fold
//! events back into a [`Message`] ([`MessageAccumulator`]) or unfold a message into the events
//! the API would send ([`events_for`]).
//!
//! The SSE event name selects the variant; unknown event names are kept, not rejected.

mod accumulator;
mod delta;
mod replay;

pub use accumulator::MessageAccumulator;
pub use delta::Delta;
pub use replay::events_for;

use breakwater_actors::StreamEvent;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::ContentBlock;
use super::error::ApiError;
use super::response::Message;

/// One event of a streamed Messages response.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageStreamEvent {
    /// `message_start`: the message envelope, with empty content.
    MessageStart {
        /// The envelope.
        message: Message,
    },
    /// `content_block_start`: a block opens at `index`.
    ContentBlockStart {
        /// The block's position in the message's content.
        index: u32,
        /// The block as it starts (empty text, `{}` input...).
        content_block: ContentBlock,
    },
    /// `content_block_delta`: more of the block at `index`.
    ContentBlockDelta {
        /// The block's position in the message's content.
        index: u32,
        /// What to add.
        delta: Delta,
    },
    /// `content_block_stop`: the block at `index` is complete.
    ContentBlockStop {
        /// The block's position in the message's content.
        index: u32,
    },
    /// `message_delta`: top-level changes (`stop_reason`) and cumulative usage.
    MessageDelta {
        /// The changed fields.
        delta: MessageDeltaBody,
        /// Cumulative usage so far, as sent (`Value::Null` when the event had none).
        #[serde(skip_serializing_if = "Value::is_null")]
        usage: Value,
    },
    /// `message_stop`: the stream is complete.
    MessageStop,
    /// `ping`: a keep-alive.
    Ping,
    /// `error`: the API failed after the 200 (often `overloaded_error`).
    Error {
        /// What went wrong.
        error: ApiError,
    },
    /// An event this version does not know, kept verbatim.
    #[serde(skip)]
    Unknown {
        /// The SSE event name.
        event: String,
        /// The event's data: its JSON, or the raw text as a JSON string when it is not JSON.
        data: Value,
    },
}

/// The `delta` of a `message_delta` event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The custom stop sequence that was hit, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Every other field, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageStreamEvent {
    /// Reads one server-sent event. An empty or generic (`message`) event name falls back to
    /// the data's `"type"`; unknown names become [`MessageStreamEvent::Unknown`].
    pub fn parse(event: &str, data: &str) -> Result<Self, serde_json::Error> {
        let mut value = match serde_json::from_str::<Value>(data) {
            Ok(value) => value,
            Err(_) if !is_known(event) && !event.is_empty() && event != "message" => {
                Value::String(data.to_owned())
            }
            Err(err) => return Err(err),
        };
        let name = match event {
            "" | "message" => value.get("type").and_then(Value::as_str).unwrap_or(event),
            name => name,
        }
        .to_owned();
        let v = &mut value;
        Ok(match name.as_str() {
            "message_start" => Self::MessageStart {
                message: field(v, "message")?,
            },
            "content_block_start" => Self::ContentBlockStart {
                index: field(v, "index")?,
                content_block: field(v, "content_block")?,
            },
            "content_block_delta" => Self::ContentBlockDelta {
                index: field(v, "index")?,
                delta: field(v, "delta")?,
            },
            "content_block_stop" => Self::ContentBlockStop {
                index: field(v, "index")?,
            },
            "message_delta" => Self::MessageDelta {
                delta: field(v, "delta")?,
                usage: v.get_mut("usage").map(Value::take).unwrap_or_default(),
            },
            "message_stop" => Self::MessageStop,
            "ping" => Self::Ping,
            "error" => Self::Error {
                error: field(v, "error")?,
            },
            _ => Self::Unknown {
                event: name,
                data: value,
            },
        })
    }

    /// The SSE event name.
    pub fn event_name(&self) -> &str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
            Self::Ping => "ping",
            Self::Error { .. } => "error",
            Self::Unknown { event, .. } => event,
        }
    }

    /// The event's data: JSON with its `"type"` field, as the API sends it.
    pub fn data(&self) -> String {
        match self {
            Self::Unknown { data, .. } => data.to_string(),
            // Cannot fail: every map key is a string and the skipped variant is handled above.
            known => serde_json::to_string(known).unwrap_or_default(),
        }
    }

    /// The event as it travels: `event: NAME\ndata: JSON\n\n`.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.event_name(), self.data())
    }
}

fn is_known(event: &str) -> bool {
    matches!(
        event,
        "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "ping"
            | "error"
    )
}

fn field<T: DeserializeOwned>(value: &mut Value, name: &str) -> Result<T, serde_json::Error> {
    match value.get_mut(name) {
        Some(field) => serde_json::from_value(field.take()),
        None => Err(serde_json::Error::custom(format!("missing field `{name}`"))),
    }
}

/// A stream commits on its first content (a delta), or on the end of a block or of the
/// message. `content_block_start` does not commit: it only announces an empty block, and
/// until content reaches the caller the attempt may still be retried or replaced silently.
impl StreamEvent for MessageStreamEvent {
    fn commits(&self) -> bool {
        matches!(
            self,
            Self::ContentBlockDelta { .. }
                | Self::ContentBlockStop { .. }
                | Self::MessageDelta { .. }
                | Self::MessageStop
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_exactly_what_was_parsed() {
        let cases = [
            ("ping", json!({"type": "ping"})),
            ("message_stop", json!({"type": "message_stop"})),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 2}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "citations_delta", "citation": {"cited_text": "x"}}}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 15}}),
            ),
            (
                "error",
                json!({"type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
            ("future_event", json!({"type": "future_event", "x": [1]})),
        ];
        for (name, data) in cases {
            let event = MessageStreamEvent::parse(name, &data.to_string()).unwrap();
            assert_eq!(event.event_name(), name);
            let back: Value = serde_json::from_str(&event.data()).unwrap();
            assert_eq!(back, data, "{name}");
        }
    }

    #[test]
    fn commits_only_on_content_and_end() {
        let parse = |name: &str, data: Value| MessageStreamEvent::parse(name, &data.to_string());
        assert!(!parse("ping", json!({"type": "ping"})).unwrap().commits());
        assert!(!parse("x", json!({})).unwrap().commits());
        let delta = json!({"index": 0, "delta": {"type": "text_delta", "text": "Hi"}});
        assert!(parse("content_block_delta", delta).unwrap().commits());
        let usage = json!({"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}});
        assert!(parse("message_delta", usage).unwrap().commits());
        assert!(
            parse("content_block_stop", json!({"index": 0}))
                .unwrap()
                .commits()
        );
        assert!(parse("message_stop", json!({})).unwrap().commits());
    }

    #[test]
    fn content_block_start_does_not_commit_as_it_carries_no_content() {
        let start = json!({"index": 0, "content_block": {"type": "text", "text": ""}});
        let event = MessageStreamEvent::parse("content_block_start", &start.to_string()).unwrap();
        assert!(!event.commits());
    }

    #[test]
    fn to_sse_frames_the_event() {
        assert_eq!(
            MessageStreamEvent::Ping.to_sse(),
            "event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
    }

    #[test]
    fn unknown_events_tolerate_non_json_data_but_known_ones_do_not() {
        let event = MessageStreamEvent::parse("future", "not json").unwrap();
        assert_eq!(
            event,
            MessageStreamEvent::Unknown {
                event: "future".into(),
                data: json!("not json")
            }
        );
        assert!(MessageStreamEvent::parse("ping", "not json").is_err());
        assert!(MessageStreamEvent::parse("content_block_stop", "{}").is_err());
    }

    #[test]
    fn generic_event_name_falls_back_to_the_data_type() {
        let event = MessageStreamEvent::parse("", r#"{"type": "ping"}"#).unwrap();
        assert_eq!(event, MessageStreamEvent::Ping);
    }
}
