//! The simulated API's capacity model and the simulator's scenarios, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use breakwater::api::{MessageStreamEvent, MessagesRequest, WireEvent, WireRequest};
use breakwater::engine::{Class, Failure, Target, Upstream};
use breakwater::sim::{SimScenario, SimUpstream};
use futures::{StreamExt, poll};
use tokio::time::{Instant, sleep, sleep_until};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn request() -> WireRequest {
    MessagesRequest::new("ignored", 1024)
        .with_user("hello")
        .into()
}

/// A one-model scenario (`m`) with the given `[models.m]` settings.
fn scenario(model: &str) -> SimScenario {
    let text = format!("chain = [\"m\"]\n[models.m]\n{model}\n");
    SimScenario::from_toml(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn upstream(model: &str) -> Arc<SimUpstream> {
    let up = Arc::new(SimUpstream::new(&scenario(model)));
    up.start();
    up
}

fn m() -> Target {
    Target::new("m")
}

fn status(failure: &Failure) -> (Class, Option<u16>, Option<&str>) {
    (failure.class(), failure.status(), failure.error_type())
}

fn statuses(up: &SimUpstream) -> Vec<u16> {
    up.attempts().iter().map(|a| a.status).collect()
}

#[tokio::test(start_paused = true)]
async fn no_free_slot_answers_529_at_once() {
    let up = upstream("slots = 2\nservice-time = \"1s\"\nretry-after-on-overload = 7");
    let (target, req) = (m(), request());
    let mut first = up.send(&target, &req);
    let mut second = up.send(&target, &req);
    assert!(poll!(&mut first).is_pending());
    assert!(poll!(&mut second).is_pending());

    let refused = up.send(&target, &req).await.unwrap_err();
    assert_eq!(Duration::ZERO, up.elapsed());
    let overloaded = (Class::Overloaded, Some(529), Some("overloaded_error"));
    assert_eq!(overloaded, status(&refused));
    assert_eq!(Some(secs(7)), refused.retry_after());

    let reply = first.await.unwrap();
    assert_eq!(secs(1), up.elapsed());
    let message = reply.value.message().unwrap();
    assert_eq!("m", message.model);
    assert!(!message.text().is_empty());
    assert!(message.usage.output_tokens > 0);
    second.await.unwrap();
    up.send(&target, &req).await.unwrap();
    assert_eq!(secs(2), up.elapsed());
    assert_eq!(vec![200, 200, 529, 200], statuses(&up));
    assert_eq!(ms(0), up.attempts()[2].at);
    assert_eq!(secs(1), up.attempts()[3].at);
}

#[tokio::test(start_paused = true)]
async fn brownout_window_reduces_slots() {
    let model = "slots = 4\nservice-time = \"1s\"\n\
                 brownouts = [{ start = \"10s\", end = \"20s\", fraction = 0.25 }]";
    let sim = scenario(model);
    assert_eq!(4, sim.slots_at("m", ms(9_999)));
    assert_eq!(1, sim.slots_at("m", secs(10)));
    assert_eq!(4, sim.slots_at("m", secs(20)));
    assert_eq!(0, sim.slots_at("unknown", secs(0)));

    let up = upstream(model);
    let (target, req) = (m(), request());
    sleep(secs(10)).await;
    let mut held = up.send(&target, &req);
    assert!(poll!(&mut held).is_pending());
    let refused = up.send(&target, &req).await.unwrap_err();
    assert_eq!(Class::Overloaded, refused.class());
    assert_eq!(None, refused.retry_after());
    held.await.unwrap();

    sleep_until(Instant::now() + secs(9)).await;
    assert_eq!(secs(20), up.elapsed());
    let mut four: Vec<_> = (0..4).map(|_| up.send(&target, &req)).collect();
    for call in &mut four {
        assert!(poll!(call).is_pending());
    }
    assert_eq!(vec![200, 529, 200, 200, 200, 200], statuses(&up));
}

/// Slot 1 is busy for 1s from t=0 and a second request is rejected at t=0; the status of a
/// request at `probe`.
async fn status_after_a_rejection(probe: Duration) -> u16 {
    let up = upstream("slots = 1\nservice-time = \"1s\"\nreject-cost = \"5s\"");
    let (target, req) = (m(), request());
    let mut served = up.send(&target, &req);
    assert!(poll!(&mut served).is_pending());
    assert!(up.send(&target, &req).await.is_err());
    assert_eq!(Some(2), up.occupied("m"));
    served.await.unwrap();
    assert_eq!(
        Some(1),
        up.occupied("m"),
        "the rejection still occupies capacity"
    );
    sleep_until(Instant::now() + probe - secs(1)).await;
    let mut call = up.send(&target, &req);
    let _ = poll!(&mut call);
    up.attempts().last().expect("the probe is recorded").status
}

#[tokio::test(start_paused = true)]
async fn reject_cost_occupies_capacity_for_exactly_reject_cost() {
    assert_eq!(529, status_after_a_rejection(ms(4_999)).await);
    assert_eq!(200, status_after_a_rejection(secs(5)).await);
}

#[tokio::test(start_paused = true)]
async fn rejections_can_oversubscribe_capacity() {
    let up = upstream("slots = 1\nservice-time = \"1s\"\nreject-cost = \"2s\"");
    let (target, req) = (m(), request());
    let mut served = up.send(&target, &req);
    assert!(poll!(&mut served).is_pending());
    for _ in 0..3 {
        assert!(up.send(&target, &req).await.is_err());
    }
    assert_eq!(Some(4), up.occupied("m"));
    served.await.unwrap();
    assert_eq!(Some(3), up.occupied("m"));
    sleep(secs(1)).await;
    assert_eq!(Some(0), up.occupied("m"));
    up.send(&target, &req).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_429_with_retry_after_and_takes_no_slot() {
    let up = upstream("rps = 2\nservice-time = \"0s\"\nreject-cost = \"10s\"");
    let (target, req) = (m(), request());
    let first = up.send(&target, &req).await.unwrap();
    assert_eq!(Some(120), first.limits.requests.limit, "per minute");
    up.send(&target, &req).await.unwrap();
    let limited = up.send(&target, &req).await.unwrap_err();
    assert_eq!(Duration::ZERO, up.elapsed());
    let rate_limited = (Class::RateLimited, Some(429), Some("rate_limit_error"));
    assert_eq!(rate_limited, status(&limited));
    assert_eq!(Some(secs(1)), limited.retry_after());
    assert_eq!(Some(0), limited.limits().requests.remaining);
    assert_eq!(Some(0), up.occupied("m"), "a 429 holds no capacity");
    sleep(ms(500)).await;
    up.send(&target, &req).await.unwrap();
    assert_eq!(vec![200, 200, 429, 200], statuses(&up));
}

#[tokio::test(start_paused = true)]
async fn unknown_model_is_invalid_404() {
    let up = upstream("slots = 1");
    let failure = up
        .send(&Target::new("claude-nope"), &request())
        .await
        .unwrap_err();
    let not_found = (Class::Invalid, Some(404), Some("not_found_error"));
    assert_eq!(not_found, status(&failure));
    assert!(failure.request_id().is_some());
    assert_eq!("claude-nope", up.attempts()[0].model);
    assert_eq!(vec![404], statuses(&up));
}

#[tokio::test(start_paused = true)]
async fn stream_spreads_events_over_the_service_time_and_holds_the_slot() {
    let up = upstream("slots = 1\nservice-time = \"2s\"");
    let (target, req) = (m(), request());
    let mut events = up.stream(&target, &req).await.unwrap().value;
    assert_eq!(Duration::ZERO, up.elapsed());
    let refused = up
        .stream(&target, &req)
        .await
        .err()
        .expect("the slot is taken");
    assert_eq!(Class::Overloaded, refused.class());
    let typed = |event: WireEvent| event.to_event().unwrap();
    let first = typed(events.next().await.unwrap().unwrap());
    assert!(matches!(first, MessageStreamEvent::MessageStart { .. }));
    assert_eq!(Duration::ZERO, up.elapsed());
    let mut last = first;
    while let Some(event) = events.next().await {
        last = typed(event.unwrap());
    }
    assert_eq!(MessageStreamEvent::MessageStop, last);
    assert_eq!(secs(2), up.elapsed());
    assert_eq!(Some(0), up.occupied("m"));
    assert_eq!(vec![200, 529], statuses(&up));
}

#[test]
fn arrivals_are_seeded_and_about_rps_times_duration() {
    let brownout = SimScenario::builtin("brownout").expect("built in");
    let arrivals = brownout.arrivals();
    assert_eq!(arrivals, brownout.arrivals());
    assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    assert!(arrivals.iter().all(|at| *at < brownout.duration));
    let expected = brownout.rps * brownout.duration.as_secs_f64();
    let count = arrivals.len() as f64;
    assert!(
        (count - expected).abs() < expected * 0.1,
        "{count} vs {expected}"
    );

    let reseeded = SimScenario {
        seed: brownout.seed + 1,
        ..brownout.clone()
    };
    assert_ne!(arrivals, reseeded.arrivals());
}

#[test]
fn a_surge_raises_the_rate_in_its_window() {
    let surge = SimScenario::builtin("surge").expect("built in");
    let arrivals = surge.arrivals();
    let within = |from: u64, to: u64| {
        arrivals
            .iter()
            .filter(|at| **at >= secs(from) && **at < secs(to))
            .count() as f64
    };
    let (before, during, after) = (within(0, 60), within(60, 120), within(120, 180));
    assert!(
        during > 4.0 * before && during < 6.0 * before,
        "{before} {during}"
    );
    assert!(during > 4.0 * after, "{during} {after}");
    assert!((during - 2400.0).abs() < 240.0, "{during}");
}

#[test]
fn every_builtin_parses_validates_and_matches_its_file() {
    let names = SimScenario::builtin_names();
    assert_eq!(7, names.len());
    let mut files: Vec<_> = std::fs::read_dir("scenarios/sim")
        .expect("scenarios/sim exists")
        .map(|entry| entry.expect("readable").path())
        .collect();
    files.sort();
    assert_eq!(names.len(), files.len(), "{files:?}");
    for name in names {
        let scenario = SimScenario::builtin(name).expect("listed names are built in");
        scenario
            .validate()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(name, scenario.name);
        assert!(!scenario.description.is_empty(), "{name}");
        assert!(scenario.incident.end > scenario.incident.start, "{name}");
        assert!(scenario.chain.len() >= 2, "{name}");
        let file = SimScenario::load(&format!("scenarios/sim/{name}.toml")).expect("loads");
        assert_eq!(scenario, file, "{name}: the file and the built-in differ");
        // The normal load keeps 50-65% of the primary's slots busy.
        let primary = &scenario.models[&scenario.chain[0]];
        let busy = scenario.rps * primary.service_time.as_secs_f64() / f64::from(primary.slots);
        assert!((0.5..=0.65).contains(&busy), "{name}: {busy}");
    }
}

#[test]
fn builtins_script_what_their_names_say() {
    let at = |name: &str, second: u64| {
        let scenario = SimScenario::builtin(name).expect("built in");
        scenario.slots_at(&scenario.chain[0], secs(second))
    };
    assert_eq!(
        (40, 2, 40),
        (at("brownout", 59), at("brownout", 60), at("brownout", 360))
    );
    assert_eq!((0, 40), (at("outage", 359), at("outage", 360)));
    assert_eq!(
        (0, 40, 0),
        (
            at("flapping", 125),
            at("flapping", 140),
            at("flapping", 370)
        )
    );
    let degraded = SimScenario::builtin("all-degraded").expect("built in");
    for model in &degraded.chain {
        let kept = (f64::from(degraded.models[model].slots) * 0.3).ceil() as u32;
        assert_eq!(kept, degraded.slots_at(model, secs(90)), "{model}");
    }
    let metastable = SimScenario::builtin("metastable").expect("built in");
    assert!(metastable.models[&metastable.chain[0]].reject_cost >= secs(2));
    let limited = SimScenario::builtin("rate-limited").expect("built in");
    let limit = f64::from(limited.models[&limited.chain[0]].rps.expect("limited"));
    assert!(limited.rate_at(secs(90)) > limit && limited.rate_at(secs(30)) < limit);
    let surge = SimScenario::builtin("surge").expect("built in");
    assert!((surge.rate_at(secs(90)) - 5.0 * surge.rps).abs() < 1e-9);
}

#[test]
fn a_bad_toml_names_the_field_and_line() {
    let unknown = "chain = [\"m\"]\n[models.m]\nslotz = 3\n";
    let err = SimScenario::from_toml(unknown).unwrap_err().to_string();
    assert!(err.contains("slotz") && err.contains("line 3"), "{err}");
    let duration = "chain = [\"m\"]\n\n[models.m]\nreject-cost = \"soon\"\n";
    let err = SimScenario::from_toml(duration).unwrap_err().to_string();
    assert!(
        err.contains("reject-cost") && err.contains("line 4"),
        "{err}"
    );
    let top = "rps = \"fast\"\n";
    let err = SimScenario::from_toml(top).unwrap_err().to_string();
    assert!(err.contains("rps") && err.contains("line 1"), "{err}");
}

#[test]
fn validate_names_the_bad_field() {
    let model = "[models.m]\n";
    let cases = [
        ("chain = []", "chain"),
        ("chain = [\"m\", \"x\"]", "chain[1]"),
        ("chain = [\"m\"]\nrps = 0.0", "rps"),
        ("chain = [\"m\"]\ndeadline = \"0s\"", "deadline"),
        (
            "chain = [\"m\"]\nsurges = [{ end = \"1m\", multiplier = 0.0 }]",
            "surges[0].multiplier",
        ),
        (
            "chain = [\"m\"]\nsurges = [{ start = \"2m\", end = \"1m\", multiplier = 2.0 }]",
            "surges[0].end",
        ),
        (
            "chain = [\"m\"]\nincident = { start = \"2m\", end = \"1m\" }",
            "incident.end",
        ),
        ("chain = [\"m\"]\n[models.m]\nslots = 0", "models.m.slots"),
        ("chain = [\"m\"]\n[models.m]\nrps = 0", "models.m.rps"),
        (
            "chain = [\"m\"]\n[models.m]\nreject-cost = \"2h\"",
            "models.m.reject-cost",
        ),
        (
            "chain = [\"m\"]\n[models.m]\nbrownouts = [{ fraction = 1.5 }]",
            "models.m.brownouts[0].fraction",
        ),
    ];
    for (text, field) in cases {
        let text = if text.contains("[models.m]") {
            text.to_owned()
        } else {
            format!("{text}\n{model}")
        };
        let err = SimScenario::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains(&format!("setting {field}:")), "{text}: {err}");
    }
}

#[test]
fn load_names_files_after_their_stem_and_the_missing_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("my-storm.toml");
    std::fs::write(&path, "chain = [\"m\"]\n[models.m]\n").expect("written");
    let loaded = SimScenario::load(path.to_str().expect("utf-8")).expect("valid");
    assert_eq!("my-storm", loaded.name);
    assert_eq!(SimScenario::default().duration, loaded.duration);

    let err = SimScenario::load("/nonexistent/storm.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/storm.toml") && err.contains("metastable"),
        "{err}"
    );
}

/// Plays `scenario`'s primary-only traffic, each request making up to `attempts` attempts
/// with a 1s, 2s, 4s... pause after each 529; the attempts the primary served from `from`
/// until arrivals stop.
async fn served_after(scenario: &SimScenario, attempts: u32, from: Duration) -> usize {
    let up = Arc::new(SimUpstream::new(scenario));
    up.start();
    let start = Instant::now();
    let mut calls = Vec::new();
    for at in scenario.arrivals() {
        sleep_until(start + at).await;
        let up = Arc::clone(&up);
        let target = Target::new(scenario.chain[0].as_str());
        calls.push(tokio::spawn(async move {
            let req = request();
            for attempt in 0..attempts {
                if up.send(&target, &req).await.is_ok() {
                    return;
                }
                sleep(secs(1 << attempt)).await;
            }
        }));
    }
    for call in calls {
        call.await.expect("no panic");
    }
    let served = up
        .attempts()
        .into_iter()
        .filter(|a| a.status == 200 && a.at >= from && a.at < scenario.duration);
    served.count()
}

#[tokio::test(start_paused = true)]
async fn metastable_retry_storm_outlasts_its_trigger() {
    let scenario = SimScenario {
        duration: secs(4 * 60),
        ..SimScenario::builtin("metastable").expect("built in")
    };
    let after = scenario.incident.end + secs(30);
    let single = served_after(&scenario, 1, after).await;
    assert!(single > 600, "one attempt a request recovers: {single}");
    let retried = served_after(&scenario, 4, after).await;
    assert_eq!(0, retried, "four attempts a request keep it overloaded");
}
