//! What a worker tells the other actors: its breaker, of an outcome or a probe slot given
//! back; the dispatcher, of a failed attempt.

use super::WorkerState;
use crate::breaker::BreakerMsg;
use crate::dispatcher::Signal;
use crate::job::Job;
use crate::upstream::{Failure, Upstream};

impl<U: Upstream> WorkerState<U> {
    pub(super) fn tell_breaker(&self, message: BreakerMsg<U>) {
        if let Some(breaker) = self.args.directory.breaker(&self.args.target) {
            let _ = breaker.cast(message);
        }
    }

    /// Hands `job` back to the dispatcher, which decides what follows `failure`.
    pub(super) fn hand_back(&self, job: Job<U>, failure: Failure) {
        if let Some(dispatcher) = self.args.directory.dispatcher() {
            let _ = dispatcher.cast(Signal::Failed { job, failure }.into());
        }
    }
}
