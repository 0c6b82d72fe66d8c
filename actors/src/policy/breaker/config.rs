//! The breaker's settings.

use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::PolicyError;

/// When a breaker opens, for how long, and how it closes again.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct BreakerConfig {
    /// Health failures in a row that open the breaker. Default: 5.
    pub consecutive_failures: NonZeroU32,
    /// Health failures over calls (successes and health failures) in the window that open the
    /// breaker, in (0, 1]. Default: 0.5.
    pub failure_ratio: f64,
    /// How far back the failure ratio looks; an outcome counts for 9/10 of it to all of it.
    /// Default: 10s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Calls the window must hold before its ratio is judged. Default: 10.
    pub min_calls: u32,
    /// The first open interval, doubled after each failed half-open round. Default: 5s.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// The longest the doubling goes, before jitter. Default: 120s.
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
    /// Each open interval `d` is drawn uniformly from `[d, d * (1 + open-jitter)]`. Default: 0.2.
    pub open_jitter: f64,
    /// Probes admitted at once while half-open. Default: 1.
    pub probes: NonZeroU32,
    /// Successful probes that close a half-open breaker. Default: 1.
    pub successes_to_close: NonZeroU32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: NonZeroU32::new(5).expect("5 is not zero"),
            failure_ratio: 0.5,
            window: Duration::from_secs(10),
            min_calls: 10,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(120),
            open_jitter: 0.2,
            probes: NonZeroU32::MIN,
            successes_to_close: NonZeroU32::MIN,
        }
    }
}

impl BreakerConfig {
    /// Checks that every field is usable.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] naming the first bad field: a `failure-ratio` outside (0, 1],
    /// a negative or non-finite `open-jitter`, a zero `window`, or an `open-for` longer than
    /// `max-open-for`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let ratio = self.failure_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            let reason = format!("{ratio} is not in (0, 1]");
            return Err(PolicyError::invalid("failure-ratio", reason));
        }
        let jitter = self.open_jitter;
        if !(jitter.is_finite() && jitter >= 0.0) {
            let reason = format!("{jitter} is not a finite, non-negative number");
            return Err(PolicyError::invalid("open-jitter", reason));
        }
        if self.window.is_zero() {
            return Err(PolicyError::invalid("window", "must be longer than zero"));
        }
        if self.open_for > self.max_open_for {
            let reason = format!("{:?} is longer than max-open-for", self.open_for);
            return Err(PolicyError::invalid("open-for", reason));
        }
        Ok(())
    }

    /// The range the open interval is drawn from after `rounds` failed half-open rounds, before
    /// any `retry-after` lengthens it: `[base, base * (1 + open_jitter)]`, where
    /// `base = min(max_open_for, open_for * 2^rounds)`.
    pub fn open_range(&self, rounds: u32) -> RangeInclusive<Duration> {
        let factor = 1u32.checked_shl(rounds).unwrap_or(u32::MAX);
        let base = self.open_for.saturating_mul(factor).min(self.max_open_for);
        let stretched = Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + self.open_jitter))
            .unwrap_or(Duration::MAX);
        base..=stretched.max(base)
    }
}
