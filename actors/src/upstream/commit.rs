//! When a streamed attempt is settled: [`await_commit`] reads a fresh stream until its first
//! committing event, so every failure before content reaches a caller stays retryable.

use std::fmt;
use std::time::Duration;

use futures::StreamExt;

use super::{Class, EventStream, Failure, StreamEvent};

/// A stream that has committed: the events read before the commit, the committing event
/// itself last, and the rest of the stream.
pub struct Committed<E> {
    /// Events read so far, ending with the one that committed.
    pub head: Vec<E>,
    /// Everything after.
    pub tail: EventStream<E>,
}

impl<E> fmt::Debug for Committed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committed")
            .field("head", &self.head.len())
            .finish_non_exhaustive()
    }
}

/// Reads a freshly opened stream until it commits, so that everything that can go wrong
/// before the first content event is an ordinary, retryable [`Failure`].
///
/// Fails with the stream's own failure (an in-stream `overloaded_error`, a dropped
/// connection), with [`Class::Timeout`] when no event (keep-alives included) arrives within
/// `stall`, and with [`Class::ServerError`] when the stream ends before it commits.
pub async fn await_commit<E: StreamEvent>(
    mut events: EventStream<E>,
    stall: Duration,
) -> Result<Committed<E>, Failure> {
    let mut head = Vec::new();
    loop {
        match tokio::time::timeout(stall, events.next()).await {
            Err(_) => {
                return Err(Failure::new(
                    Class::Timeout,
                    format!("stream stalled: no event within {stall:?}"),
                ));
            }
            Ok(None) => {
                return Err(Failure::new(
                    Class::ServerError,
                    "stream ended before any content",
                ));
            }
            Ok(Some(Err(failure))) => return Err(failure),
            Ok(Some(Ok(event))) => {
                let commits = event.commits();
                head.push(event);
                if commits {
                    return Ok(Committed { head, tail: events });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Start,
        Ping,
        Text(&'static str),
    }

    impl StreamEvent for Ev {
        fn commits(&self) -> bool {
            matches!(self, Ev::Text(_))
        }
    }

    fn boxed(items: Vec<Result<Ev, Failure>>) -> EventStream<Ev> {
        Box::pin(stream::iter(items))
    }

    #[tokio::test(start_paused = true)]
    async fn commit_keeps_prelude_and_tail() {
        let events = boxed(vec![
            Ok(Ev::Start),
            Ok(Ev::Ping),
            Ok(Ev::Text("a")),
            Ok(Ev::Text("b")),
        ]);
        let committed = await_commit(events, Duration::from_secs(1)).await.unwrap();
        assert_eq!(committed.head, vec![Ev::Start, Ev::Ping, Ev::Text("a")]);
        let tail: Vec<_> = committed.tail.collect().await;
        assert_eq!(tail, vec![Ok(Ev::Text("b"))]);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_before_content_is_an_outcome() {
        let overloaded = Failure::new(Class::Overloaded, "Overloaded").with_status(200);
        let events = boxed(vec![Ok(Ev::Start), Err(overloaded.clone())]);
        let err = await_commit(events, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err, overloaded);
    }

    #[tokio::test(start_paused = true)]
    async fn early_end_is_a_server_error() {
        let err = await_commit(boxed(vec![Ok(Ev::Start)]), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.class(), Class::ServerError);
    }

    #[tokio::test(start_paused = true)]
    async fn stall_is_a_timeout_after_exactly_the_stall_interval() {
        let events: EventStream<Ev> =
            Box::pin(stream::iter(vec![Ok(Ev::Start)]).chain(stream::pending()));
        let started = tokio::time::Instant::now();
        let err = await_commit(events, Duration::from_millis(250))
            .await
            .unwrap_err();
        assert_eq!(err.class(), Class::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }
}
