//! The typed view of the wire: a [`WireMessage`] answer read as a [`Message`], a stream of
//! [`WireEvent`]s as [`MessageStreamEvent`]s, for [`Runtime::send`](super::Runtime::send)
//! and [`Runtime::stream`](super::Runtime::stream). What does not fit its type fails as an
//! unreadable upstream answer would.

use crate::api::{Message, MessageStreamEvent, WireEvent, WireMessage};
use crate::engine::{Answer, Committed, Error};

/// A wire answer as a typed one. An answer the engine accepted is a message by its shape;
/// one whose fields do not fit [`Message`] fails as the upstream's error.
pub(super) fn typed_answer(answer: Answer<WireMessage>) -> Result<Answer<Message>, Error> {
    match answer.value.message() {
        Ok(message) => Ok(Answer {
            value: message,
            target: answer.target,
            attempts: answer.attempts,
            request_id: answer.request_id,
            changes: answer.changes,
        }),
        Err(error) => {
            let mut failure = crate::engine::Failure::new(
                crate::engine::Class::ServerError,
                format!("unreadable response body: {error}"),
            )
            .with_status(200);
            if let Some(id) = &answer.request_id {
                failure = failure.with_request_id(id.clone());
            }
            Err(Error::Upstream {
                failure,
                attempts: answer.attempts,
            })
        }
    }
}

/// A wire stream as typed events; an event whose data does not fit its type ends the
/// stream with a failure, as an unreadable event always has.
pub(super) fn typed_stream(
    answer: Answer<Committed<WireEvent>>,
) -> Answer<Committed<MessageStreamEvent>> {
    use futures::StreamExt;
    let request_id = answer.request_id.clone();
    let typed = move |event: WireEvent| {
        event.to_event().map_err(|error| {
            crate::api::answered(
                crate::engine::Class::ServerError,
                format!("unreadable {:?} event: {error}", event.name()),
                200,
                request_id.as_deref(),
            )
        })
    };
    let committed = answer.value;
    let mut head = Vec::with_capacity(committed.head.len());
    let mut failed = None;
    for event in committed.head {
        match typed.clone()(event) {
            Ok(event) => head.push(event),
            Err(failure) => {
                failed = Some(failure);
                break;
            }
        }
    }
    let tail: crate::engine::EventStream<MessageStreamEvent> = match failed {
        Some(failure) => Box::pin(futures::stream::iter([Err(failure)])),
        None => Box::pin(committed.tail.map(move |item| item.and_then(typed.clone()))),
    };
    Answer {
        value: Committed { head, tail },
        target: answer.target,
        attempts: answer.attempts,
        request_id: answer.request_id,
        changes: answer.changes,
    }
}
