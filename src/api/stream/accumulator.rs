//! Folds a stream of events back into the [`Message`] a non-streamed call would have returned.
//!
//! Used to answer a streamed attempt as a whole message, and to check a transcript in tests.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Delta, MessageDeltaBody, MessageStreamEvent};
use crate::api::content::ContentBlock;
use crate::api::response::{Message, Usage};

/// Rebuilds a [`Message`] from its stream events.
#[derive(Clone, Debug, Default)]
pub struct MessageAccumulator {
    message: Option<Message>,
    partial_json: BTreeMap<u32, String>,
    stopped: bool,
    malformed: bool,
}

impl MessageAccumulator {
    /// An accumulator that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds in one event. Events before `message_start`, pings, errors and unknown events
    /// change nothing.
    pub fn push(&mut self, event: &MessageStreamEvent) {
        if let MessageStreamEvent::MessageStart { message } = event {
            *self = Self {
                message: Some(message.clone()),
                ..Self::default()
            };
            return;
        }
        let Some(message) = &mut self.message else {
            return;
        };
        match event {
            MessageStreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match block_at(&mut message.content, *index) {
                Some(block) => *block = content_block.clone(),
                None => self.malformed = true,
            },
            MessageStreamEvent::ContentBlockDelta { index, delta } => {
                let Some(block) = block_at(&mut message.content, *index) else {
                    self.malformed = true;
                    return;
                };
                if let Delta::InputJson { partial_json, .. } = delta {
                    self.partial_json
                        .entry(*index)
                        .or_default()
                        .push_str(partial_json);
                } else {
                    apply_delta(block, delta);
                }
            }
            MessageStreamEvent::ContentBlockStop { index } => {
                let Some(json) = self.partial_json.remove(index) else {
                    return;
                };
                match (parse_input(&json), block_at(&mut message.content, *index)) {
                    (Some(input), Some(block)) => set_input(block, input),
                    _ => self.malformed = true,
                }
            }
            MessageStreamEvent::MessageDelta { delta, usage } => merge_delta(message, delta, usage),
            MessageStreamEvent::MessageStop => self.stopped = true,
            _ => {}
        }
    }

    /// The rebuilt message, or `None` unless the stream reached `message_stop`, every tool
    /// input it streamed was valid JSON, and every block index was in sequence.
    pub fn finish(self) -> Option<Message> {
        if self.stopped && !self.malformed {
            self.message
        } else {
            None
        }
    }
}

/// The block at `index`, or a placeholder appended when `index` is the next one; `None`
/// for an index past that. The index is the server's word: trusting it to size the content
/// would let one event ask for four billion blocks.
fn block_at(content: &mut Vec<ContentBlock>, index: u32) -> Option<&mut ContentBlock> {
    let index = usize::try_from(index).ok()?;
    if index == content.len() {
        content.push(ContentBlock::Other(Value::Null));
    }
    content.get_mut(index)
}

fn apply_delta(block: &mut ContentBlock, delta: &Delta) {
    match (block, delta) {
        (ContentBlock::Text { text, .. }, Delta::Text { text: more, .. }) => text.push_str(more),
        (ContentBlock::Thinking { thinking, .. }, Delta::Thinking { thinking: more, .. }) => {
            thinking.push_str(more);
        }
        (
            ContentBlock::Thinking { signature, .. },
            Delta::Signature {
                signature: more, ..
            },
        ) => {
            signature.get_or_insert_default().push_str(more);
        }
        (ContentBlock::Text { extra, .. }, Delta::Other(other))
            if other.get("type").and_then(Value::as_str) == Some("citations_delta") =>
        {
            if let Some(citation) = other.get("citation") {
                let citations = extra
                    .entry("citations")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = citations {
                    list.push(citation.clone());
                }
            }
        }
        _ => {}
    }
}

// A tool called without arguments streams no fragment at all, or an empty one.
fn parse_input(json: &str) -> Option<Value> {
    if json.trim().is_empty() {
        return Some(Value::Object(Map::new()));
    }
    serde_json::from_str(json).ok()
}

fn set_input(block: &mut ContentBlock, input: Value) {
    match block {
        ContentBlock::ToolUse { input: slot, .. } => *slot = input,
        // Server tool blocks (`server_tool_use`...) stream their input the same way.
        ContentBlock::Other(Value::Object(map)) => {
            map.insert("input".to_owned(), input);
        }
        _ => {}
    }
}

fn merge_delta(message: &mut Message, delta: &MessageDeltaBody, usage: &Value) {
    if delta.stop_reason.is_some() {
        message.stop_reason.clone_from(&delta.stop_reason);
    }
    if delta.stop_sequence.is_some() {
        message.stop_sequence.clone_from(&delta.stop_sequence);
    }
    message
        .extra
        .extend(delta.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let Value::Object(update) = usage else {
        return;
    };
    // Usage in message_delta is cumulative: each reported count replaces the earlier one.
    let Ok(Value::Object(mut merged)) = serde_json::to_value(&message.usage) else {
        return;
    };
    merged.extend(
        update
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if let Ok(usage) = serde_json::from_value::<Usage>(Value::Object(merged)) {
        message.usage = usage;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::events_for;

    fn message(content: Vec<ContentBlock>) -> Message {
        let mut message: Message = serde_json::from_value(serde_json::json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}
        }))
        .unwrap();
        message.content = content;
        message
    }

    #[test]
    fn a_hostile_block_index_marks_the_message_malformed_without_allocating() {
        for event in [
            MessageStreamEvent::ContentBlockStart {
                index: 4_000_000_000,
                content_block: ContentBlock::text(""),
            },
            MessageStreamEvent::ContentBlockDelta {
                index: u32::MAX,
                delta: Delta::text("x"),
            },
            MessageStreamEvent::ContentBlockStart {
                index: 1,
                content_block: ContentBlock::text(""),
            },
        ] {
            let mut accumulator = MessageAccumulator::new();
            accumulator.push(&MessageStreamEvent::MessageStart {
                message: message(Vec::new()),
            });
            accumulator.push(&event);
            accumulator.push(&MessageStreamEvent::MessageStop);
            assert_eq!(accumulator.finish(), None, "{event:?}");
        }
    }

    #[test]
    fn blocks_in_sequence_are_rebuilt() {
        let whole = message(vec![
            ContentBlock::text("hello"),
            ContentBlock::text("world"),
        ]);
        let mut accumulator = MessageAccumulator::new();
        for event in events_for(&whole) {
            accumulator.push(&event);
        }
        let rebuilt = accumulator.finish().expect("a complete stream");
        assert_eq!(rebuilt.content, whole.content);
    }
}
