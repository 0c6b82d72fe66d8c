//! What a worker reports: its load on the board, and its metrics.
//!
//! An attempt's counter and histogram are fetched from the recorder the first time their
//! labels are used, then kept by the worker ([`Meters`]): recording is then an atomic add,
//! where the `metrics` macros would build the key, format the target and look it up in the
//! recorder's registry for every attempt. Fetched on first use, not at start, so that a
//! recorder installed after the engine started still gets them.

use std::time::Duration;

use metrics::{Counter, Histogram};

use crate::board::{Board, Load};
use crate::upstream::{Class, Failure, Target};

/// A worker's metric handles, each fetched on its first use.
#[derive(Default)]
pub(super) struct Meters {
    /// `breakwater_attempts_total` by outcome: success, then each class in
    /// [`Class::ALL`]'s order.
    attempts: [Option<Counter>; 1 + Class::ALL.len()],
    /// `breakwater_attempt_duration_seconds`.
    duration: Option<Histogram>,
}

/// Publishes `target`'s `load`, and its limit's gauge when the limit changed.
pub(super) fn load(board: &Board, target: &Target, load: Load) {
    let previous = board.load(target);
    board.set_load(target, load);
    if previous.is_none_or(|p| p.limit != load.limit) {
        metrics::gauge!("breakwater_worker_concurrency_limit", "target" => target.to_string())
            .set(f64::from(load.limit));
    }
}

/// Counts an attempt at `target` that ended with `failure` (or succeeded) after `latency`.
pub(super) fn attempt(
    meters: &mut Meters,
    target: &Target,
    failure: Option<&Failure>,
    latency: Duration,
) {
    let class = failure.map(Failure::class);
    let outcome = class.map_or("success", Class::as_label);
    let fetch = || metrics::counter!("breakwater_attempts_total", "target" => target.to_string(), "outcome" => outcome);
    // Every class is in `Class::ALL`; one that were not would be counted uncached.
    let slot = match class {
        None => Some(0),
        Some(class) => Class::ALL.iter().position(|c| *c == class).map(|i| i + 1),
    };
    match slot.and_then(|slot| meters.attempts.get_mut(slot)) {
        Some(cached) => cached.get_or_insert_with(fetch).increment(1),
        None => fetch().increment(1),
    }
    meters
        .duration
        .get_or_insert_with(|| {
            metrics::histogram!("breakwater_attempt_duration_seconds", "target" => target.to_string())
        })
        .record(latency.as_secs_f64());
}
