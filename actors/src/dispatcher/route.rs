//! The dispatcher's state and its handlers: admission, routing along the chain, the decision
//! after a failed attempt, and the parking lot. Every rule is a policy call; this file
//! applies them and performs the effects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::{DispatcherArgs, DispatcherMsg, Signal};
use crate::board::{Board, Event};
use crate::breaker::BreakerMsg;
use crate::config::EngineConfig;
use crate::directory::Directory;
use crate::job::{Job, Outstanding, ReplyPort};
use crate::policy::{Attempts, Decision, GiveUp, Parked, ParkingLot, RetryBudget, StateKind};
use crate::request::{Error, Priority, RequestOptions};
use crate::trace::Spans;
use crate::upstream::{Class, Failure, Target, Upstream};
use crate::worker::WorkerMsg;

pub(crate) struct DispatcherState<U: Upstream> {
    config: Arc<EngineConfig>,
    board: Arc<Board>,
    directory: Arc<Directory<U>>,
    outstanding: Arc<Outstanding>,
    budgets: HashMap<Target, RetryBudget>,
    parked: ParkingLot<Job<U>>,
    next_id: u64,
    seed: u64,
    /// Draws for the client-side throttle.
    rng: SmallRng,
    draining: bool,
}

type Me<U> = ActorRef<DispatcherMsg<U>>;

/// Where deadlines too far to represent are put.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

impl<U: Upstream> DispatcherState<U> {
    pub(crate) fn new(args: DispatcherArgs<U>) -> Self {
        let budgets = args
            .config
            .targets
            .iter()
            .map(|(t, _)| (t.clone(), RetryBudget::new(args.config.budget)))
            .collect();
        Self {
            parked: ParkingLot::new(args.config.admission.max_parked as usize),
            config: args.config,
            board: args.board,
            directory: args.directory,
            outstanding: args.outstanding,
            budgets,
            next_id: 0,
            seed: args.seed,
            rng: SmallRng::seed_from_u64(args.seed ^ 0x7468_726f_7474_6c65),
            draining: false,
        }
    }

    pub(crate) fn submit(
        &mut self,
        me: &Me<U>,
        request: Arc<U::Request>,
        options: &RequestOptions,
        reply: ReplyPort<U>,
        span: tracing::Span,
    ) {
        let priority = options.priority;
        let chain = options
            .chain
            .clone()
            .unwrap_or_else(|| self.config.chain.iter().cloned().collect());
        let timeout = options
            .deadline
            .unwrap_or(self.config.admission.default_timeout);
        if let Some(error) = self.refusal(&chain, timeout, priority) {
            return reply.fail(error);
        }
        let now = Instant::now();
        self.next_id += 1;
        let spillover = options
            .spillover
            .unwrap_or_else(|| self.config.spillover_for(&chain));
        let job = Job {
            id: self.next_id,
            request,
            chain,
            allow_fallback: options.allow_fallback.unwrap_or(true),
            spillover,
            priority,
            submitted: now,
            // A deadline too far to represent is as good as none: a year away.
            deadline: now.checked_add(timeout).unwrap_or(now + FAR_FUTURE),
            reply,
            position: 0,
            on_target: 0,
            attempts: Vec::new(),
            backoff: self
                .config
                .retry
                .backoff
                .build(self.seed.wrapping_add(self.next_id)),
            probe: false,
            last: None,
            cost: options.cost,
            spans: Spans::new(span),
            _ticket: self.outstanding.ticket(),
        };
        metrics::counter!("breakwater_requests_total", "priority" => priority.as_label())
            .increment(1);
        self.route(me, job);
    }

    /// Why a new request is refused at the door, if it is.
    fn refusal(&self, chain: &[Target], timeout: Duration, priority: Priority) -> Option<Error> {
        if self.draining {
            return Some(Error::Shutdown);
        }
        if let Some(problem) = self.check_chain(chain) {
            return Some(Error::Invalid(problem));
        }
        if timeout.is_zero() {
            return Some(Error::DeadlineExceeded {
                attempts: Vec::new(),
            });
        }
        if !self
            .config
            .admission
            .admits(priority, self.outstanding.total())
        {
            self.board.publish(Event::Shed { priority });
            metrics::counter!("breakwater_shed_total", "priority" => priority.as_label())
                .increment(1);
            return Some(Error::Shed { priority });
        }
        None
    }

    /// The target's retry budget; a target added after start gets its own on first use.
    fn budget(&mut self, target: &Target) -> &mut RetryBudget {
        let config = self.config.budget;
        self.budgets
            .entry(target.clone())
            .or_insert_with(|| RetryBudget::new(config))
    }

    fn check_chain(&self, chain: &[Target]) -> Option<String> {
        if chain.is_empty() {
            return Some("the chain is empty".into());
        }
        let unknown = chain.iter().find(|target| {
            self.config.limits(target).is_none() && self.directory.worker(target).is_none()
        })?;
        Some(format!(
            "the chain names {unknown}, which is not a configured target"
        ))
    }

    pub(crate) fn signal(&mut self, me: &Me<U>, signal: Signal<U>) {
        match signal {
            Signal::Submit(s) => self.submit(me, s.request, &s.options, s.reply, s.span),
            Signal::Failed { job, failure } => self.failed(me, job, failure),
            Signal::Retry(job) => self.route(me, job),
            Signal::Admitted(job) => self.dispatch(me, job),
            Signal::Refused(mut job) => {
                job.probe = false;
                self.skip(me, job, None);
            }
            Signal::Spill(job) => self.spill(me, job),
            Signal::Transition { target, to } => self.release(me, &target, to),
            Signal::Expire(id) => {
                if let Some(job) = self.parked.remove(id) {
                    let error = self.exhausted(&job);
                    job.fail(error);
                }
            }
        }
    }

    pub(crate) fn drain(&mut self, reply: RpcReplyPort<usize>) {
        self.draining = true;
        for job in self.parked.take(usize::MAX, |_| true) {
            job.fail(Error::Shutdown);
        }
        let _ = reply.send(self.outstanding.total() as usize);
    }

    pub(crate) fn tell_breaker(&self, target: &Target, message: BreakerMsg<U>) {
        if let Some(breaker) = self.directory.breaker(target) {
            let _ = breaker.cast(message);
        }
    }

    /// Sends `job` to the first target from its position on whose breaker may admit it, or
    /// parks it when none can.
    fn route(&mut self, me: &Me<U>, job: Job<U>) {
        if job.is_abandoned() {
            return;
        }
        let now = Instant::now();
        if now >= job.deadline {
            let attempts = job.attempts.clone();
            return job.fail(Error::DeadlineExceeded { attempts });
        }
        match self.board.state(job.target()) {
            StateKind::Closed if self.throttled(&job, now) => self.throttle(me, job),
            StateKind::Closed => self.dispatch(me, job),
            StateKind::HalfOpen => {
                self.tell_breaker(&job.target().clone(), BreakerMsg::Admit(Box::new(job)));
            }
            StateKind::Open | StateKind::Isolated => self.skip(me, job, None),
        }
    }

    /// Draws whether the client-side throttle turns `job`, arriving at its (closed) target,
    /// away from it. With a target left in its chain, any request may be turned
    /// away with the throttle's probability `p`, since it only moves on. At the end of the
    /// chain the cost is an error, so `Sheddable` requests go first (with `p`), `Normal` ones
    /// only once the target rejects most of what it gets (with `2p - 1`), and `Critical`
    /// ones never.
    fn throttled(&mut self, job: &Job<U>, now: Instant) -> bool {
        // A retry in place is the retry budget's business, and a probe must run.
        if job.on_target > 0 || job.probe {
            return false;
        }
        let target = job.target();
        let p = self.board.reject_probability(target, now);
        let p = if job.can_fall_back() {
            p
        } else {
            match job.priority {
                Priority::Sheddable => p,
                Priority::Normal => 2.0 * p - 1.0,
                Priority::Critical => 0.0,
            }
        };
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// The throttle turned `job` away from its target: on to the next, or a fast error.
    fn throttle(&mut self, me: &Me<U>, job: Job<U>) {
        let (target, priority) = (job.target().clone(), job.priority);
        // A request turned away counts as a request with no accept; one sent is counted with
        // its outcome, so attempts still in flight never read as rejections.
        self.board.throttle_request(&target, Instant::now());
        metrics::counter!("breakwater_throttled_total", "target" => target.to_string(), "priority" => priority.as_label()).increment(1);
        self.board.publish(Event::Throttled { target, priority });
        if job.can_fall_back() {
            return self.skip(me, job, None);
        }
        let error = match priority {
            Priority::Sheddable => Error::Shed { priority },
            _ => self.exhausted(&job),
        };
        job.fail(error);
    }

    /// `job`'s target is full and its next one has room: move on without an attempt.
    fn spill(&mut self, me: &Me<U>, mut job: Job<U>) {
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

    /// Moves `job` past its current target, which is unavailable or failed with `class`.
    fn skip(&mut self, me: &Me<U>, mut job: Job<U>, class: Option<Class>) {
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

    fn dispatch(&mut self, me: &Me<U>, job: Job<U>) {
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
    fn unavailable(&mut self, me: &Me<U>, mut job: Job<U>, target: &Target) {
        if std::mem::take(&mut job.probe) {
            self.tell_breaker(target, BreakerMsg::ReleaseProbe);
        }
        self.skip(me, job, None);
    }

    fn failed(&mut self, me: &Me<U>, mut job: Job<U>, failure: Failure) {
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
            Decision::FallBack => self.skip(me, job, Some(class)),
            Decision::GiveUp(reason) => self.give_up(job, reason),
        }
    }

    /// Retries in place if the target is still closed and its budget allows; otherwise moves
    /// on (a failed probe always moves on, so its caller never sees it).
    fn retry(&mut self, me: &Me<U>, job: Job<U>, class: Class, delay: Duration, was_probe: bool) {
        let mut job = job;
        let target = job.target().clone();
        let closed = !was_probe && self.board.state(&target) == StateKind::Closed;
        let budget = self.budget(&target).try_withdraw(Instant::now());
        if closed && budget {
            job.spans.decided("retry");
            metrics::counter!("breakwater_retries_total", "target" => target.to_string(), "class" => class.as_label()).increment(1);
            self.board.publish(Event::Retried {
                target,
                class,
                delay,
            });
            me.send_after(delay, move || Signal::Retry(job).into());
            return;
        }
        if closed && !job.can_fall_back() {
            // The budget is spent: more retries would feed a storm. Fail now.
            metrics::counter!("breakwater_retry_budget_exhausted_total", "target" => target.to_string()).increment(1);
            return self.give_up(job, GiveUp::ChainExhausted);
        }
        self.skip(me, job, Some(class));
    }

    fn give_up(&self, mut job: Job<U>, reason: GiveUp) {
        job.spans.decided("give_up");
        let error = match reason {
            GiveUp::Permanent => {
                let failure = job
                    .last
                    .clone()
                    .unwrap_or_else(|| Failure::new(Class::Invalid, "refused"));
                Error::Upstream {
                    failure,
                    attempts: job.attempts.clone(),
                }
            }
            GiveUp::Deadline => Error::DeadlineExceeded {
                attempts: job.attempts.clone(),
            },
            _ => self.exhausted(&job),
        };
        job.fail(error);
    }

    /// Parks a job no target can take now, or ends it at once if waiting cannot help.
    fn park(&mut self, me: &Me<U>, mut job: Job<U>) {
        let now = Instant::now();
        let reopens = self.earliest_reopen(&job, now);
        if job.last.as_ref().is_some_and(|f| !f.class().is_transient())
            || reopens.is_some_and(|at| at >= job.deadline)
        {
            let error = self.exhausted(&job);
            return job.fail(error);
        }
        job.position = first_position(&job);
        job.on_target = 0;
        let (id, priority, deadline) = (job.id, job.priority, job.deadline);
        match self.parked.park(id, priority, deadline, job) {
            Parked::Yes => {}
            Parked::Evicted(evicted) => shed(&self.board, evicted),
            Parked::Full(job) => return shed(&self.board, job),
        }
        metrics::gauge!("breakwater_parked").set(self.parked.len() as f64);
        me.send_after(deadline.saturating_duration_since(now), move || {
            Signal::Expire(id).into()
        });
    }

    /// A breaker changed state: release what it can now take, best first.
    fn release(&mut self, me: &Me<U>, target: &Target, to: StateKind) {
        let limit = match to {
            StateKind::Closed => usize::MAX,
            StateKind::HalfOpen => self.config.breaker.probes.get() as usize,
            StateKind::Open | StateKind::Isolated => return,
        };
        let released = self
            .parked
            .take(limit, |job| reachable(job).contains(target));
        metrics::gauge!("breakwater_parked").set(self.parked.len() as f64);
        for job in released {
            self.route(me, job);
        }
    }

    fn earliest_reopen(&self, job: &Job<U>, now: Instant) -> Option<Instant> {
        reachable(job)
            .iter()
            .filter_map(|target| match self.board.status(target) {
                Some(status) if status.state == StateKind::Open => status.open_until,
                Some(status) if status.state == StateKind::Isolated => None,
                _ => Some(now),
            })
            .min()
    }

    fn exhausted(&self, job: &Job<U>) -> Error {
        let now = Instant::now();
        // Only an open circuit says when to come back; a closed one that failed says nothing.
        let reopen = reachable(job)
            .iter()
            .filter_map(|target| {
                self.board
                    .status(target)
                    .filter(|s| s.state == StateKind::Open)?
                    .open_until
            })
            .min()
            .map(|at| at.saturating_duration_since(now));
        let hinted = job.last.as_ref().and_then(Failure::retry_after);
        let retry_after = match (reopen, hinted) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Error::Exhausted {
            attempts: job.attempts.clone(),
            retry_after,
            last: job.last.clone(),
        }
    }
}

/// The targets a job may still use: its whole chain if it may fall back, else its current one.
fn reachable<U: Upstream>(job: &Job<U>) -> &[Target] {
    if job.allow_fallback {
        &job.chain
    } else {
        std::slice::from_ref(job.target())
    }
}

fn first_position<U: Upstream>(job: &Job<U>) -> usize {
    if job.allow_fallback { 0 } else { job.position }
}

fn shed<U: Upstream>(board: &Board, job: Job<U>) {
    let priority = job.priority;
    board.publish(Event::Shed { priority });
    metrics::counter!("breakwater_shed_total", "priority" => priority.as_label()).increment(1);
    job.fail(Error::Shed { priority });
}
