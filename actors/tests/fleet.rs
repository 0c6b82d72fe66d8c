//! Replicas sharing their breakers through a fleet store, in paused virtual time: three
//! engines on one in-memory store (the same seam Redis sits behind), each with its own
//! scripted upstream, compared with the same three engines deciding alone.

#[path = "support/fake.rs"]
#[allow(dead_code, unreachable_pub)]
mod fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakwater_actors::fleet::{Fleet, FleetConfig, MemoryStore, Mode, Store};
use breakwater_actors::policy::StateKind;
use breakwater_actors::{Class, Engine, EngineConfig, Failure, Target};
use fake::{Fake, Step, config, failing, ms, ok, overloaded, timeout};
use tokio::time::Instant;

fn chain() -> EngineConfig {
    let mut config = config(&["a", "b"]);
    config.retry.max_retries_per_target = 0;
    config
}

fn fleet_config(replica: usize) -> FleetConfig {
    FleetConfig {
        replica: format!("r{replica}"),
        ..FleetConfig::default()
    }
}

/// Three replicas, each on its own upstream where `a` answers `a_step` and `b` succeeds;
/// sharing `store` if given.
async fn replicas(store: Option<&MemoryStore>, a_steps: [Step; 3]) -> Replicas {
    let anchor = Instant::now();
    let mut out = Vec::new();
    for (i, a_step) in a_steps.into_iter().enumerate() {
        let fake = Arc::new(
            Fake::new()
                .default_for("a", a_step)
                .default_for("b", ok(10)),
        );
        let fleet = store.map(|store| Fleet {
            store: Arc::new(store.clone()) as Arc<dyn Store>,
            config: fleet_config(i),
            clock: (anchor, 1_000_000),
        });
        let mut config = chain();
        config.seed = Some(7 + i as u64);
        let engine = Engine::start_in(fake.clone(), config, fleet)
            .await
            .expect("engine starts");
        out.push((fake, engine));
    }
    // Let every link connect and read the records.
    tokio::time::sleep(ms(10)).await;
    Replicas {
        members: out,
        turn: AtomicUsize::new(0),
    }
}

struct Replicas {
    members: Vec<(Arc<Fake>, Engine<Fake>)>,
    /// Whose turn it is to take the next request.
    turn: AtomicUsize,
}

impl std::ops::Deref for Replicas {
    type Target = [(Arc<Fake>, Engine<Fake>)];

    fn deref(&self) -> &Self::Target {
        &self.members
    }
}

/// Sends one request to each replica in turn (carrying on where the last call left off),
/// every `gap`, for `duration`; every request must be answered.
async fn traffic(fleet: &Replicas, gap: Duration, duration: Duration) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let i = fleet.turn.fetch_add(1, Ordering::Relaxed);
        let (_, engine) = &fleet[i % fleet.len()];
        let answer = engine.send("hi".into(), timeout(2_000)).await;
        assert!(
            answer.is_ok(),
            "replica {} left a request unanswered: {answer:?}",
            i % 3
        );
        tokio::time::sleep(gap).await;
    }
}

fn calls_to_a(fleet: &[(Arc<Fake>, Engine<Fake>)]) -> usize {
    fleet.iter().map(|(fake, _)| fake.calls_to("a")).sum()
}

fn state_of(engine: &Engine<Fake>, model: &str) -> StateKind {
    let target = Target::new(model);
    engine
        .breakers()
        .into_iter()
        .find(|(t, _)| *t == target)
        .map(|(_, status)| status.state)
        .expect("the target has a breaker")
}

fn down() -> [Step; 3] {
    [overloaded(10), overloaded(10), overloaded(10)]
}

#[tokio::test(start_paused = true)]
async fn an_outage_costs_the_fleet_one_replicas_run_of_failures_not_three() {
    let store = MemoryStore::new();
    let shared = replicas(Some(&store), down()).await;
    traffic(&shared, ms(20), ms(1_000)).await;
    for (_, engine) in shared.iter() {
        assert_eq!(state_of(engine, "a"), StateKind::Open);
    }
    let alone = replicas(None, down()).await;
    traffic(&alone, ms(20), ms(1_000)).await;
    // Alone, each replica needs its own five failures in a row.
    assert_eq!(calls_to_a(&alone), 15);
    // Together, the fleet's five (from more than one replica) open every breaker.
    assert_eq!(calls_to_a(&shared), 5);
}

#[tokio::test(start_paused = true)]
async fn the_fleet_sends_one_probe_per_open_period() {
    let store = MemoryStore::new();
    let shared = replicas(Some(&store), down()).await;
    traffic(&shared, ms(20), ms(1_000)).await;
    let opened = calls_to_a(&shared);
    // Open 5 s, a failed probe, open 10 s, a failed probe: two probes in 16 s, fleet-wide.
    traffic(&shared, ms(20), ms(16_000)).await;
    assert_eq!(calls_to_a(&shared) - opened, 2);
    let alone = replicas(None, down()).await;
    traffic(&alone, ms(20), ms(1_000)).await;
    let opened = calls_to_a(&alone);
    traffic(&alone, ms(20), ms(16_000)).await;
    assert_eq!(
        calls_to_a(&alone) - opened,
        6,
        "alone, each replica probes for itself"
    );
}

#[tokio::test(start_paused = true)]
async fn a_successful_probe_closes_every_replicas_breaker() {
    let start = Instant::now();
    let store = MemoryStore::new();
    let shared = replicas(Some(&store), down()).await;
    traffic(&shared, ms(20), ms(1_000)).await;
    for (fake, _) in shared.iter() {
        fake.set_default("a", ok(10));
    }
    let all_closed = |fleet: &Replicas| {
        fleet
            .iter()
            .all(|(_, engine)| state_of(engine, "a") == StateKind::Closed)
    };
    while !all_closed(&shared) {
        assert!(
            Instant::now() < start + ms(8_000),
            "the fleet's breaker closes"
        );
        traffic(&shared, ms(20), ms(30)).await;
    }
    assert_eq!(calls_to_a(&shared), 5 + 1, "one probe closed every breaker");
    let before: Vec<usize> = shared.iter().map(|(fake, _)| fake.calls_to("a")).collect();
    traffic(&shared, ms(20), ms(300)).await;
    for ((fake, _), before) in shared.iter().zip(before) {
        assert!(
            fake.calls_to("a") > before,
            "traffic returns to `a` on every replica"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn one_replicas_own_connection_failures_do_not_open_the_others() {
    let store = MemoryStore::new();
    let refused = Failure::new(Class::Connect, "connection refused");
    let shared = replicas(Some(&store), [failing(refused, 1), ok(10), ok(10)]).await;
    traffic(&shared, ms(20), ms(2_000)).await;
    assert_eq!(
        state_of(&shared[0].1, "a"),
        StateKind::Open,
        "its own breaker opens"
    );
    assert_eq!(state_of(&shared[1].1, "a"), StateKind::Closed);
    assert_eq!(state_of(&shared[2].1, "a"), StateKind::Closed);
}

#[tokio::test(start_paused = true)]
async fn with_the_store_down_every_replica_decides_alone_and_rejoins_when_it_is_back() {
    let store = MemoryStore::new();
    let shared = replicas(Some(&store), down()).await;
    store.set_down(true);
    traffic(&shared, ms(20), ms(1_000)).await;
    for (_, engine) in shared.iter() {
        assert_eq!(engine.fleet().expect("in a fleet").mode, Mode::Local);
        assert_eq!(
            state_of(engine, "a"),
            StateKind::Open,
            "opened on its own evidence"
        );
    }
    assert_eq!(calls_to_a(&shared), 15);
    store.set_down(false);
    tokio::time::sleep(ms(1_500)).await;
    for (_, engine) in shared.iter() {
        let report = engine.fleet().expect("in a fleet");
        assert_eq!((report.mode, report.live_replicas), (Mode::Shared, 3));
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_holding_garbage_keeps_that_target_local_and_is_left_alone() {
    let store = MemoryStore::new();
    store.put_raw("{a}:breaker", "hello");
    let shared = replicas(Some(&store), down()).await;
    traffic(&shared, ms(20), ms(1_000)).await;
    for (_, engine) in shared.iter() {
        let report = engine.fleet().expect("in a fleet");
        assert_eq!(report.unreadable, vec!["a".to_owned()]);
        assert_eq!(report.mode, Mode::Shared, "the other targets still share");
        assert_eq!(state_of(engine, "a"), StateKind::Open);
    }
    assert_eq!(calls_to_a(&shared), 15, "each replica opened on its own");
    let kept = store
        .get("{a}:breaker")
        .await
        .expect("reachable")
        .expect("kept");
    assert_eq!(kept.value, "hello");
}

#[tokio::test(start_paused = true)]
async fn a_bad_fleet_setting_is_refused_by_name() {
    let fleet = Fleet {
        store: Arc::new(MemoryStore::new()),
        config: FleetConfig {
            quorum: 0,
            ..FleetConfig::default()
        },
        clock: (Instant::now(), 0),
    };
    let error = Engine::start_in(Arc::new(Fake::new()), chain(), Some(fleet))
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("quorum"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_replica_granted_the_probe_with_no_request_gives_it_to_one_that_has() {
    let start = Instant::now();
    let store = MemoryStore::new();
    let shared = replicas(Some(&store), down()).await;
    traffic(&shared, ms(20), ms(1_000)).await;
    for (fake, _) in shared.iter() {
        fake.set_default("a", ok(10));
    }
    // From now on only the first replica has traffic; whoever claims first, it probes.
    let first = &shared[0].1;
    while state_of(first, "a") != StateKind::Closed {
        assert!(
            Instant::now() < start + ms(10_000),
            "the probe reaches a replica with traffic"
        );
        assert!(first.send("hi".into(), timeout(2_000)).await.is_ok());
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(
        calls_to_a(&shared),
        5 + 1,
        "one probe, by the replica with traffic"
    );
}

/// Three replicas of a chain whose `a` may run `concurrency` attempts at once, fleet-wide.
async fn capped(store: &MemoryStore, concurrency: u32) -> Replicas {
    let anchor = Instant::now();
    let mut members = Vec::new();
    for i in 0..3 {
        let fake = Arc::new(
            Fake::new()
                .default_for("a", ok(50))
                .default_for("b", ok(10)),
        );
        let mut config = chain();
        for (target, limits) in &mut config.targets {
            if target.model() == "a" {
                limits.concurrency = concurrency.try_into().expect("positive");
                limits.adaptive = false;
            }
        }
        let fleet = Fleet {
            store: Arc::new(store.clone()),
            config: fleet_config(i),
            clock: (anchor, 1_000_000),
        };
        let engine = Engine::start_in(fake.clone(), config, Some(fleet))
            .await
            .expect("starts");
        members.push((fake, engine));
    }
    Replicas {
        members,
        turn: AtomicUsize::new(0),
    }
}

fn cap_of(engine: &Engine<Fake>) -> u32 {
    engine
        .board()
        .load(&Target::new("a"))
        .expect("a has a worker")
        .limit
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_cap_is_the_fleets_split_by_each_replicas_demand() {
    let store = MemoryStore::new();
    let fleet = capped(&store, 30).await;
    // Even demand: each replica gets a third of the cap (once every replica has reported
    // its demand twice: one report counts from the previous one).
    traffic(&fleet, ms(10), ms(5_000)).await;
    for (_, engine) in fleet.iter() {
        let share = engine.board().share(&Target::new("a"));
        assert!((0.25..0.42).contains(&share), "share {share}");
        assert!((9..=13).contains(&cap_of(engine)), "cap {}", cap_of(engine));
    }
    // Only the first replica has demand now: it gets nearly all of it, the others a slot or
    // two (their share is 1 / (its rate + 3)).
    let first = &fleet[0].1;
    let end = Instant::now() + ms(5_000);
    while Instant::now() < end {
        assert!(first.send("hi".into(), timeout(2_000)).await.is_ok());
        tokio::time::sleep(ms(5)).await;
    }
    assert!(cap_of(first) >= 25, "cap {}", cap_of(first));
    for (_, idle) in &fleet[1..] {
        assert!(cap_of(idle) <= 2, "cap {}", cap_of(idle));
    }
    let total: u32 = fleet.iter().map(|(_, engine)| cap_of(engine)).sum();
    assert!(
        total <= 30 + 3,
        "the fleet runs about its cap, not three times it: {total}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_goes_local_takes_the_whole_cap_again() {
    let store = MemoryStore::new();
    let fleet = capped(&store, 30).await;
    traffic(&fleet, ms(10), ms(3_000)).await;
    assert!(cap_of(&fleet[0].1) < 30);
    store.set_down(true);
    traffic(&fleet, ms(10), ms(1_500)).await;
    for (_, engine) in fleet.iter() {
        assert!(engine.board().share(&Target::new("a")) >= 1.0);
        assert_eq!(cap_of(engine), 30);
    }
}

#[tokio::test(start_paused = true)]
async fn replicas_following_an_open_fleet_breaker_decide_alone_once_its_record_turns_unreadable() {
    let start = Instant::now();
    let store = MemoryStore::new();
    let shared = replicas(Some(&store), down()).await;
    traffic(&shared, ms(20), ms(1_000)).await;
    for (fake, engine) in shared.iter() {
        assert_eq!(state_of(engine, "a"), StateKind::Open);
        fake.set_default("a", ok(10));
    }
    // Another version writes a record this one cannot read: each replica's breaker stays
    // open only as long as it would have alone, then probes for itself.
    store.put_raw("{a}:breaker", "{\"format\":2}");
    while shared
        .iter()
        .any(|(_, engine)| state_of(engine, "a") != StateKind::Closed)
    {
        assert!(
            Instant::now() < start + ms(10_000),
            "every replica closes on its own"
        );
        traffic(&shared, ms(20), ms(30)).await;
    }
    for (_, engine) in shared.iter() {
        assert_eq!(
            engine.fleet().expect("in a fleet").unreadable,
            vec!["a".to_owned()]
        );
    }
}
