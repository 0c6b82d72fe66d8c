//! A request in flight through the engine: what was asked, where it may go, how far it got,
//! and the port its answer goes to. A job is moved, never copied, from actor to actor, so
//! exactly one place holds it at any time; dropping it closes its reply port, so a lost job
//! is an immediate error for its caller, never a hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::RpcReplyPort;
use tokio::sync::watch;
use tokio::time::Instant;

use tracing::Span;

use crate::policy::{Backoff, Cost, StateKind};
use crate::request::{Answer, Attempt, Error, Priority};
use crate::trace::{self, Spans};
use crate::upstream::{Committed, Failure, Reply, Target, Upstream};

/// Where a whole answer goes.
pub type AnswerPort<U> = RpcReplyPort<Result<Answer<<U as Upstream>::Response>, Error>>;
/// Where a committed stream goes.
pub type StreamPort<U> = RpcReplyPort<Result<Answer<Committed<<U as Upstream>::Event>>, Error>>;

/// The caller's port, by kind of request.
pub(crate) enum ReplyPort<U: Upstream> {
    Whole(AnswerPort<U>),
    Stream(StreamPort<U>),
}

impl<U: Upstream> ReplyPort<U> {
    /// Answers with an error. A caller that left is not an error: there is nobody to tell.
    pub(crate) fn fail(self, error: Error) {
        match self {
            ReplyPort::Whole(port) => drop(port.send(Err(error))),
            ReplyPort::Stream(port) => drop(port.send(Err(error))),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            ReplyPort::Whole(port) => port.is_closed(),
            ReplyPort::Stream(port) => port.is_closed(),
        }
    }
}

/// What a successful attempt delivers.
pub(crate) enum Delivery<U: Upstream> {
    Whole(U::Response),
    Stream(Committed<U::Event>),
}

pub(crate) struct Job<U: Upstream> {
    pub(crate) id: u64,
    pub(crate) request: Arc<U::Request>,
    pub(crate) chain: Arc<[Target]>,
    pub(crate) allow_fallback: bool,
    /// Whether a full target passes the job on at once.
    pub(crate) spillover: bool,
    pub(crate) priority: Priority,
    pub(crate) submitted: Instant,
    pub(crate) deadline: Instant,
    pub(crate) reply: ReplyPort<U>,
    /// Index in `chain` of the target currently tried.
    pub(crate) position: usize,
    /// Attempts made on the current target.
    pub(crate) on_target: u32,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) backoff: Backoff,
    /// Whether the attempt under way is a half-open probe.
    pub(crate) probe: bool,
    pub(crate) last: Option<Failure>,
    /// What an attempt is expected to spend of a rate limit, worked out once by the first
    /// worker that takes the job.
    pub(crate) cost: Option<Cost>,
    /// Its request's span, and its attempt's until a decision follows a failure.
    pub(crate) spans: Spans,
    /// Counts the job as outstanding for as long as it exists.
    pub(crate) _ticket: Ticket,
}

/// How many requests the engine holds. Every job holds a [`Ticket`], so the count is right
/// however a job ends: answered, failed, abandoned, or lost with an actor. It also numbers
/// the jobs, engine-wide: workers key the jobs they hold by id, so ids must stay unique
/// across dispatcher restarts.
pub(crate) struct Outstanding {
    total: watch::Sender<u32>,
    ids: AtomicU64,
}

impl Outstanding {
    pub(crate) fn new() -> Self {
        Self {
            total: watch::Sender::new(0),
            ids: AtomicU64::new(0),
        }
    }

    /// A job id never issued before by this engine.
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn total(&self) -> u32 {
        *self.total.borrow()
    }

    /// Resolves once the engine holds no request.
    pub(crate) async fn emptied(&self) {
        let mut total = self.total.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = total.wait_for(|n| *n == 0).await;
    }

    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        self.total.send_modify(|n| *n += 1);
        Ticket {
            outstanding: self.clone(),
        }
    }
}

/// One outstanding request; dropping it releases the count.
pub(crate) struct Ticket {
    outstanding: Arc<Outstanding>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outstanding
            .total
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl<U: Upstream> Job<U> {
    /// The span of the job's next attempt, made by `upstream`, with what is known at its
    /// start (the target's `breaker` state among it); the job keeps it until a decision
    /// follows its failure.
    pub(crate) fn attempt_span(&mut self, upstream: &U, breaker: StateKind) -> Span {
        let span = upstream.attempt_span(self.spans.request(), self.target(), &self.request);
        if !span.is_disabled() {
            span.record(trace::TARGET, tracing::field::display(self.target()));
            span.record(trace::ATTEMPT, trace::int(self.attempts.len() + 1));
            span.record(trace::PROBE, self.probe);
            span.record(trace::BREAKER, breaker.as_label());
            self.spans.keep(span.clone());
        }
        span
    }

    pub(crate) fn target(&self) -> &Target {
        &self.chain[self.position.min(self.chain.len() - 1)]
    }

    pub(crate) fn is_streaming(&self) -> bool {
        matches!(self.reply, ReplyPort::Stream(_))
    }

    /// Whether the caller stopped waiting.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Whether the chain has a target after the current one that this job may use.
    pub(crate) fn can_fall_back(&self) -> bool {
        self.allow_fallback && self.position + 1 < self.chain.len()
    }

    pub(crate) fn record(&mut self, failure: Option<&Failure>, now: Instant) {
        self.attempts.push(Attempt {
            target: self.target().clone(),
            failure: failure.map(Failure::class),
            status: failure.and_then(Failure::status),
            probe: self.probe,
            ended_after: now.saturating_duration_since(self.submitted),
        });
        self.on_target += 1;
    }

    /// Answers the caller with an error.
    pub(crate) fn fail(self, error: Error) {
        // The job's spans end before the caller hears, so that what it reads next (a flushed
        // trace, say) has them.
        drop(self.spans);
        self.reply.fail(error);
    }

    /// Answers the caller with what the attempt delivered.
    pub(crate) fn succeed(self, reply: Reply<Delivery<U>>) {
        let target = self.target().clone();
        drop(self.spans);
        let (attempts, request_id, changes) = (self.attempts, reply.request_id, reply.changes);
        // A caller that left is not an error: there is nobody to tell.
        match (self.reply, reply.value) {
            (ReplyPort::Whole(port), Delivery::Whole(value)) => {
                drop(port.send(Ok(Answer {
                    value,
                    target,
                    attempts,
                    request_id,
                    changes,
                })));
            }
            (ReplyPort::Stream(port), Delivery::Stream(value)) => {
                drop(port.send(Ok(Answer {
                    value,
                    target,
                    attempts,
                    request_id,
                    changes,
                })));
            }
            (port, _) => port.fail(mismatch()),
        }
    }
}

fn mismatch() -> Error {
    Error::Internal("an attempt delivered the wrong kind of answer".into())
}
