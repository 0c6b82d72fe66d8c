//! The seam between the engine and the world: the [`Upstream`] trait the actors call to make
//! one attempt against one [`Target`], and the [`Outcome`] it returns.
//!
//! Nothing here knows about HTTP or Anthropic. The Claude client, the simulator and the test
//! fakes are each an `Upstream`; they classify their own failures into a [`Class`], and the
//! policies decide what to do with it. Streaming is part of the seam from the start: an
//! attempt that opens a stream is not settled until the stream commits (see [`await_commit`]),
//! so a failure before the first content event is an outcome like any other.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};

/// A model served by an upstream: the unit that gets its own worker and breaker.
///
/// The same model through a second endpoint is another target, so adding an upstream is a
/// configuration change rather than a refactor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    model: Arc<str>,
    upstream: Option<Arc<str>>,
}

impl Target {
    /// A target for `model` on the default upstream.
    pub fn new(model: impl Into<Arc<str>>) -> Self {
        Self {
            model: model.into(),
            upstream: None,
        }
    }

    /// The same model, served through the named upstream instead of the default one.
    #[must_use]
    pub fn via(mut self, upstream: impl Into<Arc<str>>) -> Self {
        self.upstream = Some(upstream.into());
        self
    }

    /// The model name sent upstream.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The upstream's name, or `None` for the default upstream.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.upstream {
            Some(upstream) => write!(f, "{}@{upstream}", self.model),
            None => f.write_str(&self.model),
        }
    }
}

/// What kind of failure an attempt met. Each class has one policy (see DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Class {
    /// The model is out of capacity for everyone (Anthropic: 529 `overloaded_error`).
    Overloaded,
    /// Our own quota is spent (Anthropic: 429 `rate_limit_error`).
    RateLimited,
    /// The upstream failed (500, 502, 503, 504) or answered with something unreadable.
    ServerError,
    /// No answer in time: a local timeout, or a stream that stalled.
    Timeout,
    /// The connection was refused, reset or dropped before a response arrived.
    Connect,
    /// The request itself is wrong (400, 401, 403, 404, 413, other 4xx): never retried.
    Invalid,
}

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 6] = [
        Class::Overloaded,
        Class::RateLimited,
        Class::ServerError,
        Class::Timeout,
        Class::Connect,
        Class::Invalid,
    ];

    /// Whether trying again (later, or elsewhere) can succeed.
    pub fn is_transient(self) -> bool {
        !matches!(self, Class::Invalid)
    }

    /// Whether this failure says something about the model's health, and so feeds its breaker.
    ///
    /// A 429 is about our quota, not the model's health, and an invalid request is our fault:
    /// neither may open a circuit.
    pub fn counts_toward_breaker(self) -> bool {
        matches!(
            self,
            Class::Overloaded | Class::ServerError | Class::Timeout | Class::Connect
        )
    }

    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            Class::Overloaded => "overloaded",
            Class::RateLimited => "rate_limited",
            Class::ServerError => "server_error",
            Class::Timeout => "timeout",
            Class::Connect => "connect",
            Class::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_label())
    }
}

/// One rate-limit window as the upstream announced it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// The most the window allows.
    pub limit: Option<u64>,
    /// What is left of it.
    pub remaining: Option<u64>,
    /// How long until it is fully replenished, measured from when the response arrived.
    pub reset_in: Option<Duration>,
}

impl Window {
    /// Whether the upstream said anything about this window.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_in.is_none()
    }
}

/// The rate-limit state an upstream reports with a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per window.
    pub requests: Window,
    /// Tokens per window (the most restrictive token limit in effect).
    pub tokens: Window,
    /// Input tokens per window.
    pub input_tokens: Window,
    /// Output tokens per window.
    pub output_tokens: Window,
}

impl RateLimits {
    /// Whether no window was reported at all.
    pub fn is_empty(&self) -> bool {
        [
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
        .iter()
        .all(Window::is_empty)
    }
}

/// A failed attempt, classified, with everything the upstream said about it.
///
/// Boxed inside, like `reqwest::Error`, so that `Result<_, Failure>` stays small on every
/// happy path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure(Box<Inner>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    class: Class,
    message: String,
    status: Option<u16>,
    error_type: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    limits: RateLimits,
}

impl Failure {
    /// A failure of `class`, described by `message`.
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            class,
            message: message.into(),
            status: None,
            error_type: None,
            request_id: None,
            retry_after: None,
            should_retry: None,
            limits: RateLimits::default(),
        }))
    }

    /// Sets the status the upstream answered with.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.0.status = Some(status);
        self
    }

    /// Sets the upstream's own name for the error (Anthropic's `error.type`).
    #[must_use]
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.0.error_type = Some(error_type.into());
        self
    }

    /// Sets the upstream's request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.0.request_id = Some(request_id.into());
        self
    }

    /// Sets how long the upstream asked us to wait before trying again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.0.retry_after = Some(retry_after);
        self
    }

    /// Records an explicit retry verdict from the upstream (Anthropic's `x-should-retry`).
    #[must_use]
    pub fn with_should_retry(mut self, should_retry: bool) -> Self {
        self.0.should_retry = Some(should_retry);
        self
    }

    /// Records the rate-limit state reported with the failure.
    #[must_use]
    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.0.limits = limits;
        self
    }

    /// The failure's class.
    pub fn class(&self) -> Class {
        self.0.class
    }

    /// A human-readable description, as the upstream or the transport gave it.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The status the upstream answered with, if it answered at all.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }

    /// The upstream's own name for the error, if it gave one.
    pub fn error_type(&self) -> Option<&str> {
        self.0.error_type.as_deref()
    }

    /// The upstream's request id, if it gave one.
    pub fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    /// How long the upstream asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The upstream's explicit retry verdict, if it gave one.
    pub fn should_retry(&self) -> Option<bool> {
        self.0.should_retry
    }

    /// The rate-limit state reported with the failure.
    pub fn limits(&self) -> &RateLimits {
        &self.0.limits
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.class)?;
        let mut detail = Vec::new();
        if let Some(status) = self.0.status {
            detail.push(status.to_string());
        }
        if let Some(error_type) = &self.0.error_type {
            detail.push(error_type.clone());
        }
        if let Some(request_id) = &self.0.request_id {
            detail.push(format!("request-id {request_id}"));
        }
        if !detail.is_empty() {
            write!(f, " ({})", detail.join(", "))?;
        }
        write!(f, ": {}", self.0.message)
    }
}

impl std::error::Error for Failure {}

/// A successful attempt: the upstream's answer and what it said alongside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<T> {
    /// The answer itself.
    pub value: T,
    /// The upstream's request id, if it gave one.
    pub request_id: Option<String>,
    /// The rate-limit state reported with the answer.
    pub limits: RateLimits,
}

impl<T> Reply<T> {
    /// A reply carrying `value` and nothing else.
    pub fn new(value: T) -> Self {
        Self {
            value,
            request_id: None,
            limits: RateLimits::default(),
        }
    }

    /// Replaces the value, keeping what the upstream said alongside it.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<U> {
        Reply {
            value: f(self.value),
            request_id: self.request_id,
            limits: self.limits,
        }
    }
}

/// What one attempt ended in.
pub type Outcome<T> = Result<Reply<T>, Failure>;

/// A stream of events from an attempt; a failure inside the stream is an `Err` item.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<E, Failure>> + Send>>;

/// An event of a streamed response.
pub trait StreamEvent: Send + 'static {
    /// Whether this event commits the attempt: once it reaches a caller, the response is
    /// being delivered and can no longer be retried or replaced invisibly. Keep-alives and
    /// the opening envelope do not commit; content, and the end of the message, do.
    fn commits(&self) -> bool;
}

/// Makes one attempt against one target. Implemented by the Claude client, the simulator and
/// test fakes.
///
/// An implementation classifies every failure itself, and never retries: retrying,
/// backing off and falling back are the engine's decisions.
pub trait Upstream: Send + Sync + 'static {
    /// What a caller asks for. The target's model replaces whatever model it names.
    type Request: Send + Sync + 'static;
    /// A complete, non-streamed answer.
    type Response: Send + 'static;
    /// One event of a streamed answer.
    type Event: StreamEvent;

    /// Sends `request` to `target` and waits for the whole answer.
    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Self::Request,
    ) -> BoxFuture<'a, Outcome<Self::Response>>;

    /// Opens a streamed answer. Resolves once the upstream accepted the request (for HTTP,
    /// once the status and headers arrived); failures after that arrive as `Err` items.
    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Self::Request,
    ) -> BoxFuture<'a, Outcome<EventStream<Self::Event>>>;
}

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

    #[test]
    fn breaker_counts_health_failures_only() {
        let counted: Vec<_> = Class::ALL
            .into_iter()
            .filter(|c| c.counts_toward_breaker())
            .collect();
        assert_eq!(
            counted,
            vec![
                Class::Overloaded,
                Class::ServerError,
                Class::Timeout,
                Class::Connect
            ]
        );
        assert!(!Class::Invalid.is_transient());
        assert!(Class::RateLimited.is_transient());
    }

    #[test]
    fn failure_display_names_class_status_type_and_request_id() {
        let failure = Failure::new(Class::Overloaded, "Overloaded")
            .with_status(529)
            .with_error_type("overloaded_error")
            .with_request_id("req_1");
        assert_eq!(
            failure.to_string(),
            "overloaded (529, overloaded_error, request-id req_1): Overloaded"
        );
    }
}
