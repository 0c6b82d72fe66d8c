//! The jobs a worker holds, queued or running, kept where the supervisor can reach them: if
//! the worker crashes, the supervisor hands every one back to the dispatcher.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::job::Job;
use crate::policy::Cost;
use crate::upstream::Upstream;

/// Jobs a worker holds, queued or running, where the supervisor can reach them.
pub(crate) struct Ledger<U: Upstream>(Mutex<HashMap<u64, Job<U>>>);

impl<U: Upstream> Ledger<U> {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&mut HashMap<u64, Job<U>>) -> R) -> R {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    pub(super) fn insert(&self, job: Job<U>) {
        self.with(|jobs| jobs.insert(job.id, job));
    }

    pub(super) fn remove(&self, id: u64) -> Option<Job<U>> {
        self.with(|jobs| jobs.remove(&id))
    }

    /// What the job `id` is expected to spend, if it is held and its cost is known.
    pub(super) fn cost(&self, id: u64) -> Option<Cost> {
        self.with(|jobs| jobs.get(&id).and_then(|job| job.cost))
    }

    /// Every job held, for the supervisor to hand back after a crash.
    pub(crate) fn drain(&self) -> Vec<Job<U>> {
        self.with(|jobs| jobs.drain().map(|(_, job)| job).collect())
    }
}
