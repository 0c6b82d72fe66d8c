//! The seam between the engine and the world: the [`Upstream`] trait the actors call to make
//! one attempt against one [`Target`], and the [`Outcome`] it returns.
//!
//! Nothing here knows about HTTP or Anthropic. The Claude client, the simulator and the test
//! fakes are each an `Upstream`; they classify their own failures into a [`Class`], and the
//! policies decide what to do with it. Streaming is part of the seam from the start: an
//! attempt that opens a stream is not settled until the stream commits (see [`await_commit`]),
//! so a failure before the first content event is an outcome like any other.

mod commit;
mod failure;
mod limits;
mod target;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use futures::future::BoxFuture;

pub use commit::{Committed, await_commit};
pub use failure::{Class, Failure};
pub use limits::{RateLimits, Window};
pub use target::Target;

/// A successful attempt: the upstream's answer and what it said alongside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<T> {
    /// The answer itself.
    pub value: T,
    /// The upstream's request id, if it gave one.
    pub request_id: Option<String>,
    /// The rate-limit state reported with the answer.
    pub limits: RateLimits,
    /// What the upstream changed in the request to suit the target, if anything (a
    /// comma-separated list of what; for the Claude client, the fields a fallback adapted).
    pub changes: Option<Arc<str>>,
}

impl<T> Reply<T> {
    /// A reply carrying `value` and nothing else.
    pub fn new(value: T) -> Self {
        Self {
            value,
            request_id: None,
            limits: RateLimits::default(),
            changes: None,
        }
    }

    /// Replaces the value, keeping what the upstream said alongside it.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<U> {
        Reply {
            value: f(self.value),
            request_id: self.request_id,
            limits: self.limits,
            changes: self.changes,
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
    /// being delivered and can no longer be retried or replaced invisibly. Keep-alives, the
    /// opening envelope and the announcement of an empty block do not commit; content, and
    /// the end of a block or of the message, do.
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

    /// What an attempt with `request` is expected to spend of the target's rate limits, for
    /// pacing. Default: nothing known, so only the request count paces.
    fn cost(&self, request: &Self::Request) -> crate::policy::Cost {
        let _ = request;
        crate::policy::Cost::default()
    }

    /// The span of an attempt of `request` at `target`, a child of `parent` (the request's
    /// span), entered while the attempt runs. It must declare the fields the engine records
    /// ([`crate::trace::ATTEMPT_FIELDS`]). Default: [`crate::trace::attempt_span`].
    fn attempt_span(
        &self,
        parent: &tracing::Span,
        target: &Target,
        request: &Self::Request,
    ) -> tracing::Span {
        let _ = request;
        crate::trace::attempt_span(parent, target)
    }
}

/// A shared upstream is an upstream, so the engine can run over `Arc<dyn Upstream<...>>`.
impl<U: Upstream + ?Sized> Upstream for Arc<U> {
    type Request = U::Request;
    type Response = U::Response;
    type Event = U::Event;

    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Self::Request,
    ) -> BoxFuture<'a, Outcome<Self::Response>> {
        (**self).send(target, request)
    }

    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Self::Request,
    ) -> BoxFuture<'a, Outcome<EventStream<Self::Event>>> {
        (**self).stream(target, request)
    }

    fn cost(&self, request: &Self::Request) -> crate::policy::Cost {
        (**self).cost(request)
    }

    fn attempt_span(
        &self,
        parent: &tracing::Span,
        target: &Target,
        request: &Self::Request,
    ) -> tracing::Span {
        (**self).attempt_span(parent, target, request)
    }
}
