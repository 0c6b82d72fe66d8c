//! What the mock says when it answers: a deterministic reply derived from the prompt (after a
//! signed thinking block when thinking is on), with plausible usage, as one JSON message or as
//! the SSE events of a stream (where the `stream-error`, `stream-drop` and `stream-end` faults
//! cut in).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::Map;

use super::capacity::SlotGuard;
use super::fault::{Fault, FaultKind};
use super::signature;
use crate::api::{
    ContentBlock, ErrorBody, ErrorType, Message, MessageContent, MessageStreamEvent,
    MessagesRequest, Role, Usage, events_for,
};

/// How much of the prompt the reply echoes, in characters.
const ECHO_CHARS: usize = 40;

/// The mock's answer to `request`: `mock reply from MODEL: <start of the last user text>`,
/// after a thinking block signed by `thinker` when thinking is on (see `signature.rs`).
pub(crate) fn message(request: &MessagesRequest, number: u64, thinker: Option<&str>) -> Message {
    let prompt: String = last_user_text(request).chars().take(ECHO_CHARS).collect();
    let text = format!("mock reply from {}: {prompt}", request.model);
    let mut content = Vec::new();
    let mut chars = text.chars().count();
    if let Some(thinker) = thinker {
        let thinking = format!("mock thinking by {thinker}: {prompt}");
        chars += thinking.chars().count();
        content.push(ContentBlock::Thinking {
            thinking,
            signature: Some(signature::encode(thinker, number)),
            extra: Map::new(),
        });
    }
    content.push(ContentBlock::text(text));
    let usage = Usage {
        input_tokens: request.estimated_input_tokens(),
        output_tokens: tokens(chars).min(u64::from(request.max_tokens)),
        cache_creation_input_tokens: None,
        cache_read_input_tokens: None,
        extra: Map::new(),
    };
    Message {
        id: format!("msg_mock_{number}"),
        kind: "message".to_owned(),
        role: Role::Assistant,
        model: request.model.clone(),
        content,
        stop_reason: Some("end_turn".to_owned()),
        stop_sequence: None,
        usage,
        extra: Map::new(),
    }
}

/// The SSE body streaming `message`, `pause` before each event, cut short by a stream fault;
/// `slot` is held until the body ends.
pub(crate) fn stream_body(
    message: &Message,
    fault: Option<&Fault>,
    slot: SlotGuard,
    pause: Duration,
) -> Body {
    let mut events = events_for(message);
    // Like the API, a ping follows message_start.
    events.insert(events.len().min(1), MessageStreamEvent::Ping);
    let mut chunks: VecDeque<Chunk> = events
        .iter()
        .map(|event| Ok(Bytes::from(event.to_sse())))
        .collect();
    if let Some(fault) = fault {
        // The fault always lands before message_stop: a stream that completes is no fault.
        chunks.truncate(fault.after_events().min(chunks.len().saturating_sub(1)));
        match fault.kind {
            FaultKind::StreamError => chunks.push_back(Ok(error_event(fault))),
            FaultKind::StreamDrop => chunks.push_back(Err(io::Error::other("stream-drop fault"))),
            // stream-end: the truncated events, then a clean end of the body.
            _ => {}
        }
    }
    let feed = Feed {
        chunks,
        _slot: slot,
    };
    Body::from_stream(futures::stream::unfold(feed, move |mut feed| async move {
        let chunk = feed.chunks.pop_front()?;
        // Pausing also lets hyper flush what came before, so a stream-drop cuts after the
        // events it promised; without a pause, a yield does that, and tokio's timer would
        // round even a zero sleep up to its next 1 ms tick.
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
        Some((chunk, feed))
    }))
}

type Chunk = Result<Bytes, io::Error>;

/// The remaining chunks of a stream, and the slot it holds.
struct Feed {
    chunks: VecDeque<Chunk>,
    _slot: SlotGuard,
}

fn error_event(fault: &Fault) -> Bytes {
    let kind = fault
        .error_type
        .as_deref()
        .map_or(ErrorType::Overloaded, ErrorType::from);
    let message = error_message(&kind);
    let error = ErrorBody::new(kind, message).error;
    Bytes::from(MessageStreamEvent::Error { error }.to_sse())
}

/// The message the real API tends to send with `kind` (clients must not match on it).
pub(crate) fn error_message(kind: &ErrorType) -> String {
    match kind {
        ErrorType::Overloaded => "Overloaded".to_owned(),
        ErrorType::RateLimit => "Number of requests has exceeded your rate limit".to_owned(),
        other => format!("mock {}", other.as_str()),
    }
}

fn last_user_text(request: &MessagesRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .map(|message| match &message.content {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Blocks(blocks) => blocks_text(blocks),
        })
        .unwrap_or_default()
}

fn blocks_text(blocks: &[ContentBlock]) -> String {
    blocks
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// About four characters a token, at least one.
fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_echoes_the_start_of_the_last_user_text() {
        let long = "x".repeat(100);
        let request = MessagesRequest::new("m", 1000)
            .with_user("first")
            .with_user(long);
        let message = message(&request, 7, None);
        assert_eq!("msg_mock_7", message.id);
        assert_eq!(
            format!("mock reply from m: {}", "x".repeat(40)),
            message.text()
        );
        assert_eq!(27, message.usage.input_tokens);
        assert!(message.usage.output_tokens > 0);
    }

    #[test]
    fn output_tokens_respect_max_tokens() {
        let request = MessagesRequest::new("m", 2).with_user("hello there");
        assert_eq!(2, message(&request, 1, None).usage.output_tokens);
    }

    use crate::api::Delta;

    #[test]
    fn thinking_comes_first_signed_by_the_thinker() {
        let request = MessagesRequest::new("claude-haiku-4-5", 1000).with_user("hello");
        let message = message(&request, 3, Some("claude-haiku-4-5-20251001"));
        let ContentBlock::Thinking { signature, .. } = &message.content[0] else {
            panic!("thinking first: {:?}", message.content);
        };
        let thinker = signature.as_deref().and_then(signature::decode);
        assert_eq!(Some("claude-haiku-4-5-20251001".to_owned()), thinker);
        assert_eq!("mock reply from claude-haiku-4-5: hello", message.text());
        let events = events_for(&message);
        let stop = events
            .iter()
            .position(|e| *e == MessageStreamEvent::ContentBlockStop { index: 0 })
            .expect("the thinking block stops");
        assert!(matches!(
            &events[stop - 1],
            MessageStreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::Signature { .. }
            }
        ));
        assert!(matches!(
            &events[1],
            MessageStreamEvent::ContentBlockStart {
                index: 0,
                content_block: ContentBlock::Thinking { .. }
            }
        ));
        assert!(matches!(
            &events[stop + 1],
            MessageStreamEvent::ContentBlockStart { index: 1, .. }
        ));
    }
}
