//! A scripted fake upstream for paused-time engine tests: each target answers from its own
//! script of steps (529 after 10 ms, success after 100 ms, hang, panic, ...), then from its
//! default step; every call is recorded with its virtual time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakwater_actors::{
    Class, EventStream, Failure, Outcome, RateLimits, Reply, StreamEvent, Target, Upstream,
};
use futures::future::BoxFuture;
use tokio::time::Instant;

/// What one call does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Succeeds after the delay.
    Ok(Duration),
    /// Succeeds after the delay, announcing rate-limit state as the API's headers do.
    OkLimited(Duration, RateLimits),
    /// Fails with the failure after the delay.
    Fail(Failure, Duration),
    /// Never answers.
    Hang,
    /// Panics.
    Panic,
}

pub fn ok(ms: u64) -> Step {
    Step::Ok(Duration::from_millis(ms))
}

/// Succeeds after `ms`, announcing `remaining` requests left in a window that refills in
/// `reset_ms`.
pub fn ok_limited(ms: u64, remaining: u64, reset_ms: u64) -> Step {
    let mut limits = RateLimits::default();
    limits.requests.remaining = Some(remaining);
    limits.requests.reset_in = Some(Duration::from_millis(reset_ms));
    Step::OkLimited(Duration::from_millis(ms), limits)
}

pub fn overloaded(ms: u64) -> Step {
    Step::Fail(
        Failure::new(Class::Overloaded, "Overloaded").with_status(529),
        Duration::from_millis(ms),
    )
}

pub fn failing(failure: Failure, ms: u64) -> Step {
    Step::Fail(failure, Duration::from_millis(ms))
}

#[derive(Default)]
pub struct Fake {
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    defaults: Mutex<HashMap<String, Step>>,
    calls: Mutex<Vec<(String, Instant)>>,
    /// Calls whose future is alive: started, and neither finished nor dropped.
    live: AtomicUsize,
}

/// Counts a call as live until its future finishes or is dropped.
struct Live<'a>(&'a AtomicUsize);

impl<'a> Live<'a> {
    fn new(live: &'a AtomicUsize) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self(live)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Fake {
    pub fn new() -> Self {
        Self::default()
    }

    /// `model` answers `steps` in order, then its default.
    pub fn script(self, model: &str, steps: impl IntoIterator<Item = Step>) -> Self {
        self.scripts
            .lock()
            .unwrap()
            .entry(model.into())
            .or_default()
            .extend(steps);
        self
    }

    /// `model` answers `step` once its script is used up (the default default: ok(100)).
    pub fn default_for(self, model: &str, step: Step) -> Self {
        self.defaults.lock().unwrap().insert(model.into(), step);
        self
    }

    /// Appends `steps` to `model`'s script while the engine runs.
    pub fn push(&self, model: &str, steps: impl IntoIterator<Item = Step>) {
        self.scripts
            .lock()
            .unwrap()
            .entry(model.into())
            .or_default()
            .extend(steps);
    }

    /// Replaces `model`'s default while the engine runs.
    pub fn set_default(&self, model: &str, step: Step) {
        self.defaults.lock().unwrap().insert(model.into(), step);
    }

    /// Every call so far: the model and when it started.
    pub fn calls(&self) -> Vec<(String, Instant)> {
        self.calls.lock().unwrap().clone()
    }

    /// How many calls are running now: started, neither finished nor dropped.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// How many calls went to `model`.
    pub fn calls_to(&self, model: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == model)
            .count()
    }

    fn next(&self, model: &str) -> Step {
        self.calls
            .lock()
            .unwrap()
            .push((model.to_owned(), Instant::now()));
        let scripted = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(model)
            .and_then(VecDeque::pop_front);
        scripted.unwrap_or_else(|| {
            self.defaults
                .lock()
                .unwrap()
                .get(model)
                .cloned()
                .unwrap_or(ok(100))
        })
    }
}

/// A stream event: `Start` does not commit, `Text` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Start,
    Text(String),
}

impl StreamEvent for Ev {
    fn commits(&self) -> bool {
        matches!(self, Ev::Text(_))
    }
}

impl Upstream for Fake {
    type Request = String;
    type Response = String;
    type Event = Ev;

    fn send<'a>(
        &'a self,
        target: &'a Target,
        request: &'a String,
    ) -> BoxFuture<'a, Outcome<String>> {
        Box::pin(async move {
            let _live = Live::new(&self.live);
            match self.next(target.model()) {
                Step::Ok(after) => {
                    tokio::time::sleep(after).await;
                    Ok(Reply::new(format!("{} answered {request}", target.model())))
                }
                Step::OkLimited(after, limits) => {
                    tokio::time::sleep(after).await;
                    let mut reply = Reply::new(format!("{} answered {request}", target.model()));
                    reply.limits = limits;
                    Ok(reply)
                }
                Step::Fail(failure, after) => {
                    tokio::time::sleep(after).await;
                    Err(failure)
                }
                Step::Hang => futures::future::pending().await,
                Step::Panic => panic!("scripted upstream panic"),
            }
        })
    }

    fn stream<'a>(
        &'a self,
        target: &'a Target,
        request: &'a String,
    ) -> BoxFuture<'a, Outcome<EventStream<Ev>>> {
        Box::pin(async move {
            let text = format!("{} answered {request}", target.model());
            let _live = Live::new(&self.live);
            match self.next(target.model()) {
                Step::Ok(after) | Step::OkLimited(after, _) => {
                    tokio::time::sleep(after).await;
                    let events: EventStream<Ev> = Box::pin(futures::stream::iter(vec![
                        Ok(Ev::Start),
                        Ok(Ev::Text(text)),
                    ]));
                    Ok(Reply::new(events))
                }
                Step::Fail(failure, after) => {
                    // The failure arrives inside a 200 stream, before any content.
                    tokio::time::sleep(after).await;
                    let events: EventStream<Ev> =
                        Box::pin(futures::stream::iter(vec![Ok(Ev::Start), Err(failure)]));
                    Ok(Reply::new(events))
                }
                Step::Hang => futures::future::pending().await,
                Step::Panic => panic!("scripted upstream panic"),
            }
        })
    }
}

/// A duration of `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Exact timings: no jitter anywhere, a fixed seed. The client-side throttle is off: these
/// tests script breakers exactly, and the throttle has its own tests.
pub fn config(chain: &[&str]) -> breakwater_actors::EngineConfig {
    let mut config = breakwater_actors::EngineConfig::new(
        chain
            .iter()
            .map(|model| breakwater_actors::Target::new(*model)),
    );
    config.retry.backoff.jitter = breakwater_actors::policy::Jitter::None;
    config.breaker.open_jitter = 0.0;
    config.seed = Some(7);
    config.throttle = None;
    config
}

/// Starts an engine on `fake`; the fake stays reachable for its counters.
pub async fn start(
    fake: Fake,
    config: breakwater_actors::EngineConfig,
) -> (std::sync::Arc<Fake>, breakwater_actors::Engine<Fake>) {
    let fake = std::sync::Arc::new(fake);
    let engine = breakwater_actors::Engine::start(fake.clone(), config)
        .await
        .expect("engine starts");
    (fake, engine)
}

/// Options with a timeout of `n` milliseconds.
pub fn timeout(n: u64) -> breakwater_actors::RequestOptions {
    breakwater_actors::RequestOptions::default().with_timeout(ms(n))
}
