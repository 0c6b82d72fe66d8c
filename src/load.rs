//! Open-loop load through a [`Runtime`]: requests arrive as a Poisson process at a fixed
//! rate whatever happens to earlier ones (as real traffic does, and unlike a closed loop that
//! politely slows down when the upstream does), and the [`LoadReport`] says how the runtime
//! coped: success rate, latency, attempts, who answered, which errors, breaker transitions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::MessagesRequest;
use crate::engine::{Event, RequestOptions};
use crate::runtime::Runtime;

/// What traffic to send.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Mean arrivals per second.
    pub rps: f64,
    /// How long arrivals go on; the run then waits for the last answers.
    pub duration: Duration,
    /// Each request's deadline.
    pub deadline: Duration,
    /// Seed of the arrival process.
    pub seed: u64,
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of `samples` (nearest rank); all zero when there are none.
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let Some(last) = samples.len().checked_sub(1) else {
                return 0.0;
            };
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[rank.min(last)].as_secs_f64() * 1000.0
        };
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// A breaker transition seen during the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransitionRecord {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The target.
    pub model: String,
    /// The state left.
    pub from: &'static str,
    /// The state entered.
    pub to: &'static str,
}

/// How a run went.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered.
    pub succeeded: u64,
    /// Requests that ended in an error.
    pub failed: u64,
    /// `succeeded / requests`.
    pub success_rate: f64,
    /// Latency of every request, answered or not.
    pub latency_ms: Latency,
    /// Upstream attempts made.
    pub attempts: u64,
    /// `attempts / requests`.
    pub attempts_per_request: f64,
    /// Answers by the model that gave them.
    pub answered_by: BTreeMap<String, u64>,
    /// Failed requests by the class of their last failure (or the error kind when no attempt
    /// failed: `deadline_exceeded`, `shed`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Requests that ended after their deadline (should be zero).
    pub late: u64,
    /// Every breaker transition, in order.
    pub breaker_transitions: Vec<TransitionRecord>,
}

struct Done {
    latency: Duration,
    attempts: u64,
    answered_by: Option<String>,
    error: Option<String>,
}

/// Runs `plan` through `runtime`; `progress` is called with the tally after each answer.
pub async fn run(
    runtime: &Arc<Runtime>,
    request: &MessagesRequest,
    plan: &LoadPlan,
    progress: impl Fn(&LoadReport),
) -> LoadReport {
    let started = Instant::now();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let transitions = watch_transitions(runtime, started, seen.clone());
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let mut tasks = JoinSet::new();
    let mut report = LoadReport::default();
    let mut latencies = Vec::new();
    let mut next = started;
    while next < started + plan.duration {
        tokio::time::sleep_until(next).await;
        let (runtime, request, deadline) = (runtime.clone(), request.clone(), plan.deadline);
        tasks.spawn(one(runtime, request, deadline));
        report.requests += 1;
        next += exponential(&mut rng, plan.rps);
        while let Some(done) = tasks.try_join_next() {
            tally(&mut report, &mut latencies, done, plan.deadline);
            progress(&report);
        }
    }
    while let Some(done) = tasks.join_next().await {
        tally(&mut report, &mut latencies, done, plan.deadline);
        progress(&report);
    }
    report.latency_ms = Latency::of(&mut latencies);
    report.success_rate = ratio(report.succeeded, report.requests);
    report.attempts_per_request = ratio(report.attempts, report.requests);
    transitions.abort();
    report.breaker_transitions = std::mem::take(
        &mut *seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    report
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// An exponential inter-arrival time with mean `1 / rps`.
fn exponential(rng: &mut SmallRng, rps: f64) -> Duration {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64(-u.ln() / rps.max(f64::MIN_POSITIVE))
}

async fn one(runtime: Arc<Runtime>, request: MessagesRequest, deadline: Duration) -> Done {
    let sent = Instant::now();
    let options = RequestOptions::default().with_timeout(deadline);
    match runtime.send_with(request, options).await {
        Ok(answer) => Done {
            latency: sent.elapsed(),
            attempts: answer.attempts.len() as u64,
            answered_by: Some(answer.target.to_string()),
            error: None,
        },
        Err(error) => {
            let class = error
                .attempts()
                .last()
                .and_then(|a| a.failure)
                .map(|c| c.as_label().to_owned());
            Done {
                latency: sent.elapsed(),
                attempts: error.attempts().len() as u64,
                answered_by: None,
                error: Some(class.unwrap_or_else(|| error.kind().as_label().to_owned())),
            }
        }
    }
}

fn tally(
    report: &mut LoadReport,
    latencies: &mut Vec<Duration>,
    done: Result<Done, tokio::task::JoinError>,
    deadline: Duration,
) {
    let Ok(done) = done else {
        report.failed += 1;
        *report.errors.entry("panicked".into()).or_default() += 1;
        return;
    };
    latencies.push(done.latency);
    report.attempts += done.attempts;
    if done.latency > deadline {
        report.late += 1;
    }
    match (done.answered_by, done.error) {
        (Some(model), _) => {
            report.succeeded += 1;
            *report.answered_by.entry(model).or_default() += 1;
        }
        (None, error) => {
            report.failed += 1;
            *report.errors.entry(error.unwrap_or_default()).or_default() += 1;
        }
    }
}

type Seen = Arc<std::sync::Mutex<Vec<TransitionRecord>>>;

fn watch_transitions(
    runtime: &Runtime,
    started: Instant,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    let mut events = runtime.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Breaker {
                    target,
                    from,
                    to,
                    at,
                    ..
                }) => {
                    let record = TransitionRecord {
                        at_ms: at.saturating_duration_since(started).as_millis() as u64,
                        model: target.to_string(),
                        from: from.as_label(),
                        to: to.as_label(),
                    };
                    seen.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(record);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
