//! Turns a streamed response body into Messages stream events, and everything that can go
//! wrong inside a 200 stream into a classified [`Failure`]: an `error` event (an overload
//! after the headers), a dropped connection, an unreadable event, or an end without
//! `message_stop`. A stream is never silently truncated.

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use crate::api::{self, MessageStreamEvent};
use crate::engine::{Class, EventStream, Failure};

use super::transport_failure;

struct State<S> {
    sse: S,
    request_id: Option<String>,
    finished: bool,
}

/// The events of a streamed body. After the first `Err` item, or `message_stop`, it ends.
pub(super) fn events<S>(body: S, request_id: Option<String>) -> EventStream<MessageStreamEvent>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
{
    let state = State {
        sse: Box::pin(body.eventsource()),
        request_id,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let item = match state.sse.next().await {
            None => Err(failure(
                &state,
                "stream ended without message_stop".to_owned(),
            )),
            Some(Err(EventStreamError::Transport(error))) => Err(transport_failure(&error)),
            Some(Err(error)) => Err(failure(&state, format!("unreadable stream: {error}"))),
            Some(Ok(event)) => decode(&state, &event.event, &event.data),
        };
        state.finished = match &item {
            Ok(event) => matches!(event, MessageStreamEvent::MessageStop),
            Err(_) => true,
        };
        Some((item, state))
    }))
}

fn decode<S>(state: &State<S>, name: &str, data: &str) -> Result<MessageStreamEvent, Failure> {
    let name = if name.is_empty() || name == "message" {
        type_of(data)
    } else {
        name.to_owned()
    };
    match MessageStreamEvent::parse(&name, data) {
        Ok(MessageStreamEvent::Error { error }) => {
            Err(api::stream_failure(&error, state.request_id.as_deref()))
        }
        Ok(event) => Ok(event),
        Err(error) => Err(failure(state, format!("unreadable {name} event: {error}"))),
    }
}

/// The `type` field of an event's data, for servers that omit the `event:` line.
fn type_of(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|value| value.get("type")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn failure<S>(state: &State<S>, message: String) -> Failure {
    let failure = Failure::new(Class::ServerError, message).with_status(200);
    match &state.request_id {
        Some(request_id) => failure.with_request_id(request_id.clone()),
        None => failure,
    }
}
