//! A fleet as it runs: three `breakwater serve` processes sharing state through a real
//! `redis-server`, in front of one mock API whose primary model goes down, compared with one
//! process alone at the same total traffic. Real time, millisecond settings.

#[path = "support/redis.rs"]
#[allow(dead_code)]
mod redis_server;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use breakwater::mock::{MockServer, Scenario};
use redis_server::RedisServer;
use serde_json::Value;
use tokio::time::Instant;

const PRIMARY: &str = "claude-sonnet-5-5";

/// The mock on `port` (0: any): the primary down from `down.0` to `down.1` ms after it starts,
/// the fallback healthy, both answering in about 5 ms.
async fn mock(port: u16, down: (u64, u64)) -> MockServer {
    let text = format!(
        "seed = 0\nenforce-catalog = false\n\
         [models.{PRIMARY}]\nslots = 64\nservice-time = \"5ms\"\n\
         brownouts = [{{ start = \"{}ms\", end = \"{}ms\", fraction = 0.0 }}]\n\
         [models.claude-haiku-5-5]\nslots = 64\nservice-time = \"5ms\"\n",
        down.0, down.1
    );
    let scenario = Scenario::from_toml(&text).expect("a valid scenario");
    MockServer::start(scenario, ([127, 0, 0, 1], port).into())
        .await
        .expect("the mock starts")
}

/// The gateways' configuration: no retry on the same model (a 529 falls back at once), a
/// breaker that opens for exactly 300 ms each time, and a fleet that beats every 100 ms.
fn config() -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let text = format!(
        "[models.{PRIMARY}]\n[models.claude-haiku-5-5]\n\
         [chains]\ndefault = [\"{PRIMARY}\", \"claude-haiku-5-5\"]\n\
         [retry]\nmax-retries-per-target = 0\n\
         [breaker]\nopen-for = \"300ms\"\nmax-open-for = \"300ms\"\nopen-jitter = 0.0\n\
         [throttle]\nenabled = false\n\
         [catalog]\nrefresh = false\n\
         [cluster]\nheartbeat = \"100ms\"\nmember-ttl = \"500ms\"\nretry = \"100ms\"\n\
         resync = \"200ms\"\nprobe-idle = \"100ms\"\ncall-timeout = \"300ms\"\n"
    );
    file.write_all(text.as_bytes()).unwrap();
    file
}

/// One `breakwater serve` process; killed when dropped.
struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn gateway(
    upstream: &str,
    config: &tempfile::NamedTempFile,
    redis: Option<&str>,
    name: &str,
) -> Gateway {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breakwater"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--base-url",
            upstream,
            "--config",
        ])
        .arg(config.path())
        .args(["--replica", name])
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env_remove("ANTHROPIC_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(redis) = redis {
        command.args(["--redis", redis]);
    }
    let mut child = command.spawn().expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let base = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        // Keep reading, so that the gateway never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        first.rsplit(' ').next().unwrap().to_owned()
    })
    .await
    .unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    Gateway { child, base }
}

async fn state(client: &reqwest::Client, gateway: &Gateway) -> Value {
    client
        .get(format!("{}/v1/breakwater/state", gateway.base))
        .send()
        .await
        .expect("the state endpoint answers")
        .json()
        .await
        .expect("as JSON")
}

fn breaker_of(state: &Value, model: &str) -> String {
    state["models"]
        .as_array()
        .and_then(|models| models.iter().find(|m| m["model"] == model))
        .map_or("none".to_owned(), |m| {
            m["breaker"].as_str().unwrap_or("?").to_owned()
        })
}

/// Waits until every gateway shares state with all of them.
async fn joined(client: &reqwest::Client, fleet: &[Gateway]) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ready = true;
        for gateway in fleet {
            let state = state(client, gateway).await;
            let fleet_state = &state["fleet"];
            ready &= fleet_state["mode"] == "shared"
                && fleet_state["live_replicas"].as_u64() == Some(fleet.len() as u64);
        }
        if ready {
            return;
        }
        assert!(Instant::now() < until, "the fleet did not form");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request, round-robin over `fleet`; returns its status.
async fn send(client: &reqwest::Client, fleet: &[Gateway], turn: usize) -> u16 {
    let gateway = &fleet[turn % fleet.len()];
    let body = format!(
        r#"{{"model":"{PRIMARY}","max_tokens":16,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    client
        .post(format!("{}/v1/messages", gateway.base))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(body)
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

/// Requests one after another, round-robin, for `duration`: how many were answered 200,
/// out of how many.
async fn traffic(
    client: &reqwest::Client,
    fleet: &[Gateway],
    duration: Duration,
) -> (usize, usize) {
    let end = Instant::now() + duration;
    let (mut ok, mut sent) = (0, 0);
    while Instant::now() < end {
        ok += usize::from(send(client, fleet, sent).await == 200);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (ok, sent)
}

/// The primary's breaker transitions to half-open on `gateway`, from its metrics: each is a
/// probe it was let through to send (in a fleet, only the replica that claimed the probe
/// half-opens; the others stay open).
async fn half_opened(client: &reqwest::Client, gateway: &Gateway) -> u64 {
    let text = client
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("as text");
    let target = format!("target=\"{PRIMARY}\"");
    text.lines()
        .filter(|line| line.starts_with("breakwater_breaker_transitions_total{"))
        .filter(|line| line.contains(&target) && line.contains("to=\"half_open\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

fn overloaded(mock: &MockServer) -> u64 {
    mock.stats().models[PRIMARY]
        .by_status
        .get("529")
        .copied()
        .unwrap_or(0)
}

/// Runs the outage against `replicas` gateways: the primary down from 300 ms to 1.8 s after
/// the traffic starts, which lasts 2.2 s. Returns the 529s the primary answered, and how
/// many times the replicas half-opened its breaker, all together.
async fn outage(redis: Option<&RedisServer>, replicas: usize) -> (u64, u64) {
    let client = reqwest::Client::new();
    let config = config();
    // The gateways start first, pointed at the port the mock will take, so that the mock's
    // clock (and its outage) starts with the traffic.
    let port = redis_server::free_port();
    let upstream = format!("http://127.0.0.1:{port}");
    let url = redis.map(RedisServer::url);
    let mut fleet = Vec::new();
    for i in 0..replicas {
        fleet.push(gateway(&upstream, &config, url.as_deref(), &format!("r{i}")).await);
    }
    if redis.is_some() {
        joined(&client, &fleet).await;
    }
    let mock = mock(port, (300, 1_800)).await;
    let (ok, sent) = traffic(&client, &fleet, Duration::from_millis(2_200)).await;
    assert_eq!(
        ok, sent,
        "every request is answered, by the fallback while the primary is down"
    );
    let mut half_opened_total = 0;
    for gateway in &fleet {
        half_opened_total += half_opened(&client, gateway).await;
    }
    (overloaded(&mock), half_opened_total)
}

#[tokio::test]
async fn an_outage_costs_a_fleet_of_three_no_more_than_one_replica_and_one_probe_per_open_period() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (alone, alone_probes) = outage(None, 1).await;
    let (fleet, fleet_probes) = outage(Some(&redis), 3).await;
    let (apart, apart_probes) = outage(None, 3).await;
    eprintln!(
        "529s met: one replica {alone}, three sharing {fleet}, three apart {apart}; \
         half-open periods: {alone_probes}, {fleet_probes}, {apart_probes}"
    );
    // One replica half-opens once per open period; a fleet of three, once per period too
    // (one replica claims each probe), where three apart half-open three times as often.
    assert!(
        alone_probes >= 3,
        "the outage spans several open periods: {alone_probes}"
    );
    assert!(
        fleet_probes <= alone_probes + 1,
        "probes: fleet {fleet_probes}, one replica {alone_probes}"
    );
    assert!(
        apart_probes >= 2 * alone_probes,
        "apart {apart_probes}, alone {alone_probes}"
    );
    // Alone: five to trip, then one probe per 300 ms open period over about 1.5 s.
    assert!(alone >= 5 + 3, "the outage was met: {alone}");
    assert!(
        fleet as f64 <= 1.25 * alone as f64,
        "three replicas sharing met {fleet} 529s, one alone {alone}"
    );
    // Apart, each replica trips and probes for itself.
    assert!(
        apart as f64 >= 2.0 * alone as f64,
        "apart {apart}, alone {alone}"
    );
}

#[tokio::test]
async fn a_replica_whose_own_connection_fails_does_not_open_the_others() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let client = reqwest::Client::new();
    let config = config();
    let mock = mock(0, (60_000, 60_001)).await;
    let url = redis.url();
    let refused = format!("http://127.0.0.1:{}", redis_server::free_port());
    let fleet = vec![
        gateway(&refused, &config, Some(&url), "r0").await,
        gateway(&mock.base_url(), &config, Some(&url), "r1").await,
        gateway(&mock.base_url(), &config, Some(&url), "r2").await,
    ];
    joined(&client, &fleet).await;
    let began = Instant::now();
    for turn in 0..60 {
        let status = send(&client, &fleet, turn).await;
        if turn % 3 != 0 {
            assert_eq!(status, 200, "a healthy replica answers");
        }
    }
    let states = [
        state(&client, &fleet[0]).await,
        state(&client, &fleet[1]).await,
        state(&client, &fleet[2]).await,
    ];
    // Its own breaker opened (and may be half-open by now: it opens for 300 ms at a time).
    assert_ne!(
        breaker_of(&states[0], PRIMARY),
        "closed",
        "its own breaker opens"
    );
    let traffic_ms = began.elapsed().as_millis() as u64;
    for state in &states[1..] {
        assert_eq!(breaker_of(state, PRIMARY), "closed");
        let model = state["models"]
            .as_array()
            .and_then(|models| models.iter().find(|m| m["model"] == PRIMARY))
            .expect("the primary is served");
        let closed_for = model["breaker_for_ms"].as_u64().unwrap_or(0);
        assert!(
            closed_for >= traffic_ms,
            "closed all along: {closed_for} ms of {traffic_ms}"
        );
    }
}

#[tokio::test]
async fn with_redis_killed_every_request_is_answered_and_the_fleet_shares_again_when_it_is_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let client = reqwest::Client::new();
    let config = config();
    let mock = mock(0, (60_000, 60_001)).await;
    let url = redis.url();
    let mut fleet = Vec::new();
    for i in 0..3 {
        fleet.push(gateway(&mock.base_url(), &config, Some(&url), &format!("r{i}")).await);
    }
    joined(&client, &fleet).await;
    redis.kill();
    let (ok, sent) = traffic(&client, &fleet, Duration::from_secs(1)).await;
    assert_eq!(ok, sent, "every request answered with Redis gone");
    for gateway in &fleet {
        let state = state(&client, gateway).await;
        assert_eq!(state["fleet"]["mode"], "local", "{state}");
        let error = state["fleet"]["last_error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "the state says why: {state}");
    }
    redis.restart().await;
    joined(&client, &fleet).await;
    let (ok, sent) = traffic(&client, &fleet, Duration::from_millis(300)).await;
    assert_eq!(ok, sent);
}
