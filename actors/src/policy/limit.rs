//! An adaptive concurrency limit per target: loss-based AIMD with slow start.
//!
//! Why: a breaker treats a model as all or nothing, but a brownout usually leaves part of its
//! capacity. A fixed concurrency cap either wastes that part (too low) or keeps knocking the
//! model over (too high). Like TCP's congestion window, the limit grows while attempts succeed
//! and the limit is actually used, and shrinks multiplicatively on every overload signal, so it
//! settles near what the model can still serve. After a cold start, or when a breaker closes,
//! the limit starts low and ramps up (slow start) instead of jumping, so a recovering model is
//! not knocked over again by a wall of traffic.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::PolicyError;

/// Settings of an [`AdaptiveLimit`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitConfig {
    /// The lowest the limit goes: a browned-out model is still probed this much. Default: 1.
    pub min: NonZeroU32,
    /// The highest the limit goes. Default: 64.
    pub max: NonZeroU32,
    /// Where slow start begins at cold start, taken into `min..=max`. Default: 16, which a
    /// healthy model doubles every round trip, so a cold process queues nothing for long,
    /// and a browned-out one cuts to its size in a few 529s.
    pub initial: NonZeroU32,
    /// Where slow start begins when the target's breaker closes, taken into `min..=max`:
    /// the model has just proved it serves a probe or two, not more. Default: 2.
    pub recovery: NonZeroU32,
    /// What the limit is multiplied by on an overload signal. Default: 0.8.
    pub decrease: f64,
    /// The limit grows only while at least this share of it is in use. Default: 0.5.
    pub utilisation: f64,
    /// The latency signal, off by default: a success that took longer than this counts as
    /// an overload (the limit shrinks), for a model that slows down before it sheds. Set it
    /// well above the slowest normal answer, since answer length drives latency too.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
}

impl Default for LimitConfig {
    fn default() -> Self {
        let n = |n| NonZeroU32::new(n).expect("constant is not zero");
        Self {
            min: n(1),
            max: n(64),
            initial: n(16),
            recovery: n(2),
            decrease: 0.8,
            utilisation: 0.5,
            latency: None,
        }
    }
}

impl LimitConfig {
    /// What a success that took `latency` with `in_flight` attempts running says: an overload
    /// when the latency signal is on and it was slower than allowed, a success otherwise.
    pub fn success(&self, in_flight: u32, latency: Duration) -> CapacitySignal {
        match self.latency {
            Some(allowed) if latency > allowed => CapacitySignal::Overload,
            _ => CapacitySignal::Success { in_flight },
        }
    }

    /// Checks the bounds are ordered and the ratios are fractions.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min > self.max {
            return Err(PolicyError::Invalid {
                field: "min",
                reason: format!("{} is above max {}", self.min, self.max),
            });
        }
        if !(self.decrease > 0.0 && self.decrease < 1.0) {
            return Err(PolicyError::Invalid {
                field: "decrease",
                reason: format!("must be within (0, 1), got {}", self.decrease),
            });
        }
        if self.latency == Some(Duration::ZERO) {
            return Err(PolicyError::Invalid {
                field: "latency",
                reason: "must be above 0 (leave it out to turn the latency signal off)".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.utilisation) {
            let reason = format!("must be within 0..=1, got {}", self.utilisation);
            return Err(PolicyError::Invalid {
                field: "utilisation",
                reason,
            });
        }
        Ok(())
    }
}

/// What the breaker is told of the target's adaptive limit with each outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitView {
    /// Whether it is at its floor, so it cannot shrink further.
    pub at_floor: bool,
}

/// What an attempt's outcome says about the target's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacitySignal {
    /// It succeeded while `in_flight` attempts (itself included) were running.
    Success {
        /// Attempts running when it ended, itself included.
        in_flight: u32,
    },
    /// The target shed it (a 529) or failed to answer in time.
    Overload,
    /// Nothing about capacity (a 4xx, a 429: our quota, not the model's).
    Neutral,
}

/// The current concurrency limit of one target; see the module docs.
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    config: LimitConfig,
    limit: f64,
    /// While below this, each success adds one (slow start); above it, one per window.
    threshold: f64,
    /// When the limit was last cut: overloads of attempts started before then were in
    /// flight when it was cut, and say nothing new.
    cut_at: Option<Instant>,
    /// The limit the last overload came at: growth slows near it (as CUBIC's does near its
    /// last window), and takes its usual pace again past it.
    ceiling: Option<f64>,
}

/// How much slower the limit grows within one of its last overload's level.
const NEAR_CEILING_SLOWDOWN: f64 = 4.0;

impl AdaptiveLimit {
    /// A limit in slow start from `initial`.
    pub fn new(config: LimitConfig) -> Self {
        let mut limit = Self {
            config,
            limit: 0.0,
            threshold: 0.0,
            cut_at: None,
            ceiling: None,
        };
        limit.restart_from(config.initial);
        limit
    }

    /// Attempts that may run at once now.
    pub fn limit(&self) -> u32 {
        self.limit.floor() as u32
    }

    /// Whether the limit is still ramping up exponentially.
    pub fn in_slow_start(&self) -> bool {
        self.limit < self.threshold
    }

    /// Whether the limit is above its floor, so it can shrink further to what a browned-out
    /// target still serves.
    pub fn above_floor(&self) -> bool {
        self.limit() > self.config.min.get()
    }

    /// An overload of an attempt that started at `started`, seen at `now`. The limit is cut
    /// once per round trip, as TCP cuts its window once per loss event: the overloads of
    /// attempts that were already in flight when it was last cut report the same excess, and
    /// cutting for each would drop a burst of 529s to a fraction of what the target serves.
    pub fn overloaded(&mut self, started: Instant, now: Instant) {
        if self.cut_at.is_some_and(|cut| started < cut) {
            return;
        }
        self.record(CapacitySignal::Overload);
        self.cut_at = Some(now);
    }

    /// Back to slow start from `recovery`, when the target's breaker closes.
    pub fn restart(&mut self) {
        self.restart_from(self.config.recovery);
    }

    fn restart_from(&mut self, start: NonZeroU32) {
        let config = &self.config;
        self.limit = f64::from(start.clamp(config.min, config.max).get());
        self.threshold = f64::from(config.max.get());
    }

    /// Updates the limit after an attempt ended.
    pub fn record(&mut self, signal: CapacitySignal) {
        let (min, max) = (
            f64::from(self.config.min.get()),
            f64::from(self.config.max.get()),
        );
        match signal {
            CapacitySignal::Success { in_flight } => {
                if f64::from(in_flight) < self.limit.floor() * self.config.utilisation {
                    return;
                }
                let step = if self.in_slow_start() {
                    1.0
                } else if self
                    .ceiling
                    .is_some_and(|c| (self.limit + 1.0 - c).abs() < 1.0)
                {
                    // Within one of where the last overload came: probe it slowly, or a
                    // small limit (a brownout's two slots) would meet a 529 every few
                    // answers.
                    1.0 / (self.limit.max(1.0) * NEAR_CEILING_SLOWDOWN)
                } else {
                    1.0 / self.limit.max(1.0)
                };
                self.limit = (self.limit + step).min(max);
            }
            CapacitySignal::Overload => {
                self.ceiling = Some(self.limit);
                self.limit = (self.limit * self.config.decrease).max(min);
                self.threshold = self.limit;
            }
            CapacitySignal::Neutral => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(min: u32, max: u32, initial: u32) -> LimitConfig {
        let n = |n| NonZeroU32::new(n).unwrap();
        LimitConfig {
            min: n(min),
            max: n(max),
            initial: n(initial),
            decrease: 0.7,
            ..LimitConfig::default()
        }
    }

    fn busy(limit: &AdaptiveLimit) -> CapacitySignal {
        CapacitySignal::Success {
            in_flight: limit.limit(),
        }
    }

    #[test]
    fn slow_start_adds_one_per_success_until_the_first_overload() {
        let mut limit = AdaptiveLimit::new(config(1, 64, 2));
        let mut seen = vec![limit.limit()];
        for _ in 0..6 {
            limit.record(busy(&limit));
            seen.push(limit.limit());
        }
        assert_eq!(seen, vec![2, 3, 4, 5, 6, 7, 8]);
        limit.record(CapacitySignal::Overload);
        assert_eq!(limit.limit(), 5, "8 x 0.7 = 5.6");
        assert!(!limit.in_slow_start());
    }

    #[test]
    fn a_burst_of_overloads_cuts_the_limit_once_per_round_trip() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut limit = AdaptiveLimit::new(config(1, 64, 20));
        limit.overloaded(t0, t0 + ms(300));
        assert_eq!(limit.limit(), 14, "20 x 0.7");
        for i in 1..=5 {
            // Started before the cut: the same excess, already answered.
            limit.overloaded(t0 + ms(i), t0 + ms(300 + i));
        }
        assert_eq!(limit.limit(), 14);
        limit.overloaded(t0 + ms(400), t0 + ms(700));
        assert_eq!(
            limit.limit(),
            9,
            "a new round trip's overload cuts again: 14 x 0.7"
        );
        assert!(limit.above_floor());
        for i in 0..10 {
            limit.overloaded(t0 + ms(1_000 * (i + 1)), t0 + ms(1_000 * (i + 1) + 1));
        }
        assert!(!limit.above_floor(), "at its floor of 1");
    }

    #[test]
    fn near_the_level_of_its_last_overload_it_grows_four_times_slower() {
        let mut limit = AdaptiveLimit::new(config(1, 64, 3));
        limit.record(CapacitySignal::Overload);
        assert_eq!(limit.limit(), 2, "3 x 0.7 = 2.1");
        let mut successes = 0;
        while limit.limit() < 3 {
            limit.record(busy(&limit));
            successes += 1;
        }
        // From 2.1 to 3 at 1 / (limit * 4) a success: about 9 answers (the integral of 4L
        // from 2.1 to 3) per probe of the third slot, not 2.
        assert!((9..=10).contains(&successes), "{successes}");
    }

    #[test]
    fn after_an_overload_it_grows_by_one_per_window_of_successes() {
        let mut limit = AdaptiveLimit::new(config(1, 64, 10));
        limit.record(CapacitySignal::Overload);
        assert_eq!(limit.limit(), 7);
        for _ in 0..7 {
            limit.record(busy(&limit));
        }
        assert_eq!(
            limit.limit(),
            7,
            "seven successes add 7 x 1/7.x, just short of one"
        );
        limit.record(busy(&limit));
        assert_eq!(limit.limit(), 8);
    }

    #[test]
    fn an_idle_limit_does_not_grow() {
        let mut limit = AdaptiveLimit::new(config(1, 64, 10));
        for _ in 0..100 {
            limit.record(CapacitySignal::Success { in_flight: 1 });
        }
        assert_eq!(limit.limit(), 10);
    }

    #[test]
    fn repeated_overloads_stop_at_min_and_neutral_outcomes_change_nothing() {
        let mut limit = AdaptiveLimit::new(config(2, 64, 32));
        for _ in 0..50 {
            limit.record(CapacitySignal::Overload);
        }
        assert_eq!(limit.limit(), 2);
        limit.record(CapacitySignal::Neutral);
        assert_eq!(limit.limit(), 2);
    }

    #[test]
    fn restart_ramps_up_again_from_recovery() {
        let mut limit = AdaptiveLimit::new(LimitConfig {
            recovery: NonZeroU32::new(3).unwrap(),
            ..config(1, 16, 4)
        });
        assert_eq!(limit.limit(), 4, "a cold start begins at initial");
        for _ in 0..40 {
            limit.record(busy(&limit));
        }
        assert_eq!(limit.limit(), 16, "capped at max");
        limit.record(CapacitySignal::Overload);
        limit.restart();
        assert_eq!((limit.limit(), limit.in_slow_start()), (3, true));
    }

    #[test]
    fn starting_points_are_taken_into_min_and_max() {
        let limit = AdaptiveLimit::new(config(1, 8, 16));
        assert_eq!(
            limit.limit(),
            8,
            "the default initial of 16 under a max of 8"
        );
        let mut limit = AdaptiveLimit::new(config(4, 8, 4));
        limit.restart();
        assert_eq!(limit.limit(), 4, "a recovery of 2 over a min of 4");
    }

    #[test]
    fn a_slow_success_is_an_overload_only_with_the_latency_signal_on() {
        let off = LimitConfig::default();
        let slow = Duration::from_secs(30);
        assert_eq!(
            off.success(3, slow),
            CapacitySignal::Success { in_flight: 3 }
        );
        let on = LimitConfig {
            latency: Some(Duration::from_secs(20)),
            ..off
        };
        assert_eq!(on.success(3, slow), CapacitySignal::Overload);
        let in_time = Duration::from_secs(20);
        assert_eq!(
            on.success(3, in_time),
            CapacitySignal::Success { in_flight: 3 }
        );
        let zero = LimitConfig {
            latency: Some(Duration::ZERO),
            ..off
        };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.starts_with("invalid latency"), "{err}");
    }

    #[test]
    fn bad_bounds_are_named() {
        let err = config(8, 4, 4).validate().unwrap_err().to_string();
        assert_eq!(err, "invalid min: 8 is above max 4");
        let err = LimitConfig {
            decrease: 1.5,
            ..LimitConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("invalid decrease"), "{err}");
    }

    proptest! {
        #[test]
        fn the_limit_stays_within_min_and_max(
            min in 1u32..8, extra in 0u32..64, outcomes in proptest::collection::vec(0u8..3, 0..300),
        ) {
            let max = min + extra;
            let mut limit = AdaptiveLimit::new(config(min, max, min));
            for outcome in outcomes {
                let signal = match outcome {
                    0 => busy(&limit),
                    1 => CapacitySignal::Overload,
                    _ => CapacitySignal::Neutral,
                };
                limit.record(signal);
                prop_assert!((min..=max).contains(&limit.limit()));
            }
        }
    }
}
