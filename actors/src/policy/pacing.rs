//! Pacing from the upstream's own rate-limit announcements.
//!
//! Why: the Claude API tells every response how much of each rate-limit window is left
//! (`anthropic-ratelimit-{requests,tokens,input-tokens}-{remaining,reset}`). A client that
//! keeps that account can hold a request back until the window refills instead of sending it
//! only to meet a 429, which costs a round trip and, at scale, feeds the overload.
//!
//! The [`RateBucket`] keeps each window as the API does, a token bucket: it holds up to its
//! announced limit and refills continuously, at the rate that makes it full at the announced
//! reset (a bucket announced full keeps the rate learned before, else a per-minute limit's).
//! Every start spends from it. Every response replaces it with the fresher announcement, as
//! of when the answered attempt reached the upstream (which counts a request when it
//! arrives), with the starts since replayed on it: what the upstream had not counted yet,
//! and no more. A window that was never announced never holds anything back.

use std::time::Duration;

use tokio::time::Instant;

use crate::upstream::{RateLimits, Window};

/// What one attempt is expected to spend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Input tokens, as estimated from the request (or counted); 0 when unknown.
    pub input_tokens: u64,
    /// Output tokens: the request's `max_tokens`, which is what the API reserves against
    /// its output-token limit when a request starts; 0 when unknown.
    pub output_tokens: u64,
}

impl Cost {
    /// A cost of `input_tokens` in and up to `output_tokens` out.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
        }
    }

    /// Both costs together.
    #[must_use]
    pub fn plus(self, other: Cost) -> Cost {
        Cost::new(
            self.input_tokens.saturating_add(other.input_tokens),
            self.output_tokens.saturating_add(other.output_tokens),
        )
    }

    /// `self` without `other`, never below nothing.
    #[must_use]
    pub fn minus(self, other: Cost) -> Cost {
        Cost::new(
            self.input_tokens.saturating_sub(other.input_tokens),
            self.output_tokens.saturating_sub(other.output_tokens),
        )
    }
}

/// The API's rate limits are per minute: a window refills at its limit per 60 s.
const PER_MINUTE: f64 = 60.0;

/// One window's account: a token bucket, as the API keeps it. It refills continuously at its
/// announced limit per minute, up to what it would hold at the announced reset (`remaining +
/// reset * rate`: the whole limit, or less where the upstream enforces the rate over shorter
/// intervals, as the API may). A window announced without its limit keeps the older, simpler
/// reading: what is left now, all of it again at the reset.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Account {
    /// What is left as of `as_of`; below zero when more was spent than was left.
    level: f64,
    /// Until then the level stays as it is (after a 429: nothing refills before its wait).
    as_of: Instant,
    /// The most it holds, if announced.
    capacity: Option<f64>,
    /// How much it refills per second (0 without a `capacity`).
    rate: f64,
    /// When it is full again, as announced.
    full_at: Instant,
}

impl Account {
    /// The account a response announced at `now` for an attempt that reached the upstream at
    /// `anchor` (it counted the window then), replaying `since`: the attempts started after
    /// it, which the upstream had not counted yet, each with what it spends, in order.
    fn from(
        window: &Window,
        anchor: Instant,
        now: Instant,
        since: impl Iterator<Item = (Instant, u64)>,
    ) -> Option<Self> {
        let remaining = window.remaining? as f64;
        let reset = window.reset_in.unwrap_or(Duration::ZERO);
        let rate = window.limit.map_or(0.0, |limit| limit as f64 / PER_MINUTE);
        let capacity = window.limit.map(|limit| {
            (remaining + reset.as_secs_f64() * rate).clamp(1.0, (limit as f64).max(1.0))
        });
        let mut account = Self {
            level: remaining,
            as_of: anchor.min(now),
            capacity,
            rate,
            full_at: now + reset,
        };
        for (at, amount) in since {
            account.spend(amount, at.min(now));
        }
        account.level = account.level_at(now);
        account.as_of = account.as_of.max(now);
        Some(account)
    }

    /// What is left at `at`.
    fn level_at(&self, at: Instant) -> f64 {
        match self.capacity {
            None if at >= self.full_at => f64::INFINITY,
            None => self.level,
            Some(_) if at <= self.as_of => self.level,
            Some(capacity) => {
                let refilled = self.rate * (at - self.as_of).as_secs_f64();
                (self.level + refilled).min(capacity)
            }
        }
    }

    /// When `amount` may be spent: `None` for now. A request larger than the whole window
    /// waits only until the window is full: the upstream judges it then.
    fn ready_at(&self, amount: u64, now: Instant) -> Option<Instant> {
        let need = self
            .capacity
            .map_or(amount as f64, |capacity| (amount as f64).min(capacity));
        let level = self.level_at(now);
        if level >= need {
            return None;
        }
        let from = now.max(self.as_of);
        if self.rate <= 0.0 {
            return Some(self.full_at.max(from));
        }
        let wait = (need - self.level_at(from)) / self.rate;
        Some(from + Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX / 4))
    }

    fn spend(&mut self, amount: u64, now: Instant) {
        let at = now.max(self.as_of);
        if self.level_at(at).is_infinite() {
            return;
        }
        self.level = self.level_at(at) - amount as f64;
        self.as_of = at;
    }

    /// A 429: nothing is left until `until`, then the account refills at its rate.
    fn exhaust(&mut self, now: Instant, until: Instant) {
        let level = self.level_at(now);
        self.level = if level.is_finite() {
            level.min(0.0)
        } else {
            0.0
        };
        self.as_of = until.max(self.as_of);
        self.full_at = self.full_at.max(until);
    }
}

/// What an attempt spends of one window, from its cost.
type Amount = fn(&Cost) -> u64;

/// A target's rate-limit account, kept current from its responses; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct RateBucket {
    requests: Option<Account>,
    tokens: Option<Account>,
    input_tokens: Option<Account>,
    output_tokens: Option<Account>,
    /// This replica's share of the account, in (0, 1]: 1 alone; in a fleet, its part of the
    /// fleet's demand. Each start spends `amount / share`, so the replicas of a fleet spend
    /// an announced remainder together rather than each spending all of it.
    share: f64,
}

impl Default for RateBucket {
    fn default() -> Self {
        Self {
            requests: None,
            tokens: None,
            input_tokens: None,
            output_tokens: None,
            share: 1.0,
        }
    }
}

impl RateBucket {
    /// An account that holds nothing back until the upstream announces its limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets this replica's share of the account (see the field); outside (0, 1] is 1.
    pub fn set_share(&mut self, share: f64) {
        self.share = if share > 0.0 && share <= 1.0 {
            share
        } else {
            1.0
        };
    }

    /// What spending `amount` costs this replica's share.
    fn scaled(&self, amount: u64) -> u64 {
        if self.share >= 1.0 {
            return amount;
        }
        (amount as f64 / self.share).ceil() as u64
    }

    /// Takes in the limits announced at `now` in the answer to an attempt started at
    /// `anchor`; `since` are the attempts started after it (when, and what each is expected
    /// to spend), in order: the upstream had not counted them.
    pub fn observe(
        &mut self,
        limits: &RateLimits,
        anchor: Instant,
        now: Instant,
        since: &[(Instant, Cost)],
    ) {
        let windows: [(&mut Option<Account>, &Window, Amount); 4] = [
            (&mut self.requests, &limits.requests, |_| 1),
            (&mut self.tokens, &limits.tokens, |c| c.input_tokens),
            (&mut self.input_tokens, &limits.input_tokens, |c| {
                c.input_tokens
            }),
            (&mut self.output_tokens, &limits.output_tokens, |c| {
                c.output_tokens
            }),
        ];
        let share = self.share;
        let scaled = |amount: u64| {
            if share >= 1.0 {
                amount
            } else {
                (amount as f64 / share).ceil() as u64
            }
        };
        for (account, window, amount) in windows {
            let starts = since.iter().map(|(at, cost)| (*at, scaled(amount(cost))));
            if let Some(fresh) = Account::from(window, anchor, now, starts) {
                *account = Some(fresh);
            }
        }
    }

    /// Empties the request window until `until`: what a 429 says.
    pub fn exhaust(&mut self, now: Instant, until: Instant) {
        let account = self.requests.get_or_insert(Account {
            level: 0.0,
            as_of: until,
            capacity: None,
            rate: 0.0,
            full_at: until,
        });
        account.exhaust(now, until);
    }

    /// When an attempt costing `cost` may start: `None` for now, else the instant the
    /// window that lacks room refills.
    pub fn ready_at(&self, cost: Cost, now: Instant) -> Option<Instant> {
        let (one, input, output) = (
            self.scaled(1),
            self.scaled(cost.input_tokens),
            self.scaled(cost.output_tokens),
        );
        [
            self.requests.and_then(|a| a.ready_at(one, now)),
            // A request larger than a whole window would wait forever; let the upstream judge.
            self.tokens.and_then(|a| a.ready_at(input, now)),
            self.input_tokens.and_then(|a| a.ready_at(input, now)),
            self.output_tokens.and_then(|a| a.ready_at(output, now)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Spends `cost` for an attempt starting at `now`.
    pub fn spend(&mut self, cost: Cost, now: Instant) {
        let (one, input, output) = (
            self.scaled(1),
            self.scaled(cost.input_tokens),
            self.scaled(cost.output_tokens),
        );
        if let Some(a) = &mut self.requests {
            a.spend(one, now);
        }
        if let Some(a) = &mut self.tokens {
            a.spend(input, now);
        }
        if let Some(a) = &mut self.input_tokens {
            a.spend(input, now);
        }
        if let Some(a) = &mut self.output_tokens {
            a.spend(output, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn window(limit: u64, remaining: u64, reset_ms: u64) -> Window {
        Window {
            limit: Some(limit),
            remaining: Some(remaining),
            reset_in: Some(ms(reset_ms)),
        }
    }

    fn requests(limit: u64, remaining: u64, reset_ms: u64) -> RateLimits {
        RateLimits {
            requests: window(limit, remaining, reset_ms),
            ..RateLimits::default()
        }
    }

    fn nothing() -> &'static [(Instant, Cost)] {
        &[]
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_held_back_before_an_announcement() {
        let bucket = RateBucket::new();
        assert_eq!(bucket.ready_at(Cost::new(10_000, 0), Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_window_refills_continuously_at_the_rate_that_fills_it_by_its_reset() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        // 60 a minute, 2 left, full in 58 s: one a second.
        bucket.observe(&requests(60, 2, 58_000), now, now, nothing());
        let cost = Cost::default();
        bucket.spend(cost, now);
        bucket.spend(cost, now);
        assert_eq!(
            bucket.ready_at(cost, now),
            Some(now + ms(1_000)),
            "one refilled"
        );
        assert_eq!(bucket.ready_at(cost, now + ms(1_000)), None);
        bucket.spend(cost, now + ms(1_000));
        assert_eq!(
            bucket.ready_at(cost, now + ms(1_000)),
            Some(now + ms(2_000)),
            "the next one a second later, not at the reset 58 s away"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_refills_at_its_limit_per_minute() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        bucket.observe(&requests(120, 120, 0), now, now, nothing());
        for _ in 0..120 {
            bucket.spend(Cost::default(), now);
        }
        assert_eq!(bucket.ready_at(Cost::default(), now), Some(now + ms(500)));
    }

    #[tokio::test(start_paused = true)]
    async fn only_attempts_started_after_the_answered_one_are_spent_from_its_announcement() {
        let t0 = Instant::now();
        let mut bucket = RateBucket::new();
        // The answered attempt arrived at t0, with 3 left of 60 a minute (one a second);
        // 3 attempts started in the 1.5 s before its answer, while 1.5 refilled.
        let since = [
            (t0 + ms(100), Cost::default()),
            (t0 + ms(200), Cost::default()),
            (t0 + ms(300), Cost::default()),
        ];
        bucket.observe(&requests(60, 3, 57_000), t0, t0 + ms(1_500), &since);
        assert_eq!(
            bucket.ready_at(Cost::default(), t0 + ms(1_500)),
            None,
            "1.5 left"
        );
        bucket.spend(Cost::default(), t0 + ms(1_500));
        assert_eq!(
            bucket.ready_at(Cost::default(), t0 + ms(1_500)),
            Some(t0 + ms(2_000)),
            "0.5 left: the next one waits for the other half"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refills_during_the_replay_never_exceed_the_capacity() {
        let t0 = Instant::now();
        let mut bucket = RateBucket::new();
        // 600 a minute (10 a second), enforced over a second: 5 left at t0 and full in
        // 500 ms, so it holds 10. Ten start at once at t0 + 2 s, when it held 10, not the
        // 25 two seconds of refill would add up to.
        let since = [(t0 + ms(2_000), Cost::default()); 10];
        bucket.observe(&requests(600, 5, 500), t0, t0 + ms(2_000), &since);
        assert_eq!(
            bucket.ready_at(Cost::default(), t0 + ms(2_000)),
            Some(t0 + ms(2_100))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_announced_without_its_limit_refills_all_at_once_at_its_reset() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        let limits = RateLimits {
            requests: Window {
                limit: None,
                remaining: Some(1),
                reset_in: Some(ms(800)),
            },
            ..RateLimits::default()
        };
        bucket.observe(&limits, now, now, nothing());
        bucket.spend(Cost::default(), now);
        assert_eq!(bucket.ready_at(Cost::default(), now), Some(now + ms(800)));
        assert_eq!(bucket.ready_at(Cost::default(), now + ms(800)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn input_tokens_wait_for_their_own_window() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        let limits = RateLimits {
            requests: window(1_000, 400, 1_000),
            // 6,000 a minute: 100 a second.
            input_tokens: window(6_000, 1_500, 45_000),
            ..RateLimits::default()
        };
        bucket.observe(&limits, now, now, nothing());
        assert_eq!(bucket.ready_at(Cost::new(1_000, 0), now), None);
        bucket.spend(Cost::new(1_000, 0), now);
        assert_eq!(
            bucket.ready_at(Cost::new(1_000, 0), now),
            Some(now + ms(5_000)),
            "500 left: 500 more at 100 a second"
        );
        assert_eq!(
            bucket.ready_at(Cost::new(400, 0), now),
            None,
            "a small one fits"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_larger_than_the_whole_window_waits_only_until_it_is_full() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        let limits = RateLimits {
            input_tokens: window(6_000, 5_000, 10_000),
            ..RateLimits::default()
        };
        bucket.observe(&limits, now, now, nothing());
        assert_eq!(
            bucket.ready_at(Cost::new(50_000, 0), now),
            Some(now + ms(10_000))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_tokens_wait_for_the_output_window_less_what_started_since() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        let limits = RateLimits {
            output_tokens: window(60_000, 8_000, 52_000),
            ..RateLimits::default()
        };
        // 4,096 output tokens are reserved by an attempt the announcement has not counted.
        bucket.observe(&limits, now, now, &[(now, Cost::new(0, 4_096))]);
        assert_eq!(bucket.ready_at(Cost::new(0, 3_904), now), None);
        assert!(bucket.ready_at(Cost::new(0, 4_096), now).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_empties_the_request_window_until_its_retry_after_then_it_refills() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        bucket.observe(&requests(60, 30, 30_000), now, now, nothing());
        bucket.exhaust(now, now + ms(2_000));
        assert_eq!(
            bucket.ready_at(Cost::default(), now),
            Some(now + ms(3_000)),
            "nothing until the retry-after, then one a second"
        );
        // A later response with room lifts it.
        let later = now + ms(2_000);
        bucket.observe(&requests(60, 49, 11_000), later, later, nothing());
        assert_eq!(bucket.ready_at(Cost::default(), later), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_no_account_holds_back_until_its_retry_after() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        bucket.exhaust(now, now + ms(2_000));
        assert_eq!(bucket.ready_at(Cost::default(), now), Some(now + ms(2_000)));
        assert_eq!(bucket.ready_at(Cost::default(), now + ms(2_000)), None);
    }

    #[test]
    fn a_third_of_the_fleets_demand_spends_a_third_of_the_announced_remainder() {
        let t0 = Instant::now();
        let mut limits = RateLimits::default();
        limits.requests.remaining = Some(30);
        limits.requests.reset_in = Some(Duration::from_secs(60));
        let mut alone = RateBucket::new();
        alone.observe(&limits, t0, t0, &[]);
        let mut shared = RateBucket::new();
        shared.set_share(1.0 / 3.0);
        shared.observe(&limits, t0, t0, &[]);
        let starts = |bucket: &mut RateBucket| {
            let mut n = 0;
            while bucket.ready_at(Cost::default(), t0).is_none() && n < 100 {
                bucket.spend(Cost::default(), t0);
                n += 1;
            }
            n
        };
        assert_eq!(starts(&mut alone), 30);
        assert_eq!(starts(&mut shared), 10);
    }
}
