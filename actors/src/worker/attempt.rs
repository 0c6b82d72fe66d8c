//! One attempt as its own task runs it: bounded in time, a panic turned into a failure, and a
//! stream read until it commits.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::job::Delivery;
use crate::trace;
use crate::upstream::{Class, Failure, Outcome, Reply, Target, Upstream, await_commit};

/// What one attempt needs to run.
pub(super) struct Run<U: Upstream> {
    pub(super) upstream: Arc<U>,
    pub(super) target: Target,
    pub(super) request: Arc<U::Request>,
    pub(super) streaming: bool,
    /// Longest a stream may go without an event before it commits.
    pub(super) stall: Duration,
    /// Longest the whole attempt may take.
    pub(super) timeout: Duration,
}

/// A running attempt's task, owned by its worker: dropping it aborts the task, so that an
/// attempt never outlives the worker that counts it (a worker that crashes takes its
/// attempts with it, and the supervisor hands their jobs back).
pub(super) struct Task(AbortHandle, Instant);

impl Task {
    /// When the attempt started.
    pub(super) fn started(&self) -> Instant {
        self.1
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the attempt as its own task, in `span`, and hands its outcome to `done`. Dropping
/// the [`Task`] aborts it, which drops the attempt and the upstream call with it; `done` is
/// then never called.
pub(super) fn spawn<U: Upstream>(
    run: Run<U>,
    span: Span,
    done: impl FnOnce(Outcome<Delivery<U>>) + Send + 'static,
) -> Task {
    let attempt = attempt(
        run.upstream,
        run.target,
        run.request,
        run.streaming,
        run.stall,
    );
    let timeout = run.timeout;
    let task = tokio::spawn(async move {
        let outcome = bounded(attempt, timeout).instrument(span.clone()).await;
        trace::ended(&span, outcome.as_ref().err());
        // Let go of the span before the outcome moves on, so that it has ended (or waits
        // only for the decision the job carries it to) by the time the caller hears.
        drop(span);
        done(outcome);
    });
    Task(task.abort_handle(), Instant::now())
}

/// Runs `attempt` for at most `timeout`, turning a panic into a server error: whatever the
/// upstream does, the attempt ends, and in time.
async fn bounded<U: Upstream>(
    attempt: impl Future<Output = Outcome<Delivery<U>>>,
    timeout: Duration,
) -> Outcome<Delivery<U>> {
    match tokio::time::timeout(timeout, AssertUnwindSafe(attempt).catch_unwind()).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(Failure::new(Class::ServerError, "the upstream panicked")),
        Err(_) => Err(Failure::new(
            Class::Timeout,
            format!("no answer within {}ms", timeout.as_millis()),
        )),
    }
}

/// One attempt: a whole answer, or a stream read until it commits.
async fn attempt<U: Upstream>(
    upstream: Arc<U>,
    target: Target,
    request: Arc<U::Request>,
    streaming: bool,
    stall: Duration,
) -> Outcome<Delivery<U>> {
    if !streaming {
        return upstream
            .send(&target, &request)
            .await
            .map(|reply| reply.map(Delivery::Whole));
    }
    let opened = upstream.stream(&target, &request).await?;
    let committed = await_commit(opened.value, stall).await?;
    Ok(Reply {
        value: Delivery::Stream(committed),
        request_id: opened.request_id,
        limits: opened.limits,
        changes: opened.changes,
    })
}
