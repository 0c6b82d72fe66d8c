//! The worker actor: one per target. It owns the target's concurrency cap and pacing, runs
//! each attempt as its own task (so a slow upstream never blocks its mailbox) with a timeout
//! that never reaches past the request's deadline, reports every outcome to the target's
//! breaker, answers the caller on success, and hands failures back to the dispatcher.
//!
//! Jobs live in a [`Ledger`] shared with the supervisor rather than in the actor's state, so
//! that if the worker crashes, the supervisor hands every job it held back to the dispatcher.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::Instrument;

use crate::board::{Board, Load};
use crate::breaker::BreakerMsg;
use crate::config::TargetLimits;
use crate::directory::Directory;
use crate::dispatcher::Signal;
use crate::job::{Delivery, Job};
use crate::policy::{AdaptiveLimit, CapacitySignal, Cost, LimitConfig, RateBucket, StateKind};
use crate::trace;
use crate::upstream::{Class, Failure, Outcome, Reply, Target, Upstream, await_commit};

/// Jobs a worker holds, queued or running, where the supervisor can reach them.
pub(crate) struct Ledger<U: Upstream>(Mutex<HashMap<u64, Job<U>>>);

impl<U: Upstream> Ledger<U> {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<u64, Job<U>>) -> R) -> R {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn insert(&self, job: Job<U>) {
        self.with(|jobs| jobs.insert(job.id, job));
    }

    fn remove(&self, id: u64) -> Option<Job<U>> {
        self.with(|jobs| jobs.remove(&id))
    }

    /// Every job held, for the supervisor to hand back after a crash.
    pub(crate) fn drain(&self) -> Vec<Job<U>> {
        self.with(|jobs| jobs.drain().map(|(_, job)| job).collect())
    }
}

/// What a worker is told.
pub(crate) enum WorkerMsg<U: Upstream> {
    /// Run an attempt for `job` as soon as the cap and pacing allow.
    Run(Job<U>),
    /// An attempt task finished.
    Done {
        id: u64,
        outcome: Outcome<Delivery<U>>,
        started: Instant,
    },
    /// A pause or pacing interval may have ended.
    Wake,
    /// The target's breaker closed: ramp the adaptive limit up again from its start.
    SlowStart,
}

pub(crate) struct WorkerActor<U>(PhantomData<fn() -> U>);

impl<U> WorkerActor<U> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct WorkerArgs<U: Upstream> {
    pub(crate) target: Target,
    pub(crate) upstream: Arc<U>,
    pub(crate) limits: TargetLimits,
    pub(crate) ledger: Arc<Ledger<U>>,
    pub(crate) directory: Arc<Directory<U>>,
    pub(crate) board: Arc<Board>,
}

/// The adaptive limit's bounds, never above the target's static cap.
fn capped(limits: &TargetLimits) -> LimitConfig {
    let cap = limits.concurrency;
    LimitConfig {
        min: limits.limit.min.min(cap),
        max: limits.limit.max.min(cap),
        initial: limits.limit.initial.min(cap),
        ..limits.limit
    }
}

pub(crate) struct WorkerState<U: Upstream> {
    args: WorkerArgs<U>,
    queue: VecDeque<u64>,
    in_flight: u32,
    next_start: Instant,
    paused_until: Option<Instant>,
    wake_at: Option<Instant>,
    /// The adaptive limit, when the target has one.
    limit: Option<AdaptiveLimit>,
    /// The target's rate-limit account, from the upstream's announcements.
    bucket: RateBucket,
    /// What the running attempts are expected to spend of the rate limits.
    in_flight_cost: Cost,
}

impl<U: Upstream> Actor for WorkerActor<U> {
    type Msg = WorkerMsg<U>;
    type State = WorkerState<U>;
    type Arguments = WorkerArgs<U>;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: WorkerArgs<U>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = Instant::now();
        let limit = args
            .limits
            .adaptive
            .then(|| AdaptiveLimit::new(capped(&args.limits)));
        let state = WorkerState {
            args,
            queue: VecDeque::new(),
            in_flight: 0,
            next_start: now,
            paused_until: None,
            wake_at: None,
            limit,
            bucket: RateBucket::new(),
            in_flight_cost: Cost::default(),
        };
        state.publish_load(now);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Run(job) => state.take(job),
            WorkerMsg::Done {
                id,
                outcome,
                started,
            } => state.finish(id, outcome, started),
            WorkerMsg::Wake => state.wake_at = None,
            WorkerMsg::SlowStart => {
                if let Some(limit) = &mut state.limit {
                    limit.restart();
                }
            }
        }
        state.pump(&myself);
        state.publish_load(Instant::now());
        Ok(())
    }
}

impl<U: Upstream> WorkerState<U> {
    /// Queues `job`, or hands it back for the next target of its chain when this target is
    /// full and that one has room (spillover).
    fn take(&mut self, mut job: Job<U>) {
        let now = Instant::now();
        let upstream = &self.args.upstream;
        let cost = *job.cost.get_or_insert_with(|| upstream.cost(&job.request));
        if self.is_full(cost, now) && self.may_spill(&job) {
            if let Some(dispatcher) = self.args.directory.dispatcher() {
                let _ = dispatcher.cast(Signal::Spill(job).into());
                return;
            }
        }
        self.queue.push_back(job.id);
        self.args.ledger.insert(job);
    }

    /// Whether a request costing `cost` would have to wait here.
    fn is_full(&self, cost: Cost, now: Instant) -> bool {
        !self.queue.is_empty() || self.in_flight >= self.cap() || self.held_until(cost, now) > now
    }

    /// When pacing, a 429 pause or the rate-limit account let a start costing `cost` happen.
    fn held_until(&self, cost: Cost, now: Instant) -> Instant {
        let paced = self.bucket.ready_at(cost, now).unwrap_or(now);
        self.next_start
            .max(self.paused_until.unwrap_or(now))
            .max(paced)
    }

    /// Whether `job` may move on rather than wait here: it allows spillover and fallback, it
    /// is not a probe (a probe must run here), and a later target of its chain is closed and
    /// has room. A full target in between passes it on again in turn.
    fn may_spill(&self, job: &Job<U>) -> bool {
        if !job.spillover || job.probe || !job.can_fall_back() {
            return false;
        }
        let board = &self.args.board;
        job.chain[job.position + 1..].iter().any(|later| {
            board.state(later) == StateKind::Closed
                && !board.load(later).is_some_and(|load| load.is_full())
        })
    }

    /// Starts queued attempts while the cap, a 429 pause and pacing allow.
    fn pump(&mut self, myself: &ActorRef<WorkerMsg<U>>) {
        let now = Instant::now();
        while self.in_flight < self.cap() {
            let Some(&id) = self.queue.front() else {
                return;
            };
            let cost = self
                .args
                .ledger
                .with(|jobs| jobs.get(&id).and_then(|job| job.cost));
            let ready_at = self.held_until(cost.unwrap_or_default(), now);
            if ready_at > now {
                self.wake(myself, ready_at, now);
                return;
            }
            self.queue.pop_front();
            self.start(myself, id, now);
        }
    }

    fn start(&mut self, myself: &ActorRef<WorkerMsg<U>>, id: u64, now: Instant) {
        let Some(mut job) = self.args.ledger.remove(id) else {
            return;
        };
        // A probe that will not run must give its slot back, or the breaker stays half-open
        // with no slot to probe with.
        let runs = !job.is_abandoned() && job.deadline > now;
        if job.probe && !runs {
            self.tell_breaker(BreakerMsg::ReleaseProbe);
        }
        if job.is_abandoned() {
            return;
        }
        if job.deadline <= now {
            let failure = Failure::new(
                Class::Timeout,
                "the deadline passed while the request waited for a slot",
            );
            self.hand_back(job, failure);
            return;
        }
        let timeout = self
            .args
            .limits
            .attempt_timeout
            .min(job.deadline.saturating_duration_since(now));
        let breaker = self.args.board.state(&self.args.target);
        let span = trace::start(&*self.args.upstream, &mut job, breaker);
        let attempt = attempt(
            self.args.upstream.clone(),
            job.target().clone(),
            job.request.clone(),
            job.is_streaming(),
            self.args.limits.stall_timeout,
        );
        let cost = job.cost.unwrap_or_default();
        self.bucket.spend(cost, now);
        self.in_flight_cost = self.in_flight_cost.plus(cost);
        self.args.ledger.insert(job);
        self.in_flight += 1;
        self.next_start = now + self.args.limits.min_interval;
        let myself = myself.clone();
        let task = async move {
            let outcome = bounded(attempt, timeout).instrument(span.clone()).await;
            trace::ended(&span, outcome.as_ref().err());
            // Let go of the span before the outcome moves on, so that it has ended (or waits
            // only for the decision the job carries it to) by the time the caller hears.
            drop(span);
            // A worker that is gone had its jobs handed back by the supervisor.
            let _ = myself.cast(WorkerMsg::Done {
                id,
                outcome,
                started: now,
            });
        };
        tokio::spawn(task);
    }

    /// Attempts that may run at once now: the adaptive limit, never above the static cap.
    fn cap(&self) -> u32 {
        let cap = self.args.limits.concurrency.get();
        self.limit
            .as_ref()
            .map_or(cap, |limit| limit.limit().min(cap))
    }

    fn adapt(&mut self, failure: Option<&Failure>, latency: Duration) {
        let Some(limit) = &mut self.limit else { return };
        let signal = match failure.map(Failure::class) {
            None => self.args.limits.limit.success(self.in_flight, latency),
            Some(Class::Overloaded | Class::Timeout) => CapacitySignal::Overload,
            Some(_) => CapacitySignal::Neutral,
        };
        limit.record(signal);
    }

    /// Mirrors the worker's load on the board, for spillover decisions and readers.
    fn publish_load(&self, now: Instant) {
        let limit = self.cap();
        let previous = self.args.board.load(&self.args.target);
        let load = Load {
            in_flight: self.in_flight,
            queued: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            limit,
            held: self.held_until(Cost::default(), now) > now,
        };
        self.args.board.set_load(&self.args.target, load);
        if previous.is_none_or(|p| p.limit != limit) {
            metrics::gauge!("breakwater_concurrency_limit", "target" => self.args.target.to_string())
                .set(f64::from(limit));
        }
    }

    fn finish(&mut self, id: u64, outcome: Outcome<Delivery<U>>, started: Instant) {
        let now = Instant::now();
        self.adapt(outcome.as_ref().err(), now - started);
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(mut job) = self.args.ledger.remove(id) else {
            return;
        };
        let cost = job.cost.unwrap_or_default();
        self.in_flight_cost = self.in_flight_cost.minus(cost);
        let limits = match &outcome {
            Ok(reply) => &reply.limits,
            Err(failure) => failure.limits(),
        };
        if !limits.is_empty() {
            let in_flight = u64::from(self.in_flight);
            self.bucket
                .observe(limits, now, in_flight, self.in_flight_cost);
        }
        let failure = outcome.as_ref().err();
        let accepted = !failure.is_some_and(|f| f.class().is_rejection());
        self.args
            .board
            .throttle_record(&self.args.target, now, accepted);
        self.observe(failure, now - started);
        self.tell_breaker(BreakerMsg::Record {
            class: failure.map(Failure::class),
            retry_after: failure.and_then(Failure::retry_after),
            probe: job.probe,
        });
        job.record(failure, now);
        match outcome {
            Ok(reply) => job.succeed(reply),
            Err(failure) => {
                if failure.class() == Class::RateLimited {
                    self.pause(&failure, now);
                }
                self.hand_back(job, failure);
            }
        }
    }

    /// A 429 is about our quota: stop sending to this target until it is likely lifted.
    fn pause(&mut self, failure: &Failure, now: Instant) {
        let wait = failure
            .retry_after()
            .or(failure.limits().requests.reset_in)
            .unwrap_or(self.args.limits.rate_limit_pause);
        let until = now + wait;
        self.bucket.exhaust(until);
        self.paused_until = Some(
            self.paused_until
                .map_or(until, |current| current.max(until)),
        );
        tracing::info!(target = %self.args.target, ?wait, "paused after a 429");
    }

    fn wake(&mut self, myself: &ActorRef<WorkerMsg<U>>, at: Instant, now: Instant) {
        if self.wake_at.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        self.wake_at = Some(at);
        myself.send_after(at - now, || WorkerMsg::Wake);
    }

    fn observe(&self, failure: Option<&Failure>, latency: Duration) {
        let outcome = failure.map_or("success", |f| f.class().as_label());
        let target = self.args.target.to_string();
        metrics::counter!("breakwater_attempts_total", "target" => target.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("breakwater_attempt_duration_seconds", "target" => target)
            .record(latency.as_secs_f64());
    }

    fn tell_breaker(&self, message: BreakerMsg<U>) {
        if let Some(breaker) = self.args.directory.breaker(&self.args.target) {
            let _ = breaker.cast(message);
        }
    }

    fn hand_back(&self, job: Job<U>, failure: Failure) {
        if let Some(dispatcher) = self.args.directory.dispatcher() {
            let _ = dispatcher.cast(Signal::Failed { job, failure }.into());
        }
    }
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
