//! The actor engine in paused virtual time against a scripted fake upstream: breakers,
//! probes, fallbacks, budgets, deadlines, admission, crashes and shutdown, with exact timings.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::sync::Arc;
use std::time::Duration;

use breakwater_actors::policy::{StateKind, ThrottleConfig};
use breakwater_actors::{
    Class, Engine, EngineConfig, Error, Event, Failure, Priority, RequestOptions, Target,
};
use fake::{Fake, Step, config, failing, ms, ok, ok_limited, overloaded, start, timeout};
use tokio::time::Instant;

/// Waits for the next breaker transition of `target` to `to`, returning when it happened.
async fn transition(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    target: &str,
    to: StateKind,
) -> Instant {
    loop {
        match events.recv().await.expect("events flow") {
            Event::Breaker {
                target: t,
                to: state,
                at,
                ..
            } if t.model() == target && state == to => return at,
            _ => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn five_529s_open_the_breaker_and_then_no_call_is_made() {
    let mut config = config(&["a"]);
    config.retry.max_retries_per_target = 0;
    let (fake, engine) = start(Fake::new().default_for("a", overloaded(10)), config).await;
    let mut events = engine.subscribe();
    let t0 = Instant::now();
    for _ in 0..5 {
        let error = engine.send("hi".into(), timeout(1_000)).await.unwrap_err();
        assert!(matches!(error, Error::Exhausted { .. }), "{error}");
    }
    assert_eq!(
        transition(&mut events, "a", StateKind::Open).await,
        t0 + ms(50)
    );
    let error = engine.send("hi".into(), timeout(1_000)).await.unwrap_err();
    assert_eq!(fake.calls_to("a"), 5, "an open circuit sends nothing");
    assert_eq!(
        Instant::now(),
        t0 + ms(50),
        "a request that cannot be served in time is answered at once"
    );
    assert_eq!(error.retry_after(), Some(ms(5_000)));
    assert!(error.attempts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_open_interval_honours_retry_after_and_only_extends() {
    let mut config = config(&["a"]);
    config.retry.max_retries_per_target = 0;
    // Five 529s at once open the breaker only when no adaptive limit takes them in
    // (actors/tests/capacity.rs): this test is about the open interval.
    config.targets[0].1.adaptive = false;
    let long = Failure::new(Class::Overloaded, "Overloaded")
        .with_status(529)
        .with_retry_after(ms(30_000));
    let short = Failure::new(Class::Overloaded, "Overloaded")
        .with_status(529)
        .with_retry_after(ms(1_000));
    let script = [0, 0, 0, 0, 0]
        .map(|_| failing(long.clone(), 10))
        .into_iter()
        .chain([failing(short, 20)]);
    let (_fake, engine) = start(Fake::new().script("a", script), config).await;
    let t0 = Instant::now();
    let requests = (0..6).map(|_| engine.send("hi".into(), timeout(60_000)));
    let _ = futures::future::join_all(requests).await;
    let status = engine.board().status(&Target::new("a")).unwrap();
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(
        status.open_until,
        Some(t0 + ms(10) + ms(30_000)),
        "the straggler's shorter retry-after did not shrink it"
    );
}

/// Opens `a` with five 529s (breaker opens at 50 ms, half-opens at 5050 ms).
async fn open_a(engine: &Engine<Fake>) {
    for _ in 0..5 {
        let _ = engine
            .send(
                "x".into(),
                RequestOptions::default()
                    .with_fallback(false)
                    .with_timeout(ms(1_000)),
            )
            .await;
    }
}

fn fallback_config(probes: u32) -> EngineConfig {
    let mut config = config(&["a", "b"]);
    config.retry.max_retries_per_target = 0;
    config.breaker.probes = probes.try_into().unwrap();
    config
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_k_probes() {
    for probes in [1, 3] {
        let fake = Fake::new()
            .script("a", [0; 5].map(|_| overloaded(10)))
            .default_for("a", ok(1_000));
        let (fake, engine) = start(fake, fallback_config(probes)).await;
        let mut events = engine.subscribe();
        open_a(&engine).await;
        transition(&mut events, "a", StateKind::HalfOpen).await;
        let requests = (0..5).map(|_| engine.send("hi".into(), timeout(10_000)));
        let answers = futures::future::join_all(requests).await;
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(fake.calls_to("a"), 5 + probes as usize, "probes = {probes}");
        assert_eq!(
            fake.calls_to("b"),
            5 - probes as usize,
            "the rest fell back, probes = {probes}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_falls_through_invisibly_and_reopens_for_longer() {
    let fake = Fake::new().script("a", [0; 6].map(|_| overloaded(10)));
    let (_fake, engine) = start(fake, fallback_config(1)).await;
    let mut events = engine.subscribe();
    open_a(&engine).await;
    let half_open = transition(&mut events, "a", StateKind::HalfOpen).await;
    let answer = engine
        .send("hi".into(), timeout(10_000))
        .await
        .expect("the caller never sees the probe fail");
    assert_eq!(answer.target.model(), "b");
    let tried: Vec<_> = answer
        .attempts
        .iter()
        .map(|a| (a.target.model().to_owned(), a.failure, a.probe))
        .collect();
    assert_eq!(
        tried,
        vec![
            ("a".into(), Some(Class::Overloaded), true),
            ("b".into(), None, false)
        ]
    );
    let reopened = transition(&mut events, "a", StateKind::Open).await;
    assert_eq!(reopened, half_open + ms(10));
    let status = engine.board().status(&Target::new("a")).unwrap();
    assert_eq!(
        status.open_until,
        Some(reopened + ms(10_000)),
        "the second interval doubles"
    );
}

#[tokio::test(start_paused = true)]
async fn a_successful_probe_closes_the_circuit_and_traffic_returns() {
    let fake = Fake::new().script("a", [0; 5].map(|_| overloaded(10)));
    let (fake, engine) = start(fake, fallback_config(1)).await;
    let mut events = engine.subscribe();
    open_a(&engine).await;
    transition(&mut events, "a", StateKind::HalfOpen).await;
    let probe = engine.send("probe".into(), timeout(10_000)).await.unwrap();
    assert_eq!(probe.target.model(), "a");
    assert!(probe.attempts[0].probe);
    transition(&mut events, "a", StateKind::Closed).await;
    let next = engine.send("next".into(), timeout(10_000)).await.unwrap();
    assert_eq!((next.target.model(), next.attempts[0].probe), ("a", false));
    assert_eq!(fake.calls_to("b"), 0);
}

#[tokio::test(start_paused = true)]
async fn parked_requests_are_released_when_the_breaker_half_opens() {
    let mut config = config(&["a"]);
    config.retry.max_retries_per_target = 0;
    let fake = Fake::new().script("a", [0; 5].map(|_| overloaded(10)));
    let (_fake, engine) = start(fake, config).await;
    open_a(&engine).await;
    let t0 = Instant::now();
    let answer = engine
        .send("waits".into(), timeout(10_000))
        .await
        .expect("served after the circuit half-opens");
    assert_eq!(
        Instant::now(),
        t0 + ms(5_000) + ms(100),
        "released at half-open (5 s), answered 100 ms later"
    );
    assert!(answer.attempts[0].probe);
}

#[tokio::test(start_paused = true)]
async fn a_request_parked_behind_an_isolated_target_ends_exhausted_at_its_deadline() {
    let mut config = config(&["a"]);
    config.retry.max_retries_per_target = 0;
    config.breaker.open_for = ms(5_000);
    let fake = Fake::new()
        .script("a", [0; 5].map(|_| overloaded(10)))
        .default_for("a", Step::Hang);
    let (_fake, engine) = start(fake, config).await;
    open_a(&engine).await;
    engine.isolate(Target::new("a"));
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    let error = engine.send("hi".into(), timeout(2_000)).await.unwrap_err();
    assert_eq!(Instant::now(), t0 + ms(2_000));
    assert!(matches!(error, Error::Exhausted { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn retries_wait_the_backoff_and_then_succeed() {
    let fake = Fake::new().script("a", [overloaded(10), overloaded(10)]);
    let (_fake, engine) = start(fake, config(&["a"])).await;
    let t0 = Instant::now();
    let answer = engine.send("hi".into(), timeout(10_000)).await.unwrap();
    // 10 ms + 500 ms backoff + 10 ms + 1000 ms backoff + 100 ms success.
    assert_eq!(Instant::now(), t0 + ms(1_620));
    assert_eq!(answer.attempts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_caps_retries_under_a_storm() {
    let mut config = config(&["a"]);
    config.breaker.consecutive_failures = 1_000_000.try_into().unwrap();
    config.breaker.min_calls = u32::MAX;
    config.budget.min_per_second = 0;
    let (fake, engine) = start(Fake::new().default_for("a", overloaded(10)), config).await;
    let engine = Arc::new(engine);
    let mut requests = Vec::new();
    for _ in 0..100 {
        let engine = engine.clone();
        requests.push(tokio::spawn(async move {
            engine.send("hi".into(), timeout(30_000)).await
        }));
        tokio::time::sleep(ms(50)).await;
    }
    for request in requests {
        assert!(request.await.unwrap().is_err());
    }
    let calls = fake.calls_to("a");
    assert!(calls >= 100, "every first attempt is made");
    assert!(
        calls <= 120,
        "retries add at most 20% on top of first attempts: {calls} calls"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_upstream_ends_at_the_deadline_exactly() {
    let (_fake, engine) = start(Fake::new().default_for("a", Step::Hang), config(&["a"])).await;
    let t0 = Instant::now();
    let error = engine.send("hi".into(), timeout(2_000)).await.unwrap_err();
    assert_eq!(Instant::now(), t0 + ms(2_000));
    assert!(matches!(error, Error::DeadlineExceeded { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_neither_retried_nor_rerouted() {
    let invalid = Failure::new(Class::Invalid, "bad request").with_status(400);
    let (fake, engine) = start(
        Fake::new().default_for("a", failing(invalid, 10)),
        config(&["a", "b"]),
    )
    .await;
    let error = engine.send("hi".into(), timeout(10_000)).await.unwrap_err();
    assert!(
        matches!(&error, Error::Upstream { failure, .. } if failure.status() == Some(400)),
        "{error}"
    );
    assert_eq!((fake.calls_to("a"), fake.calls_to("b")), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn priorities_are_shed_lowest_first() {
    let mut config = config(&["a"]);
    config.admission.max_outstanding = 10.try_into().unwrap();
    let (_fake, engine) = start(Fake::new().default_for("a", ok(10_000)), config).await;
    let engine = Arc::new(engine);
    let send = |priority| {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .send("hi".into(), timeout(60_000).with_priority(priority))
                .await
        })
    };
    let mut held = Vec::new();
    let mut outcomes = Vec::new();
    for priority in [
        [Priority::Sheddable; 6].as_slice(),
        &[Priority::Normal; 5],
        &[Priority::Critical; 2],
    ]
    .concat()
    {
        let request = send(priority);
        tokio::time::sleep(ms(1)).await;
        if request.is_finished() {
            let shed = matches!(request.await.unwrap(), Err(Error::Shed { .. }));
            outcomes.push((priority, if shed { "shed" } else { "?" }));
        } else {
            outcomes.push((priority, "admitted"));
            held.push(request);
        }
    }
    let admitted = |p| {
        outcomes
            .iter()
            .filter(|(q, o)| *q == p && *o == "admitted")
            .count()
    };
    let shed = |p| {
        outcomes
            .iter()
            .filter(|(q, o)| *q == p && *o == "shed")
            .count()
    };
    assert_eq!(
        (admitted(Priority::Sheddable), shed(Priority::Sheddable)),
        (5, 1),
        "{outcomes:?}"
    );
    assert_eq!(
        (admitted(Priority::Normal), shed(Priority::Normal)),
        (4, 1),
        "{outcomes:?}"
    );
    assert_eq!(
        (admitted(Priority::Critical), shed(Priority::Critical)),
        (1, 1),
        "{outcomes:?}"
    );
    for request in held {
        assert!(request.await.unwrap().is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_upstream_is_a_server_error_that_falls_back() {
    let (_fake, engine) = start(
        Fake::new().default_for("a", Step::Panic),
        config(&["a", "b"]),
    )
    .await;
    let answer = engine.send("hi".into(), timeout(10_000)).await.unwrap();
    assert_eq!(answer.target.model(), "b");
    assert_eq!(answer.attempts[0].failure, Some(Class::ServerError));
}

#[tokio::test(start_paused = true)]
async fn a_crashed_worker_hands_its_jobs_back_and_no_caller_hangs() {
    let fake = Fake::new().script("a", [Step::Hang]);
    let (_fake, engine) = start(fake, config(&["a", "b"])).await;
    let engine = Arc::new(engine);
    let request = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.send("hi".into(), timeout(10_000)).await })
    };
    tokio::time::sleep(ms(10)).await;
    let worker = ractor::registry::where_is(engine.actor_name("worker/a"))
        .expect("the worker is registered");
    worker.kill();
    let answer = request
        .await
        .unwrap()
        .expect("the job went back to the dispatcher and was retried");
    let tried: Vec<_> = answer
        .attempts
        .iter()
        .map(|a| (a.target.model().to_owned(), a.failure))
        .collect();
    assert_eq!(
        tried,
        vec![("a".into(), Some(Class::ServerError)), ("a".into(), None)],
        "retried on the restarted worker"
    );
    let restarted = ractor::registry::where_is(engine.actor_name("worker/a"));
    assert!(
        restarted.is_some_and(|cell| cell.get_id() != worker.get_id()),
        "the worker was restarted"
    );
}

fn spawn_sends(
    engine: &Arc<Engine<Fake>>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<breakwater_actors::Answer<String>, Error>>> {
    (0..n)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.send("hi".into(), timeout(60_000)).await })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_in_flight_work_then_refuses_new_work() {
    let (_fake, engine) = start(Fake::new().default_for("a", ok(1_000)), config(&["a"])).await;
    let engine = Arc::new(engine);
    let requests = spawn_sends(&engine, 3);
    tokio::time::sleep(ms(10)).await;
    let t0 = Instant::now();
    assert_eq!(
        engine.shutdown(ms(5_000)).await,
        0,
        "everything finished within the grace period"
    );
    assert_eq!(
        Instant::now(),
        t0 + ms(990),
        "shutdown waited exactly for the in-flight work"
    );
    for request in requests {
        assert!(request.await.unwrap().is_ok());
    }
    let refused = engine
        .send("late".into(), timeout(1_000))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Shutdown), "{refused}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_fails_what_outlasts_the_grace_period() {
    let (_fake, engine) = start(Fake::new().default_for("a", ok(10_000)), config(&["a"])).await;
    let engine = Arc::new(engine);
    let requests = spawn_sends(&engine, 3);
    tokio::time::sleep(ms(10)).await;
    let t0 = Instant::now();
    assert_eq!(engine.shutdown(ms(100)).await, 3);
    assert_eq!(Instant::now(), t0 + ms(100));
    for request in requests {
        let error = request.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Shutdown), "{error}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_too_far_to_represent_does_not_crash_the_engine() {
    let (_fake, engine) = start(Fake::new(), config(&["a"])).await;
    let answer = engine
        .send(
            "hi".into(),
            RequestOptions::default().with_timeout(Duration::MAX),
        )
        .await;
    assert_eq!(answer.unwrap().target.model(), "a");
    let again = engine.send("hi".into(), timeout(1_000)).await;
    assert!(again.is_ok(), "the dispatcher is still up");
}

fn call_times(fake: &Fake, t0: Instant) -> Vec<u64> {
    fake.calls()
        .iter()
        .map(|(_, at)| (*at - t0).as_millis() as u64)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_worker_caps_concurrency_per_target() {
    let mut config = config(&["a"]);
    config.targets[0].1.concurrency = 2.try_into().unwrap();
    let (fake, engine) = start(Fake::new().default_for("a", ok(1_000)), config).await;
    let t0 = Instant::now();
    let requests = (0..4).map(|_| engine.send("hi".into(), timeout(10_000)));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(call_times(&fake, t0), vec![0, 0, 1_000, 1_000]);
}

#[tokio::test(start_paused = true)]
async fn the_worker_paces_attempt_starts() {
    let mut config = config(&["a"]);
    config.targets[0].1.min_interval = ms(100);
    let (fake, engine) = start(Fake::new(), config).await;
    let t0 = Instant::now();
    let requests = (0..3).map(|_| engine.send("hi".into(), timeout(10_000)));
    futures::future::join_all(requests).await;
    assert_eq!(call_times(&fake, t0), vec![0, 100, 200]);
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_the_target_until_its_retry_after() {
    let limited = Failure::new(Class::RateLimited, "slow down")
        .with_status(429)
        .with_retry_after(ms(2_000));
    let mut config = config(&["a"]);
    // This test is about the pause; a rate learned from 429s would also space the starts
    // after it (policy::learn).
    config.targets[0].1.learn_rate = false;
    let (fake, engine) = start(Fake::new().script("a", [failing(limited, 10)]), config).await;
    let engine = Arc::new(engine);
    let t0 = Instant::now();
    let first = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.send("first".into(), timeout(10_000)).await })
    };
    tokio::time::sleep(ms(20)).await;
    let second = engine.send("second".into(), timeout(10_000)).await;
    assert!(second.is_ok() && first.await.unwrap().is_ok());
    // The 429 at 10 ms pauses `a` until 2010 ms: both the retry and the newcomer wait for it.
    assert_eq!(call_times(&fake, t0), vec![0, 2_010, 2_010]);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_cannot_run_gives_its_slot_back() {
    let fake = Fake::new().script("a", [0; 5].map(|_| overloaded(10)));
    let (_fake, engine) = start(fake, fallback_config(1)).await;
    let mut events = engine.subscribe();
    open_a(&engine).await;
    transition(&mut events, "a", StateKind::HalfOpen).await;
    ractor::registry::where_is(engine.actor_name("worker/a"))
        .expect("registered")
        .kill();
    tokio::task::yield_now().await;
    let rerouted = engine
        .send("while a restarts".into(), timeout(10_000))
        .await
        .unwrap();
    assert_eq!(
        rerouted.target.model(),
        "b",
        "the granted probe could not run on a"
    );
    tokio::time::sleep(ms(1_000)).await;
    let probe = engine
        .send("after the restart".into(), timeout(10_000))
        .await
        .unwrap();
    assert_eq!(
        (probe.target.model(), probe.attempts[0].probe),
        ("a", true),
        "the slot was given back"
    );
    transition(&mut events, "a", StateKind::Closed).await;
}

fn adaptive(chain: &[&str], initial: u32, max: u32) -> EngineConfig {
    let mut config = config(chain);
    for (_, limits) in &mut config.targets {
        limits.adaptive = true;
        limits.limit.initial = initial.try_into().unwrap();
        limits.limit.max = max.try_into().unwrap();
    }
    config
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_limit_slow_starts_and_grows_while_busy() {
    let (fake, engine) = start(Fake::new(), adaptive(&["a"], 2, 8)).await;
    let t0 = Instant::now();
    let requests = (0..8).map(|_| engine.send("hi".into(), timeout(10_000)));
    assert!(
        futures::future::join_all(requests)
            .await
            .iter()
            .all(Result::is_ok)
    );
    // 2 start at once; each busy success adds one slot: 3, then 4, so 4 more start at 100 ms.
    assert_eq!(
        call_times(&fake, t0),
        vec![0, 0, 100, 100, 100, 100, 200, 200]
    );
    // At 200 ms successes with 4, 5 and 4 in flight grow it to 7; the next ones find under
    // half of it in use (3 of 7, then fewer) and leave it there.
    assert_eq!(engine.board().limit(&Target::new("a")), Some(7));
}

#[tokio::test(start_paused = true)]
async fn overloads_shrink_the_adaptive_limit_multiplicatively() {
    let mut config = adaptive(&["a"], 8, 8);
    config.retry.max_retries_per_target = 0;
    let (_fake, engine) = start(
        Fake::new().script("a", [0; 3].map(|_| overloaded(10))),
        config,
    )
    .await;
    for _ in 0..3 {
        let _ = engine.send("hi".into(), timeout(1_000)).await;
    }
    // 8 x 0.8 = 6.4, x 0.8 = 5.12, x 0.8 = 4.096.
    assert_eq!(engine.board().limit(&Target::new("a")), Some(4));
}

#[tokio::test(start_paused = true)]
async fn with_the_latency_signal_slow_successes_shrink_the_limit() {
    let mut config = adaptive(&["a"], 8, 8);
    config.targets[0].1.limit.latency = Some(ms(1_000));
    let fake = Fake::new()
        .script("a", [ok(2_000), ok(2_000), ok(2_000)])
        .default_for("a", ok(500));
    let (_fake, engine) = start(fake, config).await;
    for _ in 0..3 {
        engine.send("hi".into(), timeout(10_000)).await.unwrap();
    }
    // Three answers slower than 1 s: 8 x 0.8 x 0.8 x 0.8 = 4.096.
    assert_eq!(engine.board().limit(&Target::new("a")), Some(4));
    engine.send("hi".into(), timeout(10_000)).await.unwrap();
    assert_eq!(
        engine.board().limit(&Target::new("a")),
        Some(4),
        "a quick answer with 1 of 4 in use neither shrinks nor grows it"
    );
}

/// `a` holds one request at a time and answers slowly; `b` is the next target.
fn one_slot_on_a() -> (Fake, EngineConfig) {
    let fake = Fake::new().default_for("a", ok(1_000));
    let mut config = config(&["a", "b"]);
    config.targets[0].1.concurrency = 1.try_into().unwrap();
    (fake, config)
}

#[tokio::test(start_paused = true)]
async fn a_full_target_spills_over_to_the_next_without_an_attempt() {
    let (fake, config) = one_slot_on_a();
    let (fake, engine) = start(fake, config).await;
    let mut events = engine.subscribe();
    let (first, second) = tokio::join!(engine.send("first".into(), timeout(10_000)), async {
        tokio::task::yield_now().await;
        engine.send("second".into(), timeout(10_000)).await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.target.model(), "a");
    assert_eq!(second.target.model(), "b");
    assert_eq!(
        second.attempts.len(),
        1,
        "no attempt was spent on the full a"
    );
    assert_eq!(fake.calls_to("a"), 1);
    loop {
        if let Event::SpilledOver { from, to } = events.recv().await.unwrap() {
            assert_eq!((from.model(), to.model()), ("a", "b"));
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_spillover_a_full_target_queues_its_requests() {
    for (global, per_chain, per_request) in [
        (false, None, None),
        (true, Some(false), None),
        (true, None, Some(false)),
        (false, Some(true), Some(false)),
    ] {
        let (fake, mut config) = one_slot_on_a();
        config.spillover = global;
        if let Some(spill) = per_chain {
            config.chain_spillover = vec![(config.chain.clone(), spill)];
        }
        let (fake, engine) = start(fake, config).await;
        let t0 = Instant::now();
        let mut options = timeout(10_000);
        if let Some(spill) = per_request {
            options = options.with_spillover(spill);
        }
        let (first, second) = tokio::join!(engine.send("first".into(), options.clone()), async {
            tokio::task::yield_now().await;
            engine.send("second".into(), options.clone()).await
        });
        assert_eq!(first.unwrap().target.model(), "a");
        assert_eq!(
            second.unwrap().target.model(),
            "a",
            "it waited for a's slot"
        );
        assert_eq!(call_times(&fake, t0), vec![0, 1_000]);
    }
}

#[tokio::test(start_paused = true)]
async fn pacing_holds_a_start_until_the_announced_window_refills() {
    // Each answer says no request is left in a window that refills 1 s later.
    let fake = Fake::new().default_for("a", ok_limited(10, 0, 1_000));
    let (fake, engine) = start(fake, config(&["a"])).await;
    let t0 = Instant::now();
    for _ in 0..3 {
        engine.send("hi".into(), timeout(10_000)).await.unwrap();
    }
    assert_eq!(call_times(&fake, t0), vec![0, 1_010, 2_020]);
    assert_eq!(fake.calls_to("a"), 3, "nothing was sent only to meet a 429");
}

#[tokio::test(start_paused = true)]
async fn an_empty_rate_limit_window_spills_over_to_the_next_target() {
    let fake = Fake::new().default_for("a", ok_limited(10, 0, 1_000));
    let (fake, engine) = start(fake, config(&["a", "b"])).await;
    let t0 = Instant::now();
    let first = engine.send("first".into(), timeout(10_000)).await.unwrap();
    let second = engine.send("second".into(), timeout(10_000)).await.unwrap();
    assert_eq!((first.target.model(), second.target.model()), ("a", "b"));
    tokio::time::sleep(ms(1_000)).await;
    let third = engine.send("third".into(), timeout(10_000)).await.unwrap();
    assert_eq!(third.target.model(), "a", "the window refilled");
    assert_eq!(call_times(&fake, t0), vec![0, 10, 1_110]);
}

/// A chain whose `a` rejects everything without its breaker ever opening, so only the
/// client-side throttle stands between the callers and the rejections.
fn rejecting_without_breaker(chain: &[&str]) -> (Fake, EngineConfig) {
    let fake = Fake::new().default_for("a", overloaded(10));
    let mut config = config(chain);
    config.throttle = Some(ThrottleConfig::default());
    config.retry.max_retries_per_target = 0;
    config.breaker.consecutive_failures = u32::MAX.try_into().unwrap();
    config.breaker.min_calls = u32::MAX;
    (fake, config)
}

#[tokio::test(start_paused = true)]
async fn the_throttle_sheds_sheddable_requests_locally_when_the_chain_rejects() {
    let (fake, config) = rejecting_without_breaker(&["a"]);
    let (fake, engine) = start(fake, config).await;
    let options = timeout(10_000).with_priority(Priority::Sheddable);
    let mut shed = 0;
    for _ in 0..100 {
        match engine.send("x".into(), options.clone()).await {
            Err(Error::Shed { .. }) => shed += 1,
            Err(Error::Exhausted { .. } | Error::Upstream { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // With no accepts, p = requests / (requests + 1): almost everything after the first few
    // is turned away before it is sent.
    assert!(shed >= 80, "shed {shed} of 100");
    assert_eq!(
        fake.calls_to("a"),
        100 - shed,
        "a shed request is never sent"
    );
}

#[tokio::test(start_paused = true)]
async fn the_throttle_never_turns_away_critical_requests() {
    let (fake, config) = rejecting_without_breaker(&["a"]);
    let (fake, engine) = start(fake, config).await;
    let options = timeout(10_000).with_priority(Priority::Critical);
    for _ in 0..50 {
        let error = engine.send("x".into(), options.clone()).await.unwrap_err();
        assert!(!matches!(error, Error::Shed { .. }), "{error}");
    }
    assert_eq!(fake.calls_to("a"), 50);
}

#[tokio::test(start_paused = true)]
async fn the_throttle_moves_requests_on_to_the_next_target_before_sending() {
    let (fake, config) = rejecting_without_breaker(&["a", "b"]);
    let (fake, engine) = start(fake, config).await;
    let mut events = engine.subscribe();
    let mut straight_to_b = 0;
    for _ in 0..100 {
        let answer = engine.send("x".into(), timeout(10_000)).await.unwrap();
        assert_eq!(answer.target.model(), "b");
        if answer.attempts[0].target.model() == "b" {
            straight_to_b += 1;
        }
    }
    assert!(straight_to_b >= 80, "{straight_to_b} of 100 skipped a");
    assert_eq!(fake.calls_to("a"), 100 - straight_to_b);
    let throttled = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|event| matches!(event, Event::Throttled { .. }))
        .count();
    assert_eq!(throttled, straight_to_b);
}

#[tokio::test(start_paused = true)]
async fn a_target_added_after_start_is_served_with_its_own_breaker() {
    let mut config = config(&["a"]);
    config.retry.max_retries_per_target = 0;
    let (fake, engine) = start(Fake::new().default_for("z", overloaded(10)), config).await;
    let z = Target::new("z");
    let on_z = || {
        RequestOptions::default()
            .with_chain(vec![z.clone()])
            .with_timeout(ms(1_000))
    };
    let error = engine.send("hi".into(), on_z()).await.unwrap_err();
    assert!(matches!(error, Error::Invalid(_)), "{error}");
    assert!(!engine.serves(&z));

    engine.add_target(z.clone()).await.expect("z is added");
    engine
        .add_target(z.clone())
        .await
        .expect("adding twice is a no-op");
    assert!(engine.serves(&z));
    assert_eq!(engine.added_targets(), 1);
    let mut events = engine.subscribe();
    for _ in 0..5 {
        let error = engine.send("hi".into(), on_z()).await.unwrap_err();
        assert!(matches!(error, Error::Exhausted { .. }), "{error}");
    }
    transition(&mut events, "z", StateKind::Open).await;
    let _ = engine.send("hi".into(), on_z()).await.unwrap_err();
    assert_eq!(
        fake.calls_to("z"),
        5,
        "z's own breaker opened and sent nothing more"
    );
    assert_eq!(engine.board().state(&Target::new("a")), StateKind::Closed);
}
