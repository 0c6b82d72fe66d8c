//! A caller that goes away cancels its request: the attempt in flight is dropped (the fake
//! upstream sees its call's future dropped), the worker's and the admission's slots are free
//! at once, and no further attempt is made, wherever the job was: running, queued behind
//! the worker's gate, parked, or waiting out a retry delay. Paused virtual time.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::time::Duration;

use breakwater_actors::{Engine, Target};
use fake::{Fake, Step, config, ms, ok, overloaded, start, timeout};

/// Sends a request and gives up on it (drops the future) after `after`.
async fn leave_after(engine: &Engine<Fake>, after: Duration, streaming: bool) {
    let left = if streaming {
        tokio::time::timeout(after, engine.stream("hi".into(), timeout(60_000)))
            .await
            .map(|_| ())
    } else {
        tokio::time::timeout(after, engine.send("hi".into(), timeout(60_000)))
            .await
            .map(|_| ())
    };
    assert!(left.is_err(), "the caller left before the answer");
}

/// Lets the engine's actors handle what is in their mailboxes (virtual time: a millisecond).
async fn settle() {
    tokio::time::sleep(ms(1)).await;
}

fn in_flight(engine: &Engine<Fake>, model: &str) -> u32 {
    engine
        .board()
        .load(&Target::new(model))
        .map_or(0, |load| load.in_flight)
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_cancels_its_attempt_and_no_retry_follows() {
    // The attempt would fail retryably after a second, and the retry succeed.
    let fake = Fake::new().script("a", [overloaded(1_000)]);
    let (fake, engine) = start(fake, config(&["a"])).await;
    leave_after(&engine, ms(100), false).await;
    settle().await;
    assert_eq!(fake.live(), 0, "the upstream call was dropped");
    assert_eq!(in_flight(&engine, "a"), 0, "the worker's slot is free");
    assert_eq!(engine.outstanding(), 0, "the admission slot is free");
    tokio::time::sleep(ms(10_000)).await;
    assert_eq!(fake.calls_to("a"), 1, "no further attempt");
    let answer = engine.send("hi".into(), timeout(1_000)).await;
    assert!(answer.is_ok(), "the engine serves the next caller");
}

#[tokio::test(start_paused = true)]
async fn a_stream_whose_caller_leaves_before_its_first_event_is_cancelled() {
    let fake = Fake::new().script("a", [Step::Hang]);
    let (fake, engine) = start(fake, config(&["a"])).await;
    leave_after(&engine, ms(100), true).await;
    settle().await;
    assert_eq!(fake.live(), 0, "the upstream stream was dropped");
    assert_eq!(in_flight(&engine, "a"), 0);
    assert_eq!(engine.outstanding(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_during_a_retry_delay_is_not_retried() {
    let mut config = config(&["a"]);
    config.retry.backoff.base = ms(2_000);
    config.retry.backoff.cap = ms(2_000);
    let fake = Fake::new().script("a", [overloaded(10)]);
    let (fake, engine) = start(fake, config).await;
    leave_after(&engine, ms(100), false).await;
    settle().await;
    assert_eq!(
        engine.outstanding(),
        0,
        "the admission slot is free at once"
    );
    tokio::time::sleep(ms(10_000)).await;
    assert_eq!(fake.calls_to("a"), 1, "no retry after the delay");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_while_parked_is_not_released() {
    let mut config = config(&["a"]);
    config.retry.max_retries_per_target = 0;
    // Five 529s in a row open the breaker when no adaptive limit takes them in.
    config.targets[0].1.adaptive = false;
    let fake = Fake::new().script("a", (0..5).map(|_| overloaded(10)));
    let (fake, engine) = start(fake, config).await;
    for _ in 0..5 {
        let _ = engine.send("hi".into(), timeout(1_000)).await;
    }
    // The breaker is open until 5050 ms: a request with time to wait is parked.
    leave_after(&engine, ms(100), false).await;
    settle().await;
    assert_eq!(
        engine.outstanding(),
        0,
        "the admission slot is free at once"
    );
    tokio::time::sleep(ms(10_000)).await;
    assert_eq!(
        fake.calls_to("a"),
        5,
        "nothing was released for the caller that left"
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_leaves_while_queued_behind_the_gate_frees_its_place() {
    let mut config = config(&["a"]);
    config.targets[0].1.concurrency = 1.try_into().unwrap();
    let fake = Fake::new().script("a", [ok(1_000)]);
    let (fake, engine) = start(fake, config).await;
    let first = engine.send("first".into(), timeout(60_000));
    let second = async {
        tokio::time::sleep(ms(10)).await;
        leave_after(&engine, ms(100), false).await;
        settle().await;
        assert_eq!(engine.outstanding(), 1, "only the first request is held");
        let load = engine.board().load(&Target::new("a")).expect("published");
        assert_eq!((load.in_flight, load.queued), (1, 0));
    };
    let (answer, ()) = tokio::join!(first, second);
    assert!(answer.is_ok());
    tokio::time::sleep(ms(10_000)).await;
    assert_eq!(fake.calls_to("a"), 1, "the second request never ran");
}
