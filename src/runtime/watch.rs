//! [`Watched`]: the upstream as the engine sees it, plus a note of the last attempt that
//! failed ([`LastFailure`]). A caller that sees no progress (the batch runner) reads it to
//! say why, since a request parked behind an open breaker carries no failure of its own
//! until its deadline.

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;

use crate::api::{WireEvent, WireMessage, WireRequest};
use crate::engine::policy::Cost;
use crate::engine::{EventStream, Failure, Outcome, Target, Upstream};

/// The last attempt that failed, and when.
#[derive(Clone, Debug)]
pub struct LastFailure {
    /// When it failed.
    pub at: tokio::time::Instant,
    /// The model it was sent to.
    pub target: Target,
    /// Its failure: class, status, `error.type`, message.
    pub failure: Failure,
}

/// Where [`Watched`] notes the last failure; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct FailureNote(Arc<Mutex<Option<LastFailure>>>);

impl FailureNote {
    /// The last failure noted, if any.
    pub(crate) fn last(&self) -> Option<LastFailure> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn note<T>(&self, target: &Target, outcome: &Outcome<T>) {
        if let Err(failure) = outcome {
            let last = LastFailure {
                at: tokio::time::Instant::now(),
                target: target.clone(),
                failure: failure.clone(),
            };
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(last);
        }
    }
}

/// The upstream watched (the runtime's `DynUpstream`, spelled out: that alias lives in
/// `core`, which holds the note).
type Inner = Arc<dyn Upstream<Request = WireRequest, Response = WireMessage, Event = WireEvent>>;

/// An upstream whose failed attempts are noted.
pub(crate) struct Watched {
    inner: Inner,
    note: FailureNote,
}

impl Watched {
    /// `inner`, noting its failures in `note`.
    pub(crate) fn new(inner: Inner, note: FailureNote) -> Self {
        Watched { inner, note }
    }
}

impl Upstream for Watched {
    type Request = WireRequest;
    type Response = WireMessage;
    type Event = WireEvent;

    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a WireRequest,
    ) -> BoxFuture<'a, Outcome<WireMessage>> {
        Box::pin(async move {
            let outcome = self.inner.send(target, request).await;
            self.note.note(target, &outcome);
            outcome
        })
    }

    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a WireRequest,
    ) -> BoxFuture<'a, Outcome<EventStream<WireEvent>>> {
        Box::pin(async move {
            let outcome = self.inner.stream(target, request).await;
            self.note.note(target, &outcome);
            outcome
        })
    }

    fn cost(&self, request: &WireRequest) -> Cost {
        self.inner.cost(request)
    }

    fn attempt_span(
        &self,
        parent: &tracing::Span,
        target: &Target,
        request: &WireRequest,
    ) -> tracing::Span {
        self.inner.attempt_span(parent, target, request)
    }
}
