//! The measures behind a [`StrategyReport`](super::StrategyReport): load against capacity
//! during the incident, the primary's share of answers, time to recover, and the timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ModelLoad, RECOVERED_RATE, RECOVERY_WINDOW, Timeline};
use crate::sim::run::StrategyRun;
use crate::sim::scenario::SimScenario;
use crate::sim::strategy::RequestOutcome;
use crate::sim::upstream::AttemptRecord;

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn during_incident(scenario: &SimScenario, at: Duration) -> bool {
    scenario.incident.start <= at && at < scenario.incident.end
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

pub(super) fn incident_load(scenario: &SimScenario, attempts: &[AttemptRecord]) -> Vec<ModelLoad> {
    let (start, end) = (scenario.incident.start, scenario.incident.end);
    scenario
        .chain
        .iter()
        .map(|model| {
            let hits = attempts
                .iter()
                .filter(|a| a.model == *model && during_incident(scenario, a.at))
                .count() as u64;
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

pub(super) fn primary_share(scenario: &SimScenario, requests: &[RequestOutcome]) -> Option<f64> {
    let primary = scenario.chain.first()?;
    let answers: Vec<&String> = requests
        .iter()
        .filter(|r| during_incident(scenario, r.arrived))
        .filter_map(|r| r.answered_by.as_ref())
        .collect();
    if answers.is_empty() {
        return None;
    }
    let by_primary = answers.iter().filter(|m| **m == primary).count();
    Some(ratio(by_primary as u64, answers.len() as u64))
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

pub(super) fn timeline(scenario: &SimScenario, run: &StrategyRun) -> Timeline {
    let last_attempt = run.attempts.iter().map(|a| a.at).max().unwrap_or_default();
    let seconds = scenario.duration.max(last_attempt).as_secs() as usize + 1;
    let mut requests = vec![0u64; seconds];
    let mut succeeded = vec![0u64; seconds];
    for request in &run.requests {
        let second = (request.arrived.as_secs() as usize).min(seconds - 1);
        requests[second] += 1;
        succeeded[second] += u64::from(request.succeeded());
    }
    let mut attempts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for attempt in &run.attempts {
        let series = attempts
            .entry(attempt.model.clone())
            .or_insert_with(|| vec![0; seconds]);
        series[(attempt.at.as_secs() as usize).min(seconds - 1)] += 1;
    }
    for model in &scenario.chain {
        attempts
            .entry(model.clone())
            .or_insert_with(|| vec![0; seconds]);
    }
    let success_rate = requests
        .iter()
        .zip(&succeeded)
        .map(|(&n, &ok)| (n > 0).then(|| ratio(ok, n)))
        .collect();
    Timeline {
        requests,
        succeeded,
        success_rate,
        attempts,
    }
}
