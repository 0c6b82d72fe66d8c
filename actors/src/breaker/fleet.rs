//! The breaker actor's side of a fleet (see `crate::fleet`): it tells the link of its
//! evidence and probe results, follows the fleet's breaker when the link hands it a view,
//! and, when an open interval the fleet set ends, claims the fleet's one probe instead of
//! half-opening on its own. In local mode (the store unavailable) it decides alone.

use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::{BreakerMsg, BreakerState as ActorState};
use crate::fleet::FleetView;
use crate::fleet::record::Op;
use crate::policy::breaker::{BreakerState, Evidence, StateKind, Transition};
use crate::upstream::Upstream;

/// What the actor remembers of the fleet.
#[derive(Debug, Default)]
pub(super) struct Following {
    /// The breaker is open or half-open because the fleet's is (not on its own evidence).
    pub(super) fleet_sourced: bool,
    /// When this replica was granted the fleet's probe, while it holds it.
    pub(super) holding: Option<Instant>,
    /// Whether a probe has been admitted since the grant.
    pub(super) probed: bool,
    /// When this replica last gave the probe back for want of a request: it lets the others
    /// claim first for a while.
    pub(super) released: Option<Instant>,
}

impl<U: Upstream> ActorState<U> {
    /// Tells the link what a recorded outcome adds to the fleet's evidence (`retry_after`:
    /// what the upstream said with it), or, for the fleet's probe, how it ended
    /// (`transition`: what it did to this breaker).
    pub(super) fn report(
        &mut self,
        myself: &ActorRef<BreakerMsg<U>>,
        probe: bool,
        retry_after: Option<Duration>,
        transition: Option<&Transition>,
    ) {
        let Some(fleet) = self.fleet.as_ref().filter(|fleet| fleet.shared()) else {
            return;
        };
        if probe && self.following.holding.is_some() {
            let done = transition.and_then(|t| match t.to {
                StateKind::Closed => Some(true),
                StateKind::Open => Some(false),
                _ => None,
            });
            let Some(ok) = done else {
                // A 429 or an invalid request says nothing of the model: the next request
                // probes, or the probe goes back to the fleet after probe-idle.
                self.probe_freed(myself);
                return;
            };
            self.following.holding = None;
            let retry_after = self
                .breaker
                .open_until()
                .map(|until| until.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            fleet.op(&self.target, Op::ProbeDone { ok, retry_after });
            return;
        }
        let op = match self.breaker.evidence() {
            Evidence::Healthy => Op::Evidence {
                failures: 0,
                successes: 1,
                trailing: 0,
                qualifying: 0,
                retry_after: Duration::ZERO,
            },
            Evidence::Failure | Evidence::Shortage => Op::Evidence {
                failures: 1,
                successes: 0,
                trailing: 1,
                qualifying: u32::from(self.breaker.evidence() == Evidence::Failure),
                retry_after: retry_after.unwrap_or_default(),
            },
            Evidence::Nothing => return,
        };
        fleet.op(&self.target, op);
    }

    /// The probe this replica holds for the fleet ended without a verdict, or never ran:
    /// another request may probe, and if none comes within probe-idle the probe goes back.
    pub(super) fn probe_freed(&mut self, myself: &ActorRef<BreakerMsg<U>>) {
        let Some(fleet) = &self.fleet else { return };
        if self.following.holding.is_some() {
            let now = Instant::now();
            self.following.holding = Some(now);
            self.following.probed = false;
            myself.send_after(fleet.probe_idle, || BreakerMsg::Tick);
        }
    }

    /// Follows the fleet's breaker.
    pub(super) fn follow(
        &mut self,
        myself: &ActorRef<BreakerMsg<U>>,
        view: FleetView,
        now: Instant,
    ) -> Option<Transition> {
        let local = self.breaker.state();
        let (to, tick) = match view {
            FleetView::Local => return self.alone(now),
            FleetView::Closed => {
                if !self.following.fleet_sourced || local == BreakerState::Closed {
                    return None;
                }
                self.following = Following::default();
                (BreakerState::Closed, None)
            }
            FleetView::Open { until } => {
                self.following.holding = None;
                (BreakerState::Open { until }, Some(until))
            }
            FleetView::HalfOpen {
                mine: true,
                lease_until: _,
            } => {
                if !matches!(local, BreakerState::Open { .. }) {
                    // Granted a probe it no longer wants (it closed, or restarted): give it
                    // back at once rather than hold the fleet for the lease.
                    if let Some(fleet) = self.fleet.as_ref().filter(|f| f.shared()) {
                        fleet.op(&self.target, Op::Release);
                    }
                    return None;
                }
                self.following.holding = Some(now);
                self.following.probed = false;
                let idle = self
                    .fleet
                    .as_ref()
                    .map(|f| f.probe_idle)
                    .unwrap_or_default();
                (BreakerState::HalfOpen, Some(now + idle))
            }
            FleetView::HalfOpen {
                mine: false,
                lease_until,
            } => {
                self.following.holding = None;
                (BreakerState::Open { until: lease_until }, Some(lease_until))
            }
        };
        // Open on its own evidence, it keeps its own deadline if that is later.
        let to = match (to, local) {
            (BreakerState::Open { until }, BreakerState::Open { until: own })
                if !self.following.fleet_sourced =>
            {
                BreakerState::Open {
                    until: until.max(own),
                }
            }
            _ => to,
        };
        if to != BreakerState::Closed {
            self.following.fleet_sourced = true;
        }
        let transition = self.breaker.follow(to, now);
        if let (None, Some(until)) = (&transition, self.breaker.open_until()) {
            self.board.extend(&self.target, until);
        }
        if let Some(at) = tick {
            myself.send_after(at.saturating_duration_since(now), || BreakerMsg::Tick);
        }
        transition
    }

    /// The fleet's breaker can no longer be followed (the store is unavailable, or the
    /// target's record unreadable): decide alone from here, and keep an open interval the
    /// fleet set no longer than this breaker would have set its first.
    fn alone(&mut self, now: Instant) -> Option<Transition> {
        if !self.following.fleet_sourced {
            return None;
        }
        self.following = Following::default();
        let first = now + *self.breaker.config().open_range(0).end();
        if let BreakerState::Open { until } = self.breaker.state() {
            if until > first {
                self.breaker
                    .follow(BreakerState::Open { until: first }, now);
                self.board.extend(&self.target, first);
            }
        }
        None
    }

    /// The timer: with the fleet shared, an open interval the fleet set ends in a claim for
    /// its probe (held open meanwhile, so no request half-opens it here), and a probe held
    /// with nothing to probe with is given back. Otherwise the breaker polls as it would alone.
    pub(super) fn tick(
        &mut self,
        myself: &ActorRef<BreakerMsg<U>>,
        now: Instant,
    ) -> Option<Transition> {
        let shared = self.fleet.as_ref().filter(|fleet| fleet.shared()).cloned();
        let Some(fleet) = shared.filter(|_| self.following.fleet_sourced) else {
            return self.breaker.poll(now);
        };
        match self.breaker.state() {
            BreakerState::Open { until } if now >= until => {
                let idle = fleet.probe_idle;
                let deferring = self
                    .following
                    .released
                    .is_some_and(|at| now < at + idle * 2);
                if !deferring {
                    fleet.op(&self.target, Op::Claim);
                }
                let wait = now + idle;
                self.breaker.extend_open(wait);
                self.board.extend(&self.target, wait);
                myself.send_after(fleet.probe_idle, || BreakerMsg::Tick);
                None
            }
            BreakerState::HalfOpen => {
                let idle = self
                    .following
                    .holding
                    .is_some_and(|since| !self.following.probed && now >= since + fleet.probe_idle);
                if !idle {
                    return None;
                }
                self.following.holding = None;
                self.following.released = Some(now);
                fleet.op(&self.target, Op::Release);
                let wait = now + fleet.probe_idle;
                myself.send_after(fleet.probe_idle, || BreakerMsg::Tick);
                self.breaker.follow(BreakerState::Open { until: wait }, now)
            }
            _ => None,
        }
    }
}
