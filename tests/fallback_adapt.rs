//! Fallback-safe requests over HTTP: `breakwater serve` in front of a mock that enforces the
//! model catalogue as the API does, with the primary answering only 529. Ordinary agent
//! requests that the fallback would refuse as they came are adapted and answered by it; a
//! request no model can take comes back as its own 400. One mock and one gateway per test,
//! on 127.0.0.1:0, in real time.

#[path = "support/gateway.rs"]
mod gateway;

use std::time::Duration;

use base64::Engine as _;
use breakwater::catalog::AdaptMode;
use breakwater::config::Config;
use breakwater::mock::{MockServer, Scenario};
use serde_json::{Value, json};

const SONNET: &str = "claude-sonnet-4-6";
const HAIKU: &str = "claude-haiku-4-5";
const OPUS_48: &str = "claude-opus-4-8";

/// The primary keeps none of its capacity: every request to it gets 529.
const SCENARIO: &str = r#"
[models.claude-sonnet-4-6]
service-time = "1ms"
brownouts = [{ start = "0s", end = "1h", fraction = 0.0 }]
[models.claude-haiku-4-5]
service-time = "1ms"
[models.claude-opus-4-8]
service-time = "1ms"
"#;

async fn serve_chain(fallback: &str, adapt: AdaptMode) -> (MockServer, String) {
    let scenario = Scenario::from_toml(SCENARIO).expect("test scenario is valid");
    let mock = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts");
    let mut config = Config::for_chain(&[SONNET.to_owned(), fallback.to_owned()]);
    config.retry.max_retries_per_target = 0;
    config.adapt = adapt;
    config.seed = Some(5);
    let base = gateway::start(config, &mock.base_url(), "test-key").await;
    (mock, base)
}

/// The answer: status, `x-breakwater-model`, `x-breakwater-adapted`, body (or the events'
/// text for a stream).
async fn post(base: &str, body: &Value) -> (u16, String, String, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the gateway answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (model, adapted) = (header("x-breakwater-model"), header("x-breakwater-adapted"));
    let status = response.status().as_u16();
    (status, model, adapted, response.text().await.unwrap())
}

/// A thinking signature the mock made on `model`.
fn signed_by(model: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("mock-sig:{model}:1"))
}

/// An agent's tool turn: the primary's thinking (and redacted thinking) before its tool call,
/// then the tool's result, with manual thinking on.
fn tool_turn(stream: bool) -> Value {
    json!({
        "model": SONNET, "max_tokens": 4096, "stream": stream,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should look.", "signature": signed_by(SONNET)},
                {"type": "redacted_thinking", "data": signed_by(SONNET)},
                {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "x"}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "42"}]},
        ],
    })
}

fn simple(extra: &Value) -> Value {
    let mut body = json!({"model": SONNET, "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hello"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

#[tokio::test]
async fn a_tool_turn_with_thinking_from_the_primary_is_answered_by_the_fallback() {
    let (_mock, base) = serve_chain(HAIKU, AdaptMode::Adapt).await;
    for stream in [false, true] {
        let (status, model, adapted, body) = post(&base, &tool_turn(stream)).await;
        assert_eq!(status, 200, "stream {stream}: {body}");
        assert_eq!(model, HAIKU);
        assert_eq!(adapted, "thinking,thinking_blocks", "stream {stream}");
        if stream {
            assert!(body.contains("event: message_stop"), "{body}");
        }
    }
}

#[tokio::test]
async fn ceilings_and_thinking_types_the_fallback_refuses_are_adapted() {
    let (_mock, base) = serve_chain(HAIKU, AdaptMode::Adapt).await;
    let cases = [
        (json!({"max_tokens": 100_000}), "max_tokens"),
        (
            json!({"thinking": {"type": "adaptive"}, "max_tokens": 8000}),
            "thinking",
        ),
        (json!({"temperature": 0.3, "top_p": 0.9}), "sampling"),
    ];
    for (extra, change) in cases {
        let (status, model, adapted, body) = post(&base, &simple(&extra)).await;
        assert_eq!(status, 200, "{extra}: {body}");
        assert_eq!(model, HAIKU);
        assert_eq!(adapted, change);
    }
}

#[tokio::test]
async fn sampling_parameters_go_to_a_fallback_that_refuses_them_without_them() {
    let (_mock, base) = serve_chain(OPUS_48, AdaptMode::Adapt).await;
    let (status, model, adapted, body) =
        post(&base, &simple(&json!({"temperature": 0.2, "top_k": 10}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(model, OPUS_48);
    assert_eq!(adapted, "sampling");
}

#[tokio::test]
async fn a_request_no_model_can_take_comes_back_as_its_own_400() {
    let (_mock, base) = serve_chain(HAIKU, AdaptMode::Adapt).await;
    let (status, _, adapted, body) = post(&base, &simple(&json!({"max_tokens": 200_000}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(adapted, "", "nothing adapted");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    // The mock, like the API, checks a request before it spends capacity: the primary
    // answers this one with its own 400 rather than a 529, and it comes back as it came.
    assert!(
        message.contains("200000") && message.contains(SONNET),
        "{message}"
    );
}

#[tokio::test]
async fn with_adapt_skip_a_fallback_that_would_need_changes_is_passed_over() {
    let (_mock, base) = serve_chain(HAIKU, AdaptMode::Skip).await;
    let (status, _, _, body) = post(&base, &simple(&json!({"max_tokens": 100_000}))).await;
    assert_eq!(
        status, 529,
        "the primary is overloaded and the fallback skipped: {body}"
    );
    let (status, model, adapted, _) = post(&base, &simple(&json!({}))).await;
    assert_eq!((status, model.as_str(), adapted.as_str()), (200, HAIKU, ""));
}
