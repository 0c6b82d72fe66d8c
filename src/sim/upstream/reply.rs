//! What the simulated API answers with: a small, real [`Message`] from the target's model,
//! whole or as the events the API would stream for it, spread over the service time.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Map;

use crate::api::{ContentBlock, Message, Role, Usage, WireEvent, events_for};
use crate::engine::{EventStream, Failure};
use crate::mock::SlotGuard;

/// Input tokens the simulated API bills per request: the prompts are not what is simulated.
const INPUT_TOKENS: u64 = 16;

/// `req_sim_N`: the request id of attempt `number`.
pub(super) fn request_id(number: u64) -> String {
    format!("req_sim_{number}")
}

/// The answer to attempt `number` of a request for at most `max_tokens`, from `model`.
pub(super) fn message(model: &str, max_tokens: u32, number: u64) -> Message {
    let text = format!("sim reply from {model}");
    let output_tokens = (text.len() as u64).div_ceil(4);
    Message {
        id: format!("msg_sim_{number}"),
        kind: "message".to_owned(),
        role: Role::Assistant,
        model: model.to_owned(),
        content: vec![ContentBlock::text(text)],
        stop_reason: Some("end_turn".to_owned()),
        stop_sequence: None,
        usage: Usage {
            input_tokens: INPUT_TOKENS,
            output_tokens: output_tokens.min(u64::from(max_tokens)),
            cache_creation_input_tokens: None,
            cache_read_input_tokens: None,
            extra: Map::new(),
        },
        extra: Map::new(),
    }
}

/// `message` as a stream: `message_start` at once, the other events evenly over `service`,
/// the last one when it ends. `slot` is held until the stream ends or is dropped.
pub(super) fn stream(
    message: &Message,
    service: Duration,
    slot: SlotGuard,
) -> EventStream<WireEvent> {
    let events: VecDeque<WireEvent> = events_for(message)
        .into_iter()
        .map(WireEvent::from)
        .collect();
    let gaps = u32::try_from(events.len().saturating_sub(1))
        .unwrap_or(u32::MAX)
        .max(1);
    let feed = Feed {
        events,
        pause: service / gaps,
        first: true,
        slot: Some(slot),
    };
    Box::pin(futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.events.pop_front()?;
        if !std::mem::take(&mut feed.first) {
            tokio::time::sleep(feed.pause).await;
        }
        if feed.events.is_empty() {
            // The answer is complete: the slot frees with the last event, not when the
            // caller gets round to dropping the stream.
            feed.slot = None;
        }
        Some((Ok::<_, Failure>(event), feed))
    }))
}

/// The events still to send, and the slot the stream holds.
struct Feed {
    events: VecDeque<WireEvent>,
    pause: Duration,
    first: bool,
    slot: Option<SlotGuard>,
}
