//! A queued job whose deadline passes while it waits for the gate (a full cap, pacing, a
//! 429 pause) is handed back to the dispatcher at its deadline, as a timeout, so that its
//! caller is answered then and its admission slot freed, rather than when the gate next
//! opens. The worker sets a timer for the earliest deadline among its queued jobs.

use ractor::ActorRef;
use tokio::time::Instant;

use super::{WorkerMsg, WorkerState};
use crate::breaker::BreakerMsg;
use crate::upstream::{Class, Failure, Upstream};

impl<U: Upstream> WorkerState<U> {
    /// Hands back every queued job whose deadline has passed, then sets a timer for the
    /// next deadline.
    pub(super) fn expire(&mut self, myself: &ActorRef<WorkerMsg<U>>) {
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                self.wake(myself, deadline, now);
                break;
            }
            self.deadlines.pop_first();
            expired.push(id);
        }
        if expired.is_empty() {
            return;
        }
        self.queue.retain(|id| !expired.contains(id));
        for id in expired {
            let Some(job) = self.args.ledger.remove(id) else {
                continue;
            };
            if job.probe {
                self.tell_breaker(BreakerMsg::ReleaseProbe);
            }
            if job.is_abandoned() {
                continue;
            }
            self.hand_back(job, waited_too_long());
        }
    }

    /// Sets the worker's timer for `at` (a gate that may open, a queued deadline), unless
    /// it is set for then or sooner already.
    pub(super) fn wake(&mut self, myself: &ActorRef<WorkerMsg<U>>, at: Instant, now: Instant) {
        if self.wake_at.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        self.wake_at = Some(at);
        myself.send_after(at - now, || WorkerMsg::Wake);
    }
}

/// The failure of a job whose deadline passed before it could start.
pub(super) fn waited_too_long() -> Failure {
    Failure::new(
        Class::Timeout,
        "the deadline passed while the request waited for a slot",
    )
}
