//! The jobs a worker holds, queued or running, kept where the supervisor can reach them: if
//! the worker crashes, the supervisor hands every one back to the dispatcher.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::breaker::BreakerMsg;
use crate::directory::Directory;
use crate::dispatcher::Signal;
use crate::job::Job;
use crate::policy::Cost;
use crate::upstream::{Class, Failure, Target, Upstream};

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

    /// Removes and returns every job whose caller left.
    pub(super) fn take_abandoned(&self) -> Vec<Job<U>> {
        self.with(|jobs| {
            let ids: Vec<u64> = jobs
                .iter()
                .filter(|(_, job)| job.is_abandoned())
                .map(|(&id, _)| id)
                .collect();
            ids.iter().filter_map(|id| jobs.remove(id)).collect()
        })
    }

    /// What the job `id` is expected to spend, if it is held and its cost is known.
    pub(super) fn cost(&self, id: u64) -> Option<Cost> {
        self.with(|jobs| jobs.get(&id).and_then(|job| job.cost))
    }

    /// Hands every job held back to the dispatcher as failed by a crash of `target`'s
    /// worker, so that it is retried or failed cleanly instead of being lost, and gives back
    /// the probe slots they held.
    pub(crate) fn hand_back(&self, target: &Target, directory: &Directory<U>) {
        let dispatcher = directory.dispatcher();
        let now = Instant::now();
        for mut job in self.with(|jobs| jobs.drain().map(|(_, job)| job).collect::<Vec<_>>()) {
            if job.probe {
                if let Some(breaker) = directory.breaker(target) {
                    let _ = breaker.cast(BreakerMsg::ReleaseProbe);
                }
            }
            let failure =
                Failure::new(Class::ServerError, "the worker running the attempt crashed");
            job.record(Some(&failure), now);
            if let Some(dispatcher) = &dispatcher {
                let _ = dispatcher.cast(Signal::Failed { job, failure }.into());
            }
        }
    }
}
