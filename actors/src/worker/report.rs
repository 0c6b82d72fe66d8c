//! What a worker reports: its load on the board, and its metrics.

use std::time::Duration;

use crate::board::{Board, Load};
use crate::upstream::{Failure, Target};

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
pub(super) fn attempt(target: &Target, failure: Option<&Failure>, latency: Duration) {
    let outcome = failure.map_or("success", |f| f.class().as_label());
    let target = target.to_string();
    metrics::counter!("breakwater_attempts_total", "target" => target.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("breakwater_attempt_duration_seconds", "target" => target)
        .record(latency.as_secs_f64());
}
