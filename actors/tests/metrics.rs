//! The metrics a brownout produces, read back with `metrics_util`'s debugging recorder. One
//! test in its own binary, because the recorder is process-global.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::sync::Arc;
use std::time::Duration;

use breakwater_actors::policy::Jitter;
use breakwater_actors::{Engine, EngineConfig, RequestOptions, Target};
use fake::{Fake, overloaded};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A recorded metric: name, labels, value.
type Row = (String, Vec<(String, String)>, DebugValue);

fn counter(snapshot: &[Row], name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

#[tokio::test(start_paused = true)]
async fn a_brownout_is_visible_in_attempts_transitions_and_fallbacks() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this binary");

    let mut config = EngineConfig::new([Target::new("a"), Target::new("b")]);
    config.retry.backoff.jitter = Jitter::None;
    config.retry.max_retries_per_target = 0;
    config.breaker.open_jitter = 0.0;
    config.seed = Some(1);
    // Every request meets the breaker rather than the client-side throttle, which would
    // otherwise turn most of them away from `a` before its breaker saw five failures.
    config.throttle = None;
    let fake = Arc::new(Fake::new().default_for("a", overloaded(10)));
    let engine = Engine::start(fake.clone(), config).await.unwrap();
    for _ in 0..8 {
        let answer = engine
            .send(
                "hi".into(),
                RequestOptions::default().with_timeout(Duration::from_secs(10)),
            )
            .await;
        assert_eq!(answer.unwrap().target.model(), "b");
    }

    let snapshot: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    assert_eq!(counter(&snapshot, "breakwater_requests_total", &[]), 8);
    assert_eq!(
        counter(
            &snapshot,
            "breakwater_attempts_total",
            &[("target", "a"), ("outcome", "overloaded")]
        ),
        5,
        "the breaker stops attempts after five"
    );
    assert_eq!(
        counter(
            &snapshot,
            "breakwater_attempts_total",
            &[("target", "b"), ("outcome", "success")]
        ),
        8
    );
    assert_eq!(
        counter(
            &snapshot,
            "breakwater_breaker_transitions_total",
            &[("target", "a"), ("to", "open")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            "breakwater_fallbacks_total",
            &[("from", "a"), ("to", "b")]
        ),
        8
    );
    assert_eq!(fake.calls_to("a"), 5);
}
