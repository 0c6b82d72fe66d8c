//! Open-loop load through a [`Runtime`]: requests arrive as a Poisson process at a fixed
//! rate whatever happens to earlier ones (as real traffic does, and unlike a closed loop that
//! politely slows down when the upstream does), and the [`LoadReport`] says how the runtime
//! coped: success rate, latency, attempts (by model and outcome), who answered, which errors,
//! breaker transitions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::MessagesRequest;
use crate::engine::{Attempt, Event, RequestOptions};
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
    /// Attempts by model, then by outcome: `"ok"` for a success, else the HTTP status the
    /// upstream refused it with (`"429"`, `"529"`...), else the failure class (`"timeout"`,
    /// `"connect"`...).
    pub attempts_by_model: BTreeMap<String, BTreeMap<String, u64>>,
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
    attempts: Vec<(String, String)>,
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
            attempts: answer.attempts.iter().map(outcome).collect(),
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
                attempts: error.attempts().iter().map(outcome).collect(),
                answered_by: None,
                error: Some(class.unwrap_or_else(|| error.kind().as_label().to_owned())),
            }
        }
    }
}

/// An attempt's target and outcome: its status, else its failure class, else `"ok"` (the
/// engine records no status for a success).
fn outcome(attempt: &Attempt) -> (String, String) {
    let outcome = match (attempt.status, attempt.failure) {
        (Some(status), _) => status.to_string(),
        (None, Some(class)) => class.as_label().to_owned(),
        (None, None) => "ok".to_owned(),
    };
    (attempt.target.to_string(), outcome)
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
    report.attempts += done.attempts.len() as u64;
    for (model, outcome) in done.attempts {
        let outcomes = report.attempts_by_model.entry(model).or_default();
        *outcomes.entry(outcome).or_default() += 1;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Class, Target};

    fn attempt(model: &str, status: Option<u16>, failure: Option<Class>) -> Attempt {
        Attempt {
            target: Target::new(model),
            failure,
            status,
            probe: false,
            ended_after: Duration::ZERO,
        }
    }

    #[test]
    fn an_attempt_is_counted_by_its_status_else_its_failure_class() {
        let cases = [
            (attempt("a", Some(200), None), "200"),
            (attempt("a", Some(429), Some(Class::RateLimited)), "429"),
            (
                attempt("a", None, Some(Class::Timeout)),
                Class::Timeout.as_label(),
            ),
            (attempt("a", None, None), "ok"),
        ];
        for (attempt, label) in cases {
            assert_eq!(("a".to_owned(), label.to_owned()), outcome(&attempt));
        }
    }

    #[test]
    fn tally_counts_attempts_by_model_and_outcome() {
        let done = |attempts: &[(&str, &str)], answered_by: Option<&str>| {
            Ok(Done {
                latency: Duration::from_millis(10),
                attempts: attempts
                    .iter()
                    .map(|(m, o)| ((*m).to_owned(), (*o).to_owned()))
                    .collect(),
                answered_by: answered_by.map(str::to_owned),
                error: answered_by.is_none().then(|| "overloaded".to_owned()),
            })
        };
        let (mut report, mut latencies) = (LoadReport::default(), Vec::new());
        let deadline = Duration::from_secs(1);
        let answered = done(&[("a", "529"), ("b", "200")], Some("b"));
        tally(&mut report, &mut latencies, answered, deadline);
        let failed = done(&[("a", "429"), ("a", "529")], None);
        tally(&mut report, &mut latencies, failed, deadline);
        assert_eq!(4, report.attempts);
        let counts = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(o, n)| ((*o).to_owned(), *n))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            counts(&[("429", 1), ("529", 2)]),
            report.attempts_by_model["a"]
        );
        assert_eq!(counts(&[("200", 1)]), report.attempts_by_model["b"]);
        assert_eq!((1, 1), (report.succeeded, report.failed));
    }
}
