//! Client-side adaptive throttling, from Google's SRE book ("Handling Overload").
//!
//! Why: when every model of a chain is overloaded, each request we send only to have it
//! rejected still costs the upstream work and costs the caller time. Over a trailing window,
//! the throttle counts requests and the ones the upstream accepted; it then rejects new requests
//! locally with probability `max(0, (requests - K * accepts) / (requests + 1))`. With K = 2 the
//! client lets through about twice what the upstream has been accepting: enough to notice a
//! recovery at once, not enough to feed the overload.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::budget::SlidingWindow;
use crate::policy::breaker::PolicyError;

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

    /// Draws whether to reject a request arriving now.
    pub fn should_reject(&self, now: Instant, rng: &mut impl Rng) -> bool {
        let p = self.reject_probability(now);
        p > 0.0 && rng.random_bool(p.min(1.0))
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
