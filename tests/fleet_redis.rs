//! The fleet's Redis store against a real `redis-server` on loopback (one per test): the same
//! semantics as the engine's `MemoryStore` (compare-and-swap, published writes, heartbeats),
//! garbage left alone, clear errors without secrets, and an outage survived.

#[path = "support/redis.rs"]
mod redis_server;

use std::time::Duration;

use breakwater::engine::fleet::{Published, Store, StoreError, Swap, Versioned};
use breakwater::fleet::RedisStore;
use futures::StreamExt;
use futures::stream::BoxStream;
use redis::AsyncCommands;
use redis_server::RedisServer;
use tokio::time::Instant;

const PREFIX: &str = "bw-test";
const KEY: &str = "{model-x}:breaker";

async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url(), PREFIX)
        .await
        .expect("the store connects")
}

/// A plain connection, to look at and plant what is stored.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn versioned(version: u64, value: &str) -> Versioned {
    Versioned {
        version,
        value: value.to_owned(),
    }
}

async fn next_event(events: &mut BoxStream<'static, Published>) -> Published {
    tokio::time::timeout(Duration::from_secs(2), events.next())
        .await
        .expect("a write is published in time")
        .expect("the subscription is open")
}

#[tokio::test]
async fn a_swap_on_an_absent_key_writes_version_one_and_publishes_it_unprefixed() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = connect(&server).await;
    let mut events = store.subscribe().await.unwrap();
    assert_eq!(store.get(KEY).await.unwrap(), None);

    let value = r#"{"state":"open"}"#;
    assert_eq!(
        store.swap(KEY, 0, value.to_owned()).await.unwrap(),
        Swap::Written(1)
    );
    let event = next_event(&mut events).await;
    assert_eq!(
        event,
        Published {
            key: KEY.to_owned(),
            value: versioned(1, value),
        }
    );
    assert_eq!(store.get(KEY).await.unwrap(), Some(versioned(1, value)));

    // Stored under the prefix, as a hash of version and data.
    let mut raw = raw(&server).await;
    let (v, d): (String, String) = redis::cmd("HMGET")
        .arg("bw-test:{model-x}:breaker")
        .arg("v")
        .arg("d")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!((v.as_str(), d.as_str()), ("1", value));

    // A message that is not a write is skipped; the next write still arrives.
    let _: i64 = raw.publish("bw-test:events", "not a write").await.unwrap();
    assert_eq!(
        store.swap(KEY, 1, "two".to_owned()).await.unwrap(),
        Swap::Written(2)
    );
    assert_eq!(next_event(&mut events).await.value, versioned(2, "two"));
}

#[tokio::test]
async fn a_stale_swap_conflicts_and_returns_what_the_key_holds() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = connect(&server).await;
    let mut events = store.subscribe().await.unwrap();
    assert_eq!(
        store.swap(KEY, 0, "one".to_owned()).await.unwrap(),
        Swap::Written(1)
    );
    assert_eq!(
        store.swap(KEY, 0, "stale".to_owned()).await.unwrap(),
        Swap::Conflict(Some(versioned(1, "one")))
    );
    assert_eq!(
        store.swap(KEY, 5, "ahead".to_owned()).await.unwrap(),
        Swap::Conflict(Some(versioned(1, "one")))
    );
    assert_eq!(
        store
            .swap("{other}:breaker", 3, "x".to_owned())
            .await
            .unwrap(),
        Swap::Conflict(None)
    );
    assert_eq!(
        store.swap(KEY, 1, "two".to_owned()).await.unwrap(),
        Swap::Written(2)
    );
    // Conflicts publish nothing: the events are the two writes.
    assert_eq!(next_event(&mut events).await.value, versioned(1, "one"));
    assert_eq!(next_event(&mut events).await.value, versioned(2, "two"));
}

#[tokio::test]
async fn of_two_concurrent_swaps_at_the_same_version_exactly_one_wins() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (connect(&server).await, connect(&server).await);
    for expect in 0..20 {
        let (left, right) = tokio::join!(
            a.swap(KEY, expect, format!("a{expect}")),
            b.swap(KEY, expect, format!("b{expect}")),
        );
        let (left, right) = (left.unwrap(), right.unwrap());
        let winner = match (&left, &right) {
            (Swap::Written(v), Swap::Conflict(Some(held)))
            | (Swap::Conflict(Some(held)), Swap::Written(v)) => {
                assert_eq!(*v, expect + 1);
                assert_eq!(held.version, expect + 1);
                held.value.clone()
            }
            other => panic!("round {expect}: not exactly one winner: {other:?}"),
        };
        let expected_winner = if matches!(left, Swap::Written(_)) {
            "a"
        } else {
            "b"
        };
        assert_eq!(winner, format!("{expected_winner}{expect}"));
    }
    assert_eq!(a.get(KEY).await.unwrap().unwrap().version, 20);
}

#[tokio::test]
async fn a_value_with_line_breaks_round_trips_through_the_subscription() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = connect(&server).await;
    let mut events = store.subscribe().await.unwrap();
    let value = "line one\nline two\n\n{\"x\":1}\n";
    assert_eq!(
        store.swap(KEY, 0, value.to_owned()).await.unwrap(),
        Swap::Written(1)
    );
    let event = next_event(&mut events).await;
    assert_eq!(event.key, KEY);
    assert_eq!(event.value, versioned(1, value));
    assert_eq!(store.get(KEY).await.unwrap(), Some(versioned(1, value)));
}

#[tokio::test]
async fn garbage_is_reported_from_get_and_swap_and_left_untouched() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = connect(&server).await;
    let mut raw = raw(&server).await;
    let _: () = raw.set("bw-test:{s}:breaker", "hello").await.unwrap();
    let _: () = raw.hset("bw-test:{h}:breaker", "d", "data").await.unwrap();
    let _: () = raw
        .hset_multiple("bw-test:{n}:breaker", &[("v", "one"), ("d", "data")])
        .await
        .unwrap();
    let _: () = raw.hset("bw-test:{d}:breaker", "v", "3").await.unwrap();
    let cases = [
        ("{s}:breaker", "a string, not a breakwater record"),
        ("{h}:breaker", "without a version"),
        ("{n}:breaker", "not a positive integer"),
        ("{d}:breaker", "without data"),
    ];
    for (key, reason) in cases {
        for result in [
            store.get(key).await.map(|_| ()),
            store.swap(key, 0, "new".to_owned()).await.map(|_| ()),
            store.swap(key, 3, "new".to_owned()).await.map(|_| ()),
        ] {
            match result {
                Err(StoreError::Garbage { key: k, reason: r }) => {
                    assert_eq!(k, key);
                    assert!(r.contains(reason), "{key}: {r}");
                }
                other => panic!("{key}: expected garbage, got {other:?}"),
            }
        }
    }
    let s: String = raw.get("bw-test:{s}:breaker").await.unwrap();
    assert_eq!(s, "hello");
    let h: Vec<(String, String)> = raw.hgetall("bw-test:{h}:breaker").await.unwrap();
    assert_eq!(h, vec![("d".to_owned(), "data".to_owned())]);
    let v: String = raw.hget("bw-test:{n}:breaker", "v").await.unwrap();
    assert_eq!(v, "one");

    // The membership set too.
    let _: () = raw.set("bw-test:members", "x").await.unwrap();
    let ttl = Duration::from_secs(1);
    assert!(matches!(
        store.heartbeat("r1", 1_000, ttl).await,
        Err(StoreError::Garbage { key, .. }) if key == "members"
    ));
    assert!(matches!(
        store.leave("r1").await,
        Err(StoreError::Garbage { .. })
    ));
    let members: String = raw.get("bw-test:members").await.unwrap();
    assert_eq!(members, "x");
}

#[tokio::test]
async fn a_wrong_port_or_url_is_unreachable_with_a_clear_message() {
    let port = redis_server::free_port();
    let started = Instant::now();
    let url = format!("redis://127.0.0.1:{port}");
    let err = RedisStore::connect(&url, PREFIX).await.unwrap_err();
    let StoreError::Unreachable(message) = err else {
        panic!("expected Unreachable, got {err:?}")
    };
    assert!(
        message.starts_with(&format!("cannot reach Redis at redis://127.0.0.1:{port}: ")),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    for url in [
        "http://127.0.0.1:6379",
        "redis://:hunter2@127.0.0.1:notaport",
    ] {
        let err = RedisStore::connect(url, PREFIX).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("invalid Redis URL"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[tokio::test]
async fn credentials_are_checked_at_connect_and_never_shown() {
    let password = "s3cret-pass";
    let Some(server) = RedisServer::start_with_password(password).await else {
        return;
    };
    let port = server.port();
    for (url, expected) in [
        (
            format!("redis://:wrong-pass@127.0.0.1:{port}"),
            format!("Redis refused the credentials for redis://:***@127.0.0.1:{port}"),
        ),
        (
            format!("redis://default:wrong-pass@127.0.0.1:{port}/0"),
            format!("Redis refused the credentials for redis://default:***@127.0.0.1:{port}"),
        ),
        (
            server.url_without_password(),
            format!(
                "Redis at redis://127.0.0.1:{port} requires a password, and the URL gives none"
            ),
        ),
    ] {
        let err = RedisStore::connect(&url, PREFIX).await.unwrap_err();
        let shown = format!("{err} / {err:?}");
        assert_eq!(err, StoreError::Unreachable(expected), "{url}");
        assert!(
            !shown.contains("wrong-pass") && !shown.contains(password),
            "{shown}"
        );
    }

    let store = connect(&server).await;
    let debug = format!("{store:?}");
    assert!(!debug.contains(password), "{debug}");
    assert!(
        debug.contains(&format!("redis://:***@127.0.0.1:{port}")),
        "{debug}"
    );
    assert!(debug.contains(PREFIX), "{debug}");
    assert_eq!(
        store.swap(KEY, 0, "v".to_owned()).await.unwrap(),
        Swap::Written(1)
    );
    let mut events = store.subscribe().await.unwrap();
    assert_eq!(
        store.swap(KEY, 1, "w".to_owned()).await.unwrap(),
        Swap::Written(2)
    );
    assert_eq!(next_event(&mut events).await.value, versioned(2, "w"));
}

#[tokio::test]
async fn heartbeats_return_the_living_and_forget_the_expired() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = connect(&server).await;
    let second = Duration::from_secs(1);
    assert_eq!(store.heartbeat("b", 1_000, second).await.unwrap(), ["b"]);
    // Sorted by name, not by expiry.
    assert_eq!(
        store.heartbeat("a", 1_200, 5 * second).await.unwrap(),
        ["a", "b"]
    );
    // b's time ran out at 2 000 (inclusive, as in the memory store).
    assert_eq!(
        store.heartbeat("c", 2_000, second).await.unwrap(),
        ["a", "c"]
    );
    store.leave("a").await.unwrap();
    store.leave("nobody").await.unwrap();
    assert_eq!(store.heartbeat("c", 2_500, second).await.unwrap(), ["c"]);

    let mut raw = raw(&server).await;
    let score: f64 = raw.zscore("bw-test:members", "c").await.unwrap();
    assert!((score - 3_500.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn an_outage_fails_calls_ends_the_subscription_and_a_restart_is_picked_up() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let store = connect(&server).await;
    let mut events = store.subscribe().await.unwrap();
    assert_eq!(
        store.swap(KEY, 0, "one".to_owned()).await.unwrap(),
        Swap::Written(1)
    );
    assert_eq!(next_event(&mut events).await.value.version, 1);

    server.kill();
    let started = Instant::now();
    for _ in 0..3 {
        match store.get(KEY).await {
            Err(StoreError::Unreachable(message)) => {
                assert!(
                    message.contains(&format!("127.0.0.1:{}", server.port())),
                    "{message}"
                );
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
    assert!(matches!(
        store.subscribe().await,
        Err(StoreError::Unreachable(_))
    ));
    assert!(matches!(
        store.heartbeat("r", 1, Duration::from_secs(1)).await,
        Err(StoreError::Unreachable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let ended = tokio::time::timeout(Duration::from_secs(2), events.next()).await;
    assert_eq!(ended.expect("the stream ends at once"), None);

    // Back, empty, on the same port: the same store reconnects (the first call may still
    // find the old connection gone).
    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.get(KEY).await {
            Ok(found) => {
                assert_eq!(found, None);
                break;
            }
            Err(err) if Instant::now() < deadline => {
                eprintln!("not yet: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the store did not reconnect: {err}"),
        }
    }
    let mut events = store.subscribe().await.unwrap();
    assert_eq!(
        store.swap(KEY, 0, "again".to_owned()).await.unwrap(),
        Swap::Written(1)
    );
    assert_eq!(next_event(&mut events).await.value, versioned(1, "again"));
}

#[tokio::test]
async fn a_report_keeps_each_replicas_field_until_it_expires_as_the_memory_store_does() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let redis = connect(&server).await;
    let memory = breakwater::engine::fleet::MemoryStore::new();
    let stores: [&dyn Store; 2] = [&redis, &memory];
    let ttl = Duration::from_secs(1);
    let table = "{model-x}:demand";
    for store in stores {
        let sorted = |mut fields: Vec<(String, String)>| {
            fields.sort();
            fields
        };
        let pair = |f: &str, v: &str| (f.to_owned(), v.to_owned());
        let first = store
            .report(table, "r1", "2.5".into(), 1_000, ttl)
            .await
            .unwrap();
        assert_eq!(first, [pair("r1", "2.5")]);
        let both = store
            .report(table, "r2", "1|0".into(), 1_500, ttl)
            .await
            .unwrap();
        assert_eq!(sorted(both), [pair("r1", "2.5"), pair("r2", "1|0")]);
        // r1's report ran out at 2 000; r2's value keeps its own `|`.
        let later = store
            .report(table, "r2", "4".into(), 2_000, ttl)
            .await
            .unwrap();
        assert_eq!(later, [pair("r2", "4")]);
    }
    let mut raw = raw(&server).await;
    let _: () = raw.set("bw-test:{model-y}:demand", "hello").await.unwrap();
    let error = redis
        .report("{model-y}:demand", "r1", "1".into(), 1, ttl)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Garbage { .. }), "{error}");
    let kept: String = raw.get("bw-test:{model-y}:demand").await.unwrap();
    assert_eq!(kept, "hello");
    // Another program's hash at the same place is left whole too.
    let _: () = raw
        .hset("bw-test:{model-z}:demand", "name", "theirs")
        .await
        .unwrap();
    let error = redis
        .report("{model-z}:demand", "r1", "1".into(), 1, ttl)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Garbage { .. }), "{error}");
    let theirs: Vec<(String, String)> = raw.hgetall("bw-test:{model-z}:demand").await.unwrap();
    assert_eq!(theirs, [("name".to_owned(), "theirs".to_owned())]);
}

/// A runtime over the mock that joins the fleet at `redis`, and waits until its link has
/// tried the store once.
async fn runtime_with_redis(
    redis: &str,
) -> (breakwater::mock::MockServer, breakwater::runtime::Runtime) {
    let scenario = breakwater::mock::Scenario::from_toml("[models.p]\nservice-time = \"1ms\"\n")
        .expect("a valid scenario");
    let mock = breakwater::mock::MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("the mock starts");
    let runtime = breakwater::runtime::Runtime::builder()
        .chain(["p"])
        .base_url(mock.base_url())
        .credentials(breakwater::client::Credentials::ApiKey(
            breakwater::client::Secret::new("k"),
        ))
        .redis(redis)
        .start()
        .await
        .expect("a runtime starts whatever Redis says");
    let until = Instant::now() + Duration::from_secs(5);
    while runtime.fleet().expect("in a fleet").mode == breakwater::engine::fleet::Mode::Starting {
        assert!(Instant::now() < until, "the link tried the store");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (mock, runtime)
}

#[tokio::test]
async fn wrong_credentials_an_unreachable_host_or_garbage_leave_the_runtime_answering_locally() {
    let Some(server) = RedisServer::start_with_password("s3cret-pass").await else {
        return;
    };
    let wrong = format!("redis://:wrong-pass@127.0.0.1:{}", server.port());
    let nobody = format!("redis://127.0.0.1:{}", redis_server::free_port());
    for (url, says) in [
        (wrong.as_str(), "credentials"),
        (nobody.as_str(), "cannot reach"),
    ] {
        let (_mock, runtime) = runtime_with_redis(url).await;
        let report = runtime.fleet().expect("in a fleet");
        assert_eq!(report.mode, breakwater::engine::fleet::Mode::Local);
        let error = report.last_error.clone().expect("it says why");
        assert!(error.contains(says), "{error}");
        assert!(!error.contains("wrong-pass") && !format!("{report:?}").contains("wrong-pass"));
        let answer = runtime
            .send(breakwater::api::MessagesRequest::new("p", 32).with_user("hi"))
            .await;
        assert!(answer.is_ok(), "it answers alone: {answer:?}");
    }
    // Garbage where a breaker's record belongs: that model stays local, the rest shares.
    let mut raw = raw(&server).await;
    let _: () = raw
        .set("breakwater:{p}:breaker", "from an older version")
        .await
        .unwrap();
    let (_mock, runtime) = runtime_with_redis(&server.url()).await;
    let until = Instant::now() + Duration::from_secs(5);
    while runtime.fleet().expect("in a fleet").unreadable.is_empty() {
        assert!(Instant::now() < until, "the garbage is noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = runtime.fleet().expect("in a fleet");
    assert_eq!(
        (report.mode, report.unreadable),
        (
            breakwater::engine::fleet::Mode::Shared,
            vec!["p".to_owned()]
        )
    );
    assert!(
        runtime
            .send(breakwater::api::MessagesRequest::new("p", 32).with_user("hi"))
            .await
            .is_ok()
    );
    let kept: String = raw.get("breakwater:{p}:breaker").await.unwrap();
    assert_eq!(kept, "from an older version");
}
