//! The mock server over real HTTP: one server per test on `127.0.0.1:0`, real time,
//! millisecond-scale settings.

use std::net::SocketAddr;
use std::time::Duration;

use breakwater::mock::{MockServer, Scenario, Stats};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

const KEY: &str = "sk-mock-test";

async fn start(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    start_scenario(scenario).await
}

async fn start_scenario(scenario: Scenario) -> MockServer {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    MockServer::start(scenario, addr)
        .await
        .expect("binds a free loopback port")
}

fn request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello mock"}],
    })
}

async fn post(client: &Client, server: &MockServer, body: &Value) -> reqwest::Result<Response> {
    client
        .post(format!("{}/v1/messages", server.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
}

async fn send(server: &MockServer, model: &str) -> Response {
    post(&Client::new(), server, &request(model, false))
        .await
        .expect("server answers")
}

async fn error_type(response: Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!("error", body["type"]);
    assert!(
        body["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("req_mock_")),
        "{body}"
    );
    body["error"]["type"]
        .as_str()
        .expect("error.type")
        .to_owned()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Waits, by polling the in-process snapshot, until `done` holds.
async fn wait_for(server: &MockServer, done: impl Fn(&Stats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&server.stats()) {
        assert!(
            Instant::now() < deadline,
            "condition not reached: {:?}",
            server.stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn missing_key_gets_401() {
    let server = start_scenario(Scenario::builtin("healthy").expect("built in")).await;
    let response = Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .json(&request("claude-sonnet-5-5", false))
        .send()
        .await
        .expect("server answers");
    assert_eq!(StatusCode::UNAUTHORIZED, response.status());
    assert!(header(&response, "request-id").is_some());
    assert_eq!("authentication_error", error_type(response).await);
}

#[tokio::test]
async fn bearer_token_is_accepted() {
    let server = start_scenario(Scenario::builtin("healthy").expect("built in")).await;
    let response = Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .bearer_auth("token")
        .json(&request("claude-sonnet-5-5", false))
        .send()
        .await
        .expect("server answers");
    assert_eq!(StatusCode::OK, response.status());
}

#[tokio::test]
async fn missing_field_gets_400_naming_it() {
    let server = start("[models.m]\nservice-time = \"1ms\"").await;
    let client = Client::new();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let response = post(&client, &server, &body).await.expect("server answers");
    assert_eq!(StatusCode::BAD_REQUEST, response.status());
    let body: Value = response.json().await.expect("JSON");
    assert_eq!("invalid_request_error", body["error"]["type"]);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_tokens")),
        "{body}"
    );

    let response = client
        .post(format!("{}/v1/messages", server.base_url()))
        .header("x-api-key", KEY)
        .body("{not json")
        .send()
        .await
        .expect("server answers");
    assert_eq!(StatusCode::BAD_REQUEST, response.status());
    assert_eq!("invalid_request_error", error_type(response).await);
}

#[tokio::test]
async fn unknown_model_gets_404() {
    let server = start("[models.m]\nservice-time = \"1ms\"").await;
    let response = send(&server, "claude-nope").await;
    assert_eq!(StatusCode::NOT_FOUND, response.status());
    assert_eq!("not_found_error", error_type(response).await);
    assert!(!server.stats().models.contains_key("claude-nope"));
}

#[tokio::test]
async fn healthy_reply_echoes_the_prompt_with_request_id() {
    let server = start_scenario(Scenario::builtin("healthy").expect("built in")).await;
    let response = send(&server, "claude-any-model").await;
    assert_eq!(StatusCode::OK, response.status());
    assert!(header(&response, "request-id").is_some_and(|id| id.starts_with("req_mock_")));
    let message: Value = response.json().await.expect("JSON message");
    assert_eq!("message", message["type"]);
    assert_eq!("claude-any-model", message["model"]);
    assert_eq!(
        "mock reply from claude-any-model: hello mock",
        message["content"][0]["text"]
    );
    assert_eq!("end_turn", message["stop_reason"]);
    assert!(
        message["usage"]["input_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
}

/// Holds `held` slots of model `m` with slow requests, checks the next request is refused at
/// once with 529, then lets the held ones finish.
async fn assert_slots(server: &MockServer, held: u32) {
    let client = Client::new();
    let holders: Vec<_> = (0..held)
        .map(|_| {
            let (client, url, body) = (client.clone(), server.base_url(), request("m", false));
            tokio::spawn(async move {
                let url = format!("{url}/v1/messages");
                client
                    .post(url)
                    .header("x-api-key", KEY)
                    .json(&body)
                    .send()
                    .await
            })
        })
        .collect();
    wait_for(server, |stats| stats.models["m"].in_flight == held).await;
    let started = Instant::now();
    let refused = post(&client, server, &request("m", false))
        .await
        .expect("answers");
    assert_eq!(529, refused.status().as_u16());
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "529 must be immediate"
    );
    assert_eq!("overloaded_error", error_type(refused).await);
    for holder in holders {
        let response = holder.await.expect("task").expect("answers");
        assert_eq!(StatusCode::OK, response.status());
    }
    let stats = &server.stats().models["m"];
    assert_eq!(held, stats.max_in_flight);
    assert_eq!(Some(&1), stats.by_status.get("529"));
    assert_eq!(Some(&u64::from(held)), stats.by_status.get("200"));
}

#[tokio::test]
async fn exhausted_slots_answer_529_at_once() {
    let server = start("[models.m]\nslots = 2\nservice-time = \"400ms\"").await;
    assert_slots(&server, 2).await;
}

#[tokio::test]
async fn brownout_at_half_keeps_half_the_slots() {
    let toml = "[models.m]\nslots = 4\nservice-time = \"400ms\"\n\
                brownouts = [{ start = \"0s\", end = \"1h\", fraction = 0.5 }]";
    let server = start(toml).await;
    assert_slots(&server, 2).await;
}

#[tokio::test]
async fn brownout_at_zero_refuses_everything() {
    let toml =
        "[models.m]\nretry-after-on-overload = 2\nbrownouts = [{ start = \"0s\", fraction = 0.0 }]";
    let server = start(toml).await;
    for _ in 0..3 {
        let response = send(&server, "m").await;
        assert_eq!(529, response.status().as_u16());
        assert_eq!(Some("2"), header(&response, "retry-after"));
        assert_eq!("overloaded_error", error_type(response).await);
    }
    assert_eq!(Some(&3), server.stats().models["m"].by_status.get("529"));
}

#[tokio::test]
async fn rps_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let server = start("[models.m]\nservice-time = \"1ms\"\nrps = 2").await;
    for remaining in ["1", "0"] {
        let response = send(&server, "m").await;
        assert_eq!(StatusCode::OK, response.status());
        assert_eq!(
            Some("120"),
            header(&response, "anthropic-ratelimit-requests-limit"),
            "per minute, as the API states it"
        );
        assert_eq!(
            Some(remaining),
            header(&response, "anthropic-ratelimit-requests-remaining")
        );
        assert!(
            header(&response, "anthropic-ratelimit-requests-reset")
                .is_some_and(|r| r.ends_with('Z'))
        );
    }
    let response = send(&server, "m").await;
    assert_eq!(StatusCode::TOO_MANY_REQUESTS, response.status());
    assert_eq!(Some("1"), header(&response, "retry-after"));
    assert_eq!(
        Some("120"),
        header(&response, "anthropic-ratelimit-requests-limit")
    );
    assert_eq!(
        Some("0"),
        header(&response, "anthropic-ratelimit-requests-remaining")
    );
    assert!(header(&response, "anthropic-ratelimit-requests-reset").is_some());
    assert_eq!("rate_limit_error", error_type(response).await);
}

#[tokio::test]
async fn rate_limit_headers_and_retry_after_can_be_left_out() {
    let toml = "[models.bare]\nservice-time = \"1ms\"\nrpm = 60\nrate-limit-headers = false\n\
                retry-after = false\n\
                [models.hint]\nservice-time = \"1ms\"\nrpm = 60\nrate-limit-headers = false\n";
    let server = start(toml).await;
    let ratelimit = |response: &Response| {
        response
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("anthropic-ratelimit-"))
    };
    for (model, retry_after) in [("bare", None), ("hint", Some("1"))] {
        let response = send(&server, model).await;
        assert_eq!(StatusCode::OK, response.status(), "{model}");
        assert!(!ratelimit(&response), "{model}: {:?}", response.headers());
        let response = send(&server, model).await;
        assert_eq!(StatusCode::TOO_MANY_REQUESTS, response.status(), "{model}");
        assert!(!ratelimit(&response), "{model}: {:?}", response.headers());
        assert_eq!(retry_after, header(&response, "retry-after"), "{model}");
        assert_eq!("rate_limit_error", error_type(response).await);
    }
}

const FAULTS: &str = r#"
[models.drop]
service-time = "1ms"
faults = [{ kind = "drop" }]

[models.status]
faults = [{ kind = "status", status = 529, retry-after = "3", headers = { x-should-retry = "false" } }]

[models.malformed]
faults = [{ kind = "malformed" }]

[models.slow]
service-time = "1ms"
faults = [{ kind = "slow", delay = "300ms" }]

[models.stream-error]
service-time = "1ms"
faults = [{ kind = "stream-error", after-events = 4 }]

[models.stream-drop]
service-time = "1ms"
faults = [{ kind = "stream-drop", after-events = 2 }]

[models.healthy]
service-time = "1ms"
"#;

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_response() {
    let server = start(FAULTS).await;
    let client = Client::new();
    let err = post(&client, &server, &request("drop", false))
        .await
        .expect_err("no response");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert!(err.status().is_none());
    // The same client (and its pool) keeps working, and keep-alive connections survive.
    for _ in 0..3 {
        let response = post(&client, &server, &request("healthy", false))
            .await
            .expect("answers");
        assert_eq!(StatusCode::OK, response.status());
    }
    assert_eq!(
        Some(&1),
        server.stats().models["drop"].by_status.get("dropped")
    );
}

#[tokio::test]
async fn status_fault_sends_its_status_and_headers() {
    let server = start(FAULTS).await;
    let response = send(&server, "status").await;
    assert_eq!(529, response.status().as_u16());
    assert_eq!(Some("3"), header(&response, "retry-after"));
    assert_eq!(Some("false"), header(&response, "x-should-retry"));
    assert_eq!("overloaded_error", error_type(response).await);
}

#[tokio::test]
async fn malformed_fault_answers_200_with_a_body_that_is_not_json() {
    let server = start(FAULTS).await;
    let response = send(&server, "malformed").await;
    assert_eq!(StatusCode::OK, response.status());
    let body = response.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
}

#[tokio::test]
async fn slow_fault_delays_the_answer() {
    let server = start(FAULTS).await;
    let started = Instant::now();
    let response = send(&server, "slow").await;
    assert_eq!(StatusCode::OK, response.status());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

async fn stream(server: &MockServer, model: &str) -> Response {
    let response = post(&Client::new(), server, &request(model, true))
        .await
        .expect("answers");
    assert_eq!(StatusCode::OK, response.status());
    assert_eq!(Some("text/event-stream"), header(&response, "content-type"));
    response
}

/// The concatenated `text_delta`s of an SSE body.
fn streamed_text(body: &str) -> String {
    body.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| event["delta"]["type"] == "text_delta")
        .filter_map(|event| event["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn healthy_stream_is_complete() {
    let server = start(FAULTS).await;
    let body = stream(&server, "healthy")
        .await
        .text()
        .await
        .expect("complete body");
    let start = body.find("event: message_start").expect("message_start");
    let ping = body.find("event: ping").expect("ping");
    assert!(start < ping);
    assert_eq!("mock reply from healthy: hello mock", streamed_text(&body));
    assert!(
        body.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{body}"
    );
}

#[tokio::test]
async fn stream_error_fault_ends_with_an_error_event_after_content() {
    let server = start(FAULTS).await;
    let body = stream(&server, "stream-error")
        .await
        .text()
        .await
        .expect("body ends cleanly");
    let delta = body
        .find("event: content_block_delta")
        .expect("content before the error");
    let error = body.find("event: error").expect("error event");
    assert!(delta < error, "{body}");
    assert!(body[error..].contains("overloaded_error"), "{body}");
    assert!(!body.contains("message_stop"), "{body}");
}

#[tokio::test]
async fn stream_error_fault_leaves_plain_requests_alone() {
    let server = start(FAULTS).await;
    assert_eq!(StatusCode::OK, send(&server, "stream-error").await.status());
}

#[tokio::test]
async fn stream_drop_fault_cuts_the_stream() {
    let server = start(FAULTS).await;
    let err = stream(&server, "stream-drop")
        .await
        .text()
        .await
        .expect_err("stream is cut");
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
}

#[tokio::test]
async fn stats_endpoint_counts_by_model_and_status() {
    let server = start(FAULTS).await;
    send(&server, "healthy").await;
    send(&server, "healthy").await;
    send(&server, "status").await;
    let stats: Value = Client::new()
        .get(format!("{}/stats", server.base_url()))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(json!(2), stats["models"]["healthy"]["requests"]);
    assert_eq!(json!(2), stats["models"]["healthy"]["by_status"]["200"]);
    assert_eq!(json!(0), stats["models"]["healthy"]["in_flight"]);
    assert_eq!(json!(1), stats["models"]["healthy"]["max_in_flight"]);
    assert_eq!(json!(1), stats["models"]["status"]["by_status"]["529"]);
    let snapshot: Stats = serde_json::from_value(stats).expect("same shape as Stats");
    assert_eq!(server.stats(), snapshot);
}

#[tokio::test]
async fn invalid_scenario_is_refused_at_start() {
    let mut scenario = Scenario::default();
    scenario.models.insert(
        "m".into(),
        breakwater::mock::ModelSpec {
            slots: 0,
            ..Default::default()
        },
    );
    let err = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect_err("zero slots");
    assert_eq!(std::io::ErrorKind::InvalidInput, err.kind());
    assert!(err.to_string().contains("models.m.slots"), "{err}");
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let server = start_scenario(Scenario::builtin("healthy").expect("built in")).await;
    let url = format!("{}/stats", server.base_url());
    server.shutdown().await;
    let err = Client::new()
        .get(url)
        .send()
        .await
        .expect_err("nothing listens");
    assert!(err.is_connect(), "{err:?}");
}

#[test]
fn scenario_errors_name_the_field_and_line() {
    let err = Scenario::from_toml("seed = 1\n\n[models.m]\nslot = 3\n").expect_err("unknown field");
    let text = err.to_string();
    assert!(text.contains("slot") && text.contains("line 4"), "{text}");

    let err = Scenario::from_toml("[models.m]\nslots = \"many\"\n").expect_err("bad value");
    let text = err.to_string();
    assert!(text.contains("slots") && text.contains("line 2"), "{text}");

    let toml = "[models.m]\nfaults = [{ kind = \"drop\", probability = 2.0 }]";
    let text = Scenario::from_toml(toml)
        .expect_err("bad probability")
        .to_string();
    assert!(text.contains("models.m.faults[0].probability"), "{text}");
}

#[test]
fn scenario_file_errors_name_the_path() {
    let dir = std::env::temp_dir().join(format!("breakwater-mock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[models.m]\nslots = 0\n").expect("write");
    let text = Scenario::load(path.to_str().expect("utf-8 path"))
        .expect_err("invalid")
        .to_string();
    assert!(
        text.contains("bad.toml") && text.contains("models.m.slots"),
        "{text}"
    );
    std::fs::write(&path, "[models.m]\nslots = 3\n").expect("write");
    let scenario = Scenario::load(path.to_str().expect("utf-8 path")).expect("valid file");
    assert_eq!(3, scenario.models["m"].slots);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn every_builtin_scenario_file_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/mock");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("scenarios/mock exists") {
        let path = entry.expect("dir entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let scenario =
            Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        assert_eq!(
            Some(scenario),
            Scenario::builtin(&name),
            "{name} differs from its built-in"
        );
        names.push(name);
    }
    names.sort();
    let mut builtins = Scenario::builtin_names();
    builtins.sort_unstable();
    assert_eq!(builtins, names);
    assert_eq!("healthy", Scenario::builtin_names()[0]);
}

#[tokio::test]
async fn a_body_over_32_mib_gets_a_json_413_request_too_large() {
    let server = start("[models.m]\nservice-time = \"1ms\"").await;
    let padding = "x".repeat((32 << 20) + 1);
    let body = json!({
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": padding}],
    });
    let response = post(&Client::new(), &server, &body)
        .await
        .expect("server answers");
    assert_eq!(StatusCode::PAYLOAD_TOO_LARGE, response.status());
    assert_eq!("request_too_large", error_type(response).await);
}

#[tokio::test]
async fn a_body_just_under_the_limit_is_served() {
    let server = start("[models.m]\nservice-time = \"1ms\"").await;
    let body = json!({
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "x".repeat(3 << 20)}],
    });
    let response = post(&Client::new(), &server, &body)
        .await
        .expect("server answers");
    assert_eq!(StatusCode::OK, response.status());
}

#[tokio::test]
async fn stream_end_fault_ends_the_body_cleanly_without_message_stop() {
    let toml = "[models.m]\nservice-time = \"1ms\"\n\
                faults = [{ kind = \"stream-end\", after-events = 4 }]";
    let server = start(toml).await;
    let body = stream(&server, "m")
        .await
        .text()
        .await
        .expect("the body ends cleanly");
    assert_eq!(4, body.matches("event: ").count(), "{body}");
    assert!(body.contains("event: content_block_delta"), "{body}");
    assert!(
        !body.contains("message_stop") && !body.contains("event: error"),
        "{body}"
    );
    assert_eq!(
        StatusCode::OK,
        send(&server, "m").await.status(),
        "plain requests are spared"
    );
}

#[tokio::test]
async fn status_fault_body_is_sent_verbatim() {
    let toml = r#"
[models.html]
faults = [{ kind = "status", status = 413, body = "<html><h1>413</h1></html>" }]

[models.empty]
faults = [{ kind = "status", status = 502, body = "", headers = { content-type = "text/html" } }]
"#;
    let server = start(toml).await;
    let response = send(&server, "html").await;
    assert_eq!(StatusCode::PAYLOAD_TOO_LARGE, response.status());
    assert!(header(&response, "request-id").is_some());
    assert_eq!("<html><h1>413</h1></html>", response.text().await.unwrap());
    let response = send(&server, "empty").await;
    assert_eq!(StatusCode::BAD_GATEWAY, response.status());
    assert_eq!(Some("text/html"), header(&response, "content-type"));
    assert_eq!("", response.text().await.unwrap());
}
