//! The report's data, as the JSON output serializes it: a [`SimReport`] of one
//! [`StrategyReport`] per strategy, with its per-model loads and per-second [`Timeline`], and
//! the recovery rule ([`RECOVERY_WINDOW`], [`RECOVERED_RATE`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::load::Latency;
use crate::sim::scenario::SimScenario;
use crate::sim::strategy::StrategyName;

/// The window after the incident over which recovery is judged.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(10);
/// The success rate over [`RECOVERY_WINDOW`] that counts as recovered.
pub const RECOVERED_RATE: f64 = 0.99;

/// A whole simulation: the scenario and one report per strategy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// The scenario's name.
    pub scenario: String,
    /// What the scenario rehearses.
    pub description: String,
    /// The seed of arrivals and service times.
    pub seed: u64,
    /// How long requests kept arriving, in seconds.
    pub duration_s: f64,
    /// Mean arrivals per second (before surges).
    pub rps: f64,
    /// Each request's deadline, in seconds.
    pub deadline_s: f64,
    /// The fallback chain, primary first.
    pub chain: Vec<String>,
    /// The incident window, in seconds since the start.
    pub incident: Window,
    /// One report per strategy, in the order run.
    pub strategies: Vec<StrategyReport>,
}

/// A time window, in seconds since the start of the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Window {
    /// Its start.
    pub start_s: f64,
    /// Its end.
    pub end_s: f64,
}

/// How one strategy did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StrategyReport {
    /// The strategy.
    pub name: StrategyName,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests answered by their deadline.
    pub succeeded: u64,
    /// `succeeded / requests`.
    pub success_rate: f64,
    /// Latency of every request, answered or not (a failure counts when it ended).
    pub latency_ms: Latency,
    /// Upstream attempts the simulated API saw.
    pub attempts: u64,
    /// `attempts / requests`.
    pub attempts_per_request: f64,
    /// Attempts answered 529 or 429: work that served no one.
    pub wasted_attempts: u64,
    /// Answers by the model that gave them.
    pub answered_by: BTreeMap<String, u64>,
    /// Attempts that reached each model of the chain during the incident, against what it
    /// could serve then.
    pub incident_load: Vec<ModelLoad>,
    /// Share of the answers to requests arriving during the incident that the primary gave;
    /// `null` with no incident or no such answer.
    pub primary_share_during_incident: Option<f64>,
    /// The primary's answers to requests arriving during the incident, against how many of
    /// them its capacity then could serve (its slots over the incident divided by its mean
    /// service time, at most the arrivals): 1 uses all a browned-out primary had left.
    /// `null` with no incident or no capacity.
    pub primary_use_of_capacity: Option<f64>,
    /// Seconds from the incident's end until the first 10 s window of arrivals with at least
    /// 99% answered; `null` if that never happens.
    pub time_to_recover_s: Option<f64>,
    /// Times the primary's circuit breaker opened (`breakwater` only; `null` otherwise).
    pub breaker_opens: Option<u64>,
    /// Second by second.
    pub timeline: Timeline,
}

/// Attempts at one model during the incident against its capacity then.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelLoad {
    /// The model.
    pub model: String,
    /// Attempts that arrived at it during the incident.
    pub attempts: u64,
    /// Requests it could have served during the incident: the integral of its slots over the
    /// incident divided by its mean service time (slots x duration / service time when its
    /// slots do not change).
    pub capacity: f64,
    /// `attempts / capacity`; above 1 the model was asked for more than it had.
    pub load: f64,
}

/// The run second by second (second `i` covers `[i, i + 1)` s).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// Requests that arrived in each second.
    pub requests: Vec<u64>,
    /// Requests that arrived in each second and were answered.
    pub succeeded: Vec<u64>,
    /// Share of each second's arrivals that were answered; `null` for a second with none.
    pub success_rate: Vec<Option<f64>>,
    /// Attempts that reached each model in each second.
    pub attempts: BTreeMap<String, Vec<u64>>,
}

impl SimReport {
    /// The report of `scenario` with these strategy reports.
    pub fn new(scenario: &SimScenario, strategies: Vec<StrategyReport>) -> Self {
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            seed: scenario.seed,
            duration_s: scenario.duration.as_secs_f64(),
            rps: scenario.rps,
            deadline_s: scenario.deadline.as_secs_f64(),
            chain: scenario.chain.clone(),
            incident: Window {
                start_s: scenario.incident.start.as_secs_f64(),
                end_s: scenario.incident.end.as_secs_f64(),
            },
            strategies,
        }
    }
}
