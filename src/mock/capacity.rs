//! One model's capacity, as the mock server models it: a fixed number of slots that
//! brownout windows shrink, an optional requests-per-minute token bucket, and a service
//! time drawn from a distribution. Pure apart from a mutex: `elapsed` (time since server
//! start) is an argument, so tests drive it without a clock.
//!
//! Like the real API, a request that finds no free slot is refused at once with 529 rather
//! than queued: queueing would hide the overload from the client under test.
//!
//! Besides slots, capacity can be occupied by timed holds ([`ModelCapacity::hold_until`]):
//! the simulator uses them for the work a rejected request still costs the server. The mock
//! server takes none, so for it occupancy is the slots in use.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;

use super::scenario::{Brownout, Distribution, ModelSpec};
use crate::engine::{RateLimits, Window};

/// The most an exponential service time may exceed its mean, so one unlucky draw cannot
/// hold a slot for minutes.
const EXPONENTIAL_CAP: f64 = 20.0;

/// What the capacity model decided for one request.
#[derive(Debug)]
pub enum Admission {
    /// Served: hold `slot` until the response is complete.
    Admitted {
        /// Releases the slot when dropped.
        slot: SlotGuard,
        /// The rate-limit state to report (empty without an `rps` or `rpm` limit).
        limits: RateLimits,
    },
    /// No free slot: answer 529 `overloaded_error`.
    Overloaded {
        /// The scenario's `retry-after-on-overload` hint, if any.
        retry_after: Option<Duration>,
    },
    /// Over the `rps` or `rpm` limit: answer 429 `rate_limit_error`.
    RateLimited {
        /// Whole seconds until a token frees, at least one.
        retry_after: Duration,
        /// The rate-limit state to report.
        limits: RateLimits,
    },
}

/// A model's slots, rate limit and service time.
#[derive(Debug)]
pub struct ModelCapacity {
    spec: ModelSpec,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    max_in_flight: u32,
    bucket: Option<TokenBucket>,
    /// Requests admitted while a brownout window was active.
    admitted_in_brownout: u64,
    /// When each timed hold ends, earliest first.
    holds: BinaryHeap<Reverse<Duration>>,
}

impl State {
    /// Slots in use plus timed holds still running at `elapsed`, dropping the ended holds.
    fn occupied(&mut self, elapsed: Duration) -> u32 {
        while self
            .holds
            .peek()
            .is_some_and(|Reverse(end)| *end <= elapsed)
        {
            self.holds.pop();
        }
        let holds = u32::try_from(self.holds.len()).unwrap_or(u32::MAX);
        self.in_flight.saturating_add(holds)
    }
}

impl ModelCapacity {
    /// A model with `spec`'s capacity, all slots free and a full token bucket.
    pub fn new(spec: ModelSpec) -> Self {
        let bucket = spec.requests_per_minute().map(TokenBucket::full);
        let state = State {
            in_flight: 0,
            max_in_flight: 0,
            bucket,
            admitted_in_brownout: 0,
            holds: BinaryHeap::new(),
        };
        Self {
            spec,
            state: Mutex::new(state),
        }
    }

    /// The model's settings.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Slots available `elapsed` after server start: `ceil(slots * fraction)` of the
    /// smallest active brownout, else all of them.
    pub fn slots_at(&self, elapsed: Duration) -> u32 {
        Self::slots_in(self.spec.slots, &self.spec.brownouts, elapsed)
    }

    /// The slots left of `slots` at `elapsed` under `brownouts`: `ceil(slots * fraction)` of
    /// the smallest active brownout, else all of them. The rule behind [`Self::slots_at`],
    /// for callers (the simulator's reports) that have no `ModelCapacity` at hand.
    pub fn slots_in(slots: u32, brownouts: &[Brownout], elapsed: Duration) -> u32 {
        brownouts
            .iter()
            .filter(|brownout| brownout.is_active(elapsed))
            .map(|brownout| (f64::from(slots) * brownout.fraction).ceil() as u32)
            .fold(slots, u32::min)
    }

    /// Decides a request arriving `elapsed` after server start. The rate limit is checked
    /// first (an account quota applies before capacity), then a slot is taken.
    pub fn admit(self: &Arc<Self>, elapsed: Duration) -> Admission {
        let mut state = self.lock();
        let mut limits = RateLimits::default();
        if let Some(bucket) = state.bucket.as_mut() {
            let refused = bucket.take(elapsed);
            limits = bucket.limits();
            if let Some(retry_after) = refused {
                return Admission::RateLimited {
                    retry_after,
                    limits,
                };
            }
        }
        if state.occupied(elapsed) >= self.slots_at(elapsed) {
            let retry_after = self.spec.retry_after_on_overload.map(Duration::from_secs);
            return Admission::Overloaded { retry_after };
        }
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        if self.spec.brownouts.iter().any(|b| b.is_active(elapsed)) {
            state.admitted_in_brownout += 1;
        }
        Admission::Admitted {
            slot: SlotGuard {
                capacity: Arc::clone(self),
            },
            limits,
        }
    }

    /// Occupies one unit of capacity until `until` (time since server start) without a
    /// slot guard, even when every slot is taken: capacity can be oversubscribed this way.
    ///
    /// Why: an overloaded service still spends work on the requests it refuses (accepting
    /// the connection, parsing, queueing for the decision). The simulator holds capacity for
    /// each rejection, which is what lets a retry storm keep a model overloaded after the
    /// trigger has gone: a metastable failure.
    pub fn hold_until(&self, until: Duration) {
        self.lock().holds.push(Reverse(until));
    }

    /// Units of capacity occupied at `elapsed`: slots in use plus running timed holds.
    pub fn occupied(&self, elapsed: Duration) -> u32 {
        self.lock().occupied(elapsed)
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> u32 {
        self.lock().in_flight
    }

    /// The most requests that held a slot at once.
    pub fn max_in_flight(&self) -> u32 {
        self.lock().max_in_flight
    }

    /// Requests admitted (given a slot) while a brownout window was active: what the model
    /// served of its residual capacity.
    pub fn admitted_in_brownout(&self) -> u64 {
        self.lock().admitted_in_brownout
    }

    /// Draws a service time from the model's distribution.
    pub fn service_time<R: Rng>(&self, rng: &mut R) -> Duration {
        let mean = self.spec.service_time.as_secs_f64();
        let secs = match self.spec.distribution {
            Distribution::Fixed => mean,
            Distribution::Exponential => {
                let u: f64 = rng.random();
                (-mean * (1.0 - u).ln()).min(mean * EXPONENTIAL_CAP)
            }
            Distribution::Uniform => {
                let spread = self.spec.service_time_spread.as_secs_f64();
                mean - spread + 2.0 * spread * rng.random::<f64>()
            }
        };
        Duration::from_secs_f64(secs.max(0.0))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (plain counters), so poisoning is moot.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard {
    capacity: Arc<ModelCapacity>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut state = self.capacity.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

/// The API's requests-per-minute limit as a token bucket: tokens are replenished
/// continuously at `rpm / 60` a second (never refilled all at once at a window's end), up to
/// one second's worth (at least one token), as the API enforces a per-minute limit over
/// shorter intervals. Each request takes a token; with none left it is refused.
#[derive(Debug)]
struct TokenBucket {
    /// The limit as the API states it: requests per minute.
    per_minute: u64,
    /// Tokens added per second.
    rate: f64,
    /// The most tokens the bucket holds.
    capacity: f64,
    tokens: f64,
    updated: Duration,
}

impl TokenBucket {
    fn full(per_minute: u64) -> Self {
        let per_minute = per_minute.max(1);
        let rate = per_minute as f64 / 60.0;
        let capacity = rate.ceil().max(1.0);
        Self {
            per_minute,
            rate,
            capacity,
            tokens: capacity,
            updated: Duration::ZERO,
        }
    }

    /// Brings the bucket to `elapsed`: the tokens replenished since the last update.
    fn refill(&mut self, elapsed: Duration) {
        let since = elapsed.saturating_sub(self.updated).as_secs_f64();
        self.tokens = (self.tokens + since * self.rate).min(self.capacity);
        self.updated = self.updated.max(elapsed);
    }

    /// Takes a token at `elapsed`; if there is none, says how long until one frees (whole
    /// seconds, at least one, as `retry-after` says it).
    fn take(&mut self, elapsed: Duration) -> Option<Duration> {
        self.refill(elapsed);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        let wait = ((1.0 - self.tokens) / self.rate).ceil().max(1.0);
        Some(Duration::from_secs_f64(wait))
    }

    /// What the headers report: the per-minute limit, the whole tokens left, and how long
    /// until the bucket is full again.
    fn limits(&self) -> RateLimits {
        let refill = (self.capacity - self.tokens).max(0.0) / self.rate;
        let requests = Window {
            limit: Some(self.per_minute),
            remaining: Some(self.tokens.floor() as u64),
            reset_in: Some(Duration::from_secs_f64(refill)),
        };
        RateLimits {
            requests,
            ..RateLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn model(spec: ModelSpec) -> Arc<ModelCapacity> {
        Arc::new(ModelCapacity::new(spec))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn no_free_slot_means_overloaded_at_once() {
        let cap = model(ModelSpec {
            slots: 2,
            retry_after_on_overload: Some(3),
            ..ModelSpec::default()
        });
        let a = cap.admit(Duration::ZERO);
        let _b = cap.admit(Duration::ZERO);
        assert!(
            matches!(cap.admit(Duration::ZERO), Admission::Overloaded { retry_after: Some(d) } if d == secs(3))
        );
        drop(a);
        assert!(matches!(
            cap.admit(Duration::ZERO),
            Admission::Admitted { .. }
        ));
        assert_eq!(2, cap.max_in_flight());
    }

    #[test]
    fn timed_holds_occupy_capacity_until_they_end() {
        let cap = model(ModelSpec {
            slots: 1,
            ..ModelSpec::default()
        });
        cap.hold_until(secs(3));
        cap.hold_until(secs(2));
        assert_eq!(2, cap.occupied(Duration::ZERO));
        assert!(matches!(cap.admit(secs(2)), Admission::Overloaded { .. }));
        assert_eq!(1, cap.occupied(secs(2)));
        assert!(matches!(cap.admit(secs(3)), Admission::Admitted { .. }));
        assert_eq!(0, cap.occupied(secs(3)));
    }

    #[test]
    fn brownout_keeps_ceil_of_fraction() {
        let brownouts = vec![
            Brownout {
                start: secs(10),
                end: Some(secs(40)),
                fraction: 0.05,
            },
            Brownout {
                start: secs(20),
                end: Some(secs(30)),
                fraction: 0.0,
            },
        ];
        let cap = model(ModelSpec {
            slots: 8,
            brownouts,
            ..ModelSpec::default()
        });
        assert_eq!(8, cap.slots_at(secs(9)));
        assert_eq!(1, cap.slots_at(secs(10)));
        assert_eq!(0, cap.slots_at(secs(25)));
        assert_eq!(8, cap.slots_at(secs(40)));
    }

    #[test]
    fn rps_limit_refuses_with_whole_seconds_and_refills() {
        let cap = model(ModelSpec {
            rps: Some(2),
            ..ModelSpec::default()
        });
        let first = cap.admit(Duration::ZERO);
        let Admission::Admitted { limits, .. } = &first else {
            panic!("{first:?}")
        };
        assert_eq!(Some(120), limits.requests.limit, "per minute");
        assert_eq!(Some(1), limits.requests.remaining);
        let _second = cap.admit(Duration::ZERO);
        match cap.admit(Duration::from_millis(100)) {
            Admission::RateLimited {
                retry_after,
                limits,
            } => {
                assert_eq!(secs(1), retry_after);
                assert_eq!(Some(0), limits.requests.remaining);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            cap.admit(Duration::from_millis(600)),
            Admission::Admitted { .. }
        ));
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn rpm_bucket_holds_a_seconds_worth_and_states_the_limit_per_minute() {
        let mut bucket = TokenBucket::full(720);
        let limits = bucket.limits().requests;
        assert_eq!(
            (Some(720), Some(12), Some(Duration::ZERO)),
            (limits.limit, limits.remaining, limits.reset_in)
        );
        for _ in 0..12 {
            assert_eq!(None, bucket.take(Duration::ZERO));
        }
        assert_eq!(Some(secs(1)), bucket.take(Duration::ZERO));
        let limits = bucket.limits().requests;
        assert_eq!(
            (Some(0), Some(secs(1))),
            (limits.remaining, limits.reset_in)
        );
        // Fewer than one a second: still a token to start with, and the limit as given.
        let mut slow = TokenBucket::full(30);
        assert_eq!(Some(30), slow.limits().requests.limit);
        assert_eq!(None, slow.take(Duration::ZERO));
        assert_eq!(Some(secs(2)), slow.take(Duration::ZERO));
    }

    #[test]
    fn rpm_bucket_refills_continuously_not_at_a_reset() {
        // 600 a minute: one token every 100 ms, up to 10.
        let mut bucket = TokenBucket::full(600);
        for _ in 0..10 {
            assert_eq!(None, bucket.take(Duration::ZERO));
        }
        assert!(bucket.take(ms(99)).is_some(), "no token before 100 ms");
        assert_eq!(None, bucket.take(ms(101)), "one token after 100 ms");
        assert!(bucket.take(ms(150)).is_some(), "and only one");
        // Half a second later, five tokens have come back, not none and not all ten; the
        // bucket is full 10 - 5.01 tokens later.
        bucket.refill(ms(601));
        let limits = bucket.limits().requests;
        assert_eq!(Some(5), limits.remaining);
        let reset = limits.reset_in.expect("a reset");
        assert!(reset.abs_diff(ms(499)) < ms(1), "full in 499 ms: {reset:?}");
        // Full after the reset, and never more than full.
        bucket.refill(secs(60));
        assert_eq!(Some(10), bucket.limits().requests.remaining);
        // Drained, then asked at exactly the rate: every request is served.
        let mut paced = TokenBucket::full(600);
        for _ in 0..10 {
            assert_eq!(None, paced.take(Duration::ZERO));
        }
        for i in 1..=100 {
            assert_eq!(None, paced.take(ms(100 * i + 1)), "request {i}");
        }
    }

    #[test]
    fn brownout_admissions_are_counted() {
        let cap = model(ModelSpec {
            slots: 4,
            brownouts: vec![Brownout {
                start: secs(10),
                end: Some(secs(20)),
                fraction: 0.5,
            }],
            ..ModelSpec::default()
        });
        let _before = cap.admit(secs(1));
        let _during = cap.admit(secs(10));
        assert!(matches!(cap.admit(secs(11)), Admission::Overloaded { .. }));
        assert_eq!(1, cap.admitted_in_brownout());
    }

    #[test]
    fn service_times_follow_the_distribution() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mean = Duration::from_millis(100);
        let fixed = model(ModelSpec {
            service_time: mean,
            ..ModelSpec::default()
        });
        assert_eq!(mean, fixed.service_time(&mut rng));
        let spread = Duration::from_millis(20);
        let uniform = model(ModelSpec {
            service_time: mean,
            distribution: Distribution::Uniform,
            service_time_spread: spread,
            ..ModelSpec::default()
        });
        for _ in 0..100 {
            let t = uniform.service_time(&mut rng);
            assert!(t + spread >= mean && t <= mean + spread, "{t:?}");
        }
        let exp = model(ModelSpec {
            service_time: mean,
            distribution: Distribution::Exponential,
            ..ModelSpec::default()
        });
        let total: Duration = (0..2000).map(|_| exp.service_time(&mut rng)).sum();
        let avg = total / 2000;
        assert!(
            avg > Duration::from_millis(85) && avg < Duration::from_millis(115),
            "{avg:?}"
        );
    }
}
