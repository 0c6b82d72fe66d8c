//! The mock server enforcing the model catalogue over real HTTP: one server per test on
//! `127.0.0.1:0`, real time, millisecond-scale settings.

use std::net::SocketAddr;

use breakwater::catalog::{Catalog, CatalogConfig};
use breakwater::mock::{MockServer, Scenario};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "sk-mock-test";

async fn start(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    MockServer::start(scenario, addr)
        .await
        .expect("binds a free loopback port")
}

/// Any model answers at once, one request per second at most (so capacity spent shows).
const SCENARIO: &str = "[default-model]\nservice-time = \"1ms\"\nrps = 1\n";

async fn post(server: &MockServer, body: &Value) -> (StatusCode, Value) {
    let response = Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .header("x-api-key", KEY)
        .json(body)
        .send()
        .await
        .expect("server answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn request(model: &str, max_tokens: u32) -> Value {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello mock"}],
    })
}

fn error_message(body: &Value) -> &str {
    assert_eq!("invalid_request_error", body["error"]["type"], "{body}");
    body["error"]["message"].as_str().expect("a message")
}

#[tokio::test]
async fn a_broken_rule_is_a_400_that_costs_no_capacity() {
    let server = start(SCENARIO).await;
    for _ in 0..3 {
        let (status, body) = post(&server, &request("claude-haiku-4-5", 64_001)).await;
        assert_eq!(StatusCode::BAD_REQUEST, status);
        assert_eq!(
            "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens \
             for claude-haiku-4-5-20251001",
            error_message(&body)
        );
        assert!(body["request_id"].as_str().is_some(), "{body}");
    }
    // The one request per second was not spent on the refused ones.
    let (status, body) = post(&server, &request("claude-haiku-4-5", 64_000)).await;
    assert_eq!(StatusCode::OK, status, "{body}");
    let stats = &server.stats().models["claude-haiku-4-5"];
    assert_eq!(4, stats.requests);
    assert_eq!(Some(&3), stats.by_status.get("400"));
}

#[tokio::test]
async fn an_unknown_model_takes_anything() {
    let server = start(SCENARIO).await;
    let mut body = request("claude-a", 1_000_000);
    body["thinking"] = json!({"type": "whatever"});
    body["temperature"] = json!(3.0);
    let (status, answer) = post(&server, &body).await;
    assert_eq!(StatusCode::OK, status, "{answer}");
    assert_eq!("text", answer["content"][0]["type"]);
}

#[tokio::test]
async fn thinking_answers_carry_a_signed_thinking_block_that_binds_the_history() {
    let server = start("[default-model]\nservice-time = \"1ms\"\n").await;
    // Opus 5 thinks by default: its answer opens with a thinking block.
    let (status, answer) = post(&server, &request("claude-opus-5", 1024)).await;
    assert_eq!(StatusCode::OK, status, "{answer}");
    assert_eq!("thinking", answer["content"][0]["type"]);
    assert_eq!("text", answer["content"][1]["type"]);
    let history = json!([
        {"role": "user", "content": "hello mock"},
        {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": "and then?"},
    ]);
    let follow_up = |model: &str| {
        let mut body = request(model, 1024);
        body["messages"] = history.clone();
        body
    };
    // Opus 5.5 reads Opus 5's blocks; Opus 4.8 does not.
    let (status, body) = post(&server, &follow_up("claude-opus-5-5")).await;
    assert_eq!(StatusCode::OK, status, "{body}");
    let (status, body) = post(&server, &follow_up("claude-opus-4-8")).await;
    assert_eq!(StatusCode::BAD_REQUEST, status);
    assert_eq!(
        "messages.1.content.0: Invalid `signature` in `thinking` block",
        error_message(&body)
    );
    // Thinking off by default: no thinking block.
    let (_, answer) = post(&server, &request("claude-opus-4-8", 1024)).await;
    assert_eq!("text", answer["content"][0]["type"], "{answer}");
}

#[tokio::test]
async fn a_streamed_thinking_block_comes_before_the_text() {
    let server = start("[default-model]\nservice-time = \"1ms\"\n").await;
    let mut body = request("claude-sonnet-4-6", 4096);
    body["stream"] = json!(true);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let response = Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .header("x-api-key", KEY)
        .json(&body)
        .send()
        .await
        .expect("server answers");
    assert_eq!(StatusCode::OK, response.status());
    let text = response.text().await.expect("the stream");
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {text}"))
    };
    assert!(at("\"thinking_delta\"") < at("\"signature_delta\""));
    assert!(at("\"signature_delta\"") < at("\"text_delta\""));
    assert!(
        text.contains("\"content_block\":{\"type\":\"thinking\""),
        "{text}"
    );
}

#[tokio::test]
async fn enforcement_can_be_turned_off_by_the_scenario() {
    let server = start("enforce-catalog = false\n[default-model]\nservice-time = \"1ms\"\n").await;
    let mut body = request("claude-opus-5-5", 1_000_000);
    body["temperature"] = json!(0.5);
    let (status, answer) = post(&server, &body).await;
    assert_eq!(StatusCode::OK, status, "{answer}");
    assert_eq!(
        "text", answer["content"][0]["type"],
        "no signed thinking either"
    );
}

#[tokio::test]
async fn a_configured_catalogue_is_enforced_with_its_overrides() {
    let config: CatalogConfig =
        toml::from_str("[models.claude-haiku-4-5]\nmax-output-tokens = 2000\n").unwrap();
    let catalog = Catalog::builtin().with_overrides(&config.models).unwrap();
    let scenario = Scenario::from_toml("[default-model]\nservice-time = \"1ms\"\n").unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = MockServer::start_with_catalog(scenario, catalog.into(), addr)
        .await
        .expect("starts");
    let (status, _) = post(&server, &request("claude-haiku-4-5", 2001)).await;
    assert_eq!(StatusCode::BAD_REQUEST, status);
    let (status, _) = post(&server, &request("claude-haiku-4-5", 2000)).await;
    assert_eq!(StatusCode::OK, status);
}
