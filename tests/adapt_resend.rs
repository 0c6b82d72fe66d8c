//! The safety net for what the catalogue does not know: a fallback that answers 400
//! `invalid_request_error` gets one more try in the minimal safe form (earlier thinking
//! blocks stripped); the requested model's own 400 is never retried. A recording upstream on
//! 127.0.0.1:0 per test, in real time.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use breakwater::api::WireRequest;
use breakwater::client::{Credentials, Secret, VertexAuth};
use breakwater::config::Config;
use breakwater::engine::{Error, RequestOptions};
use breakwater::runtime::Runtime;
use serde_json::{Value, json};

/// A model the catalogue does not know: whose thinking blocks the history holds is unknown.
const PRIMARY: &str = "claude-experimental";
const FALLBACK: &str = "claude-haiku-4-5";

type Bodies = Arc<Mutex<Vec<Value>>>;

fn invalid(message: &str) -> Response {
    let error =
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
}

/// The primary: 529, or 400 to a request asking for `max_tokens` over 100000. The fallback:
/// 400 to any history holding a thinking block (as the API answers a signature it cannot
/// read), else an answer.
async fn messages(State(bodies): State<Bodies>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    bodies.lock().unwrap().push(body.clone());
    if body["model"] == PRIMARY {
        if body["max_tokens"].as_u64() > Some(100_000) {
            return invalid("max_tokens is too large");
        }
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        return (StatusCode::from_u16(529).unwrap(), axum::Json(error)).into_response();
    }
    refuse_thinking_else_answer(&body, FALLBACK)
}

/// 400 to a history holding a thinking block (as the API answers a signature it cannot
/// read), else an answer from `model`.
fn refuse_thinking_else_answer(body: &Value, model: &str) -> Response {
    if body.to_string().contains(r#""type":"thinking""#) {
        return invalid("messages.1.content.0: Invalid `signature` in `thinking` block");
    }
    axum::Json(
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )
    .into_response()
}

async fn runtime() -> (Runtime, Bodies) {
    let bodies = Bodies::default();
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(messages))
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = Config::for_chain(&[PRIMARY.to_owned(), FALLBACK.to_owned()]);
    config.retry.max_retries_per_target = 0;
    config.catalog.refresh = false;
    let runtime = Runtime::builder()
        .config(config)
        .base_url(format!("http://{address}"))
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .expect("runtime starts");
    (runtime, bodies)
}

fn request(max_tokens: u64) -> WireRequest {
    let body = json!({"model": PRIMARY, "max_tokens": max_tokens, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "c2lnbmVk"},
            {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"}]});
    WireRequest::from_json(serde_json::to_vec(&body).unwrap().into()).unwrap()
}

#[tokio::test]
async fn a_fallback_that_refuses_foreign_thinking_gets_one_try_without_it() {
    let (runtime, bodies) = runtime().await;
    let answer = runtime
        .send_wire(request(1024), RequestOptions::default())
        .await
        .expect("answered by the fallback");
    assert_eq!(answer.target.model(), FALLBACK);
    assert_eq!(answer.changes.as_deref(), Some("thinking_blocks"));
    let bodies = bodies.lock().unwrap().clone();
    let to_fallback: Vec<&Value> = bodies.iter().filter(|b| b["model"] == FALLBACK).collect();
    assert_eq!(to_fallback.len(), 2, "the refused attempt, then one resend");
    assert_eq!(
        to_fallback[0]["messages"][1]["content"][0]["type"],
        "thinking"
    );
    assert_eq!(
        to_fallback[1]["messages"][1]["content"],
        json!([{"type": "text", "text": "hello"}])
    );
}

#[tokio::test]
async fn the_requested_models_own_400_is_never_resent() {
    let (runtime, bodies) = runtime().await;
    let error = runtime
        .send_wire(request(200_000), RequestOptions::default())
        .await
        .expect_err("its own 400");
    let Error::Upstream { failure, .. } = error else {
        panic!("an upstream error: {error:?}");
    };
    assert_eq!(failure.status(), Some(400));
    assert_eq!(failure.message(), "max_tokens is too large");
    assert_eq!(bodies.lock().unwrap().len(), 1, "sent once, to the primary");
}

/// Vertex AI for [`PRIMARY`]: 400 to any history holding a thinking block (as a platform
/// answers blocks another account signed), else an answer.
async fn vertex_predict(State(bodies): State<Bodies>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    bodies.lock().unwrap().push(body.clone());
    refuse_thinking_else_answer(&body, PRIMARY)
}

#[tokio::test]
async fn the_same_model_on_another_platform_is_a_fallback_and_gets_the_resend() {
    let claude = Bodies::default();
    let vertex = Bodies::default();
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(messages))
        .with_state(claude.clone())
        .route(
            "/v1/projects/p/locations/global/publishers/anthropic/models/{call}",
            axum::routing::post(vertex_predict).with_state(vertex.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let entries = [PRIMARY.to_owned(), format!("{PRIMARY}@vertex")];
    let mut config = Config::for_chain(&entries);
    config.retry.max_retries_per_target = 0;
    config.catalog.refresh = false;
    config.platforms.vertex = Some(breakwater::config::VertexConfig {
        project: "p".into(),
        region: "global".into(),
        endpoint: Some(format!("http://{address}")),
    });
    let runtime = Runtime::builder()
        .config(config)
        .base_url(format!("http://{address}"))
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .vertex_credentials(VertexAuth::Token(Secret::new("ya29.test")))
        .start()
        .await
        .expect("runtime starts");
    let answer = runtime
        .send_wire(request(1024), RequestOptions::default())
        .await
        .expect("answered on Vertex AI");
    assert_eq!(answer.target.to_string(), format!("{PRIMARY}@vertex"));
    assert_eq!(answer.changes.as_deref(), Some("thinking_blocks"));
    let sent = vertex.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "the refused attempt, then one resend");
    assert_eq!(
        sent[1]["messages"][1]["content"],
        json!([{"type": "text", "text": "hello"}])
    );
    assert_eq!(
        sent[1].get("model"),
        None,
        "Vertex AI takes the model in the URL"
    );
    assert_eq!(sent[0]["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(
        claude.lock().unwrap().len(),
        1,
        "the Claude API's 529, once"
    );
}
