//! A caller's request body on its way upstream: streamed chunk by chunk, within the size
//! limit and the pause allowed between chunks. What ended it early is kept, so that the
//! caller gets 413 or 408 rather than the 502 of the upstream request it broke.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use futures::StreamExt;

use crate::client::ForwardStream;

/// Why a caller's body was cut short.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Fault {
    /// It grew past the limit, of this many bytes.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(u64),
    /// The caller paused longer than allowed between two chunks.
    #[error("the request body stalled for {0:?}")]
    Stalled(Duration),
    /// It could not be read (the caller hung up, or sent a malformed chunk).
    #[error("cannot read the request body: {0}")]
    Broken(String),
}

/// Where a body's fault is told, once.
pub(super) type FaultSlot = Arc<OnceLock<Fault>>;

/// `body` as a stream that ends with an error past `limit` bytes or after a `pause` with no
/// chunk; `None` for a body known to be empty. The slot tells why it ended early.
pub(super) fn upload(
    body: Body,
    limit: u64,
    pause: Duration,
) -> (Option<ForwardStream>, FaultSlot) {
    let slot = FaultSlot::default();
    if body.is_end_stream() {
        return (None, slot);
    }
    let state = (body.into_data_stream(), 0u64, slot.clone());
    let stream = futures::stream::unfold(Some(state), move |state| async move {
        let (mut chunks, sent, slot) = state?;
        let fault = match tokio::time::timeout(pause, chunks.next()).await {
            Ok(None) => return None,
            Ok(Some(Ok(chunk))) => {
                let sent = sent + chunk.len() as u64;
                if sent <= limit {
                    return Some((Ok(chunk), Some((chunks, sent, slot))));
                }
                Fault::TooLarge(limit)
            }
            Ok(Some(Err(error))) => Fault::Broken(error.to_string()),
            Err(_) => Fault::Stalled(pause),
        };
        let error = fault.clone().into();
        let _ = slot.set(fault);
        Some((Err(error), None))
    });
    (Some(stream.boxed()), slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(stream: ForwardStream) -> (u64, Option<String>) {
        let mut stream = stream;
        let mut bytes = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => bytes += chunk.len() as u64,
                Err(error) => return (bytes, Some(error.to_string())),
            }
        }
        (bytes, None)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_whole() {
        let (stream, slot) = upload(Body::from("0123456789"), 10, Duration::from_secs(1));
        assert_eq!(drain(stream.unwrap()).await, (10, None));
        assert_eq!(slot.get(), None);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_ends_with_the_fault_told() {
        let chunks =
            futures::stream::iter(["01234", "56789", "x"]).map(Ok::<_, std::convert::Infallible>);
        let (stream, slot) = upload(Body::from_stream(chunks), 10, Duration::from_secs(1));
        let (bytes, error) = drain(stream.unwrap()).await;
        assert_eq!(bytes, 10);
        assert_eq!(error.as_deref(), Some("the request body exceeds 10 bytes"));
        assert_eq!(slot.get(), Some(&Fault::TooLarge(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_ends_after_the_pause() {
        let chunks = futures::stream::iter([Ok::<_, std::convert::Infallible>("first")])
            .chain(futures::stream::pending());
        let pause = Duration::from_secs(30);
        let (stream, slot) = upload(Body::from_stream(chunks), 100, pause);
        let started = tokio::time::Instant::now();
        let (bytes, error) = drain(stream.unwrap()).await;
        assert_eq!((bytes, started.elapsed()), (5, pause));
        assert!(error.is_some());
        assert_eq!(slot.get(), Some(&Fault::Stalled(pause)));
    }

    #[test]
    fn an_empty_body_is_none() {
        assert!(
            upload(Body::empty(), 10, Duration::from_secs(1))
                .0
                .is_none()
        );
    }
}
