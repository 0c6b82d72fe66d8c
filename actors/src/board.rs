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

use crate::policy::breaker::{StateKind, Transition, TransitionReason};
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
    /// A request was refused or evicted at admission.
    Shed {
        /// Its priority.
        priority: Priority,
    },
}

/// The shared view of every breaker, plus the event bus.
#[derive(Debug)]
pub struct Board {
    breakers: DashMap<Target, BreakerStatus>,
    limits: DashMap<Target, u32>,
    events: broadcast::Sender<Event>,
}

impl Board {
    /// An empty board whose subscribers can lag by up to `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        Self {
            breakers: DashMap::new(),
            limits: DashMap::new(),
            events,
        }
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
        self.limits.get(target).map(|limit| *limit)
    }

    pub(crate) fn set_limit(&self, target: &Target, limit: u32) {
        self.limits.insert(target.clone(), limit);
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

    pub(crate) fn publish(&self, event: Event) {
        // No subscriber is not an error: events are notifications only.
        let _ = self.events.send(event);
    }
}
