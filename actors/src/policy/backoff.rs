//! How long to wait before trying the same target again.
//!
//! Why jitter: when a model sheds load, every client sees its 529s at about the same moment.
//! Clients that then wait the same fixed or purely exponential delays come back together and
//! knock the model over again. Drawing each delay at random spreads the retries out; "full
//! jitter" (a uniform draw below the exponential ceiling) does so with the least total work
//! (see AWS's "Exponential Backoff And Jitter"). Decorrelated jitter is offered for callers
//! who prefer delays that grow from the previous one rather than from the attempt count.
//!
//! A [`Backoff`] is an `Iterator<Item = Duration>` with a seedable RNG, so tests fix the seed.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::PolicyError;

/// How each delay is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    /// No randomness: exactly `min(cap, base * 2^n)`. For tests and for single clients.
    None,
    /// Uniform in `[0, min(cap, base * 2^n)]`. The default.
    #[default]
    Full,
    /// Uniform in `[base, 3 * previous]`, capped: each delay grows from the last one.
    Decorrelated,
}

/// The shape of a backoff sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct BackoffConfig {
    /// The first ceiling, doubled after each retry. Default: 500ms.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// No delay is ever longer than this. Default: 8s.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// How each delay is drawn. Default: full.
    pub jitter: Jitter,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
            jitter: Jitter::Full,
        }
    }
}

impl BackoffConfig {
    /// A backoff sequence of this shape whose randomness is fixed by `seed`.
    pub fn build(self, seed: u64) -> Backoff {
        Backoff {
            config: self,
            rng: SmallRng::seed_from_u64(seed),
            retries: 0,
            previous: self.base,
        }
    }

    /// Checks that the sequence can work.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] naming the first bad field: a zero `cap`, a zero `base` (every
    /// delay would be zero: retries in a hot loop against a model that is shedding load), or a
    /// `base` longer than `cap`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.cap.is_zero() {
            return Err(PolicyError::invalid("cap", "must be longer than zero"));
        }
        if self.base.is_zero() {
            let reason = "must be longer than zero, or every delay is zero";
            return Err(PolicyError::invalid("base", reason));
        }
        if self.base > self.cap {
            let reason = format!("{:?} is longer than cap ({:?})", self.base, self.cap);
            return Err(PolicyError::invalid("base", reason));
        }
        Ok(())
    }

    /// The ceiling for the delay after `retries` retries: `min(cap, base * 2^retries)`.
    pub fn ceiling(&self, retries: u32) -> Duration {
        let factor = 1u32.checked_shl(retries).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// An endless sequence of retry delays; see the module docs.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    rng: SmallRng,
    retries: u32,
    previous: Duration,
}

impl Backoff {
    /// How many delays have been drawn so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    fn uniform(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return high;
        }
        let (low, high) = (nanos(low), nanos(high));
        Duration::from_nanos(self.rng.random_range(low..=high))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let config = self.config;
        let delay = match config.jitter {
            Jitter::None => config.ceiling(self.retries),
            Jitter::Full => self.uniform(Duration::ZERO, config.ceiling(self.retries)),
            Jitter::Decorrelated => {
                let high = self.previous.saturating_mul(3).min(config.cap);
                self.uniform(config.base.min(config.cap), high)
            }
        };
        self.previous = delay;
        self.retries = self.retries.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn without_jitter_doubles_from_base_to_cap() {
        let config = BackoffConfig {
            jitter: Jitter::None,
            ..BackoffConfig::default()
        };
        let delays: Vec<_> = config.build(0).take(7).collect();
        assert_eq!(
            delays,
            vec![
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(8000),
                ms(8000)
            ]
        );
    }

    #[test]
    fn validate_names_the_bad_field() {
        let bad = |base, cap| {
            let config = BackoffConfig {
                base: ms(base),
                cap: ms(cap),
                jitter: Jitter::Full,
            };
            config.validate().unwrap_err().to_string()
        };
        assert_eq!(BackoffConfig::default().validate(), Ok(()));
        assert_eq!(bad(0, 0), "invalid cap: must be longer than zero");
        assert_eq!(
            bad(0, 100),
            "invalid base: must be longer than zero, or every delay is zero"
        );
        assert_eq!(
            bad(200, 100),
            "invalid base: 200ms is longer than cap (100ms)"
        );
        let equal = BackoffConfig {
            base: ms(100),
            cap: ms(100),
            jitter: Jitter::None,
        };
        assert_eq!(equal.validate(), Ok(()));
    }

    #[test]
    fn ceiling_saturates_instead_of_overflowing() {
        let config = BackoffConfig::default();
        assert_eq!(config.ceiling(0), ms(500));
        assert_eq!(config.ceiling(40), ms(8000));
        assert_eq!(config.ceiling(u32::MAX), ms(8000));
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let a: Vec<_> = BackoffConfig::default().build(7).take(10).collect();
        let b: Vec<_> = BackoffConfig::default().build(7).take(10).collect();
        let c: Vec<_> = BackoffConfig::default().build(8).take(10).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn full_jitter_spreads_delays_over_the_whole_range() {
        let config = BackoffConfig {
            base: ms(1000),
            cap: ms(1000),
            jitter: Jitter::Full,
        };
        let delays: Vec<_> = config.build(1).take(1000).collect();
        assert!(
            delays.iter().any(|d| *d < ms(100)),
            "some delays land near zero"
        );
        assert!(
            delays.iter().any(|d| *d > ms(900)),
            "some delays land near the ceiling"
        );
    }

    #[test]
    fn decorrelated_starts_at_base_and_respects_cap() {
        let config = BackoffConfig {
            base: ms(100),
            cap: ms(1000),
            jitter: Jitter::Decorrelated,
        };
        let delays: Vec<_> = config.build(3).take(50).collect();
        assert!(delays[0] >= ms(100) && delays[0] <= ms(300));
        assert!(delays.iter().all(|d| *d >= ms(100) && *d <= ms(1000)));
    }

    proptest! {
        #[test]
        fn full_jitter_stays_under_each_ceiling(
            seed: u64, base in 1u64..5_000, cap in 1u64..60_000, n in 1usize..40,
        ) {
            let config = BackoffConfig { base: ms(base), cap: ms(cap), jitter: Jitter::Full };
            for (retries, delay) in config.build(seed).take(n).enumerate() {
                prop_assert!(delay <= config.ceiling(retries as u32));
                prop_assert!(delay <= ms(cap));
            }
        }

        #[test]
        fn decorrelated_stays_within_base_and_cap(
            seed: u64, base in 1u64..5_000, cap in 1u64..60_000, n in 1usize..40,
        ) {
            let config = BackoffConfig { base: ms(base), cap: ms(cap), jitter: Jitter::Decorrelated };
            for delay in config.build(seed).take(n) {
                prop_assert!(delay >= ms(base.min(cap)));
                prop_assert!(delay <= ms(cap));
            }
        }
    }
}
