//! Unfolds a complete [`Message`] into the events the API would stream for it: what the mock
//! server sends, and what tests feed the client.

use serde_json::{Map, Value, json};

use super::{Delta, MessageDeltaBody, MessageStreamEvent};
use crate::api::content::ContentBlock;
use crate::api::response::Message;

/// Roughly how many characters each streamed text or JSON fragment carries.
const CHUNK_CHARS: usize = 16;

/// The events the API would stream for `message`: `message_start` (empty content, no output
/// tokens yet), then each block's start, deltas and stop, then `message_delta` with the stop
/// reason and output tokens, then `message_stop`.
pub fn events_for(message: &Message) -> Vec<MessageStreamEvent> {
    let mut start = message.clone();
    start.content.clear();
    start.stop_reason = None;
    start.stop_sequence = None;
    start.usage.output_tokens = 0;
    let mut events = vec![MessageStreamEvent::MessageStart { message: start }];
    for (index, block) in (0u32..).zip(&message.content) {
        let (opening, deltas) = unfold(block);
        events.push(MessageStreamEvent::ContentBlockStart {
            index,
            content_block: opening,
        });
        events.extend(
            deltas
                .into_iter()
                .map(|delta| MessageStreamEvent::ContentBlockDelta { index, delta }),
        );
        events.push(MessageStreamEvent::ContentBlockStop { index });
    }
    events.push(MessageStreamEvent::MessageDelta {
        delta: MessageDeltaBody {
            stop_reason: message.stop_reason.clone(),
            stop_sequence: message.stop_sequence.clone(),
            extra: Map::new(),
        },
        usage: json!({ "output_tokens": message.usage.output_tokens }),
    });
    events.push(MessageStreamEvent::MessageStop);
    events
}

/// A block as it opens, and the deltas that complete it.
fn unfold(block: &ContentBlock) -> (ContentBlock, Vec<Delta>) {
    match block {
        ContentBlock::Text { text, extra } => {
            let opening = ContentBlock::Text {
                text: String::new(),
                extra: extra.clone(),
            };
            let deltas = chunks(text).map(Delta::text).collect();
            (opening, deltas)
        }
        ContentBlock::Thinking {
            thinking,
            signature,
            extra,
        } => {
            let opening = ContentBlock::Thinking {
                thinking: String::new(),
                signature: None,
                extra: extra.clone(),
            };
            let mut deltas: Vec<_> = chunks(thinking)
                .map(|thinking| Delta::Thinking {
                    thinking,
                    extra: Map::new(),
                })
                .collect();
            if let Some(signature) = signature {
                deltas.push(Delta::Signature {
                    signature: signature.clone(),
                    extra: Map::new(),
                });
            }
            (opening, deltas)
        }
        ContentBlock::ToolUse {
            id,
            name,
            input,
            extra,
        } => {
            let opening = ContentBlock::ToolUse {
                id: id.clone(),
                name: name.clone(),
                input: Value::Object(Map::new()),
                extra: extra.clone(),
            };
            let json = input.to_string();
            let deltas = chunks(&json)
                .map(|partial_json| Delta::InputJson {
                    partial_json,
                    extra: Map::new(),
                })
                .collect();
            (opening, deltas)
        }
        ContentBlock::Other(value) => (ContentBlock::Other(value.clone()), Vec::new()),
    }
}

/// `text` in pieces of [`CHUNK_CHARS`] characters; an empty text is one empty piece.
fn chunks(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut rest = text;
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() && !std::mem::take(&mut first) {
            return None;
        }
        first = false;
        let cut = rest
            .char_indices()
            .nth(CHUNK_CHARS)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MessageAccumulator;

    fn message() -> Message {
        serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "Let me think about this é carefully.", "signature": "sig"},
                {"type": "text", "text": "Héllo, this is a longer answer than sixteen chars."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "unit": "celsius"}},
                {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"q": "x"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 42, "cache_read_input_tokens": 5},
            "container": null,
        }))
        .unwrap()
    }

    #[test]
    fn accumulator_rebuilds_what_events_for_unfolds() {
        let message = message();
        let events = events_for(&message);
        let mut acc = MessageAccumulator::new();
        for event in &events {
            acc.push(event);
        }
        assert_eq!(acc.finish(), Some(message));
    }

    #[test]
    fn events_for_has_the_api_shape() {
        let events = events_for(&message());
        let names: Vec<_> = events.iter().map(MessageStreamEvent::event_name).collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
        let MessageStreamEvent::MessageStart { message } = &events[0] else {
            panic!()
        };
        assert!(message.content.is_empty());
        assert_eq!(message.usage.output_tokens, 0);
        let text_deltas = events
            .iter()
            .filter(|e| matches!(e, MessageStreamEvent::ContentBlockDelta { index: 1, .. }));
        assert_eq!(text_deltas.count(), 4);
    }

    #[test]
    fn chunks_split_on_char_boundaries() {
        let pieces: Vec<_> = chunks(&"é".repeat(20)).collect();
        assert_eq!(pieces, vec!["é".repeat(16), "é".repeat(4)]);
        assert_eq!(chunks("").collect::<Vec<_>>(), vec![String::new()]);
    }

    #[test]
    fn finish_needs_message_stop() {
        let mut acc = MessageAccumulator::new();
        for event in events_for(&message())
            .iter()
            .filter(|e| **e != MessageStreamEvent::MessageStop)
        {
            acc.push(event);
        }
        assert_eq!(acc.finish(), None);
    }
}
