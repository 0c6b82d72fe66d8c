//! The breaker actor: one per target. It owns that target's [`CircuitBreaker`] state machine,
//! is fed every attempt's outcome by the target's worker, grants half-open probe slots to the
//! dispatcher, moves itself from open to half-open on a timer (once traffic is rerouted, no
//! caller would), and publishes every transition to the [`Board`] and the dispatcher.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::board::Board;
use crate::chaos::{self, Site};
use crate::directory::Directory;
use crate::dispatcher::Signal;
use crate::fleet::{FleetHandle, FleetView};
use crate::job::Job;
use crate::policy::breaker::{
    Admission, BreakerConfig, CircuitBreaker, StateKind, Transition, TransitionReason,
};
use crate::upstream::{Class, Target, Upstream};

mod fleet;

/// What a breaker actor is told.
pub(crate) enum BreakerMsg<U: Upstream> {
    /// An attempt ended: `class` is `None` on success. `limit`: the target's adaptive limit
    /// as the outcome found it (see `CircuitBreaker::set_limit`).
    Record {
        class: Option<Class>,
        retry_after: Option<Duration>,
        probe: bool,
        limit: Option<crate::policy::LimitView>,
        /// When the attempt started, and the oldest attempt still running.
        started: Instant,
        oldest_running: Option<Instant>,
    },
    /// A granted probe will not run (its caller left before it started).
    ReleaseProbe,
    /// The dispatcher asks whether `job` may run now; the answer goes back as a signal.
    Admit(Box<Job<U>>),
    /// The open interval may have elapsed.
    Tick,
    /// Force the circuit open until reset.
    Isolate,
    /// Force the circuit closed, forgetting history.
    Reset,
    /// The fleet's breaker for this target moved (or a claim was answered).
    Fleet(FleetView),
    /// The state the actor holds, for the chaos tests, which check the board against it.
    #[cfg(feature = "chaos")]
    Inspect(ractor::RpcReplyPort<StateKind>),
}

pub(crate) struct BreakerActor<U>(PhantomData<fn() -> U>);

impl<U> BreakerActor<U> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct BreakerArgs<U: Upstream> {
    pub(crate) target: Target,
    pub(crate) config: BreakerConfig,
    pub(crate) seed: u64,
    pub(crate) board: Arc<Board>,
    pub(crate) directory: Arc<Directory<U>>,
    pub(crate) fleet: Option<FleetHandle>,
}

pub(crate) struct BreakerState<U: Upstream> {
    target: Target,
    breaker: CircuitBreaker,
    board: Arc<Board>,
    directory: Arc<Directory<U>>,
    fleet: Option<FleetHandle>,
    following: fleet::Following,
}

impl<U: Upstream> Actor for BreakerActor<U> {
    type Msg = BreakerMsg<U>;
    type State = BreakerState<U>;
    type Arguments = BreakerArgs<U>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: BreakerArgs<U>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = Instant::now();
        if let Some(fleet) = &args.fleet {
            fleet.follow(&args.target);
        }
        let Some(last) = args.board.status(&args.target) else {
            args.board.register(&args.target, now);
            return Ok(BreakerState {
                breaker: CircuitBreaker::new(args.config, args.seed),
                target: args.target,
                board: args.board,
                directory: args.directory,
                fleet: args.fleet,
                following: fleet::Following::default(),
            });
        };
        // A restart: take over in the state the crashed breaker last published, so that an
        // open circuit stays open (and half-opens on time) rather than the board showing it
        // open for ever while this one admits everything.
        let resumed = last.breaker_state(now);
        let state = BreakerState {
            breaker: CircuitBreaker::resume(args.config, args.seed, resumed),
            target: args.target,
            board: args.board,
            directory: args.directory,
            fleet: args.fleet,
            following: fleet::Following::default(),
        };
        state.resumed(&myself, now);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        chaos::strike(Site::Breaker).await;
        let now = Instant::now();
        let transition = match message {
            BreakerMsg::Record {
                class,
                retry_after,
                probe,
                limit,
                started,
                oldest_running,
            } => {
                state.breaker.set_limit(limit);
                state.breaker.set_round(started, oldest_running);
                let until = state.breaker.open_until();
                let transition = state.breaker.record(class, retry_after, probe, now);
                if transition.is_none() && state.breaker.open_until() > until {
                    state.extended(&myself, now);
                }
                state.report(&myself, probe, retry_after, transition.as_ref());
                transition
            }
            BreakerMsg::ReleaseProbe => {
                state.breaker.release_probe();
                state.probe_freed(&myself);
                None
            }
            BreakerMsg::Admit(job) => state.admit(*job, now),
            BreakerMsg::Tick => state.tick(&myself, now),
            BreakerMsg::Fleet(view) => state.follow(&myself, view, now),
            BreakerMsg::Isolate => state.breaker.isolate(now),
            BreakerMsg::Reset => state.breaker.reset(now),
            #[cfg(feature = "chaos")]
            BreakerMsg::Inspect(reply) => {
                let _ = reply.send(state.breaker.state().kind());
                None
            }
        };
        if let Some(transition) = transition {
            state.transitioned(&myself, &transition, now);
        }
        Ok(())
    }
}

impl<U: Upstream> BreakerState<U> {
    fn admit(&mut self, mut job: Job<U>, now: Instant) -> Option<Transition> {
        let (admission, transition) = self.breaker.admit(now);
        let signal = match admission {
            Admission::Allowed => Signal::Admitted(job),
            Admission::Probe => {
                job.probe = true;
                self.following.probed = true;
                Signal::Admitted(job)
            }
            Admission::Rejected { .. } => Signal::Refused(job),
        };
        self.signal(signal);
        transition
    }

    fn transitioned(
        &mut self,
        myself: &ActorRef<BreakerMsg<U>>,
        transition: &Transition,
        now: Instant,
    ) {
        if transition.reason != TransitionReason::Fleet {
            // On its own evidence (or an operator's word): no longer following the fleet.
            self.following = fleet::Following {
                holding: self.following.holding,
                released: self.following.released,
                ..fleet::Following::default()
            };
        }
        let open_until = self.breaker.open_until();
        self.board
            .publish_transition(&self.target, transition, open_until);
        tracing::info!(target = %self.target, from = transition.from.as_label(), to = transition.to.as_label(), reason = transition.reason.as_label(), "breaker transition");
        let labels = [
            ("target", self.target.to_string()),
            ("to", transition.to.as_label().to_owned()),
        ];
        metrics::counter!("breakwater_breaker_transitions_total", &labels).increment(1);
        metrics::gauge!("breakwater_breaker_state", "target" => self.target.to_string())
            .set(state_value(transition.to));
        if let Some(until) = open_until {
            schedule_tick(myself, until, now);
        }
        if transition.to == StateKind::Closed {
            if let Some(worker) = self.directory.worker(&self.target) {
                let _ = worker.cast(crate::worker::WorkerMsg::SlowStart);
            }
        }
        self.signal(Signal::Transition {
            target: self.target.clone(),
            to: transition.to,
        });
    }

    /// Republishes the state taken over after a restart, sets the timer the crashed breaker's
    /// death cancelled, and tells the dispatcher, whose parked jobs may have waited on it.
    fn resumed(&self, myself: &ActorRef<BreakerMsg<U>>, now: Instant) {
        tracing::info!(target = %self.target, state = self.breaker.state().kind().as_label(), "breaker restarted in its last published state");
        if let Some(until) = self.breaker.open_until() {
            schedule_tick(myself, until, now);
        }
        self.signal(Signal::Transition {
            target: self.target.clone(),
            to: self.breaker.state().kind(),
        });
    }

    fn extended(&self, myself: &ActorRef<BreakerMsg<U>>, now: Instant) {
        if let Some(until) = self.breaker.open_until() {
            self.board.extend(&self.target, until);
            schedule_tick(myself, until, now);
        }
    }

    fn signal(&self, signal: Signal<U>) {
        if let Some(dispatcher) = self.directory.dispatcher() {
            // A dispatcher that is gone takes its jobs with it; its callers are told by
            // their dropped reply ports.
            let _ = dispatcher.cast(signal.into());
        }
    }
}

fn schedule_tick<U: Upstream>(myself: &ActorRef<BreakerMsg<U>>, until: Instant, now: Instant) {
    myself.send_after(until.saturating_duration_since(now), || BreakerMsg::Tick);
}

/// The breaker state as a gauge value: 0 closed, 1 half-open, 2 open, 3 isolated.
fn state_value(state: StateKind) -> f64 {
    match state {
        StateKind::Closed => 0.0,
        StateKind::HalfOpen => 1.0,
        StateKind::Open => 2.0,
        StateKind::Isolated => 3.0,
    }
}
