//! What the drain cuts still gets an answer (issue #16): a request still running when the
//! grace period ends is answered with a 503 `api_error` saying the gateway is shutting down,
//! and a stream already under way ends with an SSE `error` event, never a silent close. A
//! middleware around the whole router races each answer against the cut, so no handler needs
//! to know about shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

use super::error::error;
use crate::api::{ErrorBody, ErrorType};

/// What every answer cut at shutdown says.
const MESSAGE: &str =
    "the gateway is shutting down: the request was cut at the end of its grace period";

/// The switch that cuts what is still running, and the count of what it cut.
#[derive(Clone, Debug)]
pub(super) struct Cut {
    signal: Arc<watch::Sender<bool>>,
    count: Arc<AtomicUsize>,
}

impl Cut {
    pub(super) fn new() -> Self {
        Self {
            signal: Arc::new(watch::Sender::new(false)),
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Cuts every answer still running, now and from now on.
    pub(super) fn now(&self) {
        self.signal.send_replace(true);
    }

    /// How many answers were cut.
    pub(super) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    async fn cut(&self) {
        let mut cut = self.signal.subscribe();
        // The sender lives as long as `self`, so this only ends when the cut comes.
        let _ = cut.wait_for(|cut| *cut).await;
    }

    fn counted(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("breakwater_gateway_cut_total").increment(1);
    }
}

/// The middleware: the handler's answer, or the shutdown error if the cut comes first; a
/// streamed answer ends with an SSE `error` event if the cut comes during it.
pub(super) async fn answer_or_cut(
    State(cut): State<Cut>,
    request: Request,
    next: Next,
) -> Response {
    let response = tokio::select! {
        response = next.run(request) => response,
        () = cut.cut() => {
            cut.counted();
            return error(503, ErrorType::Api, MESSAGE);
        }
    };
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        return response;
    }
    let (parts, body) = response.into_parts();
    let frames = body.into_data_stream();
    let frames = futures::stream::unfold(Some((frames, cut)), |state| async move {
        let (mut frames, cut) = state?;
        tokio::select! {
            biased;
            frame = frames.next() => frame.map(|frame| (frame, Some((frames, cut)))),
            () = cut.cut() => {
                cut.counted();
                Some((Ok(error_event()), None))
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(frames))
}

fn error_event() -> Bytes {
    let body = ErrorBody::new(ErrorType::Api, MESSAGE);
    let data = serde_json::to_string(&body).unwrap_or_default();
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}
