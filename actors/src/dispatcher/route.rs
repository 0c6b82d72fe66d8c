//! Routing along the chain: a job goes to its target, past it, or to the parking lot, and
//! after a failed attempt it is retried in place, moved on, or ended. Every rule is a policy
//! call ([`policy::route`](crate::policy::route), the retry policy, the throttle, the retry
//! budget); this file performs the effects and records the metrics.

use std::time::Duration;

use tokio::time::Instant;

use super::park::PARKED;
use super::state::{DispatcherState, reachable};
use super::{DispatcherRef, Signal};
use crate::board::Event;
use crate::breaker::BreakerMsg;
use crate::job::Job;
use crate::policy::route::{self, Arrival, InPlace};
use crate::policy::throttle::{Stakes, Verdict};
use crate::policy::{Attempts, Decision, GiveUp, StateKind};
use crate::request::Error;
use crate::upstream::{Class, Failure, Target, Upstream};
use crate::worker::WorkerMsg;

impl<U: Upstream> DispatcherState<U> {
    /// Sends `job` to its current target, unless the target's breaker or the client-side
    /// throttle sends it on (or the job has nobody waiting, or no time left).
    pub(crate) fn route(&mut self, me: &DispatcherRef<U>, job: Job<U>) {
        if job.is_abandoned() {
            return;
        }
        let now = Instant::now();
        if now >= job.deadline {
            let attempts = job.attempts.clone();
            return job.fail(Error::DeadlineExceeded { attempts });
        }
        match route::arrival(self.board.state(job.target())) {
            Arrival::Send => {
                let retrying = job.on_target > 0;
                let stakes = Stakes::of(retrying, job.probe, job.can_fall_back(), job.priority);
                match self
                    .board
                    .throttle(job.target(), stakes, now, &mut self.rng)
                {
                    Verdict::Send => self.dispatch(me, job),
                    Verdict::TurnAway => self.turn_away(me, job),
                }
            }
            Arrival::AskBreaker => self.ask_breaker(me, job),
            Arrival::PassOver => self.pass_over(me, job, None),
        }
    }

    /// Asks `job`'s half-open breaker whether it may go as a probe. A breaker that is gone
    /// or restarting cannot answer: its target is passed over as unavailable, as a worker
    /// that cannot take a job is, rather than the job being lost with the message.
    fn ask_breaker(&mut self, me: &DispatcherRef<U>, job: Job<U>) {
        let Some(breaker) = self.directory.breaker(job.target()) else {
            return self.pass_over(me, job, None);
        };
        if let Err(ractor::MessagingErr::SendErr(BreakerMsg::Admit(job))) =
            breaker.cast(BreakerMsg::Admit(Box::new(job)))
        {
            self.pass_over(me, *job, None);
        }
    }

    /// `id`'s retry delay is over: route it again, unless its caller left meanwhile.
    pub(super) fn retry_due(&mut self, me: &DispatcherRef<U>, id: u64) {
        if let Some(job) = self.delayed.remove(&id) {
            self.route(me, job);
        }
    }

    /// The throttle turned `job` away from its target: on to the next, or an error.
    fn turn_away(&mut self, me: &DispatcherRef<U>, job: Job<U>) {
        let (target, priority) = (job.target().clone(), job.priority);
        // A request turned away counts as a request with no accept; one sent is counted with
        // its outcome, so attempts still in flight never read as rejections.
        self.board.throttle_request(&target, Instant::now());
        metrics::counter!("breakwater_throttled_total", "target" => target.to_string(), "priority" => priority.as_label()).increment(1);
        self.board.publish(Event::Throttled { target, priority });
        match route::turned_away(job.can_fall_back(), priority) {
            None => self.pass_over(me, job, None),
            Some(ending) => {
                let error = self.error_for(&job, ending);
                job.fail(error);
            }
        }
    }

    /// The target's breaker refused `job` now: move on.
    pub(super) fn refused(&mut self, me: &DispatcherRef<U>, mut job: Job<U>) {
        job.probe = false;
        self.pass_over(me, job, None);
    }

    /// `job`'s target is full and its next one has room: move on without an attempt.
    pub(super) fn spill(&mut self, me: &DispatcherRef<U>, mut job: Job<U>) {
        if !job.can_fall_back() {
            // The chain changed under it (it cannot, but never lose a job): run it here.
            return self.dispatch(me, job);
        }
        let from = job.target().clone();
        job.position += 1;
        job.on_target = 0;
        let to = job.target().clone();
        metrics::counter!("breakwater_spillovers_total", "from" => from.to_string(), "to" => to.to_string()).increment(1);
        self.board.publish(Event::SpilledOver { from, to });
        self.route(me, job);
    }

    /// Falls back past `job`'s current target, which is unavailable or failed with `class`;
    /// parks the job when it has no next target.
    fn pass_over(&mut self, me: &DispatcherRef<U>, mut job: Job<U>, class: Option<Class>) {
        job.spans.moved_on(job.can_fall_back());
        if !job.can_fall_back() {
            return self.park(me, job);
        }
        let from = job.target().clone();
        job.position += 1;
        job.on_target = 0;
        let to = job.target().clone();
        metrics::counter!("breakwater_fallbacks_total", "from" => from.to_string(), "to" => to.to_string()).increment(1);
        self.board.publish(Event::FellBack { from, to, class });
        self.route(me, job);
    }

    pub(super) fn dispatch(&mut self, me: &DispatcherRef<U>, job: Job<U>) {
        let target = job.target().clone();
        if job.on_target == 0 {
            self.budget(&target).deposit(Instant::now());
        }
        let Some(worker) = self.directory.worker(&target) else {
            return self.unavailable(me, job, &target);
        };
        // A worker that is restarting hands the job back: treat its target as unavailable.
        if let Err(ractor::MessagingErr::SendErr(WorkerMsg::Run(job))) =
            worker.cast(WorkerMsg::Run(job))
        {
            self.unavailable(me, job, &target);
        }
    }

    /// `target`'s worker cannot take `job`: give back a probe slot it held, and move on.
    fn unavailable(&mut self, me: &DispatcherRef<U>, mut job: Job<U>, target: &Target) {
        if std::mem::take(&mut job.probe) {
            self.tell_breaker(target, BreakerMsg::ReleaseProbe);
        }
        self.pass_over(me, job, None);
    }

    /// An attempt failed: the retry policy decides what follows.
    pub(super) fn failed(&mut self, me: &DispatcherRef<U>, mut job: Job<U>, failure: Failure) {
        if job.is_abandoned() {
            return;
        }
        let now = Instant::now();
        let attempts = Attempts {
            total: job.attempts.len() as u32,
            on_target: job.on_target,
            can_fall_back: job.can_fall_back(),
        };
        let decision = self.config.retry.decide(
            &failure,
            attempts,
            &mut job.backoff,
            now,
            Some(job.deadline),
        );
        let class = failure.class();
        let was_probe = std::mem::take(&mut job.probe);
        job.last = Some(failure);
        match decision {
            Decision::RetryAfter(delay) => self.retry(me, job, class, delay, was_probe),
            Decision::FallBack => self.pass_over(me, job, Some(class)),
            Decision::GiveUp(reason) => self.give_up(job, reason),
        }
    }

    /// The retry policy chose a retry: in place, if [`route::in_place`] allows.
    fn retry(
        &mut self,
        me: &DispatcherRef<U>,
        mut job: Job<U>,
        class: Class,
        delay: Duration,
        was_probe: bool,
    ) {
        let target = job.target().clone();
        let breaker = self.board.state(&target);
        let budget = self.budget(&target).try_withdraw(Instant::now());
        match route::in_place(was_probe, breaker, budget, job.can_fall_back()) {
            InPlace::Retry => {
                job.spans.decided("retry");
                metrics::counter!("breakwater_retries_total", "target" => target.to_string(), "class" => class.as_label()).increment(1);
                self.board.publish(Event::Retried {
                    target,
                    class,
                    delay,
                });
                let id = job.id;
                self.delayed.insert(id, job);
                me.send_after(delay, move || Signal::Retry(id).into());
            }
            InPlace::BudgetSpent => {
                metrics::counter!("breakwater_retry_budget_exhausted_total", "target" => target.to_string()).increment(1);
                self.give_up(job, GiveUp::ChainExhausted);
            }
            InPlace::PassOver => self.pass_over(me, job, Some(class)),
        }
    }

    fn give_up(&self, mut job: Job<U>, reason: GiveUp) {
        job.spans.decided("give_up");
        let error = self.error_for(&job, route::ending(reason));
        job.fail(error);
    }

    /// A breaker changed state: release what it can now take, best first.
    pub(super) fn release(&mut self, me: &DispatcherRef<U>, target: &Target, to: StateKind) {
        let Some(limit) = route::releasable(to, self.config.breaker.probes) else {
            return;
        };
        let released = self
            .parked
            .take(limit, |job| reachable(job).contains(target));
        metrics::gauge!(PARKED).set(self.parked.len() as f64);
        for job in released {
            self.route(me, job);
        }
    }
}
