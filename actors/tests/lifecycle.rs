//! Every queued job ends by its deadline, a restarted actor publishes its real state, a
//! failed send falls back, and no call on the request path waits without a timeout: the
//! holes a code read found in the engine's lifecycle, each pinned by a test. Paused virtual
//! time, a scripted fake upstream.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use breakwater_actors::chaos::{self, Fault, Site};
use breakwater_actors::policy::StateKind;
use breakwater_actors::{Class, Engine, Error, Failure, Target};
use fake::{Fake, Step, config, failing, ms, ok, overloaded, start, timeout};
use tokio::time::Instant;

/// Kills the engine's actor registered as `role` (`breaker/a`, `worker/a`, ...).
fn kill(engine: &Engine<Fake>, role: &str) {
    ractor::registry::where_is(engine.actor_name(role))
        .unwrap_or_else(|| panic!("{role} is registered"))
        .kill();
}

fn breaker(engine: &Engine<Fake>, model: &str) -> StateKind {
    engine.board().state(&Target::new(model))
}

/// A chain of `a` (one attempt at a time, no adaptive limit) alone.
fn one_slot(chain: &[&str]) -> breakwater_actors::EngineConfig {
    let mut config = config(chain);
    for (_, limits) in &mut config.targets {
        limits.concurrency = NonZeroU32::MIN;
        limits.adaptive = false;
    }
    config
}

/// Opens `a`'s breaker (one 529 opens it, for exactly 5 s), then falls back to `b`.
async fn open_a(fake: Fake) -> (Arc<Fake>, Arc<Engine<Fake>>, Instant) {
    let mut config = config(&["a", "b"]);
    config.breaker.consecutive_failures = NonZeroU32::MIN;
    // No adaptive limit to take the 529 in (actors/tests/capacity.rs).
    for (_, limits) in &mut config.targets {
        limits.adaptive = false;
    }
    let (fake, engine) = start(fake.script("a", [overloaded(10)]), config).await;
    let answer = engine.send("hi".into(), timeout(10_000)).await.unwrap();
    assert_eq!(
        answer.target.model(),
        "b",
        "fell back past the open breaker"
    );
    assert_eq!(breaker(&engine, "a"), StateKind::Open);
    let until = engine.board().status(&Target::new("a")).unwrap().open_until;
    (
        fake,
        Arc::new(engine),
        until.expect("an open breaker shows when it half-opens"),
    )
}

#[tokio::test(start_paused = true)]
async fn a_job_queued_behind_a_full_target_ends_at_its_deadline_and_frees_its_slot() {
    let (_fake, engine) = start(Fake::new().default_for("a", ok(10_000)), one_slot(&["a"])).await;
    let engine = Arc::new(engine);
    let busy = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.send("long".into(), timeout(60_000)).await })
    };
    tokio::time::sleep(ms(1)).await;
    let t0 = Instant::now();
    let error = engine
        .send("queued".into(), timeout(1_000))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::DeadlineExceeded { .. }), "{error}");
    assert_eq!(Instant::now(), t0 + ms(1_000), "answered at its deadline");
    tokio::time::sleep(ms(1)).await;
    assert_eq!(engine.outstanding(), 1, "only the running request is held");
    let load = engine.board().load(&Target::new("a")).unwrap();
    assert_eq!((load.in_flight, load.queued), (1, 0), "{load:?}");
    assert!(busy.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_job_queued_behind_a_429_pause_ends_at_its_deadline() {
    let limited = Failure::new(Class::RateLimited, "rate limited")
        .with_status(429)
        .with_retry_after(ms(30_000));
    let fake = Fake::new().script("a", [failing(limited, 10)]);
    let (_fake, engine) = start(fake, config(&["a"])).await;
    let first = engine.send("first".into(), timeout(10_000)).await;
    assert!(
        first.is_err(),
        "the 429's wait is past what retries may take"
    );
    let t0 = Instant::now();
    let error = engine
        .send("paused".into(), timeout(2_000))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::DeadlineExceeded { .. }), "{error}");
    assert_eq!(Instant::now(), t0 + ms(2_000), "answered at its deadline");
    tokio::time::sleep(ms(1)).await;
    assert_eq!(engine.outstanding(), 0, "its admission slot is free");
}

#[tokio::test(start_paused = true)]
async fn a_breaker_restarted_while_open_stays_open_and_half_opens_on_time() {
    let (fake, engine, until) = open_a(Fake::new()).await;
    kill(&engine, "breaker/a");
    tokio::time::sleep(ms(100)).await;
    assert_eq!(
        breaker(&engine, "a"),
        StateKind::Open,
        "still open after the restart"
    );
    let answer = engine.send("hi".into(), timeout(1_000)).await.unwrap();
    assert_eq!(
        answer.target.model(),
        "b",
        "the restarted breaker keeps `a` open"
    );
    assert_eq!(fake.calls_to("a"), 1);
    tokio::time::sleep_until(until + ms(1)).await;
    assert_eq!(
        breaker(&engine, "a"),
        StateKind::HalfOpen,
        "the restarted breaker half-opens when the crashed one would have"
    );
    let answer = engine.send("hi".into(), timeout(1_000)).await.unwrap();
    assert_eq!(answer.target.model(), "a", "the probe went to `a`");
    assert_eq!(breaker(&engine, "a"), StateKind::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_request_for_a_half_open_target_whose_breaker_is_gone_falls_back() {
    let (_fake, engine, until) = open_a(Fake::new()).await;
    tokio::time::sleep_until(until + ms(1)).await;
    assert_eq!(breaker(&engine, "a"), StateKind::HalfOpen);
    kill(&engine, "breaker/a");
    // The supervisor restarts it after 50 ms: until then, asking it for a probe fails.
    tokio::time::sleep(ms(1)).await;
    let answer = engine.send("hi".into(), timeout(1_000)).await;
    let answer = answer.expect("answered, not dropped with the failed send");
    assert_eq!(answer.target.model(), "b");
}

#[tokio::test(start_paused = true)]
async fn a_request_parked_on_a_half_open_target_whose_breaker_is_gone_is_served_after_the_restart()
{
    let (fake, engine, until) = open_a(Fake::new()).await;
    fake.set_default("b", overloaded(10));
    tokio::time::sleep_until(until + ms(1)).await;
    kill(&engine, "breaker/a");
    tokio::time::sleep(ms(1)).await;
    let mut options = timeout(5_000);
    options.allow_fallback = Some(false);
    let answer = engine.send("hi".into(), options).await;
    let answer = answer.expect("served by `a` once its breaker is back");
    assert_eq!(answer.target.model(), "a");
}

#[tokio::test(start_paused = true)]
async fn a_crashed_worker_cancels_the_attempts_it_was_running() {
    let fake = Fake::new().script("a", [Step::Hang]);
    let (fake, engine) = start(fake, config(&["a"])).await;
    let engine = Arc::new(engine);
    let request = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.send("hi".into(), timeout(10_000)).await })
    };
    tokio::time::sleep(ms(10)).await;
    assert_eq!(fake.live(), 1);
    kill(&engine, "worker/a");
    let answer = request.await.unwrap();
    assert!(
        answer.is_ok(),
        "retried on the restarted worker: {answer:?}"
    );
    tokio::time::sleep(ms(1)).await;
    assert_eq!(
        fake.live(),
        0,
        "the hung attempt went with the crashed worker"
    );
}

#[tokio::test(start_paused = true)]
async fn adding_a_target_to_a_stuck_supervisor_fails_in_time() {
    let (_fake, engine) = start(Fake::new(), config(&["a"])).await;
    chaos::inject(|site| (site == Site::Supervisor).then_some(Fault::Stall(Duration::MAX)));
    let t0 = Instant::now();
    let added = tokio::time::timeout(ms(60_000), engine.add_target(Target::new("x"))).await;
    chaos::clear();
    let error = added.expect("add_target answers").unwrap_err();
    assert!(matches!(error, Error::Internal(_)), "{error}");
    assert!(error.to_string().contains("did not add x"), "{error}");
    assert_eq!(Instant::now(), t0 + ms(5_000));
}

#[tokio::test(start_paused = true)]
async fn job_ids_stay_unique_across_a_dispatcher_restart() {
    // Found by the chaos test: a restarted dispatcher numbered its jobs from 1 again, and a
    // worker holding an older job 1 lost track of one of the two.
    let fake = Fake::new().script("a", [Step::Hang]);
    let (fake, engine) = start(fake, config(&["a"])).await;
    let engine = Arc::new(engine);
    let hung = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.send("hung".into(), timeout(2_000)).await })
    };
    tokio::time::sleep(ms(10)).await;
    kill(&engine, "dispatcher");
    tokio::time::sleep(ms(100)).await;
    let answer = engine.send("next".into(), timeout(1_000)).await;
    assert_eq!(answer.unwrap().value, "a answered next");
    assert!(hung.await.unwrap().is_err(), "its dispatcher crashed");
    tokio::time::sleep(ms(5_000)).await;
    let load = engine.board().load(&Target::new("a")).unwrap();
    assert_eq!((load.in_flight, load.queued), (0, 0), "{load:?}");
    assert_eq!(fake.live(), 0);
    assert_eq!(engine.outstanding(), 0);
}
