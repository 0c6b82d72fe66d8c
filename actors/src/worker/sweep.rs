//! A caller went away: the worker drops the jobs nobody waits for. A queued one leaves the
//! queue; a running one has its attempt task aborted, which drops the upstream call, and
//! gives its slot back at once. Neither is reported to the breaker or the adaptive limit: a
//! caller leaving says nothing of the target's health.

use super::WorkerState;
use crate::breaker::BreakerMsg;
use crate::upstream::Upstream;

impl<U: Upstream> WorkerState<U> {
    /// Drops every abandoned job held, queued or running.
    pub(super) fn sweep(&mut self) {
        let abandoned = self.args.ledger.take_abandoned();
        if abandoned.is_empty() {
            return;
        }
        for job in abandoned {
            if self.running.remove(&job.id).is_some() {
                // The removed task aborts as it drops.
                self.in_flight = self.in_flight.saturating_sub(1);
                tracing::debug!(target = %self.args.target, job = job.id, "caller left: attempt cancelled");
            } else {
                self.queue.retain(|&id| id != job.id);
                self.deadlines.remove(&(job.deadline, job.id));
            }
            // A probe that will not report must give its slot back, or the breaker stays
            // half-open with no slot to probe with.
            if job.probe {
                self.tell_breaker(BreakerMsg::ReleaseProbe);
            }
        }
    }
}
