//! How many retries a target may take on top of its first attempts: a [`RetryBudget`], in the
//! style of tower's `retry::budget`.
//!
//! Why a budget: per-request caps ("at most 2 retries") do not bound the load a fleet sends. When
//! a model browns out and fails half its calls, every request retries, so the model receives up
//! to three times its normal traffic exactly when it has the least capacity. The extra load keeps
//! it failing, which keeps everyone retrying: the overload sustains itself after its cause is
//! gone, a metastable failure. A budget ties retries to real demand instead: each first attempt
//! deposits `ratio` of a retry, each retry withdraws one, so retries can add at most `ratio`
//! (20% by default) on top of first attempts, however many of them fail. A small reserve that
//! needs no deposits keeps a quiet target retryable.
//!
//! A request's first attempt on a target deposits into that target's budget; every further
//! attempt on the same target withdraws. Bookkeeping is ten time buckets per window, so memory
//! is bounded whatever the traffic.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::PolicyError;

/// The shape of a retry budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct BudgetConfig {
    /// Retries earned per first attempt: 0.2 lets retries add at most 20% on top of first
    /// attempts over the window (fractions round down). Default: 0.2.
    pub ratio: f64,
    /// How long a deposit, and a withdrawal, count. Default: 10s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A reserve that needs no deposits: `min_per_second * window` retries (rounded down) per
    /// window, on top of those earned. It may be spent in a burst, as tower's is. Default: 1.
    pub min_per_second: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            window: Duration::from_secs(10),
            min_per_second: 1,
        }
    }
}

impl BudgetConfig {
    /// Checks that every field is usable.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] naming the first bad field: a negative or non-finite `ratio`, or
    /// a zero `window`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(self.ratio.is_finite() && self.ratio >= 0.0) {
            let reason = format!("{} is not a finite, non-negative number", self.ratio);
            return Err(PolicyError::invalid("ratio", reason));
        }
        if self.window.is_zero() {
            return Err(PolicyError::invalid("window", "must be longer than zero"));
        }
        Ok(())
    }

    /// The retries per window that need no deposits: `min_per_second * window`, rounded down.
    pub fn reserve(&self) -> u64 {
        let reserve = u128::from(self.min_per_second) * self.window.as_nanos() / NANOS_PER_SEC;
        u64::try_from(reserve).unwrap_or(u64::MAX)
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;
const PPM: u128 = 1_000_000;

/// One target's retry budget; see the module docs.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    ratio_ppm: u64,
    reserve: u64,
    /// This replica's share of the reserve, in (0, 1]; see [`set_share`](Self::set_share).
    share: f64,
    // (first attempts, retries)
    window: SlidingWindow,
}

impl RetryBudget {
    /// An empty budget: only the reserve is available.
    pub fn new(config: BudgetConfig) -> Self {
        // Fixed point, so 100 deposits at 0.2 earn exactly 20 retries, not 19.
        let ratio_ppm = (config.ratio * 1e6).round() as u64;
        Self {
            config,
            ratio_ppm,
            reserve: config.reserve(),
            share: 1.0,
            window: SlidingWindow::new(config.window),
        }
    }

    /// Sets this replica's share of the target's demand in a fleet, in (0, 1] (1 alone):
    /// the reserve is the fleet's, so each replica gets its share of it (rounded down), and
    /// a hundred replicas do not retry a hundred times the reserve at a quiet target. The
    /// earned part needs no split: each replica earns from its own first attempts.
    pub fn set_share(&mut self, share: f64) {
        self.share = if share > 0.0 && share <= 1.0 {
            share
        } else {
            1.0
        };
    }

    /// The budget's shape.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Records a first attempt, earning `ratio` of a retry.
    pub fn deposit(&mut self, now: Instant) {
        self.window.record(now, 1, 0);
    }

    /// Takes one retry from the budget if one is available, and says whether it did.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        if self.available(now) == 0 {
            return false;
        }
        self.window.record(now, 0, 1);
        true
    }

    /// Retries available now: `ratio * first attempts + reserve - retries` over the window,
    /// with the earned part rounded down, and zero rather than negative once retries made
    /// earlier outlive the deposits that paid for them.
    pub fn available(&self, now: Instant) -> u32 {
        let (deposits, withdrawals) = self.window.totals(now);
        let earned = u128::from(deposits) * u128::from(self.ratio_ppm) / PPM;
        let reserve = if self.share >= 1.0 {
            self.reserve
        } else {
            (self.reserve as f64 * self.share).floor() as u64
        };
        let allowance = earned + u128::from(reserve);
        u32::try_from(allowance.saturating_sub(u128::from(withdrawals))).unwrap_or(u32::MAX)
    }
}

/// Buckets per window.
const BUCKETS: u32 = 10;

/// Two counters summed over a trailing window of time, in at most `BUCKETS + 1` buckets.
///
/// A bucket starts at its first event and takes events for `window / BUCKETS`; it leaves the
/// window once its start is `window` old. So an event counts for at least `window * 9/10` and at
/// most `window`. Shared with the breaker's outcome window.
#[derive(Clone, Debug)]
pub(crate) struct SlidingWindow {
    span: Duration,
    granularity: Duration,
    buckets: VecDeque<Bucket>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    start: Instant,
    counts: (u64, u64),
}

impl SlidingWindow {
    /// An empty window `span` long.
    pub(crate) fn new(span: Duration) -> Self {
        Self {
            span,
            granularity: (span / BUCKETS).max(Duration::from_nanos(1)),
            buckets: VecDeque::with_capacity(BUCKETS as usize + 1),
        }
    }

    /// Adds `first` and `second` to the counters at `now`, dropping buckets that left the window.
    pub(crate) fn record(&mut self, now: Instant, first: u64, second: u64) {
        while let Some(bucket) = self.buckets.front() {
            if within(bucket.start, self.span, now) {
                break;
            }
            self.buckets.pop_front();
        }
        let granularity = self.granularity;
        match self.buckets.back_mut() {
            Some(bucket) if within(bucket.start, granularity, now) => {
                bucket.counts.0 = bucket.counts.0.saturating_add(first);
                bucket.counts.1 = bucket.counts.1.saturating_add(second);
            }
            _ => self.buckets.push_back(Bucket {
                start: now,
                counts: (first, second),
            }),
        }
    }

    /// Both counters summed over the buckets still in the window at `now`.
    pub(crate) fn totals(&self, now: Instant) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|bucket| within(bucket.start, self.span, now))
            .fold((0, 0), |(a, b), bucket| {
                (
                    a.saturating_add(bucket.counts.0),
                    b.saturating_add(bucket.counts.1),
                )
            })
    }

    /// Forgets every event.
    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
    }
}

/// Whether `now` is before `start + span` (always, if that instant is beyond the clock's range).
fn within(start: Instant, span: Duration, now: Instant) -> bool {
    start.checked_add(span).is_none_or(|end| now < end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn withdraw_all(budget: &mut RetryBudget, now: Instant) -> u32 {
        let mut taken = 0;
        while budget.try_withdraw(now) {
            taken += 1;
        }
        taken
    }

    #[test]
    fn hundred_first_attempts_earn_twenty_retries_plus_the_reserve() {
        let mut budget = RetryBudget::new(BudgetConfig::default());
        let t0 = Instant::now();
        for _ in 0..100 {
            budget.deposit(t0);
        }
        assert_eq!(budget.available(t0), 30);
        assert_eq!(withdraw_all(&mut budget, t0), 30);
        assert!(!budget.try_withdraw(t0));
        assert_eq!(budget.available(t0), 0);
    }

    #[test]
    fn deposits_expire_after_the_window() {
        let mut budget = RetryBudget::new(BudgetConfig::default());
        let t0 = Instant::now();
        for _ in 0..100 {
            budget.deposit(t0);
        }
        assert_eq!(budget.available(t0 + Duration::from_millis(9_999)), 30);
        assert_eq!(budget.available(t0 + secs(10)), 10);
        assert_eq!(budget.available(t0 + secs(11)), 10);
    }

    #[test]
    fn retries_outliving_their_deposits_leave_zero_not_a_debt() {
        let mut budget = RetryBudget::new(BudgetConfig::default());
        let t0 = Instant::now();
        for _ in 0..100 {
            budget.deposit(t0);
        }
        assert_eq!(withdraw_all(&mut budget, t0 + secs(5)), 30);
        assert_eq!(budget.available(t0 + secs(10)), 0);
        assert!(!budget.try_withdraw(t0 + secs(10)));
        assert_eq!(budget.available(t0 + secs(15)), 10);
    }

    #[test]
    fn reserve_allows_min_per_second_times_window_with_no_traffic() {
        let config = BudgetConfig {
            min_per_second: 2,
            ..BudgetConfig::default()
        };
        assert_eq!(config.reserve(), 20);
        let mut budget = RetryBudget::new(config);
        let t0 = Instant::now();
        assert_eq!(withdraw_all(&mut budget, t0), 20);
        assert_eq!(withdraw_all(&mut budget, t0 + secs(9)), 0);
        assert_eq!(withdraw_all(&mut budget, t0 + secs(10)), 20);
    }

    #[test]
    fn zero_ratio_and_zero_floor_allow_no_retries() {
        let config = BudgetConfig {
            ratio: 0.0,
            min_per_second: 0,
            ..BudgetConfig::default()
        };
        let mut budget = RetryBudget::new(config);
        let t0 = Instant::now();
        budget.deposit(t0);
        assert!(!budget.try_withdraw(t0));
    }

    #[test]
    fn fractional_reserve_rounds_down() {
        let config = BudgetConfig {
            window: Duration::from_millis(1_500),
            ..BudgetConfig::default()
        };
        assert_eq!(config.reserve(), 1);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let bad = |config: BudgetConfig| config.validate().unwrap_err().to_string();
        assert_eq!(BudgetConfig::default().validate(), Ok(()));
        assert_eq!(
            bad(BudgetConfig {
                ratio: -0.1,
                ..BudgetConfig::default()
            }),
            "invalid ratio: -0.1 is not a finite, non-negative number"
        );
        assert_eq!(
            bad(BudgetConfig {
                ratio: f64::NAN,
                ..BudgetConfig::default()
            }),
            "invalid ratio: NaN is not a finite, non-negative number"
        );
        assert_eq!(
            bad(BudgetConfig {
                window: Duration::ZERO,
                ..BudgetConfig::default()
            }),
            "invalid window: must be longer than zero"
        );
    }

    #[test]
    fn memory_stays_bounded_under_steady_traffic() {
        let mut budget = RetryBudget::new(BudgetConfig::default());
        let t0 = Instant::now();
        for ms in 0..100_000 {
            budget.deposit(t0 + Duration::from_millis(ms));
        }
        assert!(budget.window.buckets.len() <= BUCKETS as usize + 1);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Deposit,
        Withdraw,
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Deposit),
            3 => Just(Op::Withdraw),
            1 => (0u64..3_000).prop_map(Op::Advance),
        ]
    }

    /// Events in `(now - span, now]`.
    fn count_since(events: &[Instant], now: Instant, span: Duration) -> u64 {
        events
            .iter()
            .filter(|t| now.duration_since(**t) < span)
            .count() as u64
    }

    proptest! {
        // The bound carries one bucket of slack: withdrawals over any `window - window/10`
        // ending at a withdrawal never exceed what deposits over the full `window` earned.
        #[test]
        fn withdrawals_never_exceed_what_deposits_earned_plus_the_reserve(
            percent in 0u64..=100, min_per_second in 0u32..3,
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let ratio = percent as f64 / 100.0;
            let config = BudgetConfig { ratio, min_per_second, ..BudgetConfig::default() };
            let window = config.window;
            let short = window.saturating_sub(window / BUCKETS);
            let mut budget = RetryBudget::new(config);
            let mut now = Instant::now();
            let (mut deposits, mut withdrawals) = (Vec::new(), Vec::new());
            for op in ops {
                match op {
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                    Op::Deposit => { budget.deposit(now); deposits.push(now); }
                    Op::Withdraw => {
                        let available = budget.available(now);
                        let granted = budget.try_withdraw(now);
                        prop_assert_eq!(granted, available > 0);
                        if granted {
                            withdrawals.push(now);
                            let earned = count_since(&deposits, now, window) * percent / 100;
                            let spent = count_since(&withdrawals, now, short);
                            prop_assert!(spent <= earned + config.reserve());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn in_a_fleet_each_replica_gets_its_share_of_the_reserve_and_earns_its_own() {
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(BudgetConfig::default());
        assert_eq!(budget.available(t0), 10, "alone: 1/s over 10 s");
        budget.set_share(0.25);
        assert_eq!(
            budget.available(t0),
            2,
            "a quarter of the reserve, rounded down"
        );
        for _ in 0..10 {
            budget.deposit(t0);
        }
        assert_eq!(
            budget.available(t0),
            4,
            "plus 20% of its own ten first attempts"
        );
        budget.set_share(7.0);
        assert_eq!(
            budget.available(t0),
            12,
            "a share outside (0, 1] is the whole"
        );
    }
}
