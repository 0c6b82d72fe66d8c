//! One server-sent event of a streamed answer, as the upstream framed it.

use std::borrow::Cow;
use std::fmt;

use breakwater_actors::StreamEvent;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::api::error::ApiError;
use crate::api::stream::MessageStreamEvent;

/// What an event is, by its name (or, for a generic name, its data's `"type"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// `message_start`.
    MessageStart,
    /// `content_block_start`.
    ContentBlockStart,
    /// `content_block_delta`.
    ContentBlockDelta,
    /// `content_block_stop`.
    ContentBlockStop,
    /// `message_delta`.
    MessageDelta,
    /// `message_stop`.
    MessageStop,
    /// `ping`.
    Ping,
    /// `error`.
    Error,
    /// Anything else, passed through.
    Other,
}

impl EventKind {
    /// The kind named `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "message_start" => Self::MessageStart,
            "content_block_start" => Self::ContentBlockStart,
            "content_block_delta" => Self::ContentBlockDelta,
            "content_block_stop" => Self::ContentBlockStop,
            "message_delta" => Self::MessageDelta,
            "message_stop" => Self::MessageStop,
            "ping" => Self::Ping,
            "error" => Self::Error,
            _ => Self::Other,
        }
    }

    /// Whether events of this kind must carry JSON data.
    fn is_known(self) -> bool {
        self != Self::Other
    }
}

/// One event of a streamed answer: the frame as it came (`event: ...`, `data: ...` and the
/// blank line that ends it), its name and its data; or a typed event (from the simulator
/// or a test) framed only when its bytes are asked for.
#[derive(Clone, PartialEq)]
pub struct WireEvent(Repr);

#[derive(Clone, PartialEq)]
enum Repr {
    Frame {
        kind: EventKind,
        frame: Bytes,
        name: String,
        data: Bytes,
    },
    Typed(Box<MessageStreamEvent>),
}

/// Why a frame is not an event the stream can carry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable {name:?} event: {why}")]
pub struct EventError {
    /// The event's name.
    pub name: String,
    /// What is wrong with it.
    pub why: String,
}

#[derive(Deserialize)]
struct Tagged<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ErrorData {
    error: ApiError,
}

impl WireEvent {
    /// The event framed as `frame`, with the `name` and `data` read from it. An empty or
    /// generic (`message`) name falls back to the data's `"type"`. A known event must carry
    /// JSON data; an unknown one may carry anything.
    ///
    /// # Errors
    /// `EventError` for a known event whose data is not JSON.
    pub fn from_frame(frame: Bytes, name: &str, data: Bytes) -> Result<Self, EventError> {
        let name = match name {
            "" | "message" => serde_json::from_slice::<Tagged<'_>>(&data)
                .map_or_else(|_| name.to_owned(), |tagged| tagged.kind.into_owned()),
            name => name.to_owned(),
        };
        let kind = EventKind::from_name(&name);
        if kind.is_known()
            && let Err(error) = serde_json::from_slice::<IgnoredAny>(&data)
        {
            return Err(EventError {
                name,
                why: error.to_string(),
            });
        }
        Ok(Self(Repr::Frame {
            kind,
            frame,
            name,
            data,
        }))
    }

    /// A typed event.
    pub fn typed(event: MessageStreamEvent) -> Self {
        Self(Repr::Typed(Box::new(event)))
    }

    /// What the event is.
    pub fn kind(&self) -> EventKind {
        match &self.0 {
            Repr::Frame { kind, .. } => *kind,
            Repr::Typed(event) => EventKind::from_name(event.event_name()),
        }
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        match &self.0 {
            Repr::Frame { name, .. } => name,
            Repr::Typed(event) => event.event_name(),
        }
    }

    /// The event's data as the upstream sent it; `None` for a typed event.
    pub(crate) fn data(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Frame { data, .. } => Some(data),
            Repr::Typed(_) => None,
        }
    }

    /// The event as it travels: the upstream's frame as it came.
    pub fn frame(&self) -> Bytes {
        match &self.0 {
            Repr::Frame { frame, .. } => frame.clone(),
            Repr::Typed(event) => event.to_sse().into(),
        }
    }

    /// The error an `error` event carries.
    pub fn error(&self) -> Option<ApiError> {
        match &self.0 {
            Repr::Frame {
                kind: EventKind::Error,
                data,
                ..
            } => serde_json::from_slice::<ErrorData>(data)
                .ok()
                .map(|data| data.error),
            Repr::Typed(event) => match &**event {
                MessageStreamEvent::Error { error } => Some(error.clone()),
                _ => None,
            },
            Repr::Frame { .. } => None,
        }
    }

    /// The typed event.
    ///
    /// # Errors
    /// The parser's error when the data does not fit the event's type.
    pub fn to_event(&self) -> Result<MessageStreamEvent, serde_json::Error> {
        match &self.0 {
            Repr::Frame { name, data, .. } => {
                MessageStreamEvent::parse(name, &String::from_utf8_lossy(data))
            }
            Repr::Typed(event) => Ok((**event).clone()),
        }
    }
}

impl From<MessageStreamEvent> for WireEvent {
    fn from(event: MessageStreamEvent) -> Self {
        Self::typed(event)
    }
}

impl fmt::Debug for WireEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireEvent({})", self.name())
    }
}

/// The same commit rule as [`MessageStreamEvent`]'s: the first content (a delta), or the end
/// of a block or of the message.
impl StreamEvent for WireEvent {
    fn commits(&self) -> bool {
        matches!(
            self.kind(),
            EventKind::ContentBlockDelta
                | EventKind::ContentBlockStop
                | EventKind::MessageDelta
                | EventKind::MessageStop
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Result<WireEvent, EventError> {
        let frame = format!("event: {name}\ndata: {data}\n\n");
        WireEvent::from_frame(frame.into(), name, Bytes::copy_from_slice(data.as_bytes()))
    }

    #[test]
    fn commits_as_the_typed_events_do() {
        let cases = [
            ("ping", r#"{"type":"ping"}"#),
            ("message_start", r#"{"type":"message_start","message":{}}"#),
            (
                "content_block_start",
                r#"{"index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            ("content_block_stop", r#"{"index":0}"#),
            (
                "message_delta",
                r#"{"delta":{"stop_reason":"end_turn"},"usage":{}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
            ("future", r#"{"x":1}"#),
        ];
        for (name, data) in cases {
            let wire = event(name, data).unwrap();
            let typed = MessageStreamEvent::parse(name, data).map(|e| e.commits());
            if let Ok(typed) = typed {
                assert_eq!(wire.commits(), typed, "{name}");
            }
        }
        assert!(event("content_block_delta", "{}").unwrap().commits());
        assert!(!event("future", "{}").unwrap().commits());
    }

    #[test]
    fn frames_pass_through_unchanged_and_errors_are_read() {
        let frame = "event: error\r\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\r\n\r\n";
        let data = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let wire = WireEvent::from_frame(frame.into(), "error", data.into()).unwrap();
        assert_eq!(wire.frame(), frame.as_bytes());
        assert_eq!(wire.error().unwrap().message, "Overloaded");
    }

    #[test]
    fn known_events_need_json_and_generic_names_use_the_type() {
        assert!(event("content_block_delta", "not json").is_err());
        assert!(event("future", "not json").is_ok());
        let wire =
            WireEvent::from_frame(Bytes::new(), "", Bytes::from(r#"{"type":"ping"}"#)).unwrap();
        assert_eq!(wire.kind(), EventKind::Ping);
    }
}
