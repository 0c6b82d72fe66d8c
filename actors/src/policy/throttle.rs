//! Client-side adaptive throttling, from Google's SRE book ("Handling Overload").
//!
//! Why: when every model of a chain is overloaded, each request we send only to have it
//! rejected still costs the upstream work and costs the caller time. Over a trailing window,
//! the throttle counts requests and the ones the upstream accepted; it then rejects new requests
//! locally with probability `max(0, (requests - K * accepts) / (requests + 1))`. With K = 2 the
//! client lets through about twice what the upstream has been accepting: enough to notice a
//! recovery at once, not enough to feed the overload.
//!
//! Why the [`Stakes`]: a request turned away with a target left in its chain only moves on,
//! so any request may be. At the end of the chain the cost is an error, so `Sheddable`
//! requests go first (with `p`), `Normal` ones only once the target rejects most of what it
//! gets (with `2p - 1`), and `Critical` ones never. A retry in place is the retry budget's
//! business, and a half-open probe must run: neither is throttled.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::PolicyError;
use super::budget::SlidingWindow;
use crate::request::Priority;

/// Settings of a [`Throttle`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ThrottleConfig {
    /// How many times what the upstream accepts may be sent. Default: 2.0.
    pub k: f64,
    /// The trailing window requests and accepts are counted over. Default: 60s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            k: 2.0,
            window: Duration::from_secs(60),
        }
    }
}

impl ThrottleConfig {
    /// Checks K is at least 1 and the window is not empty.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(self.k.is_finite() && self.k >= 1.0) {
            return Err(PolicyError::Invalid {
                field: "k",
                reason: format!("must be at least 1, got {}", self.k),
            });
        }
        if self.window.is_zero() {
            return Err(PolicyError::Invalid {
                field: "window",
                reason: "must be longer than zero".into(),
            });
        }
        Ok(())
    }
}

/// What a request arriving at its (closed) target would lose if the throttle turned it away;
/// see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stakes {
    /// A retry in place or a half-open probe: never throttled.
    Exempt,
    /// It would move on to the next target of its chain.
    MovesOn,
    /// It is at the end of its chain: turned away, it fails.
    Fails(Priority),
}

impl Stakes {
    /// The stakes of a request: `retrying` in place, a `probe`, whether it `can_fall_back`,
    /// and its `priority`.
    pub fn of(retrying: bool, probe: bool, can_fall_back: bool, priority: Priority) -> Self {
        if retrying || probe {
            Stakes::Exempt
        } else if can_fall_back {
            Stakes::MovesOn
        } else {
            Stakes::Fails(priority)
        }
    }

    /// The chance of turning such a request away when the throttle's is `p`.
    pub fn probability(self, p: f64) -> f64 {
        match self {
            Stakes::Exempt | Stakes::Fails(Priority::Critical) => 0.0,
            Stakes::MovesOn | Stakes::Fails(Priority::Sheddable) => p,
            Stakes::Fails(Priority::Normal) => 2.0 * p - 1.0,
        }
    }
}

/// What the throttle does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it upstream.
    Send,
    /// Turn it away locally.
    TurnAway,
}

/// Requests and accepts over a trailing window; see the module docs.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    /// Per bucket: (requests, accepts).
    window: SlidingWindow,
}

impl Throttle {
    /// A throttle that has seen nothing, and so rejects nothing.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            window: SlidingWindow::new(config.window),
            config,
        }
    }

    /// The chance that a request arriving now is rejected locally.
    pub fn reject_probability(&self, now: Instant) -> f64 {
        let (requests, accepts) = self.window.totals(now);
        let (requests, accepts) = (requests as f64, accepts as f64);
        ((requests - self.config.k * accepts) / (requests + 1.0)).max(0.0)
    }

    /// Draws whether to reject a request arriving now that would only move on.
    pub fn should_reject(&self, now: Instant, rng: &mut impl Rng) -> bool {
        self.decide(Stakes::MovesOn, now, rng) == Verdict::TurnAway
    }

    /// Decides on a request with `stakes` arriving now. Draws from `rng` only when the
    /// chance of turning it away is above zero, so a healthy target uses no draws.
    pub fn decide(&self, stakes: Stakes, now: Instant, rng: &mut impl Rng) -> Verdict {
        if stakes == Stakes::Exempt {
            return Verdict::Send;
        }
        let p = stakes.probability(self.reject_probability(now));
        if p > 0.0 && rng.random_bool(p.min(1.0)) {
            Verdict::TurnAway
        } else {
            Verdict::Send
        }
    }

    /// Records a request that went upstream, and whether the upstream accepted it.
    pub fn record(&mut self, now: Instant, accepted: bool) {
        self.window.record(now, 1, u64::from(accepted));
    }

    /// Records a request turned away locally: in the SRE formula, requests rejected by the
    /// client count too, which keeps the rejection steady.
    pub fn request(&mut self, now: Instant) {
        self.window.record(now, 1, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn a_healthy_upstream_is_never_throttled() {
        let now = Instant::now();
        let mut throttle = Throttle::new(ThrottleConfig::default());
        for _ in 0..100 {
            throttle.record(now, true);
        }
        assert!(throttle.reject_probability(now).abs() < f64::EPSILON);
    }

    #[test]
    fn the_probability_follows_the_sre_formula() {
        let now = Instant::now();
        let mut throttle = Throttle::new(ThrottleConfig::default());
        for i in 0..100 {
            throttle.record(now, i < 10);
        }
        // (100 - 2 x 10) / (100 + 1)
        assert!((throttle.reject_probability(now) - 80.0 / 101.0).abs() < 1e-9);
        let mut rng = SmallRng::seed_from_u64(1);
        let rejected = (0..10_000)
            .filter(|_| throttle.should_reject(now, &mut rng))
            .count();
        assert!((7_600..8_200).contains(&rejected), "{rejected}");
    }

    #[test]
    fn the_window_forgets_an_old_overload() {
        let now = Instant::now();
        let mut throttle = Throttle::new(ThrottleConfig::default());
        for _ in 0..100 {
            throttle.record(now, false);
        }
        assert!(throttle.reject_probability(now) > 0.9);
        assert!(
            throttle
                .reject_probability(now + Duration::from_secs(61))
                .abs()
                < f64::EPSILON
        );
    }

    #[test]
    fn the_stakes_follow_the_chain_and_the_priority() {
        let cases = [
            ((true, false, true, Priority::Normal), Stakes::Exempt),
            ((false, true, false, Priority::Sheddable), Stakes::Exempt),
            ((false, false, true, Priority::Critical), Stakes::MovesOn),
            (
                (false, false, false, Priority::Normal),
                Stakes::Fails(Priority::Normal),
            ),
        ];
        for ((retrying, probe, can_fall_back, priority), expected) in cases {
            let stakes = Stakes::of(retrying, probe, can_fall_back, priority);
            assert_eq!(
                stakes, expected,
                "{retrying} {probe} {can_fall_back} {priority:?}"
            );
        }
    }

    #[test]
    fn the_probability_spares_what_would_fail() {
        let cases = [
            (Stakes::Exempt, 0.9, 0.0),
            (Stakes::MovesOn, 0.3, 0.3),
            (Stakes::Fails(Priority::Sheddable), 0.3, 0.3),
            (Stakes::Fails(Priority::Normal), 0.3, -0.4),
            (Stakes::Fails(Priority::Normal), 0.75, 0.5),
            (Stakes::Fails(Priority::Critical), 1.0, 0.0),
        ];
        for (stakes, p, expected) in cases {
            let got = stakes.probability(p);
            assert!((got - expected).abs() < 1e-12, "{stakes:?} {p}: {got}");
        }
    }

    #[test]
    fn only_a_chance_above_zero_draws() {
        let now = Instant::now();
        let mut throttle = Throttle::new(ThrottleConfig::default());
        for _ in 0..100 {
            throttle.record(now, false);
        }
        let mut rng = SmallRng::seed_from_u64(1);
        let mut untouched = rng.clone();
        for stakes in [Stakes::Exempt, Stakes::Fails(Priority::Critical)] {
            assert_eq!(throttle.decide(stakes, now, &mut rng), Verdict::Send);
        }
        assert_eq!(rng.random::<u64>(), untouched.random::<u64>(), "no draw");
        let healthy = Throttle::new(ThrottleConfig::default());
        assert_eq!(
            healthy.decide(Stakes::MovesOn, now, &mut rng),
            Verdict::Send
        );
        assert_eq!(rng.random::<u64>(), untouched.random::<u64>(), "no draw");
    }

    #[test]
    fn a_k_below_one_is_refused() {
        let err = ThrottleConfig {
            k: 0.5,
            ..ThrottleConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid k: must be at least 1, got 0.5");
    }
}
