//! Using the capacity a model still has: the breaker is for a model that is down, the
//! adaptive limit for one that serves less. Paused virtual time, a scripted fake upstream.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::num::NonZeroU32;
use std::sync::Arc;

use breakwater_actors::policy::StateKind;
use breakwater_actors::{Engine, Target};
use fake::{Fake, config, ms, ok, overloaded, start, timeout};
use tokio::time::Instant;

/// `a` (20 slots) then `b`; `adaptive`: whether `a`'s limit adapts.
fn chain(adaptive: bool) -> breakwater_actors::EngineConfig {
    let mut config = config(&["a", "b"]);
    for (_, limits) in &mut config.targets {
        limits.concurrency = NonZeroU32::new(20).unwrap();
        limits.adaptive = adaptive;
    }
    config
}

/// `callers` callers, each sending one request after another until `until`.
fn steady(
    engine: &Arc<Engine<Fake>>,
    callers: usize,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..callers)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let _ = engine.send("hi".into(), timeout(10_000)).await;
                }
            })
        })
        .collect()
}

/// Twelve callers keep `a` 60% busy; after 3 s, `a` sheds five requests in a row.
async fn burst_at_sixty_percent(adaptive: bool) -> Vec<StateKind> {
    let (fake, engine) = start(Fake::new().default_for("a", ok(100)), chain(adaptive)).await;
    let engine = Arc::new(engine);
    let mut events = engine.subscribe();
    let callers = steady(&engine, 12, Instant::now() + ms(6_000));
    tokio::time::sleep(ms(3_000)).await;
    fake.push(
        "a",
        [
            overloaded(5),
            overloaded(5),
            overloaded(5),
            overloaded(5),
            overloaded(5),
        ],
    );
    for caller in callers {
        caller.await.unwrap();
    }
    let mut opened = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let breakwater_actors::Event::Breaker { target, to, .. } = event {
            if target == Target::new("a") {
                opened.push(to);
            }
        }
    }
    opened
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_overloads_at_sixty_percent_does_not_open_the_breaker() {
    assert_eq!(
        burst_at_sixty_percent(true).await,
        Vec::<StateKind>::new(),
        "the adaptive limit takes the burst; the breaker stays closed"
    );
}

#[tokio::test(start_paused = true)]
async fn without_an_adaptive_limit_the_same_burst_opens_it() {
    let moves = burst_at_sixty_percent(false).await;
    assert_eq!(moves.first(), Some(&StateKind::Open), "{moves:?}");
}

#[tokio::test(start_paused = true)]
async fn a_model_that_answers_nothing_still_opens_its_breaker_within_one_limit_of_attempts() {
    let (fake, engine) = start(Fake::new().default_for("a", ok(100)), chain(true)).await;
    let engine = Arc::new(engine);
    let callers = steady(&engine, 12, Instant::now() + ms(6_000));
    tokio::time::sleep(ms(3_000)).await;
    let limit = engine.board().limit(&Target::new("a")).unwrap();
    let before = fake.calls_to("a");
    fake.set_default("a", overloaded(5));
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(engine.board().state(&Target::new("a")), StateKind::Open);
    let failed = fake.calls_to("a") - before;
    assert!(
        failed <= 2 * limit as usize,
        "{failed} attempts met the outage, with a limit of {limit}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_that_announces_nothing_slows_the_starts_to_a_learned_rate_and_falls_back() {
    let (fake, engine) = start(Fake::new().default_for("a", ok(10)), chain(true)).await;
    let engine = Arc::new(engine);
    let t0 = Instant::now();
    let callers = steady(&engine, 4, t0 + ms(5_000));
    tokio::time::sleep(ms(2_000)).await;
    // No rate-limit headers, no retry-after: as Bedrock and Vertex answer.
    let refused =
        breakwater_actors::Failure::new(breakwater_actors::Class::RateLimited, "Too many requests")
            .with_status(429);
    fake.push("a", [fake::failing(refused, 1)]);
    for caller in callers {
        caller.await.unwrap();
    }
    let starts_in = |from: u64, to: u64| {
        fake.calls()
            .iter()
            .filter(|(model, at)| model == "a" && *at >= t0 + ms(from) && *at < t0 + ms(to))
            .count()
    };
    let before = starts_in(1_000, 2_000);
    // The 429 pauses `a` for `rate-limit-pause` (1 s); then the learned rate holds.
    let paused = starts_in(2_010, 2_990);
    let after = starts_in(3_100, 4_100);
    // Four callers at 10 ms each: about 400 a second before; after the pause, 0.8 of what
    // went through, growing 10% a second up to 95% of it, then 1%.
    assert!(before >= 300, "{before} starts a second before the 429");
    assert_eq!(paused, 0, "paused after the 429");
    assert!(
        after <= before * 95 / 100 && after >= before * 7 / 10,
        "{after} starts in a second after the pause, against {before} before"
    );
    assert!(
        fake.calls_to("b") > 0,
        "what the learned rate holds back spills over to `b`"
    );
}
