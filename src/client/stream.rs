//! Turns a streamed response body into [`WireEvent`]s, and everything that can go wrong
//! inside a 200 stream into a classified [`Failure`]: an `error` event (an overload after the
//! headers), a dropped connection, a stall longer than `read_timeout`, an unreadable event,
//! or an end without `message_stop`. A stream is never silently truncated, and every failure
//! keeps status 200 and the response's request id. Events keep the bytes that arrived.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::api::sse::{Frame, Framer};
use crate::api::{self, EventKind, WireEvent};
use crate::engine::{Class, EventStream, Failure};

use super::response::TransportError;

struct State<S> {
    body: std::pin::Pin<Box<S>>,
    framer: Framer,
    request_id: Option<String>,
    stall: Duration,
    finished: bool,
}

impl<S> State<S> {
    fn failure(&self, class: Class, message: impl Into<String>) -> Failure {
        api::answered(class, message, 200, self.request_id.as_deref())
    }
}

/// The events of a streamed body. After the first `Err` item, or `message_stop`, it ends.
///
/// `stall` bounds the silence before each event (pings included): the body only comes once
/// the headers are in, and generation may run for minutes, so a per-event bound is the one
/// that tells a slow answer from a dead connection.
pub(super) fn events<S>(
    body: S,
    request_id: Option<String>,
    stall: Duration,
) -> EventStream<WireEvent>
where
    S: Stream<Item = Result<Bytes, TransportError>> + Send + 'static,
{
    let state = State {
        body: Box::pin(body),
        framer: Framer::new(),
        request_id,
        stall,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let item = match tokio::time::timeout(state.stall, next_frame(&mut state)).await {
            Err(_) => {
                let message = format!("stream stalled: no event within {:?}", state.stall);
                Err(state.failure(Class::Timeout, message))
            }
            Ok(Ok(frame)) => decode(&state, frame),
            Ok(Err(failure)) => Err(failure),
        };
        state.finished = match &item {
            Ok(event) => event.kind() == EventKind::MessageStop,
            Err(_) => true,
        };
        Some((item, state))
    }))
}

/// The next whole frame, reading the body as needed.
async fn next_frame<S>(state: &mut State<S>) -> Result<Frame, Failure>
where
    S: Stream<Item = Result<Bytes, TransportError>>,
{
    loop {
        if let Some(frame) = state.framer.next_frame() {
            return Ok(frame);
        }
        match state.body.next().await {
            Some(Ok(chunk)) => state.framer.push(&chunk),
            Some(Err((class, message))) => {
                return Err(state.failure(class, message));
            }
            None => {
                return Err(state.failure(Class::ServerError, "stream ended without message_stop"));
            }
        }
    }
}

fn decode<S>(state: &State<S>, frame: Frame) -> Result<WireEvent, Failure> {
    let event = WireEvent::from_frame(frame.raw, &frame.name, frame.data)
        .map_err(|error| state.failure(Class::ServerError, error.to_string()))?;
    if event.kind() == EventKind::Error {
        let Some(error) = event.error() else {
            return Err(state.failure(Class::ServerError, "unreadable \"error\" event"));
        };
        return Err(api::stream_failure(&error, state.request_id.as_deref()));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MessageStreamEvent;
    use serde_json::json;

    const STALL: Duration = Duration::from_secs(1);

    async fn collect(chunks: &[&str]) -> Vec<Result<MessageStreamEvent, Failure>> {
        let typed = |item: Result<WireEvent, Failure>| item.map(|event| event.to_event().unwrap());
        let chunks: Vec<Result<Bytes, TransportError>> = chunks
            .iter()
            .map(|chunk| Ok(Bytes::from(chunk.to_string())))
            .collect();
        let body = futures::stream::iter(chunks);
        let items: Vec<_> = events(body, Some("req_1".into()), STALL).collect().await;
        items.into_iter().map(typed).collect()
    }

    fn assert_failure(item: &Result<MessageStreamEvent, Failure>, class: Class) -> &Failure {
        let failure = item.as_ref().expect_err("a failure");
        assert_eq!(failure.class(), class, "{failure}");
        assert_eq!(failure.status(), Some(200), "{failure}");
        assert_eq!(failure.request_id(), Some("req_1"), "{failure}");
        failure
    }

    #[tokio::test]
    async fn pings_and_unknown_events_pass_through() {
        let items = collect(&[
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: future_event\ndata: {\"type\": \"future_event\", \"x\": 1}\n\n",
            "event: message_stop\nda",
            "ta: {\"type\": \"message_stop\"}\n\n",
        ])
        .await;
        let events: Vec<_> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(events[0], MessageStreamEvent::Ping);
        assert_eq!(
            events[1],
            MessageStreamEvent::Unknown {
                event: "future_event".into(),
                data: json!({"type": "future_event", "x": 1}),
            }
        );
        assert_eq!(events[2], MessageStreamEvent::MessageStop);
        assert_eq!(events.len(), 3);
    }

    #[tokio::test]
    async fn a_non_json_data_line_is_a_server_error() {
        let items = collect(&["event: content_block_stop\ndata: {not json\n\n"]).await;
        assert_eq!(items.len(), 1, "the stream ends at the failure");
        let failure = assert_failure(&items[0], Class::ServerError);
        assert!(
            failure
                .message()
                .starts_with("unreadable \"content_block_stop\" event")
        );
    }

    #[tokio::test]
    async fn a_missing_event_line_falls_back_to_the_data_type() {
        let items = collect(&[
            "data: {\"type\": \"ping\"}\n\n",
            "data: {\"type\": \"message_stop\"}\n\n",
        ])
        .await;
        let events: Vec<_> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            events,
            [MessageStreamEvent::Ping, MessageStreamEvent::MessageStop]
        );
    }

    #[tokio::test]
    async fn an_error_event_maps_to_its_class_with_status_200() {
        let items = collect(&[
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        ])
        .await;
        assert_eq!(items.len(), 2, "nothing follows the error");
        let failure = assert_failure(&items[1], Class::Overloaded);
        assert_eq!(failure.error_type(), Some("overloaded_error"));
    }

    #[tokio::test]
    async fn an_end_without_message_stop_is_a_server_error() {
        let items = collect(&["event: ping\ndata: {\"type\": \"ping\"}\n\n"]).await;
        assert_eq!(items.len(), 2);
        assert_failure(&items[1], Class::ServerError);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_between_events_is_a_timeout_that_ends_the_stream() {
        let ping: Result<Bytes, TransportError> =
            Ok(Bytes::from("event: ping\ndata: {\"type\": \"ping\"}\n\n"));
        let body = futures::stream::iter([ping]).chain(futures::stream::pending());
        let started = tokio::time::Instant::now();
        let items: Vec<_> = events(body, Some("req_1".into()), STALL).collect().await;
        assert_eq!(items.len(), 2);
        let items: Vec<_> = items
            .into_iter()
            .map(|item| item.map(|e| e.to_event().unwrap()))
            .collect();
        assert_failure(&items[1], Class::Timeout);
        assert_eq!(started.elapsed(), STALL);
    }
}
