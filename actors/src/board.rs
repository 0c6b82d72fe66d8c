//! The engine's shared, lock-free view of every breaker, and the event stream callers can
//! subscribe to.
//!
//! Breaker actors own their state machines; each transition is mirrored here so that the
//! dispatcher (and any reader: the gateway's state endpoint, a metrics scrape) can read a
//! target's state without a round trip through the breaker's mailbox. The board is the source
//! of truth for readers; [`Event`]s are notifications only, and a slow subscriber may miss
//! some (it is told how many), but never a state.

use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::policy::breaker::{BreakerState, StateKind, Transition, TransitionReason};
use crate::policy::throttle::{Stakes, Verdict};
use crate::policy::{Throttle, ThrottleConfig};
use crate::request::Priority;
use crate::upstream::{Class, Target};

/// A target's breaker as last published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerStatus {
    /// The breaker's state.
    pub state: StateKind,
    /// While open: when it may go half-open.
    pub open_until: Option<Instant>,
    /// When it entered this state.
    pub since: Instant,
}

impl BreakerStatus {
    /// The breaker state this status shows (an open one with no end shown is open until
    /// `now`, so that it half-opens at once).
    pub(crate) fn breaker_state(&self, now: Instant) -> BreakerState {
        match self.state {
            StateKind::Closed => BreakerState::Closed,
            StateKind::HalfOpen => BreakerState::HalfOpen,
            StateKind::Isolated => BreakerState::Isolated,
            StateKind::Open => BreakerState::Open {
                until: self.open_until.unwrap_or(now),
            },
        }
    }
}

/// How busy a target's worker is, as it last published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Attempts running.
    pub in_flight: u32,
    /// Requests waiting for a slot, pacing or a rate-limit pause.
    pub queued: u32,
    /// Attempts that may run at once: the adaptive limit, or the static cap.
    pub limit: u32,
    /// Whether the target is holding starts back (a 429 pause, pacing, an empty rate window).
    pub held: bool,
}

impl Load {
    /// Whether a new request would have to wait here.
    pub fn is_full(&self) -> bool {
        self.held || self.queued > 0 || self.in_flight >= self.limit
    }
}

/// Something the engine did that a caller may want to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A breaker changed state.
    Breaker {
        /// Whose breaker.
        target: Target,
        /// The state left.
        from: StateKind,
        /// The state entered.
        to: StateKind,
        /// Why.
        reason: TransitionReason,
        /// When.
        at: Instant,
    },
    /// A request moved to the next target of its chain.
    FellBack {
        /// The target that failed or was unavailable.
        from: Target,
        /// The next target.
        to: Target,
        /// The failure that caused it, if an attempt failed (`None`: the target was open).
        class: Option<Class>,
    },
    /// A request will be retried on the same target.
    Retried {
        /// The target.
        target: Target,
        /// The failure being retried.
        class: Class,
        /// The delay before the retry.
        delay: Duration,
    },
    /// A request went past a target whose worker was full or held back (spillover), to the
    /// next target of its chain, without an attempt.
    SpilledOver {
        /// The full target.
        from: Target,
        /// The next target.
        to: Target,
    },
    /// The client-side throttle turned a request away from a target that has been rejecting
    /// most of what it was sent.
    Throttled {
        /// The target.
        target: Target,
        /// The request's priority.
        priority: Priority,
    },
    /// A request was refused or evicted at admission.
    Shed {
        /// Its priority.
        priority: Priority,
    },
}

/// A map by target, read on every request's path: hashed with foldhash rather than
/// SipHash, as a lookup hashes the target's name (a few dozen per request in all).
pub(crate) type TargetMap<V> = DashMap<Target, V, foldhash::fast::RandomState>;

/// The shared view of every breaker, plus the event bus.
#[derive(Debug)]
pub struct Board {
    breakers: TargetMap<BreakerStatus>,
    loads: TargetMap<Load>,
    throttles: TargetMap<Throttle>,
    throttle: Option<ThrottleConfig>,
    /// Attempts started per target, ever: the fleet link's measure of this replica's demand.
    starts: TargetMap<u64>,
    /// This replica's share of each target in a fleet (absent: 1, alone).
    shares: TargetMap<f64>,
    events: broadcast::Sender<Event>,
}

impl Board {
    /// An empty board whose subscribers can lag by up to `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        Self {
            breakers: TargetMap::default(),
            loads: TargetMap::default(),
            throttles: TargetMap::default(),
            throttle: None,
            starts: TargetMap::default(),
            shares: TargetMap::default(),
            events,
        }
    }

    /// The same board, keeping a client-side throttle per target with `config`.
    #[must_use]
    pub fn with_throttle(mut self, config: Option<ThrottleConfig>) -> Self {
        self.throttle = config;
        self
    }

    /// The target's breaker state; a target never published is closed.
    pub fn state(&self, target: &Target) -> StateKind {
        self.breakers
            .get(target)
            .map_or(StateKind::Closed, |status| status.state)
    }

    /// The target's breaker status, if it was ever published.
    pub fn status(&self, target: &Target) -> Option<BreakerStatus> {
        self.breakers.get(target).map(|status| *status)
    }

    /// Every published breaker, sorted by target.
    pub fn snapshot(&self) -> Vec<(Target, BreakerStatus)> {
        let mut all: Vec<_> = self
            .breakers
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The target's current concurrency limit (its adaptive limit, or its static cap).
    pub fn limit(&self, target: &Target) -> Option<u32> {
        self.loads.get(target).map(|load| load.limit)
    }

    /// The target's load as its worker last published it.
    pub fn load(&self, target: &Target) -> Option<Load> {
        self.loads.get(target).map(|load| *load)
    }

    pub(crate) fn set_load(&self, target: &Target, load: Load) {
        if let Some(mut current) = self.loads.get_mut(target) {
            *current = load;
            return;
        }
        self.loads.insert(target.clone(), load);
    }

    /// `target`'s worker crashed and its jobs went back to the dispatcher: nothing runs or
    /// waits there until its successor publishes its own load.
    pub(crate) fn clear_load(&self, target: &Target) {
        if let Some(mut load) = self.loads.get_mut(target) {
            load.in_flight = 0;
            load.queued = 0;
        }
    }

    /// The chance that the client-side throttle turns away a request to `target` now
    /// (0 with no throttle configured).
    pub fn reject_probability(&self, target: &Target, now: Instant) -> f64 {
        self.throttles
            .get(target)
            .map_or(0.0, |throttle| throttle.reject_probability(now))
    }

    /// What `target`'s client-side throttle does with a request with `stakes` arriving now
    /// (send it, with no throttle configured); see [`Throttle::decide`].
    pub(crate) fn throttle(
        &self,
        target: &Target,
        stakes: Stakes,
        now: Instant,
        rng: &mut impl rand::Rng,
    ) -> Verdict {
        self.throttles
            .get(target)
            .map_or(Verdict::Send, |throttle| throttle.decide(stakes, now, rng))
    }

    /// Counts a request the throttle turned away from `target`.
    pub(crate) fn throttle_request(&self, target: &Target, now: Instant) {
        self.with_throttle_of(target, |throttle| throttle.request(now));
    }

    /// Counts a request `target` was sent, once it ended, and whether it accepted it.
    pub(crate) fn throttle_record(&self, target: &Target, now: Instant, accepted: bool) {
        self.with_throttle_of(target, |throttle| throttle.record(now, accepted));
    }

    fn with_throttle_of(&self, target: &Target, f: impl FnOnce(&mut Throttle)) {
        let Some(config) = self.throttle else { return };
        if let Some(mut throttle) = self.throttles.get_mut(target) {
            return f(&mut throttle);
        }
        f(&mut self
            .throttles
            .entry(target.clone())
            .or_insert_with(|| Throttle::new(config)));
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn register(&self, target: &Target, now: Instant) {
        let status = BreakerStatus {
            state: StateKind::Closed,
            open_until: None,
            since: now,
        };
        self.breakers.entry(target.clone()).or_insert(status);
    }

    pub(crate) fn publish_transition(
        &self,
        target: &Target,
        transition: &Transition,
        open_until: Option<Instant>,
    ) {
        let status = BreakerStatus {
            state: transition.to,
            open_until,
            since: transition.at,
        };
        self.breakers.insert(target.clone(), status);
        self.publish(Event::Breaker {
            target: target.clone(),
            from: transition.from,
            to: transition.to,
            reason: transition.reason,
            at: transition.at,
        });
    }

    pub(crate) fn extend(&self, target: &Target, open_until: Instant) {
        if let Some(mut status) = self.breakers.get_mut(target) {
            status.open_until = Some(open_until);
        }
    }

    /// Counts an attempt started at `target`.
    pub(crate) fn count_start(&self, target: &Target) {
        if let Some(mut count) = self.starts.get_mut(target) {
            *count += 1;
            return;
        }
        self.starts.insert(target.clone(), 1);
    }

    /// Attempts started at `target` since the engine started.
    pub fn starts(&self, target: &Target) -> u64 {
        self.starts.get(target).map_or(0, |count| *count)
    }

    /// This replica's share of `target` in its fleet, in (0, 1]: 1 alone, or in local mode.
    pub fn share(&self, target: &Target) -> f64 {
        self.shares.get(target).map_or(1.0, |share| *share)
    }

    pub(crate) fn set_share(&self, target: &Target, share: f64) {
        if share >= 1.0 {
            self.shares.remove(target);
        } else {
            self.shares.insert(target.clone(), share);
        }
    }

    pub(crate) fn publish(&self, event: Event) {
        // No subscriber is not an error: events are notifications only.
        let _ = self.events.send(event);
    }
}
