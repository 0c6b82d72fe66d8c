//! A target's gate: how many attempts may run at once (its concurrency cap, or the adaptive
//! limit under it), and when the next may start (pacing, a 429 pause, the rate-limit
//! account). The target's worker asks it before each start and tells it what happened.
//!
//! Why a pause after a 429: it is about our quota, not the model's health, so more attempts
//! before the quota refills only earn more 429s. The pause lasts what the upstream asked
//! (`retry-after`), else until its request window resets, else a configured default.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Duration;

use tokio::time::Instant;

use super::learn::{MEASURED_OVER, RateLearner};
use super::limit::{AdaptiveLimit, CapacitySignal, LimitConfig, LimitView};

use super::pacing::{Cost, RateBucket};
use crate::upstream::{Class, Failure, RateLimits};

/// Settings of a [`Gate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateConfig {
    /// Attempts in flight at once, at most.
    pub concurrency: NonZeroU32,
    /// Least time between two starts.
    pub min_interval: Duration,
    /// How long a 429 pauses the target when it says nothing of when to come back.
    pub rate_limit_pause: Duration,
    /// The adaptive limit's settings, if the limit adapts; its bounds are taken under
    /// `concurrency`.
    pub limit: Option<LimitConfig>,
    /// Whether to learn a request rate from 429s that come without rate-limit headers
    /// (see [`RateLearner`]).
    pub learn_rate: bool,
}

/// Whether the next attempt may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Start it now.
    Now,
    /// Wait until then (pacing, a pause, or the rate-limit account).
    At(Instant),
    /// The cap is reached: wait for an attempt to end.
    Full,
}

/// A target's gate; see the module docs.
#[derive(Clone, Debug)]
pub struct Gate {
    config: GateConfig,
    limit: Option<AdaptiveLimit>,
    bucket: RateBucket,
    /// The rate learned from header-less 429s, if learning is on.
    learner: Option<RateLearner>,
    /// Recent starts and their costs, oldest first: an answer's announcement did not count
    /// the attempts started after its own.
    starts: VecDeque<(Instant, Cost)>,
    next_start: Instant,
    paused_until: Option<Instant>,
    /// This replica's share of the target, in (0, 1]; see [`set_share`](Self::set_share).
    share: f64,
}

/// How long, and how many, starts are remembered: longer than any attempt runs.
const STARTS_KEPT: (Duration, usize) = (Duration::from_secs(900), 65_536);

impl Gate {
    /// An open gate at `now`.
    pub fn new(config: GateConfig, now: Instant) -> Self {
        let cap = config.concurrency;
        let limit = config.limit.map(|limit| {
            AdaptiveLimit::new(LimitConfig {
                min: limit.min.min(cap),
                max: limit.max.min(cap),
                initial: limit.initial.min(cap),
                ..limit
            })
        });
        Self {
            config,
            limit,
            bucket: RateBucket::new(),
            learner: config.learn_rate.then(RateLearner::new),
            starts: VecDeque::new(),
            next_start: now,
            paused_until: None,
            share: 1.0,
        }
    }

    /// Sets this replica's share of the target, in (0, 1]: 1 alone; in a fleet, its part of
    /// the fleet's demand for it. The concurrency cap is then a fleet total: this replica
    /// runs at most its share of it (at least one attempt); and it spends only its share of
    /// an announced rate-limit remainder (see [`RateBucket::set_share`]).
    pub fn set_share(&mut self, share: f64) {
        self.share = if share > 0.0 && share <= 1.0 {
            share
        } else {
            1.0
        };
        self.bucket.set_share(self.share);
    }

    /// Attempts that may run at once now: the adaptive limit, never above the static cap.
    pub fn cap(&self) -> u32 {
        let total = self.config.concurrency.get();
        let cap = if self.share >= 1.0 {
            total
        } else {
            ((f64::from(total) * self.share).ceil() as u32).clamp(1, total)
        };
        self.limit
            .as_ref()
            .map_or(cap, |limit| limit.limit().min(cap))
    }

    /// When pacing, a 429 pause or the rate-limit account let a start costing `cost` happen.
    pub fn held_until(&self, cost: Cost, now: Instant) -> Instant {
        let paced = self.bucket.ready_at(cost, now).unwrap_or(now);
        let learned = self.learner.as_ref().and_then(|l| l.ready_at(now));
        self.next_start
            .max(self.paused_until.unwrap_or(now))
            .max(paced)
            .max(learned.unwrap_or(now))
    }

    /// How many attempts started in the [`MEASURED_OVER`] before `now`, and over what span:
    /// from the first of them.
    fn recent_starts(&self, now: Instant) -> (usize, Duration) {
        let since = now.checked_sub(MEASURED_OVER).unwrap_or(now);
        let first = self.starts.partition_point(|(at, _)| *at <= since);
        let span = self
            .starts
            .get(first)
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at));
        (self.starts.len() - first, span)
    }

    /// Whether the gate holds starts back now, whatever their cost.
    pub fn is_held(&self, now: Instant) -> bool {
        self.held_until(Cost::default(), now) > now
    }

    /// Whether the next attempt, costing `cost`, may start with `in_flight` running.
    pub fn decide(&self, in_flight: u32, cost: Cost, now: Instant) -> Start {
        if in_flight >= self.cap() {
            return Start::Full;
        }
        match self.held_until(cost, now) {
            at if at > now => Start::At(at),
            _ => Start::Now,
        }
    }

    /// Whether a new request costing `cost` would have to wait, behind `queued` others and
    /// with `in_flight` running.
    pub fn is_full(&self, queued: usize, in_flight: u32, cost: Cost, now: Instant) -> bool {
        queued > 0 || in_flight >= self.cap() || self.held_until(cost, now) > now
    }

    /// An attempt costing `cost` started at `now`.
    pub fn started(&mut self, cost: Cost, now: Instant) {
        self.bucket.spend(cost, now);
        self.next_start = now + self.config.min_interval;
        let (age, count) = STARTS_KEPT;
        while self.starts.len() >= count
            || self
                .starts
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > age)
        {
            self.starts.pop_front();
        }
        self.starts.push_back((now, cost));
        let (recent, _) = self.recent_starts(now);
        if let Some(learner) = &mut self.learner {
            learner.started(recent, now);
        }
    }

    /// An attempt that ran with `in_flight` attempts (itself included), started at
    /// `started`, ended at `now`, failed with `class` or succeeded: what it says of the
    /// capacity feeds the adaptive limit.
    pub fn adapt(&mut self, class: Option<Class>, in_flight: u32, started: Instant, now: Instant) {
        let Some(limit) = &mut self.limit else { return };
        let signal = match class {
            None => (self.config.limit)
                .unwrap_or_default()
                .success(in_flight, now.saturating_duration_since(started)),
            Some(class) if absorbs(class) => CapacitySignal::Overload,
            Some(_) => CapacitySignal::Neutral,
        };
        match signal {
            CapacitySignal::Overload => limit.overloaded(started, now),
            signal => limit.record(signal),
        }
    }

    /// The adaptive limit as the target's breaker sees it, if the limit adapts (see
    /// [`CircuitBreaker::set_limit`](super::CircuitBreaker::set_limit)).
    pub fn limit_view(&self) -> Option<LimitView> {
        self.limit.as_ref().map(|limit| LimitView {
            at_floor: !limit.above_floor(),
        })
    }

    /// Takes in the rate limits announced at `now` in the answer to an attempt that started
    /// at `started`: the upstream counted its windows when that attempt arrived, so the
    /// attempts started after it are spent from the announcement.
    pub fn observe(&mut self, limits: &RateLimits, started: Instant, now: Instant) {
        if limits.is_empty() {
            return;
        }
        let after = self.starts.partition_point(|(at, _)| *at <= started);
        let since: Vec<(Instant, Cost)> = self.starts.range(after..).copied().collect();
        self.bucket.observe(limits, started, now, &since);
    }

    /// Pauses the gate after `failure` of an attempt started at `started`, if it is a 429
    /// (see the module docs), and says for how long. A 429 that announces no request window
    /// also teaches the learned rate, when learning is on.
    pub fn pause(&mut self, failure: &Failure, started: Instant, now: Instant) -> Option<Duration> {
        if failure.class() != Class::RateLimited {
            return None;
        }
        if failure.limits().requests.is_empty() {
            let (recent, span) = self.recent_starts(now);
            if let Some(learner) = &mut self.learner {
                learner.rate_limited(started, recent, span, now);
            }
        }
        let wait = failure
            .retry_after()
            .or(failure.limits().requests.reset_in)
            .unwrap_or(self.config.rate_limit_pause);
        let until = now + wait;
        self.bucket.exhaust(now, until);
        if let Some(learner) = &mut self.learner {
            learner.hold_until(until);
        }
        self.paused_until = Some(
            self.paused_until
                .map_or(until, |current| current.max(until)),
        );
        Some(wait)
    }

    /// The target's breaker closed: ramp the adaptive limit up again from its start.
    pub fn slow_start(&mut self) {
        if let Some(limit) = &mut self.limit {
            limit.restart();
        }
    }
}

/// Whether a failure of `class` is one the adaptive limit answers (a 529, a timeout): a
/// sign the target is short of capacity, not that it is down or that we erred.
pub fn absorbs(class: Class) -> bool {
    matches!(class, Class::Overloaded | Class::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Window;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(concurrency: u32) -> GateConfig {
        GateConfig {
            concurrency: NonZeroU32::new(concurrency).expect("not zero"),
            min_interval: Duration::ZERO,
            rate_limit_pause: ms(1000),
            limit: None,
            learn_rate: false,
        }
    }

    #[test]
    fn the_cap_bounds_what_runs() {
        let now = Instant::now();
        let gate = Gate::new(config(2), now);
        let cost = Cost::default();
        let cases = [
            (0, Start::Now),
            (1, Start::Now),
            (2, Start::Full),
            (3, Start::Full),
        ];
        for (in_flight, expected) in cases {
            assert_eq!(gate.decide(in_flight, cost, now), expected, "{in_flight}");
        }
        assert_eq!(gate.cap(), 2);
    }

    #[test]
    fn pacing_spaces_starts_by_the_interval() {
        let now = Instant::now();
        let mut gate = Gate::new(
            GateConfig {
                min_interval: ms(100),
                ..config(8)
            },
            now,
        );
        gate.started(Cost::default(), now);
        assert_eq!(
            gate.decide(1, Cost::default(), now),
            Start::At(now + ms(100))
        );
        assert!(gate.is_held(now + ms(99)));
        assert_eq!(gate.decide(1, Cost::default(), now + ms(100)), Start::Now);
    }

    #[test]
    fn a_429_pauses_for_retry_after_then_the_reset_then_the_default() {
        let now = Instant::now();
        let limited = || Failure::new(Class::RateLimited, "slow down");
        let reset = RateLimits {
            requests: Window {
                reset_in: Some(ms(300)),
                ..Window::default()
            },
            ..RateLimits::default()
        };
        let cases = [
            (limited().with_retry_after(ms(2000)), Some(ms(2000))),
            (limited().with_limits(reset), Some(ms(300))),
            (limited(), Some(ms(1000))),
            (Failure::new(Class::Overloaded, "busy"), None),
        ];
        for (failure, expected) in cases {
            let mut gate = Gate::new(config(8), now);
            assert_eq!(gate.pause(&failure, now, now), expected, "{failure}");
            let held = expected.map_or(Start::Now, |wait| Start::At(now + wait));
            assert_eq!(gate.decide(0, Cost::default(), now), held, "{failure}");
        }
    }

    #[test]
    fn a_shorter_pause_never_shortens_a_longer_one() {
        let now = Instant::now();
        let mut gate = Gate::new(config(8), now);
        let limited = |wait| Failure::new(Class::RateLimited, "x").with_retry_after(wait);
        gate.pause(&limited(ms(5000)), now, now);
        gate.pause(&limited(ms(100)), now, now);
        assert_eq!(
            gate.decide(0, Cost::default(), now),
            Start::At(now + ms(5000))
        );
    }

    #[test]
    fn a_full_gate_makes_new_requests_wait() {
        let now = Instant::now();
        let gate = Gate::new(config(2), now);
        let cost = Cost::default();
        let cases = [(0, 0, false), (1, 0, true), (0, 2, true), (0, 1, false)];
        for (queued, in_flight, expected) in cases {
            let full = gate.is_full(queued, in_flight, cost, now);
            assert_eq!(full, expected, "{queued} {in_flight}");
        }
    }

    #[test]
    fn the_adaptive_limit_stays_under_the_cap_and_shrinks_on_overload() {
        let now = Instant::now();
        let limit = LimitConfig {
            initial: NonZeroU32::new(16).expect("not zero"),
            ..LimitConfig::default()
        };
        let mut gate = Gate::new(
            GateConfig {
                limit: Some(limit),
                ..config(4)
            },
            now,
        );
        assert_eq!(gate.cap(), 4);
        gate.adapt(Some(Class::Overloaded), 4, now, now + ms(10));
        assert_eq!(gate.cap(), 3, "4 x 0.8, rounded down");
        gate.adapt(Some(Class::Invalid), 3, now + ms(10), now + ms(20));
        assert_eq!(gate.cap(), 3, "an invalid request says nothing of capacity");
    }
}
