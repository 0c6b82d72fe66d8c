//! The dispatcher's parking lot: a job no target can take now waits there for a breaker to
//! let it through, unless waiting cannot help ([`parking`](crate::policy::route::parking));
//! and the error a job ends with when the engine gives up on it.

use tokio::time::Instant;

use super::state::{DispatcherState, reachable};
use super::{DispatcherRef, Signal};
use crate::board::{Board, Event};
use crate::job::Job;
use crate::policy::Parked;
use crate::policy::route::{self, Ending, Parking};
use crate::request::Error;
use crate::upstream::{Class, Failure, Upstream};

/// The gauge of jobs waiting in the parking lot.
pub(super) const PARKED: &str = "breakwater_dispatcher_parked_requests";

impl<U: Upstream> DispatcherState<U> {
    /// Parks a job no target can take now, or ends it at once if waiting cannot help.
    pub(super) fn park(&mut self, me: &DispatcherRef<U>, mut job: Job<U>) {
        let now = Instant::now();
        let reopens = reachable(&job)
            .iter()
            .filter_map(|target| {
                let (state, open_until) = self.breaker_of(target);
                route::reopens_at(state, open_until, now)
            })
            .min();
        let last = job.last.as_ref().map(Failure::class);
        if route::parking(last, reopens, job.deadline) == Parking::Fail {
            let error = self.exhausted(&job);
            return job.fail(error);
        }
        job.position = if job.allow_fallback { 0 } else { job.position };
        job.on_target = 0;
        let (id, priority, deadline) = (job.id, job.priority, job.deadline);
        match self.parked.park(id, priority, deadline, job) {
            Parked::Yes => {}
            Parked::Evicted(evicted) => shed(&self.board, evicted),
            Parked::Full(job) => return shed(&self.board, job),
        }
        metrics::gauge!(PARKED).set(self.parked.len() as f64);
        me.send_after(deadline.saturating_duration_since(now), move || {
            Signal::Expire(id).into()
        });
    }

    /// A parked job's deadline is due: it ends exhausted.
    pub(super) fn expire(&mut self, id: u64) {
        if let Some(job) = self.parked.remove(id) {
            let error = self.exhausted(&job);
            job.fail(error);
        }
    }

    /// The error `job` ends with.
    pub(super) fn error_for(&self, job: &Job<U>, ending: Ending) -> Error {
        let attempts = || job.attempts.clone();
        match ending {
            Ending::Shed => Error::Shed {
                priority: job.priority,
            },
            Ending::Deadline => Error::DeadlineExceeded {
                attempts: attempts(),
            },
            Ending::Permanent => {
                let failure = job
                    .last
                    .clone()
                    .unwrap_or_else(|| Failure::new(Class::Invalid, "refused"));
                Error::Upstream {
                    failure,
                    attempts: attempts(),
                }
            }
            Ending::Exhausted => self.exhausted(job),
        }
    }

    /// No target of `job`'s chain can serve it in time: when to come back, if anyone knows.
    pub(super) fn exhausted(&self, job: &Job<U>) -> Error {
        let now = Instant::now();
        let targets = reachable(job).iter().map(|target| self.breaker_of(target));
        let hinted = job.last.as_ref().and_then(Failure::retry_after);
        Error::Exhausted {
            attempts: job.attempts.clone(),
            retry_after: route::retry_after(targets, hinted, now),
            last: job.last.clone(),
        }
    }
}

fn shed<U: Upstream>(board: &Board, job: Job<U>) {
    let priority = job.priority;
    board.publish(Event::Shed { priority });
    metrics::counter!("breakwater_shed_total", "priority" => priority.as_label()).increment(1);
    job.fail(Error::Shed { priority });
}
