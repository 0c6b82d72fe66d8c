//! The measures behind a [`StrategyReport`](super::StrategyReport) that need the scenario:
//! load against capacity during the incident, and time to recover.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ModelLoad, RECOVERED_RATE, RECOVERY_WINDOW, Timeline};
use crate::sim::scenario::SimScenario;

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Requests `model` could serve in `[from, to)`: its slots integrated over the window (in
/// 100 ms steps, brownouts included) divided by its mean service time.
pub fn capacity(scenario: &SimScenario, model: &str, from: Duration, to: Duration) -> f64 {
    const STEP: Duration = Duration::from_millis(100);
    let Some(service) = scenario
        .models
        .get(model)
        .map(|m| m.service_time.as_secs_f64())
    else {
        return 0.0;
    };
    let mut slot_seconds = 0.0;
    let mut at = from;
    while at < to {
        let step = STEP.min(to.saturating_sub(at));
        slot_seconds += f64::from(scenario.slots_at(model, at)) * step.as_secs_f64();
        at += step;
    }
    if service > 0.0 {
        slot_seconds / service
    } else {
        f64::INFINITY
    }
}

/// Attempts at each model of the chain during the incident (`hits`, by model) against its
/// capacity then.
pub(super) fn incident_load(
    scenario: &SimScenario,
    hits: &BTreeMap<String, u64>,
) -> Vec<ModelLoad> {
    let (start, end) = (scenario.incident.start, scenario.incident.end);
    scenario
        .chain
        .iter()
        .map(|model| {
            let hits = hits.get(model).copied().unwrap_or(0);
            let capacity = capacity(scenario, model, start, end);
            let load = if capacity > 0.0 {
                hits as f64 / capacity
            } else {
                0.0
            };
            ModelLoad {
                model: model.clone(),
                attempts: hits,
                capacity,
                load,
            }
        })
        .collect()
}

/// The first whole second `k` at or after the incident's end such that arrivals in
/// `[k, k + 10 s)` were at least 99% answered; seconds from the end to `k`.
pub(super) fn time_to_recover(scenario: &SimScenario, timeline: &Timeline) -> Option<f64> {
    let end = scenario.incident.end.as_secs_f64();
    let window = RECOVERY_WINDOW.as_secs() as usize;
    let arrivals_end = scenario.duration.as_secs_f64().ceil() as usize;
    let last = timeline.requests.len().min(arrivals_end);
    let first = end.ceil() as usize;
    (first..(last + 1).saturating_sub(window).max(first))
        .find(|&k| {
            let n: u64 = timeline.requests[k..k + window].iter().sum();
            let ok: u64 = timeline.succeeded[k..k + window].iter().sum();
            n > 0 && ok as f64 >= RECOVERED_RATE * n as f64
        })
        .map(|k| k as f64 - end)
}
