//! A caller went away: the jobs nobody waits for are dropped wherever the engine holds them
//! (parked, in a retry delay, queued or running at a worker), so that their slots are free
//! at once and no further attempt is made for them. Dropping a job releases its admission
//! ticket and closes nothing that is still open: its caller's port is closed already.

use super::park::PARKED;
use super::state::DispatcherState;
use crate::job::Job;
use crate::upstream::Upstream;
use crate::worker::WorkerMsg;

impl<U: Upstream> DispatcherState<U> {
    /// Drops the abandoned jobs the dispatcher holds, and has every worker drop its own.
    pub(crate) fn left(&mut self) {
        let parked = self.parked.take(usize::MAX, Job::is_abandoned);
        if !parked.is_empty() {
            metrics::gauge!(PARKED).set(self.parked.len() as f64);
        }
        self.delayed.retain(|_, job| !job.is_abandoned());
        for target in self.directory.targets() {
            if let Some(worker) = self.directory.worker(&target) {
                let _ = worker.cast(WorkerMsg::Sweep);
            }
        }
    }
}
