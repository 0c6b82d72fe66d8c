//! Chaos: random panics and stalls injected into the engine's workers, breakers and
//! dispatcher (the `chaos` feature's fault hook) while a random load runs against a random
//! upstream, in paused virtual time, over property-based schedules. Whatever strikes:
//!
//! - every request ends by its deadline + 50 ms, with an answer or a typed error;
//! - none is lost or answered twice: each caller gets exactly one result, and an answer
//!   carries its own request's text from a target of its chain;
//! - with no fault struck, no request ends with `Error::Internal`;
//! - once the faults stop and the load is over, the engine holds nothing (no request, no
//!   running or queued attempt, no live upstream call) and the board shows, for every
//!   target, the state its breaker actor really holds.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::cell::Cell;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use breakwater_actors::chaos::{self, Fault, Site};
use breakwater_actors::{Class, Engine, Error, Failure, Target};
use fake::{Fake, Step, config, failing, ms, ok, overloaded, timeout};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

const MODELS: [&str; 3] = ["a", "b", "c"];

/// What an upstream call does, before it is a [`Step`].
#[derive(Clone, Copy, Debug)]
enum Does {
    Ok(u64),
    Overloaded(u64),
    ServerError(u64),
    Hang,
    Panic,
}

impl Does {
    fn step(self) -> Step {
        match self {
            Does::Ok(after) => ok(after),
            Does::Overloaded(after) => overloaded(after),
            Does::ServerError(after) => failing(
                Failure::new(Class::ServerError, "Internal server error").with_status(500),
                after,
            ),
            Does::Hang => Step::Hang,
            Does::Panic => Step::Panic,
        }
    }
}

fn does() -> impl Strategy<Value = Does> {
    prop_oneof![
        6 => (1..400u64).prop_map(Does::Ok),
        3 => (1..200u64).prop_map(Does::Overloaded),
        1 => (1..200u64).prop_map(Does::ServerError),
        1 => Just(Does::Hang),
        1 => Just(Does::Panic),
    ]
}

#[derive(Clone, Debug)]
struct Request {
    /// When it is sent, in ms from the start.
    at: u64,
    /// Its deadline, in ms after it is sent.
    timeout: u64,
    stream: bool,
    fallback: bool,
}

fn request() -> impl Strategy<Value = Request> {
    (
        0..4_000u64,
        50..4_000u64,
        any::<bool>(),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(at, timeout, stream, fallback)| Request {
            at,
            timeout,
            stream,
            fallback,
        })
}

#[derive(Clone, Debug)]
struct Schedule {
    /// The fault plan's seed.
    seed: u64,
    /// Chances, per message an actor takes, that it panics: worker, breaker, dispatcher.
    panics: (f64, f64, f64),
    /// Chance, per message, that the actor stalls for up to 100 ms instead.
    stalls: f64,
    /// Per model: a script, then the default.
    upstream: Vec<(Vec<Does>, Does)>,
    requests: Vec<Request>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let chance = |max: f64| prop_oneof![1 => Just(0.0), 3 => 0.0..max];
    (
        any::<u64>(),
        (chance(0.08), chance(0.08), chance(0.03)),
        chance(0.02),
        prop::collection::vec((prop::collection::vec(does(), 0..12), does()), 3),
        prop::collection::vec(request(), 1..120),
    )
        .prop_map(|(seed, panics, stalls, upstream, requests)| Schedule {
            seed,
            panics,
            stalls,
            upstream,
            requests,
        })
}

/// How one request ended.
struct Ended {
    request: usize,
    late_by: Option<Duration>,
    result: Result<Target, Error>,
}

fn engine_config() -> breakwater_actors::EngineConfig {
    let mut config = config(&MODELS);
    config.breaker.consecutive_failures = NonZeroU32::new(2).unwrap();
    config.breaker.open_for = ms(500);
    config.supervision.max_restarts = 100_000;
    config.supervision.restart_delay = ms(5);
    config
}

/// Installs the fault plan; the returned cell counts the faults that struck.
fn inject(schedule: &Schedule) -> Rc<Cell<u32>> {
    let struck = Rc::new(Cell::new(0));
    let counter = struck.clone();
    let mut rng = SmallRng::seed_from_u64(schedule.seed);
    let (worker, breaker, dispatcher) = schedule.panics;
    let stalls = schedule.stalls;
    chaos::inject(move |site| {
        let panics = match site {
            Site::Worker => worker,
            Site::Breaker => breaker,
            Site::Dispatcher => dispatcher,
            Site::Supervisor => return None,
        };
        let fault = if rng.random_bool(panics) {
            Fault::Panic
        } else if rng.random_bool(stalls) {
            Fault::Stall(ms(rng.random_range(1..100)))
        } else {
            return None;
        };
        counter.set(counter.get() + 1);
        Some(fault)
    });
    struck
}

async fn send(engine: Arc<Engine<Fake>>, index: usize, request: Request) -> Ended {
    tokio::time::sleep(ms(request.at)).await;
    let mut options = timeout(request.timeout);
    options.allow_fallback = Some(request.fallback);
    let deadline = Instant::now() + ms(request.timeout);
    let text = format!("request {index}");
    let result = if request.stream {
        engine
            .stream(text.clone(), options)
            .await
            .map(|answer| answer.target)
    } else {
        match engine.send(text.clone(), options).await {
            Ok(answer) => {
                let expected = format!("{} answered {text}", answer.target.model());
                assert_eq!(answer.value, expected, "an answer to its own request");
                Ok(answer.target)
            }
            Err(error) => Err(error),
        }
    };
    Ended {
        request: index,
        late_by: Instant::now().checked_duration_since(deadline),
        result,
    }
}

async fn run(schedule: Schedule) -> Result<(), TestCaseError> {
    let mut fake = Fake::new();
    for (model, (script, default)) in MODELS.iter().zip(&schedule.upstream) {
        fake = fake
            .script(model, script.iter().map(|does| does.step()))
            .default_for(model, default.step());
    }
    let fake = Arc::new(fake);
    let engine = Arc::new(
        Engine::start(fake.clone(), engine_config())
            .await
            .expect("the engine starts"),
    );
    let struck = inject(&schedule);
    let tasks: Vec<_> = schedule
        .requests
        .iter()
        .cloned()
        .enumerate()
        .map(|(index, request)| tokio::spawn(send(engine.clone(), index, request)))
        .collect();
    let mut ended = Vec::new();
    for task in tasks {
        ended.push(task.await.expect("a caller's task never panics"));
    }
    chaos::clear();

    let chain: Vec<Target> = MODELS.iter().map(|m| Target::new(*m)).collect();
    for end in &ended {
        let request = &schedule.requests[end.request];
        prop_assert!(
            end.late_by.is_none_or(|late| late <= ms(50)),
            "request {} ended {:?} past its deadline",
            end.request,
            end.late_by
        );
        match &end.result {
            Ok(target) => prop_assert!(chain.contains(target)),
            Err(Error::Internal(why)) => prop_assert!(
                struck.get() > 0,
                "request {} ended Internal ({why}) with no fault struck: {request:?}",
                end.request
            ),
            Err(_) => {}
        }
    }
    prop_assert_eq!(ended.len(), schedule.requests.len());

    // Quiet: no load, no faults. Open intervals elapse, attempts end, and the restarts
    // finish (after a crash loop, the supervisor's delay reaches 5 ms * 2^16, about 330 s).
    tokio::time::sleep(ms(30_000)).await;
    prop_assert_eq!(engine.outstanding(), 0, "the engine holds no request");
    for target in &chain {
        let load = engine.board().load(target).unwrap_or_default();
        prop_assert_eq!(
            (load.in_flight, load.queued),
            (0, 0),
            "{}: {:?}",
            target,
            load
        );
    }
    tokio::time::sleep(ms(600_000)).await;
    prop_assert_eq!(fake.live(), 0, "no upstream call is left running");
    for target in &chain {
        let truth = engine.breaker_truth(target).await;
        prop_assert_eq!(
            truth,
            Some(engine.board().state(target)),
            "the board shows {}'s breaker as its actor holds it",
            target
        );
    }
    engine.shutdown(ms(100)).await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn whatever_crashes_every_request_ends_in_time_and_the_board_converges(
        schedule in schedule()
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let outcome = runtime.block_on(run(schedule));
        chaos::clear();
        outcome?;
    }
}
