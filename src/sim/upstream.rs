//! The simulated Claude API: an in-process [`Upstream`] that answers from each model's
//! [`ModelCapacity`] (the mock server's capacity model) in tokio time, so the real actors and
//! the baseline strategies run against it on a paused clock, an hour in seconds.
//!
//! Every attempt is decided when it arrives: 404 for an unknown model, 429 over the rate
//! limit, 529 with no free slot (and the rejection then occupies capacity for the model's
//! reject cost), else a slot held for a drawn service time and a real [`Message`](crate::api::Message).

mod reply;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::scenario::SimScenario;
use crate::api::{ErrorType, WireEvent, WireMessage, WireRequest, answered, classify};
use crate::engine::policy::Cost;
use crate::engine::{EventStream, Failure, Outcome, RateLimits, Reply, Target, Upstream};
use crate::mock::{Admission, ModelCapacity, SlotGuard};

/// One attempt as the simulated API saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When it arrived, time since the simulation's start.
    pub at: Duration,
    /// The model it asked for.
    pub model: String,
    /// The status it was answered with: 200, 529, 429, or 404 for an unknown model.
    pub status: u16,
}

/// One attempt as the simulated API saw it, lent to an attempt sink (see
/// [`SimUpstream::with_sink`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenAttempt<'a> {
    /// When it arrived, time since the simulation's start.
    pub at: Duration,
    /// The model it asked for.
    pub model: &'a str,
    /// The status it was answered with: 200, 529, 429, or 404 for an unknown model.
    pub status: u16,
}

impl SeenAttempt<'_> {
    /// The attempt as an owned record.
    pub fn to_record(&self) -> AttemptRecord {
        AttemptRecord {
            at: self.at,
            model: self.model.to_owned(),
            status: self.status,
        }
    }
}

/// Where a [`SimUpstream`] sends each attempt it sees.
pub type AttemptSink = Box<dyn FnMut(SeenAttempt<'_>) + Send>;

/// The simulated API for one run. Build a fresh one per strategy: it holds the run's
/// capacity state and its record of attempts.
#[derive(Debug)]
pub struct SimUpstream {
    models: BTreeMap<String, SimTarget>,
    epoch: Mutex<Instant>,
    rng: Mutex<SmallRng>,
    log: Mutex<AttemptLog>,
}

/// The attempts seen: a count (attempt numbers make the ids), and each attempt either kept
/// or handed to a sink.
struct AttemptLog {
    count: u64,
    kept: Vec<AttemptRecord>,
    sink: Option<AttemptSink>,
}

impl std::fmt::Debug for AttemptLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptLog")
            .field("count", &self.count)
            .field("kept", &self.kept.len())
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct SimTarget {
    capacity: Arc<ModelCapacity>,
    reject_cost: Duration,
}

/// An admitted attempt: hold `slot` for `service`, then answer.
struct Serving {
    slot: SlotGuard,
    service: Duration,
    limits: RateLimits,
    number: u64,
}

impl SimUpstream {
    /// The simulated API for `scenario`, every slot free, keeping a record of every attempt
    /// (see [`Self::attempts`]; use [`Self::with_sink`] for long runs). Its clock starts now;
    /// call [`Self::start`] to restart it when the run begins.
    pub fn new(scenario: &SimScenario) -> Self {
        let models = scenario
            .models
            .iter()
            .map(|(name, model)| {
                let target = SimTarget {
                    capacity: Arc::new(ModelCapacity::new(model.spec())),
                    reject_cost: model.reject_cost,
                };
                (name.clone(), target)
            })
            .collect();
        Self {
            models,
            epoch: Mutex::new(Instant::now()),
            rng: Mutex::new(SmallRng::seed_from_u64(scenario.seed)),
            log: Mutex::new(AttemptLog {
                count: 0,
                kept: Vec::new(),
                sink: None,
            }),
        }
    }

    /// Hands each attempt to `sink` as it arrives instead of keeping it, so memory does not
    /// grow with the length of the run; [`Self::attempts`] then stays empty.
    #[must_use]
    pub fn with_sink(self, sink: impl FnMut(SeenAttempt<'_>) + Send + 'static) -> Self {
        lock(&self.log).sink = Some(Box::new(sink));
        self
    }

    /// Makes now (tokio time) the simulation's t = 0, which brownout windows and attempt
    /// records are measured from.
    pub fn start(&self) {
        *lock(&self.epoch) = Instant::now();
    }

    /// Time since the simulation's t = 0.
    pub fn elapsed(&self) -> Duration {
        lock(&self.epoch).elapsed()
    }

    /// Every attempt so far, in arrival order; empty with a sink (see [`Self::with_sink`]).
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        lock(&self.log).kept.clone()
    }

    /// Units of capacity `model` has occupied now (slots serving plus rejections still
    /// costing), or `None` for a model the scenario does not define.
    pub fn occupied(&self, model: &str) -> Option<u32> {
        let elapsed = self.elapsed();
        Some(self.models.get(model)?.capacity.occupied(elapsed))
    }

    /// Decides an attempt as it arrives: served, or refused at once.
    fn decide(&self, target: &Target) -> Result<Serving, Failure> {
        let at = self.elapsed();
        let model = target.model();
        let Some(sim) = self.models.get(model) else {
            let number = self.record(at, model, 404);
            let message = format!("model: {model}");
            return Err(error(&ErrorType::NotFound, message, number));
        };
        match sim.capacity.admit(at) {
            Admission::Admitted { slot, limits } => {
                let limits = if sim.capacity.spec().rate_limit_headers {
                    limits
                } else {
                    RateLimits::default()
                };
                let service = sim.capacity.service_time(&mut *lock(&self.rng));
                let number = self.record(at, model, 200);
                Ok(Serving {
                    slot,
                    service,
                    limits,
                    number,
                })
            }
            Admission::Overloaded { retry_after } => {
                if !sim.reject_cost.is_zero() {
                    sim.capacity.hold_until(at + sim.reject_cost);
                }
                let number = self.record(at, model, 529);
                let mut failure = error(&ErrorType::Overloaded, "Overloaded", number);
                if let Some(delay) = retry_after {
                    failure = failure.with_retry_after(delay);
                }
                Err(failure)
            }
            Admission::RateLimited {
                retry_after,
                limits,
            } => {
                let number = self.record(at, model, 429);
                let message = "Number of requests has exceeded your rate limit";
                let spec = sim.capacity.spec();
                let mut failure = error(&ErrorType::RateLimit, message, number);
                if spec.retry_after {
                    failure = failure.with_retry_after(retry_after);
                }
                if spec.rate_limit_headers {
                    failure = failure.with_limits(limits);
                }
                Err(failure)
            }
        }
    }

    /// Records an attempt; returns its number, from which its ids are made.
    fn record(&self, at: Duration, model: &str, status: u16) -> u64 {
        let mut log = lock(&self.log);
        log.count += 1;
        let seen = SeenAttempt { at, model, status };
        match &mut log.sink {
            Some(sink) => sink(seen),
            None => log.kept.push(seen.to_record()),
        }
        log.count
    }

    async fn complete(&self, target: &Target, request: &WireRequest) -> Outcome<WireMessage> {
        let serving = self.decide(target)?;
        tokio::time::sleep(serving.service).await;
        drop(serving.slot);
        let message = reply::message(target.model(), request.max_tokens(), serving.number);
        Ok(answer(message.into(), serving.limits, serving.number))
    }

    /// Opens a stream; its events take the service time, so the decision is all there is
    /// to wait for.
    fn open(&self, target: &Target, request: &WireRequest) -> Outcome<EventStream<WireEvent>> {
        let serving = self.decide(target)?;
        let message = reply::message(target.model(), request.max_tokens(), serving.number);
        let events = reply::stream(&message, serving.service, serving.slot);
        Ok(answer(events, serving.limits, serving.number))
    }
}

impl Upstream for SimUpstream {
    type Request = WireRequest;
    type Response = WireMessage;
    type Event = WireEvent;

    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a WireRequest,
    ) -> BoxFuture<'a, Outcome<WireMessage>> {
        Box::pin(self.complete(target, request))
    }

    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a WireRequest,
    ) -> BoxFuture<'a, Outcome<EventStream<WireEvent>>> {
        Box::pin(std::future::ready(self.open(target, request)))
    }
    fn cost(&self, request: &WireRequest) -> Cost {
        Cost::new(
            request.estimated_input_tokens(),
            u64::from(request.max_tokens()),
        )
    }
}

fn answer<T>(value: T, limits: RateLimits, number: u64) -> Reply<T> {
    Reply {
        value,
        request_id: Some(reply::request_id(number)),
        limits,
        changes: None,
    }
}

/// The failure the API answers for `kind`, classified as the client would classify it.
fn error(kind: &ErrorType, message: impl Into<String>, number: u64) -> Failure {
    let status = kind.default_status();
    let request_id = reply::request_id(number);
    answered(
        classify(status, Some(kind)),
        message,
        status,
        Some(&request_id),
    )
    .with_error_type(kind.as_str())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every guarded value stays consistent across a panic (a clock, an rng, a log), so
    // poisoning is moot.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
