//! The worker actor: one per target. It starts attempts when the target's
//! [`Gate`](crate::policy::Gate) lets them (the concurrency cap, pacing, a 429 pause), runs
//! each attempt as its own task (so a slow upstream never blocks its mailbox) with a timeout
//! that never reaches past the request's deadline, reports every outcome to the target's
//! breaker, answers the caller on success, and hands failures back to the dispatcher.
//!
//! Jobs live in a [`Ledger`] shared with the supervisor rather than in the actor's state, so
//! that if the worker crashes, the supervisor hands every job it held back to the dispatcher.

mod attempt;
mod expire;
mod ledger;
mod report;
mod sweep;
mod tell;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::board::{Board, Load};
use crate::breaker::BreakerMsg;
use crate::chaos::{self, Site};
use crate::config::TargetLimits;
use crate::directory::Directory;
use crate::dispatcher::Signal;
use crate::job::{Delivery, Job};
use crate::policy::route::{self, Spill};
use crate::policy::{Gate, Start};
use crate::upstream::{Failure, Outcome, Target, Upstream};
use attempt::{Run, Task};

pub(crate) use ledger::Ledger;

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
    /// A caller went away: drop the jobs nobody waits for, aborting their attempts.
    Sweep,
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

pub(crate) struct WorkerState<U: Upstream> {
    args: WorkerArgs<U>,
    queue: VecDeque<u64>,
    in_flight: u32,
    /// The running attempts' tasks, by job id: an attempt is counted in `in_flight` while
    /// it is here.
    running: HashMap<u64, Task>,
    /// The queued jobs by deadline, so that one whose deadline passes while it waits for
    /// the gate is handed back then, not when the gate next opens.
    deadlines: BTreeSet<(Instant, u64)>,
    wake_at: Option<Instant>,
    /// The cap, the pacing, a 429 pause and the rate-limit account.
    gate: Gate,
    meters: report::Meters,
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
        let state = WorkerState {
            gate: Gate::new(args.limits.gate(), now),
            args,
            queue: VecDeque::new(),
            in_flight: 0,
            running: HashMap::new(),
            deadlines: BTreeSet::new(),
            wake_at: None,
            meters: report::Meters::default(),
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
        chaos::strike(Site::Worker).await;
        match message {
            WorkerMsg::Run(job) => state.take(job),
            WorkerMsg::Done {
                id,
                outcome,
                started,
            } => state.finish(id, outcome, started),
            WorkerMsg::Wake => state.wake_at = None,
            WorkerMsg::SlowStart => state.gate.slow_start(),
            WorkerMsg::Sweep => state.sweep(),
        }
        state.expire(&myself);
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
        let full = self
            .gate
            .is_full(self.queue.len(), self.in_flight, cost, now);
        if full && self.spill(&job) == Spill::MoveOn {
            if let Some(dispatcher) = self.args.directory.dispatcher() {
                let _ = dispatcher.cast(Signal::Spill(job).into());
                return;
            }
        }
        self.queue.push_back(job.id);
        self.deadlines.insert((job.deadline, job.id));
        self.args.ledger.insert(job);
    }

    /// Whether `job` moves on rather than wait here ([`route::spill`]).
    fn spill(&self, job: &Job<U>) -> Spill {
        let board = &self.args.board;
        let later = job.chain[job.position + 1..].iter().map(|later| {
            let full = board.load(later).is_some_and(|load| load.is_full());
            (board.state(later), full)
        });
        route::spill(job.spillover && job.can_fall_back(), job.probe, later)
    }

    /// Starts queued attempts while the gate lets them.
    fn pump(&mut self, myself: &ActorRef<WorkerMsg<U>>) {
        let now = Instant::now();
        self.gate
            .set_share(self.args.board.share(&self.args.target));
        loop {
            let Some(&id) = self.queue.front() else {
                return;
            };
            let cost = self.args.ledger.cost(id).unwrap_or_default();
            match self.gate.decide(self.in_flight, cost, now) {
                Start::Full => return,
                Start::At(at) => return self.wake(myself, at, now),
                Start::Now => {
                    self.queue.pop_front();
                    self.start(myself, id, now);
                }
            }
        }
    }

    fn start(&mut self, myself: &ActorRef<WorkerMsg<U>>, id: u64, now: Instant) {
        let Some(mut job) = self.args.ledger.remove(id) else {
            return;
        };
        self.deadlines.remove(&(job.deadline, id));
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
            self.hand_back(job, expire::waited_too_long());
            return;
        }
        let timeout = self
            .args
            .limits
            .attempt_timeout
            .min(job.deadline.saturating_duration_since(now));
        let breaker = self.args.board.state(&self.args.target);
        let span = job.attempt_span(&*self.args.upstream, breaker);
        let run = Run {
            upstream: self.args.upstream.clone(),
            target: job.target().clone(),
            request: job.request.clone(),
            streaming: job.is_streaming(),
            stall: self.args.limits.stall_timeout,
            timeout,
        };
        let cost = job.cost.unwrap_or_default();
        self.gate.started(cost, now);
        self.args.board.count_start(&self.args.target);
        self.args.ledger.insert(job);
        self.in_flight += 1;
        let myself = myself.clone();
        let task = attempt::spawn(run, span, move |outcome| {
            // A worker that is gone had its jobs handed back by the supervisor.
            let _ = myself.cast(WorkerMsg::Done {
                id,
                outcome,
                started: now,
            });
        });
        self.running.insert(id, task);
    }

    /// Mirrors the worker's load on the board, for spillover decisions and readers.
    fn publish_load(&self, now: Instant) {
        let load = Load {
            in_flight: self.in_flight,
            queued: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            limit: self.gate.cap(),
            held: self.gate.is_held(now),
        };
        report::load(&self.args.board, &self.args.target, load);
    }

    fn finish(&mut self, id: u64, outcome: Outcome<Delivery<U>>, started: Instant) {
        // An attempt swept away after it ended has been counted out already.
        if self.running.remove(&id).is_none() {
            return;
        }
        let now = Instant::now();
        let class = outcome.as_ref().err().map(Failure::class);
        self.gate.adapt(class, self.in_flight, started, now);
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(mut job) = self.args.ledger.remove(id) else {
            return;
        };
        let limits = match &outcome {
            Ok(reply) => &reply.limits,
            Err(failure) => failure.limits(),
        };
        self.gate.observe(limits, started, now);
        let failure = outcome.as_ref().err();
        let accepted = !failure.is_some_and(|f| f.class().is_rejection());
        self.args
            .board
            .throttle_record(&self.args.target, now, accepted);
        report::attempt(&mut self.meters, &self.args.target, failure, now - started);
        self.tell_breaker(BreakerMsg::Record {
            class: failure.map(Failure::class),
            retry_after: failure.and_then(Failure::retry_after),
            probe: job.probe,
            limit: self.gate.limit_view(),
            started,
            oldest_running: self.running.values().map(Task::started).min(),
        });
        job.record(failure, now);
        match outcome {
            Ok(reply) => job.succeed(reply),
            Err(failure) => {
                if let Some(wait) = self.gate.pause(&failure, started, now) {
                    tracing::info!(target = %self.args.target, ?wait, "paused after a 429");
                }
                self.hand_back(job, failure);
            }
        }
    }
}
