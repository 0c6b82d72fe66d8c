//! The retry loops people write today, as faithfully as their sources describe them: no
//! retry, the tutorial's exponential loop, and the official SDKs' policy (2 retries of 408,
//! 409, 429, 5xx and connection errors, `min(0.5 * 2^n, 8) s` jittered down by up to a
//! quarter, `retry-after` honoured: the README's strategy table), with a hand-written
//! fallback down the chain.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use super::trip::Trip;
use crate::engine::{Class, Failure, Target};

/// Attempts the tutorial loop makes at most.
const TUTORIAL_ATTEMPTS: u32 = 4;
/// Retries the official SDKs make by default.
pub(super) const SDK_RETRIES: u32 = 2;

/// One attempt on the first target.
pub(super) async fn once(trip: &mut Trip<'_>, chain: &[Target]) -> Option<String> {
    let target = chain.first()?;
    trip.attempt(target).await.ok()?;
    Some(target.model().to_owned())
}

/// The tutorial loop: up to 4 attempts while the answer is 429 or 529, sleeping
/// 2^i s + U(0, 1) s after failed attempt i (from 0).
pub(super) async fn tutorial(
    trip: &mut Trip<'_>,
    chain: &[Target],
    rng: &mut SmallRng,
) -> Option<String> {
    let target = chain.first()?;
    for i in 0..TUTORIAL_ATTEMPTS {
        match trip.attempt(target).await {
            Ok(()) => return Some(target.model().to_owned()),
            Err(failure)
                if i + 1 < TUTORIAL_ATTEMPTS && matches!(failure.status(), Some(429 | 529)) =>
            {
                let delay = f64::from(1u32 << i) + rng.random::<f64>();
                tokio::time::sleep(Duration::from_secs_f64(delay)).await;
            }
            Err(_) => return None,
        }
    }
    None
}

/// The official SDK's policy on each target of `chain` in turn (one target: no fallback).
pub(super) async fn sdk(
    trip: &mut Trip<'_>,
    chain: &[Target],
    rng: &mut SmallRng,
) -> Option<String> {
    for target in chain {
        match sdk_on(trip, target, rng).await {
            Ok(()) => return Some(target.model().to_owned()),
            Err(failure) if failure.class() == Class::Invalid => return None,
            Err(_) => {}
        }
    }
    None
}

/// One SDK call: the first attempt and up to [`SDK_RETRIES`] retries.
async fn sdk_on(trip: &mut Trip<'_>, target: &Target, rng: &mut SmallRng) -> Result<(), Failure> {
    let mut retries = 0;
    loop {
        match trip.attempt(target).await {
            Ok(()) => return Ok(()),
            Err(failure) if retries < SDK_RETRIES && sdk_retries(&failure) => {
                tokio::time::sleep(sdk_delay(&failure, retries, rng)).await;
                retries += 1;
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// Whether the SDK retries `failure`: `x-should-retry` if given, else 408, 409, 429, any
/// 5xx (529 included), and failures without a status (connection errors, timeouts).
pub(super) fn sdk_retries(failure: &Failure) -> bool {
    if let Some(verdict) = failure.should_retry() {
        return verdict;
    }
    match failure.status() {
        Some(status) => matches!(status, 408 | 409 | 429) || status >= 500,
        None => failure.class().is_transient(),
    }
}

/// The SDK's delay before retry `retries + 1`: a positive `retry-after` as given, else
/// `min(0.5 * 2^retries, 8) * (1 - 0.25 * U[0, 1))` seconds.
pub(super) fn sdk_delay(failure: &Failure, retries: u32, rng: &mut SmallRng) -> Duration {
    if let Some(after) = failure.retry_after().filter(|after| !after.is_zero()) {
        return after;
    }
    let ceiling = (0.5 * f64::from(1u32 << retries.min(16))).min(8.0);
    let jitter = 1.0 - 0.25 * rng.random::<f64>();
    Duration::from_secs_f64(ceiling * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sdk_delay_is_capped_jittered_and_yields_to_retry_after() {
        let mut rng = SmallRng::seed_from_u64(7);
        let overloaded = Failure::new(Class::Overloaded, "o").with_status(529);
        for (retries, ceiling) in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 8.0)] {
            let delay = sdk_delay(&overloaded, retries, &mut rng).as_secs_f64();
            assert!(
                delay > 0.75 * ceiling && delay <= ceiling,
                "{retries}: {delay}"
            );
        }
        let hinted = overloaded.with_retry_after(Duration::from_secs(20));
        assert_eq!(Duration::from_secs(20), sdk_delay(&hinted, 0, &mut rng));
    }

    #[test]
    fn sdk_retries_what_the_sdks_retry() {
        let with = |status| Failure::new(Class::ServerError, "x").with_status(status);
        for status in [408, 409, 429, 500, 503, 529] {
            assert!(sdk_retries(&with(status)), "{status}");
        }
        for status in [400, 401, 404, 413] {
            assert!(!sdk_retries(&with(status)), "{status}");
        }
        assert!(sdk_retries(&Failure::new(Class::Connect, "reset")));
        assert!(!sdk_retries(&with(529).with_should_retry(false)));
    }
}
