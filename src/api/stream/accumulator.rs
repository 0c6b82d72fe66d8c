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
            } => {
                *block_at(&mut message.content, *index) = content_block.clone();
            }
            MessageStreamEvent::ContentBlockDelta { index, delta } => {
                if let Delta::InputJson { partial_json } = delta {
                    self.partial_json
                        .entry(*index)
                        .or_default()
                        .push_str(partial_json);
                } else {
                    apply_delta(block_at(&mut message.content, *index), delta);
                }
            }
            MessageStreamEvent::ContentBlockStop { index } => {
                let Some(json) = self.partial_json.remove(index) else {
                    return;
                };
                match parse_input(&json) {
                    Some(input) => set_input(block_at(&mut message.content, *index), input),
                    None => self.malformed = true,
                }
            }
            MessageStreamEvent::MessageDelta { delta, usage } => merge_delta(message, delta, usage),
            MessageStreamEvent::MessageStop => self.stopped = true,
            _ => {}
        }
    }

    /// The rebuilt message, or `None` unless the stream reached `message_stop` (and every tool
    /// input it streamed was valid JSON).
    pub fn finish(self) -> Option<Message> {
        if self.stopped && !self.malformed {
            self.message
        } else {
            None
        }
    }
}

/// The block at `index`, padding with empty placeholders should the stream skip an index.
fn block_at(content: &mut Vec<ContentBlock>, index: u32) -> &mut ContentBlock {
    let index = index as usize;
    if content.len() <= index {
        content.resize(index + 1, ContentBlock::Other(Value::Null));
    }
    &mut content[index]
}

fn apply_delta(block: &mut ContentBlock, delta: &Delta) {
    match (block, delta) {
        (ContentBlock::Text { text, .. }, Delta::Text { text: more }) => text.push_str(more),
        (ContentBlock::Thinking { thinking, .. }, Delta::Thinking { thinking: more }) => {
            thinking.push_str(more);
        }
        (ContentBlock::Thinking { signature, .. }, Delta::Signature { signature: more }) => {
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
