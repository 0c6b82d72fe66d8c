//! A request rate learned from 429s alone, for a target that announces no rate limits (as
//! Amazon Bedrock and Google Vertex AI do not): AIMD on the rate of attempt starts.
//!
//! Why: without `anthropic-ratelimit-*` headers there is no account to pace by, and a 429's
//! pause alone lets the next burst meet the limit again. So a 429 sets a rate just under
//! what was getting through ([`DECREASE`] of the rate of starts over the last
//! [`MEASURED_OVER`], or of the rate already learned if lower), and every second without a
//! 429 raises it by [`INCREASE`] of itself, never past twice what is being started, so an
//! idle target does not learn a rate it never tried. The starts are then spaced at that
//! rate. A target that announces its limits is paced by them instead (see `pacing`).
//!
//! What it settles at: the rate climbs from `DECREASE` of the limit back to it in about
//! `ln(1 / DECREASE) / INCREASE` seconds (11 s), so it serves about 90% of the limit with
//! one 429 per cycle (under 1% of attempts at 10 requests a second).

use std::time::Duration;

use tokio::time::Instant;

/// What a 429 multiplies the rate by.
pub const DECREASE: f64 = 0.8;
/// How much the rate grows each second without a 429, as a share of itself.
pub const INCREASE: f64 = 0.02;
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
}

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
        self.rate = Some((base * DECREASE).max(MIN_RATE));
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
        let elapsed = now.saturating_duration_since(changed).as_secs_f64();
        let ceiling = (2.0 * recent as f64 / MEASURED_OVER.as_secs_f64()).max(rate);
        self.rate = Some((rate * (1.0 + INCREASE * elapsed)).min(ceiling));
        self.changed = Some(now);
    }

    /// When the next attempt may start: `None` for now.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let (rate, last) = (self.rate?, self.last_start?);
        let at = last + Duration::from_secs_f64(1.0 / rate);
        (at > now).then_some(at)
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
            Some(t0 + ms(83) + Duration::from_nanos(333_333))
        );
        // A second 429 of an attempt sent before the cut changes nothing.
        learner.rate_limited(t0 + ms(5), 75, MEASURED_OVER, t0 + ms(20));
        assert_eq!(learner.rate(), Some(12.0));
    }

    #[test]
    fn the_rate_grows_two_percent_a_second_without_a_429_but_not_past_twice_what_starts() {
        let t0 = Instant::now();
        let mut learner = RateLearner::new();
        learner.rate_limited(t0, 50, MEASURED_OVER, t0);
        assert_eq!(learner.rate(), Some(8.0));
        learner.started(50, t0 + ms(1_000));
        let grown = learner.rate().unwrap();
        assert!((grown - 8.16).abs() < 1e-9, "{grown}");
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
        assert!(served >= 8.5, "served {served:.2} a second of 10");
        assert!(share < 0.01, "{:.2}% refused", share * 100.0);
    }
}
