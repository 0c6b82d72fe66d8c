//! The gateway over real HTTP: a mock upstream and a gateway, each on its own 127.0.0.1:0
//! port per test, in real time with millisecond settings.

use std::sync::Arc;
use std::time::Duration;

use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::engine::policy::Jitter;
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::Runtime;
use serde_json::{Value, json};

async fn mock(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// A gateway for `chain` in front of `server`; its base URL.
async fn gateway(server: &MockServer, chain: &[&str]) -> String {
    let models: Vec<String> = chain.iter().map(|m| (*m).to_owned()).collect();
    let mut config = Config::for_chain(&models);
    config.retry.max_retries_per_target = 0;
    config.retry.backoff.jitter = Jitter::None;
    config.breaker.open_for = Duration::from_millis(200);
    config.seed = Some(3);
    let runtime = Runtime::builder()
        .config(config)
        .base_url(server.base_url())
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .expect("runtime starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = breakwater::gateway::router(Arc::new(runtime));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn body(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "hello gateway"}],
        "metadata": {"user_id": "u-1"},
    })
}

async fn post(base: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_request_is_answered_with_the_model_and_attempts_in_headers() {
    let server = mock("[models.p]\nservice-time = \"1ms\"\n[models.f]\n").await;
    let base = gateway(&server, &["p", "f"]).await;
    let response = post(&base, body("p", false).to_string()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-breakwater-model"), Some("p"));
    assert_eq!(header(&response, "x-breakwater-attempts"), Some("1"));
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["model"], "p");
    assert_eq!(message["type"], "message");
}

#[tokio::test]
async fn a_down_primary_falls_back_and_the_answer_names_the_fallback() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nbrownouts = [{ start = \"0s\", end = \"1h\", fraction = 0.0 }]\n[models.f]\nservice-time = \"1ms\"\n",
    )
    .await;
    let base = gateway(&server, &["p", "f"]).await;
    for _ in 0..5 {
        let response = post(&base, body("p", false).to_string()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-breakwater-model"), Some("f"));
        let message: Value = response.json().await.unwrap();
        assert_eq!(message["model"], "f");
    }
}

#[tokio::test]
async fn a_stream_arrives_whole_as_server_sent_events() {
    let server = mock("[models.p]\nservice-time = \"1ms\"\n").await;
    let base = gateway(&server, &["p"]).await;
    let response = post(&base, body("p", true).to_string()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"type":"message_stop"}"#),
        "{text}"
    );
    assert!(
        text.contains("hello gateway"),
        "the mock echoes the prompt: {text}"
    );
}

#[tokio::test]
async fn a_chain_with_every_model_down_is_529_overloaded_with_retry_after() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nbrownouts = [{ start = \"0s\", end = \"1h\", fraction = 0.0 }]\n",
    )
    .await;
    let base = gateway(&server, &["p"]).await;
    let response = post(&base, body("p", false).to_string()).await;
    assert_eq!(response.status(), 529);
    assert!(header(&response, "retry-after").is_some());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn a_permanent_upstream_error_passes_through_as_it_came() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nfaults = [{ kind = \"status\", status = 403, error-type = \"permission_error\" }]\n[models.f]\n",
    )
    .await;
    let base = gateway(&server, &["p", "f"]).await;
    let response = post(&base, body("p", false).to_string()).await;
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "permission_error");
}

#[tokio::test]
async fn bad_bodies_and_unknown_models_get_anthropic_shaped_errors() {
    let server = mock("[models.p]\n").await;
    let base = gateway(&server, &["p"]).await;
    let response = post(&base, "{not json").await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let response = post(&base, json!({"model": "p", "messages": []}).to_string()).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{error}"
    );

    let response = post(&base, body("claude-unknown", false).to_string()).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "not_found_error");

    let response = post(&base, vec![b' '; (32 << 20) + 1]).await;
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "request_too_large");
}

#[tokio::test]
async fn an_overload_before_content_is_rerouted_invisibly() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nfaults = [{ kind = \"stream-error\", after-events = 1, error-type = \"overloaded_error\" }]\n[models.f]\nservice-time = \"1ms\"\n",
    )
    .await;
    let base = gateway(&server, &["p", "f"]).await;
    let response = post(&base, body("p", true).to_string()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-breakwater-model"), Some("f"));
    let text = response.text().await.unwrap();
    assert!(!text.contains("event: error"), "{text}");
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    assert!(text.contains(r#""model":"f""#), "{text}");
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"type":"message_stop"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_failure_after_content_ends_the_stream_with_an_explicit_error_event() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nfaults = [{ kind = \"stream-error\", after-events = 4, error-type = \"overloaded_error\" }]\n[models.f]\n",
    )
    .await;
    let base = gateway(&server, &["p", "f"]).await;
    let response = post(&base, body("p", true).to_string()).await;
    assert_eq!(response.status(), 200, "the stream had begun");
    assert_eq!(header(&response, "x-breakwater-model"), Some("p"));
    let text = response.text().await.unwrap();
    assert!(text.contains("event: content_block_delta"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\n"), "{text}");
    assert!(last.contains("overloaded_error"), "{text}");
    assert!(
        !text.contains("message_stop"),
        "never spliced with another answer: {text}"
    );
    assert!(!text.contains(r#""model":"f""#), "{text}");
}
