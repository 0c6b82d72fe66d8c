//! The catalogue refreshed from the upstream's `GET /v1/models`: what its capabilities say
//! of a known model changes how a fallback adapts a request. A recording upstream on
//! 127.0.0.1:0 per test, in real time.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use breakwater::api::WireRequest;
use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::engine::RequestOptions;
use breakwater::runtime::Runtime;
use serde_json::{Value, json};

const SONNET: &str = "claude-sonnet-4-6";
const HAIKU: &str = "claude-haiku-4-5";

type Bodies = Arc<Mutex<Vec<Value>>>;

/// Haiku 4.5 as a newer API might describe it: adaptive thinking accepted.
async fn models() -> impl IntoResponse {
    let thinking = json!({"supported": true, "types": {
        "adaptive": {"supported": true}, "enabled": {"supported": true},
        "disabled": {"supported": true}, "between_tools": {"supported": false}}});
    axum::Json(json!({
        "data": [{"id": HAIKU, "type": "model", "display_name": "Haiku", "created_at": "2025-10-01T00:00:00Z",
                  "capabilities": {"thinking": thinking}}],
        "has_more": false, "first_id": HAIKU, "last_id": HAIKU,
    }))
}

/// 529 for the primary; a fixed answer for anything else, after noting the body.
async fn messages(State(bodies): State<Bodies>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    bodies.lock().unwrap().push(body);
    if model == SONNET {
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        return (StatusCode::from_u16(529).unwrap(), axum::Json(error)).into_response();
    }
    axum::Json(
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )
    .into_response()
}

async fn upstream() -> (String, Bodies) {
    let bodies = Bodies::default();
    let app = axum::Router::new()
        .route("/v1/models", axum::routing::get(models))
        .route("/v1/messages", axum::routing::post(messages))
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), bodies)
}

/// The thinking the fallback was sent for an adaptive-thinking request.
async fn fallback_thinking(refresh: bool) -> Value {
    let (base, bodies) = upstream().await;
    let mut config = Config::for_chain(&[SONNET.to_owned(), HAIKU.to_owned()]);
    config.retry.max_retries_per_target = 0;
    config.catalog.refresh = refresh;
    let runtime = Runtime::builder()
        .config(config)
        .base_url(base)
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .expect("runtime starts");
    let body = json!({"model": SONNET, "max_tokens": 8000, "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}]});
    let request = WireRequest::from_json(serde_json::to_vec(&body).unwrap().into()).unwrap();
    let answer = runtime
        .send_wire(request, RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(answer.target.model(), HAIKU);
    let sent = bodies.lock().unwrap().last().cloned().unwrap();
    sent["thinking"].clone()
}

#[tokio::test]
async fn a_model_the_upstream_says_takes_adaptive_thinking_is_sent_it_unchanged() {
    assert_eq!(fallback_thinking(true).await, json!({"type": "adaptive"}));
}

#[tokio::test]
async fn without_the_refresh_the_built_in_rules_apply() {
    // The built-in entry: Haiku 4.5 takes manual thinking only.
    assert_eq!(
        fallback_thinking(false).await,
        json!({"type": "enabled", "budget_tokens": 4000})
    );
}
