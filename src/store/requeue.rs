//! [`Requeue`]: when an item put back after a retryable failure is due again. The delay
//! doubles per try up to a cap, is jittered over its upper half ("equal jitter": never less
//! than half the ceiling, so a job does not hammer a model that is shedding load), and is at
//! least the failure's `retry-after`. The draw comes from the engine's seedable [`Backoff`]
//! iterator, so a seed fixes it.
//!
//! [`Backoff`]: crate::engine::policy::Backoff

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use super::item::Item;
use super::now_ms;
use super::update::ItemUpdate;
use crate::engine::Error;
use crate::engine::policy::{BackoffConfig, Jitter};

/// The tries after which the delay stops doubling (it is capped by `max` long before, with
/// any sane settings).
const MAX_DOUBLINGS: u32 = 16;

/// How an item put back is delayed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Requeue {
    /// The ceiling of the first delay; it doubles per try.
    pub(crate) first: Duration,
    /// The longest delay, and the most a `retry-after` may ask for.
    pub(crate) max: Duration,
    /// Fixes the jitter (mixed with each item's key and tries); `None` draws from entropy.
    pub(crate) seed: Option<u64>,
}

impl Requeue {
    /// Put back at once: due again now.
    pub(crate) const NOW: Requeue = Requeue {
        first: Duration::ZERO,
        max: Duration::ZERO,
        seed: None,
    };

    /// `item` back as pending after `error`, due after [`Requeue::delay`].
    pub(crate) fn release(&self, item: &Item, error: &Error) -> ItemUpdate {
        let delay = self.delay(&item.key, item.attempts, error.retry_after());
        ItemUpdate::Release {
            key: item.key.clone(),
            not_before: now_ms()
                .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            last_error: Some(error.to_string()),
        }
    }

    /// The delay before the next try of the item `key`, tried `attempts` times: equal jitter
    /// below `min(max, first * 2^(attempts-1))`, at least `retry_after`.
    fn delay(&self, key: &str, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let doublings = attempts.saturating_sub(1).min(MAX_DOUBLINGS);
        // Half the ceiling, plus a full-jitter draw below that half: uniform over the upper
        // half of the ceiling.
        let half = BackoffConfig {
            base: self.first / 2,
            cap: self.max / 2,
            jitter: Jitter::Full,
        };
        let seed = self.seed.map_or_else(rand::random, |seed| {
            let mut hasher = DefaultHasher::new();
            (seed, key, attempts).hash(&mut hasher);
            hasher.finish()
        });
        let draw = half.build(seed).nth(doublings as usize).unwrap_or_default();
        let jittered = half.ceiling(doublings) + draw;
        // A retry-after longer than the cap is cut to it: one header must not stall a job for
        // a day.
        jittered.max(retry_after.unwrap_or_default().min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn requeue(seed: Option<u64>) -> Requeue {
        Requeue {
            first: SECOND,
            max: Duration::from_secs(60),
            seed,
        }
    }

    #[test]
    fn delays_double_per_try_within_the_upper_half_of_the_ceiling() {
        for (attempts, ceiling) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let ceiling = SECOND * ceiling;
            for seed in 0..50 {
                let delay = requeue(Some(seed)).delay("k", attempts, None);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{attempts}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn a_seed_fixes_the_delay_per_item_and_try() {
        let delay = |key, attempts| requeue(Some(7)).delay(key, attempts, None);
        assert_eq!(delay("a", 3), delay("a", 3));
        let others = [delay("b", 3), delay("c", 3), delay("d", 3)];
        assert!(others.iter().any(|other| *other != delay("a", 3)));
    }

    #[test]
    fn retry_after_is_a_floor_cut_to_the_cap() {
        let delay = requeue(Some(1)).delay("k", 1, Some(SECOND * 30));
        assert_eq!(delay, SECOND * 30);
        let delay = requeue(Some(1)).delay("k", 1, Some(SECOND * 3600));
        assert_eq!(delay, SECOND * 60);
    }

    #[test]
    fn now_is_due_at_once() {
        assert_eq!(Requeue::NOW.delay("k", 5, None), Duration::ZERO);
    }
}
