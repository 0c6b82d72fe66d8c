//! What to do after a failed attempt: retry the same target after a delay, fall back to the
//! next target of the chain, or give up and tell the caller why.
//!
//! The rules follow the failure classes (the README's "How failures are classified").
//! Permanent failures (the request is wrong) are never retried anywhere. An overload is retried on the same target a couple of
//! times with jittered backoff and then handed to the next target: a browned-out model often
//! answers the second try, but a caller should not wait out a long outage on it. A 429 is about
//! our own quota, so by default it moves to the next target at once rather than waiting; a 429
//! without `retry-after` is a spend limit that no retry will lift. A timeout moves on at once too:
//! a model that accepted and never answered would most likely cost the caller another whole
//! attempt timeout. No delay is ever shorter
//! than what the upstream asked for, and no retry is scheduled past the caller's deadline.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::PolicyError;
use super::backoff::{Backoff, BackoffConfig};
use crate::upstream::{Class, Failure};

/// The retry and fall-back rules for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries on one target before moving to the next. Default: 2.
    pub max_retries_per_target: u32,
    /// Attempts across the whole chain, first attempts included. Default: 6.
    pub max_attempts: NonZeroU32,
    /// Move to the next target on a 429 instead of waiting out its `retry-after`. Default: true.
    pub fall_back_on_rate_limit: bool,
    /// Move to the next target, without retrying, on a failure that says the target does not
    /// exist ([`Failure::is_not_found`]; for a Messages API, a 404 for a retired, misspelled
    /// or not enabled model), which the next one may well do. At the end of the chain it is
    /// permanent as ever. Default: true.
    pub fall_back_on_not_found: bool,
    /// Move to the next target at once when an attempt times out, instead of retrying the
    /// same target: a model that accepted and never answered in `attempt-timeout` will most
    /// likely do so again, and each retry in place costs the caller a whole attempt timeout
    /// of its deadline. At the end of the chain a timeout is retried in place. Default: true.
    pub fall_back_on_timeout: bool,
    /// The delays between retries on one target. Default: see [`BackoffConfig`].
    pub backoff: BackoffConfig,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries_per_target: 2,
            max_attempts: NonZeroU32::new(6).expect("6 is not zero"),
            fall_back_on_rate_limit: true,
            fall_back_on_not_found: true,
            fall_back_on_timeout: true,
            backoff: BackoffConfig::default(),
        }
    }
}

/// Where a request stands after the attempt that just failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts made so far across the chain, the failed one included.
    pub total: u32,
    /// Attempts made so far on the failed attempt's target, the failed one included.
    pub on_target: u32,
    /// Whether the chain has a next target this request may use.
    pub can_fall_back: bool,
}

/// Why a request ends with the failure it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The failure is permanent: the request itself is wrong.
    Permanent,
    /// The upstream said not to retry, and there is nowhere to fall back to.
    RetryForbidden,
    /// A 429 without `retry-after`: a spend limit, which no retry lifts.
    QuotaSpent,
    /// The per-request attempt cap is reached.
    AttemptsExhausted,
    /// Retries on the last target are used up.
    ChainExhausted,
    /// The next retry could not start before the deadline.
    Deadline,
    /// Our own resources ran out ([`Class::Local`]): every retry and fallback would meet the
    /// same shortage, so the caller is told at once.
    Local,
}

impl GiveUp {
    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            GiveUp::Permanent => "permanent",
            GiveUp::RetryForbidden => "retry_forbidden",
            GiveUp::QuotaSpent => "quota_spent",
            GiveUp::AttemptsExhausted => "attempts_exhausted",
            GiveUp::ChainExhausted => "chain_exhausted",
            GiveUp::Deadline => "deadline",
            GiveUp::Local => "local",
        }
    }
}

/// What to do with a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try the same target again after this delay.
    RetryAfter(Duration),
    /// Try the next target of the chain now.
    FallBack,
    /// End the request with the failure.
    GiveUp(GiveUp),
}

impl RetryPolicy {
    /// Checks that the rules can work (`max-attempts` is never zero by its type).
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] naming the first bad field, as `backoff.base` or `backoff.cap`
    /// (see [`BackoffConfig::validate`]).
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.backoff.validate().map_err(|error| match error {
            PolicyError::Invalid { field, reason } => {
                let field = match field {
                    "base" => "backoff.base",
                    "cap" => "backoff.cap",
                    _ => "backoff",
                };
                PolicyError::Invalid { field, reason }
            }
        })
    }

    /// Decides what follows `failure`. Draws from `backoff` only when it schedules a retry.
    pub fn decide(
        &self,
        failure: &Failure,
        attempts: Attempts,
        backoff: &mut Backoff,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Decision {
        let class = failure.class();
        if class == Class::Local {
            return Decision::GiveUp(GiveUp::Local);
        }
        if class == Class::Unsuitable {
            // Never retried where it cannot go; at the chain's end, what was tried failed.
            return if attempts.can_fall_back {
                Decision::FallBack
            } else {
                Decision::GiveUp(GiveUp::ChainExhausted)
            };
        }
        let forced = failure.should_retry();
        if !class.is_transient() && forced != Some(true) {
            if failure.is_not_found() && self.fall_back_on_not_found && attempts.can_fall_back {
                return Decision::FallBack;
            }
            return Decision::GiveUp(GiveUp::Permanent);
        }
        if class == Class::RateLimited && failure.retry_after().is_none() && forced != Some(true) {
            // No retry-after: a spent quota (the API's spend cap) or a platform that names no
            // wait (Bedrock, Vertex). Never retried in place; the next model of the chain
            // may have its own quota, and costs one attempt to ask.
            let room = attempts.total < self.max_attempts.get();
            return if attempts.can_fall_back && room {
                Decision::FallBack
            } else {
                Decision::GiveUp(GiveUp::QuotaSpent)
            };
        }
        if attempts.total >= self.max_attempts.get() {
            return Decision::GiveUp(GiveUp::AttemptsExhausted);
        }
        let may_fall_back = attempts.can_fall_back && self.falls_back_on(class);
        let moves_on = match class {
            Class::RateLimited => true,
            Class::Timeout => self.fall_back_on_timeout,
            _ => false,
        };
        if moves_on && may_fall_back {
            return Decision::FallBack;
        }
        let retries_left = attempts.on_target <= self.max_retries_per_target;
        if forced != Some(false) && retries_left {
            let delay = backoff.next().unwrap_or(self.backoff.cap);
            let delay = delay.max(failure.retry_after().unwrap_or_default());
            // A delay too long to add to `now` is past any deadline.
            let ends = now.checked_add(delay);
            if deadline.is_none_or(|deadline| ends.is_some_and(|ends| ends < deadline)) {
                return Decision::RetryAfter(delay);
            }
            if !may_fall_back {
                return Decision::GiveUp(GiveUp::Deadline);
            }
        }
        match (may_fall_back, forced) {
            (true, _) => Decision::FallBack,
            (false, Some(false)) => Decision::GiveUp(GiveUp::RetryForbidden),
            (false, _) => Decision::GiveUp(GiveUp::ChainExhausted),
        }
    }

    /// Whether a failure of `class` may move a request to the next target.
    pub fn falls_back_on(&self, class: Class) -> bool {
        match class {
            Class::Invalid => false,
            Class::RateLimited => self.fall_back_on_rate_limit,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::backoff::Jitter;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn exact() -> RetryPolicy {
        let backoff = BackoffConfig {
            jitter: Jitter::None,
            ..BackoffConfig::default()
        };
        RetryPolicy {
            backoff,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn a_404_falls_back_once_and_is_permanent_at_the_end_of_the_chain() {
        let policy = exact();
        let mut backoff = policy.backoff.build(1);
        let now = Instant::now();
        let gone = Failure::new(Class::Invalid, "model: claude-retired")
            .with_status(404)
            .with_not_found();
        assert_eq!(
            policy.decide(&gone, at(1, 1, true), &mut backoff, now, None),
            Decision::FallBack
        );
        assert_eq!(
            policy.decide(&gone, at(1, 1, false), &mut backoff, now, None),
            Decision::GiveUp(GiveUp::Permanent)
        );
        let bad = Failure::new(Class::Invalid, "bad").with_status(400);
        assert_eq!(
            policy.decide(&bad, at(1, 1, true), &mut backoff, now, None),
            Decision::GiveUp(GiveUp::Permanent),
            "any other 4xx never falls back"
        );
        let off = RetryPolicy {
            fall_back_on_not_found: false,
            ..exact()
        };
        assert_eq!(
            off.decide(&gone, at(1, 1, true), &mut backoff, now, None),
            Decision::GiveUp(GiveUp::Permanent)
        );
    }

    #[test]
    fn a_timeout_falls_back_at_once_and_is_retried_in_place_at_the_end_of_the_chain() {
        let policy = exact();
        let hung = Failure::new(Class::Timeout, "no answer within 20000ms");
        assert_eq!(decide(&policy, &hung, at(1, 1, true)), Decision::FallBack);
        assert_eq!(
            decide(&policy, &hung, at(1, 1, false)),
            Decision::RetryAfter(Duration::from_millis(500))
        );
        let off = RetryPolicy {
            fall_back_on_timeout: false,
            ..exact()
        };
        assert_eq!(
            decide(&off, &hung, at(1, 1, true)),
            Decision::RetryAfter(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_local_fault_gives_up_at_once_wherever_the_request_stands() {
        let policy = exact();
        let local = Failure::new(Class::Local, "too many open files (os error 24)");
        for attempts in [at(1, 1, true), at(1, 1, false), at(3, 2, true)] {
            assert_eq!(
                decide(&policy, &local, attempts),
                Decision::GiveUp(GiveUp::Local),
                "{attempts:?}"
            );
        }
    }

    fn overloaded() -> Failure {
        Failure::new(Class::Overloaded, "Overloaded").with_status(529)
    }

    fn at(total: u32, on_target: u32, can_fall_back: bool) -> Attempts {
        Attempts {
            total,
            on_target,
            can_fall_back,
        }
    }

    fn decide(policy: &RetryPolicy, failure: &Failure, attempts: Attempts) -> Decision {
        let mut backoff = policy.backoff.build(0);
        policy.decide(failure, attempts, &mut backoff, Instant::now(), None)
    }

    #[test]
    fn validate_names_the_backoff_field() {
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
        let mut policy = exact();
        policy.backoff.base = secs(10);
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "invalid backoff.base: 10s is longer than cap (8s)"
        );
        policy.backoff.cap = Duration::ZERO;
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "invalid backoff.cap: must be longer than zero"
        );
    }

    #[test]
    fn overload_retries_twice_with_doubling_delay_then_falls_back() {
        let policy = exact();
        let mut backoff = policy.backoff.build(0);
        let now = Instant::now();
        let mut decisions = Vec::new();
        for on_target in 1..=3 {
            let attempts = at(on_target, on_target, true);
            decisions.push(policy.decide(&overloaded(), attempts, &mut backoff, now, None));
        }
        assert_eq!(
            decisions,
            vec![
                Decision::RetryAfter(Duration::from_millis(500)),
                Decision::RetryAfter(secs(1)),
                Decision::FallBack
            ]
        );
    }

    #[test]
    fn last_target_out_of_retries_exhausts_the_chain() {
        let decision = decide(&exact(), &overloaded(), at(3, 3, false));
        assert_eq!(decision, Decision::GiveUp(GiveUp::ChainExhausted));
    }

    #[test]
    fn invalid_is_never_retried_nor_falls_back() {
        // 404 falls back: see a_404_falls_back_once_and_is_permanent_at_the_end_of_the_chain.
        for status in [400, 401, 403, 409, 413, 422] {
            let failure = Failure::new(Class::Invalid, "bad").with_status(status);
            assert_eq!(
                decide(&exact(), &failure, at(1, 1, true)),
                Decision::GiveUp(GiveUp::Permanent)
            );
        }
    }

    #[test]
    fn should_retry_true_allows_retrying_an_invalid_request_in_place_only() {
        let failure = Failure::new(Class::Invalid, "conflict")
            .with_status(409)
            .with_should_retry(true);
        let policy = exact();
        assert_eq!(
            decide(&policy, &failure, at(1, 1, true)),
            Decision::RetryAfter(Duration::from_millis(500))
        );
        assert_eq!(
            decide(&policy, &failure, at(3, 3, true)),
            Decision::GiveUp(GiveUp::ChainExhausted)
        );
    }

    #[test]
    fn should_retry_false_forbids_a_retry_but_not_a_fallback() {
        let failure = overloaded().with_should_retry(false);
        assert_eq!(
            decide(&exact(), &failure, at(1, 1, true)),
            Decision::FallBack
        );
        assert_eq!(
            decide(&exact(), &failure, at(1, 1, false)),
            Decision::GiveUp(GiveUp::RetryForbidden)
        );
    }

    #[test]
    fn rate_limit_falls_back_at_once_or_waits_out_retry_after() {
        let limited = Failure::new(Class::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(secs(30));
        assert_eq!(
            decide(&exact(), &limited, at(1, 1, true)),
            Decision::FallBack
        );
        let patient = RetryPolicy {
            fall_back_on_rate_limit: false,
            ..exact()
        };
        assert_eq!(
            decide(&patient, &limited, at(1, 1, true)),
            Decision::RetryAfter(secs(30))
        );
    }

    #[test]
    fn rate_limit_without_retry_after_is_never_retried_in_place_but_falls_back() {
        let spent = Failure::new(Class::RateLimited, "spend limit").with_status(429);
        assert_eq!(
            decide(&exact(), &spent, at(1, 1, false)),
            Decision::GiveUp(GiveUp::QuotaSpent),
            "at the end of the chain: a spent quota"
        );
        assert_eq!(
            decide(&exact(), &spent, at(1, 1, true)),
            Decision::FallBack,
            "the next model may have a quota of its own (Bedrock and Vertex name no wait)"
        );
    }

    #[test]
    fn retry_waits_at_least_retry_after() {
        let failure = overloaded().with_retry_after(secs(3));
        assert_eq!(
            decide(&exact(), &failure, at(1, 1, true)),
            Decision::RetryAfter(secs(3))
        );
    }

    #[test]
    fn attempt_cap_ends_the_request() {
        assert_eq!(
            decide(&exact(), &overloaded(), at(6, 1, true)),
            Decision::GiveUp(GiveUp::AttemptsExhausted)
        );
    }

    #[test]
    fn retry_that_would_end_past_the_deadline_falls_back_or_gives_up() {
        let policy = exact();
        let now = Instant::now();
        let deadline = Some(now + Duration::from_millis(400));
        let mut backoff = policy.backoff.build(0);
        let fallback = policy.decide(&overloaded(), at(1, 1, true), &mut backoff, now, deadline);
        assert_eq!(fallback, Decision::FallBack);
        let mut backoff = policy.backoff.build(0);
        let last = policy.decide(&overloaded(), at(1, 1, false), &mut backoff, now, deadline);
        assert_eq!(last, Decision::GiveUp(GiveUp::Deadline));
    }

    #[test]
    fn a_retry_after_too_long_to_add_to_now_is_past_any_deadline() {
        let policy = exact();
        let failure = overloaded().with_retry_after(Duration::MAX);
        let now = Instant::now();
        let mut backoff = policy.backoff.build(0);
        let deadline = Some(now + secs(60));
        let decision = policy.decide(&failure, at(1, 1, false), &mut backoff, now, deadline);
        assert_eq!(decision, Decision::GiveUp(GiveUp::Deadline));
    }

    #[test]
    fn an_unsuitable_target_is_passed_over_at_once_and_ends_the_chain_exhausted() {
        let policy = exact();
        let now = Instant::now();
        let mut backoff = policy.backoff.build(0);
        let unsuitable = Failure::new(Class::Unsuitable, "inference_geo refused");
        let decision = policy.decide(&unsuitable, at(6, 1, true), &mut backoff, now, None);
        assert_eq!(
            decision,
            Decision::FallBack,
            "even past the attempt cap: nothing was sent"
        );
        let decision = policy.decide(&unsuitable, at(1, 1, false), &mut backoff, now, None);
        assert_eq!(decision, Decision::GiveUp(GiveUp::ChainExhausted));
    }

    fn class_strategy() -> impl Strategy<Value = Class> {
        proptest::sample::select(Class::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn a_retry_honours_retry_after_deadline_and_caps(
            class in class_strategy(),
            retry_after in proptest::option::of(prop_oneof![0u64..20_000, Just(u64::MAX)]),
            should_retry in proptest::option::of(any::<bool>()),
            total in 1u32..10, on_target in 1u32..5, can_fall_back: bool,
            deadline in proptest::option::of(0u64..30_000),
            seed: u64,
        ) {
            let policy = RetryPolicy::default();
            let mut failure = Failure::new(class, "x");
            if let Some(ms) = retry_after { failure = failure.with_retry_after(Duration::from_millis(ms)); }
            if let Some(flag) = should_retry { failure = failure.with_should_retry(flag); }
            let now = Instant::now();
            let deadline = deadline.map(|ms| now + Duration::from_millis(ms));
            let mut backoff = policy.backoff.build(seed);
            let attempts = at(total, on_target.min(total), can_fall_back);
            match policy.decide(&failure, attempts, &mut backoff, now, deadline) {
                Decision::RetryAfter(delay) => {
                    prop_assert!(delay >= failure.retry_after().unwrap_or_default());
                    prop_assert!(deadline.is_none_or(|d| now.checked_add(delay).is_some_and(|end| end < d)));
                    prop_assert!(total < policy.max_attempts.get());
                    prop_assert!(attempts.on_target <= policy.max_retries_per_target);
                    prop_assert!(should_retry != Some(false));
                    prop_assert!(class.is_transient() || should_retry == Some(true));
                }
                Decision::FallBack => {
                    prop_assert!(can_fall_back && class != Class::Invalid);
                    // An unsuitable target was never sent anything: passing it over is
                    // not an attempt the cap is about.
                    prop_assert!(total < policy.max_attempts.get() || class == Class::Unsuitable);
                }
                Decision::GiveUp(_) => {}
            }
        }
    }
}
