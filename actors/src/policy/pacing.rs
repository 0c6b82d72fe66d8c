//! Pacing from the upstream's own rate-limit announcements.
//!
//! Why: the Claude API tells every response how much of each rate-limit window is left
//! (`anthropic-ratelimit-{requests,tokens,input-tokens}-{remaining,reset}`). A client that
//! keeps that account can hold a request back until the window refills instead of sending it
//! only to meet a 429, which costs a round trip and, at scale, feeds the overload.
//!
//! The [`RateBucket`] keeps, per window, what is left and when it refills, as last announced;
//! every start spends from it, and every response replaces it with the fresher announcement,
//! less what is still in flight (the upstream has not counted those yet). A window that was
//! never announced never holds anything back.

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

/// One window's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Account {
    remaining: u64,
    refills_at: Instant,
}

impl Account {
    fn from(window: &Window, now: Instant, spent_since: u64) -> Option<Self> {
        let remaining = window.remaining?;
        let refills_at = now + window.reset_in.unwrap_or(Duration::ZERO);
        Some(Self {
            remaining: remaining.saturating_sub(spent_since),
            refills_at,
        })
    }

    /// When `amount` may be spent: now, or when the window refills.
    fn ready_at(&self, amount: u64, now: Instant) -> Option<Instant> {
        (now < self.refills_at && amount > self.remaining).then_some(self.refills_at)
    }

    fn spend(&mut self, amount: u64, now: Instant) {
        if now < self.refills_at {
            self.remaining = self.remaining.saturating_sub(amount);
        }
    }
}

/// A target's rate-limit account, kept current from its responses; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateBucket {
    requests: Option<Account>,
    tokens: Option<Account>,
    input_tokens: Option<Account>,
    output_tokens: Option<Account>,
}

impl RateBucket {
    /// An account that holds nothing back until the upstream announces its limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in the limits a response announced at `now`. `in_flight` attempts started
    /// before it are not counted in it yet, and `in_flight_cost` is what they are expected
    /// to spend.
    pub fn observe(
        &mut self,
        limits: &RateLimits,
        now: Instant,
        in_flight: u64,
        in_flight_cost: Cost,
    ) {
        let in_flight_tokens = in_flight_cost.input_tokens;
        if let Some(account) = Account::from(&limits.requests, now, in_flight) {
            self.requests = Some(account);
        }
        if let Some(account) = Account::from(&limits.tokens, now, in_flight_tokens) {
            self.tokens = Some(account);
        }
        if let Some(account) = Account::from(&limits.input_tokens, now, in_flight_tokens) {
            self.input_tokens = Some(account);
        }
        let output = in_flight_cost.output_tokens;
        if let Some(account) = Account::from(&limits.output_tokens, now, output) {
            self.output_tokens = Some(account);
        }
    }

    /// Empties the request window until `until`: what a 429 says.
    pub fn exhaust(&mut self, until: Instant) {
        let refills_at = self.requests.map_or(until, |a| a.refills_at.max(until));
        self.requests = Some(Account {
            remaining: 0,
            refills_at,
        });
    }

    /// When an attempt costing `cost` may start: `None` for now, else the instant the
    /// window that lacks room refills.
    pub fn ready_at(&self, cost: Cost, now: Instant) -> Option<Instant> {
        [
            self.requests.and_then(|a| a.ready_at(1, now)),
            // A request larger than a whole window would wait forever; let the upstream judge.
            self.tokens.and_then(|a| a.ready_at(cost.input_tokens, now)),
            self.input_tokens
                .and_then(|a| a.ready_at(cost.input_tokens, now)),
            self.output_tokens
                .and_then(|a| a.ready_at(cost.output_tokens, now)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Spends `cost` for an attempt starting at `now`.
    pub fn spend(&mut self, cost: Cost, now: Instant) {
        if let Some(a) = &mut self.requests {
            a.spend(1, now);
        }
        if let Some(a) = &mut self.tokens {
            a.spend(cost.input_tokens, now);
        }
        if let Some(a) = &mut self.input_tokens {
            a.spend(cost.input_tokens, now);
        }
        if let Some(a) = &mut self.output_tokens {
            a.spend(cost.output_tokens, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(remaining: u64, reset_ms: u64) -> Window {
        Window {
            limit: Some(50),
            remaining: Some(remaining),
            reset_in: Some(Duration::from_millis(reset_ms)),
        }
    }

    fn requests(remaining: u64, reset_ms: u64) -> RateLimits {
        RateLimits {
            requests: window(remaining, reset_ms),
            ..RateLimits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_held_back_before_an_announcement() {
        let bucket = RateBucket::new();
        assert_eq!(bucket.ready_at(Cost::new(10_000, 0), Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_request_of_a_window_waits_for_its_reset() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        bucket.observe(&requests(2, 800), now, 0, Cost::default());
        let cost = Cost::default();
        assert_eq!(bucket.ready_at(cost, now), None);
        bucket.spend(cost, now);
        assert_eq!(bucket.ready_at(cost, now), None);
        bucket.spend(cost, now);
        assert_eq!(
            bucket.ready_at(cost, now),
            Some(now + Duration::from_millis(800))
        );
        // Once the window has refilled, the stale account holds nothing back.
        assert_eq!(
            bucket.ready_at(cost, now + Duration::from_millis(800)),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_are_counted_against_an_announcement() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        bucket.observe(&requests(3, 1_000), now, 3, Cost::default());
        assert_eq!(
            bucket.ready_at(Cost::default(), now),
            Some(now + Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn input_tokens_wait_for_their_own_window() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        let limits = RateLimits {
            requests: window(40, 1_000),
            input_tokens: window(1_500, 3_000),
            ..RateLimits::default()
        };
        bucket.observe(&limits, now, 0, Cost::default());
        assert_eq!(bucket.ready_at(Cost::new(1_000, 0), now), None);
        bucket.spend(Cost::new(1_000, 0), now);
        assert_eq!(
            bucket.ready_at(Cost::new(1_000, 0), now),
            Some(now + Duration::from_secs(3))
        );
        // A small request still fits in what is left.
        assert_eq!(bucket.ready_at(Cost::new(400, 0), now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn max_tokens_wait_for_the_output_window_less_what_is_in_flight() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        let limits = RateLimits {
            output_tokens: window(8_000, 2_000),
            ..RateLimits::default()
        };
        // 4,096 output tokens are reserved by an attempt the announcement has not counted.
        bucket.observe(&limits, now, 1, Cost::new(0, 4_096));
        assert_eq!(
            bucket.ready_at(Cost::new(0, 4_096), now),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(bucket.ready_at(Cost::new(0, 3_904), now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_empties_the_request_window_until_its_retry_after() {
        let now = Instant::now();
        let mut bucket = RateBucket::new();
        bucket.observe(&requests(30, 500), now, 0, Cost::default());
        bucket.exhaust(now + Duration::from_secs(2));
        assert_eq!(
            bucket.ready_at(Cost::default(), now),
            Some(now + Duration::from_secs(2))
        );
        // A later response with room in a new window lifts it.
        let later = now + Duration::from_secs(2);
        bucket.observe(&requests(49, 1_000), later, 0, Cost::default());
        assert_eq!(bucket.ready_at(Cost::default(), later), None);
    }
}
