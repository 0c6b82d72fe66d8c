//! A request rate learned from 429s alone, for a target that announces no rate limits (as
//! Amazon Bedrock and Google Vertex AI do not): AIMD on the rate of attempt starts.
//!
//! Why: without `anthropic-ratelimit-*` headers there is no account to pace by, and a 429's
//! pause alone lets the next burst meet the limit again. So a 429 sets a rate just under
//! what was getting through ([`DECREASE`] of the rate of starts over the last
//! [`MEASURED_OVER`], or of the rate already learned if lower), and every second without a
//! 429 raises it by [`INCREASE`] of itself (10%) until it is [`NEAR`] the rate the 429 came
//! at, then by [`INCREASE_NEAR`] (1%), as CUBIC probes near its last window; never past
//! twice what is being started, so an idle target does not learn a rate it never tried. The
//! starts are then spaced at that rate. A target that announces its limits is paced by them
//! instead (see `pacing`).
//!
//! What it settles at: from `DECREASE` of the limit back to 95% of it in about 2 s, then to
//! the limit in about 5 s: over 90% of the limit served, one 429 a cycle of about 7 s (about
//! 1% of attempts at 12 requests a second).

use std::time::Duration;

use tokio::time::Instant;

/// What a 429 multiplies the rate by.
pub const DECREASE: f64 = 0.8;
/// How much the rate grows each second without a 429, as a share of itself, while it is
/// well under the rate the last 429 came at.
pub const INCREASE: f64 = 0.1;
/// The same near that rate (from [`NEAR`] of it): probe the limit slowly.
pub const INCREASE_NEAR: f64 = 0.01;
/// Where "near the rate the last 429 came at" begins, as a share of it.
pub const NEAR: f64 = 0.95;
/// How far back the rate of starts is measured when a 429 comes.
pub const MEASURED_OVER: Duration = Duration::from_secs(5);
/// The lowest rate learned: one start every ten seconds.
const MIN_RATE: f64 = 0.1;
/// A learned rate no 429 has confirmed for this long is forgotten: the 429 that taught it
/// may have been about tokens, or a moment's, and a rate learned too low would hold the
/// target back for good.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The rate learned for one target; see the module docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLearner {
    /// Starts a second; `None` until the first 429.
    rate: Option<f64>,
    /// When the rate last changed (grew or was cut).
    changed: Option<Instant>,
    /// When the rate was last cut: 429s of attempts started before then were sent at the
    /// old rate, and say nothing new.
    cut_at: Option<Instant>,
    /// When the last start went.
    last_start: Option<Instant>,
    /// The rate the last 429 came at (before the cut).
    refused_at: Option<f64>,
    /// Starts that may go at once, as of `tokens_at`: a bucket refilled at the rate and
    /// holding a second's worth, so starts are spaced only when they come faster than the
    /// rate (strict spacing would turn away, to the next model, arrivals that come early
    /// though the rate has room for them).
    tokens: f64,
    tokens_at: Option<Instant>,
}

/// How many seconds' worth of starts the learned rate lets go at once.
const BURST: f64 = 1.0;

impl RateLearner {
    /// A learner that holds nothing back until a 429.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rate learned, in starts a second, if any.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// A 429 without rate-limit headers, of an attempt started at `started`, seen at `now`,
    /// while `recent` attempts started over the `span` before it (at most
    /// [`MEASURED_OVER`]; taken as at least a second).
    pub fn rate_limited(&mut self, started: Instant, recent: usize, span: Duration, now: Instant) {
        if self.cut_at.is_some_and(|cut| started < cut) {
            return;
        }
        let span = span.clamp(Duration::from_secs(1), MEASURED_OVER);
        let measured = recent as f64 / span.as_secs_f64();
        let base = self
            .rate
            .map_or(measured, |rate| rate.min(measured.max(MIN_RATE)));
        self.refused_at = Some(base);
        self.rate = Some((base * DECREASE).max(MIN_RATE));
        self.tokens = 0.0;
        self.tokens_at = Some(now);
        self.cut_at = Some(now);
        self.changed = Some(now);
    }

    /// An attempt started at `now`, with `recent` started in the [`MEASURED_OVER`] before:
    /// the rate grows for the time since it last changed.
    pub fn started(&mut self, recent: usize, now: Instant) {
        self.last_start = Some(now);
        if self
            .cut_at
            .is_some_and(|cut| now.saturating_duration_since(cut) > FORGET_AFTER)
        {
            *self = Self {
                last_start: Some(now),
                ..Self::default()
            };
        }
        let (Some(rate), Some(changed)) = (self.rate, self.changed) else {
            return;
        };
        self.tokens = self.tokens_now(rate, now) - 1.0;
        self.tokens_at = Some(now);
        let elapsed = now.saturating_duration_since(changed).as_secs_f64();
        let ceiling = (2.0 * recent as f64 / MEASURED_OVER.as_secs_f64()).max(rate);
        let near = self
            .refused_at
            .is_some_and(|refused| rate >= refused * NEAR);
        let increase = if near { INCREASE_NEAR } else { INCREASE };
        self.rate = Some((rate * (1.0 + increase * elapsed)).min(ceiling));
        self.changed = Some(now);
    }

    /// The upstream holds every start back until `until` (a 429's pause): nothing builds up
    /// meanwhile, so after it one start goes at once (when the upstream said to come back),
    /// and the next at the rate, not in a burst.
    pub fn hold_until(&mut self, until: Instant) {
        if self.rate.is_some() {
            self.tokens = 1.0;
            self.tokens_at = Some(self.tokens_at.map_or(until, |at| at.max(until)));
        }
    }

    /// When the next attempt may start: `None` for now.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let tokens = self.tokens_now(rate, now);
        (tokens < 1.0).then(|| now + Duration::from_secs_f64((1.0 - tokens) / rate))
    }

    /// The starts that may go at `now`, at `rate`.
    fn tokens_now(&self, rate: f64, now: Instant) -> f64 {
        let since = self
            .tokens_at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        (self.tokens + rate * since).min((rate * BURST).max(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_held_back_before_a_429() {
        let now = Instant::now();
        let mut learner = RateLearner::new();
        learner.started(100, now);
        assert_eq!(learner.ready_at(now), None);
        assert_eq!(learner.rate(), None);
    }

    #[test]
    fn a_429_sets_the_rate_under_what_was_getting_through_and_spaces_starts() {
        let t0 = Instant::now();
        let mut learner = RateLearner::new();
        learner.started(75, t0);
        // 75 starts in 5 s: 15 a second; cut to 12.
        learner.rate_limited(t0, 75, MEASURED_OVER, t0 + ms(10));
        assert_eq!(learner.rate(), Some(12.0));
        assert_eq!(
            learner.ready_at(t0 + ms(10)),
            Some(t0 + ms(93) + Duration::from_nanos(333_333)),
            "nothing left at the 429: the next start a twelfth of a second later"
        );
        // A second 429 of an attempt sent before the cut changes nothing.
        learner.rate_limited(t0 + ms(5), 75, MEASURED_OVER, t0 + ms(20));
        assert_eq!(learner.rate(), Some(12.0));
    }

    #[test]
    fn the_rate_grows_ten_percent_a_second_then_one_near_the_last_429_and_never_past_twice_what_starts()
     {
        let t0 = Instant::now();
        let mut learner = RateLearner::new();
        learner.rate_limited(t0, 50, MEASURED_OVER, t0);
        assert_eq!(
            learner.rate(),
            Some(8.0),
            "0.8 of the 10 a second that met the 429"
        );
        learner.started(50, t0 + ms(1_000));
        learner.started(50, t0 + ms(2_000));
        let fast = learner.rate().unwrap();
        assert!((fast - 8.0 * 1.1 * 1.1).abs() < 1e-9, "{fast}");
        learner.started(50, t0 + ms(3_000));
        let grown = learner.rate().unwrap();
        assert!(
            (grown - fast * 1.01).abs() < 1e-9,
            "past 9.5 of 10: 1% a second"
        );
        // Idle: 5 starts in 5 s, so the rate stops at 2 a second... unless already above.
        learner.started(5, t0 + ms(30_000));
        assert_eq!(
            learner.rate(),
            Some(grown),
            "never learns a rate it did not try"
        );
        learner.started(5, t0 + ms(61_000));
        assert_eq!(
            learner.rate(),
            None,
            "forgotten a minute after its last 429"
        );
    }

    #[test]
    fn a_429_after_a_few_starts_measures_them_over_at_least_a_second() {
        let t0 = Instant::now();
        let mut learner = RateLearner::new();
        learner.started(1, t0);
        learner.rate_limited(t0, 1, ms(10), t0 + ms(10));
        assert_eq!(
            learner.rate(),
            Some(0.8),
            "one start over a second, cut to 0.8"
        );
    }

    #[test]
    fn settles_near_the_limit_with_few_429s() {
        // A target allowing 10 a second (a token bucket holding 10, as the API keeps one),
        // offered far more: each start goes at the learned rate, and meets a 429 when the
        // bucket is empty.
        let t0 = Instant::now();
        let mut learner = RateLearner::new();
        let (mut now, mut tokens, mut refilled) = (t0, 10.0_f64, t0);
        let mut starts: Vec<Instant> = Vec::new();
        let mut refused = 0;
        let recent = |starts: &[Instant], now: Instant| {
            let recent: Vec<_> = starts
                .iter()
                .filter(|s| now.saturating_duration_since(**s) < MEASURED_OVER)
                .collect();
            let span = recent.first().map_or(Duration::ZERO, |first| now - **first);
            (recent.len(), span)
        };
        while now < t0 + Duration::from_secs(600) {
            now = learner.ready_at(now).unwrap_or(now).max(now);
            tokens = (tokens + 10.0 * (now - refilled).as_secs_f64()).min(10.0);
            refilled = now;
            learner.started(recent(&starts, now).0, now);
            starts.push(now);
            if tokens >= 1.0 {
                tokens -= 1.0;
            } else {
                refused += 1;
                let (count, span) = recent(&starts, now);
                learner.rate_limited(now, count, span, now);
            }
            now += ms(1);
        }
        let served = (starts.len() - refused) as f64 / 600.0;
        let share = refused as f64 / starts.len() as f64;
        assert!(served >= 9.0, "served {served:.2} a second of 10");
        assert!(share < 0.03, "{:.2}% refused", share * 100.0);
    }
}
