//! Bytes in are bytes out: through `breakwater serve`, a request body reaches the upstream as
//! the client wrote it (key order, a 23-digit integer, `1e2`) with only the model changed on
//! a fallback, and answers and stream events reach the client as the upstream sent them.
//! A recording upstream and a gateway, each on its own 127.0.0.1:0 port, in real time.

#[path = "support/gateway.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use breakwater::config::Config;

/// A body no serializer would write: keys out of order, spaces, a 23-digit integer and `1e2`
/// in a tool schema and in a tool_use input, an escaped key.
const REQUEST: &str = r#"{ "tools": [{"name": "t", "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 12345678901234567890123, "minimum": 1e2}}}}],
  "max_tokens" : 64, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "t", "input": {"n": 12345678901234567890123}}]},
  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "1.50"}]}],
  "model": "primary", "metadata": {"z": 1, "a": 2}, "\u0074emperature_note": 0.10, "STREAM"}"#;

/// An answer in the same spirit: the order the API never uses, and numbers kept as written.
const ANSWER: &str = r#"{"usage": {"output_tokens": 3, "input_tokens": 12},
 "content": [{"input": {"n": 12345678901234567890123, "x": 1e2}, "name": "t", "id": "tu_2", "type": "tool_use"}],
 "stop_reason": "tool_use", "model": "fallback", "role": "assistant", "type": "message", "id": "msg_1"}"#;

/// The SSE frames the recorder streams, CRLF line ends and all.
const FRAMES: [&str; 6] = [
    "event: message_start\r\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_2\", \"type\": \"message\", \"role\": \"assistant\", \"model\": \"fallback\", \"content\": [], \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 1e1, \"output_tokens\": 1}}}\r\n\r\n",
    ": a comment line the gateway may drop\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"1e2 \\u00e9\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12345678901234567890123}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

#[derive(Default)]
struct Recorder {
    bodies: Mutex<Vec<Bytes>>,
}

/// Answers 529 to model `primary`, and the fixed answer (or stream) to anything else.
async fn record(
    State(recorder): State<Arc<Recorder>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    recorder.bodies.lock().unwrap().push(body.clone());
    let text = String::from_utf8_lossy(&body);
    if text.contains(r#""model":"primary""#) || text.contains(r#""model": "primary""#) {
        let error =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        return (
            StatusCode::from_u16(529).unwrap(),
            [("request-id", "req_529")],
            error,
        )
            .into_response();
    }
    let streamed = headers
        .get("accept")
        .is_some_and(|accept| accept.as_bytes() == b"text/event-stream");
    if streamed {
        let frames = futures::stream::iter(
            FRAMES.map(|f| Ok::<_, std::convert::Infallible>(Bytes::from(f))),
        );
        return (
            [
                ("content-type", "text/event-stream"),
                ("request-id", "req_stream"),
            ],
            axum::body::Body::from_stream(frames),
        )
            .into_response();
    }
    (
        [
            ("content-type", "application/json"),
            ("request-id", "req_whole"),
        ],
        ANSWER,
    )
        .into_response()
}

async fn recorder() -> (String, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(record))
        .with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), recorder)
}

async fn gateway(upstream: &str) -> String {
    let mut config = Config::for_chain(&["primary".to_owned(), "fallback".to_owned()]);
    config.retry.max_retries_per_target = 0;
    config.seed = Some(1);
    support::start(config, upstream, "test-key").await
}

fn request(stream: bool) -> String {
    let stream = if stream {
        r#""stream": true"#
    } else {
        r#""stream": false"#
    };
    REQUEST.replace(r#""STREAM""#, stream)
}

async fn post(base: &str, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the gateway answers")
}

#[tokio::test]
async fn a_fallback_sends_the_clients_bytes_with_only_the_model_changed_and_answers_with_the_upstreams()
 {
    let (upstream, recorded) = recorder().await;
    let base = gateway(&upstream).await;
    let sent = request(false);
    let response = post(&base, sent.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-breakwater-model"], "fallback");
    assert_eq!(response.headers()["request-id"], "req_whole");
    assert_eq!(
        response.text().await.unwrap(),
        ANSWER,
        "the answer's bytes, unchanged"
    );
    let bodies = recorded.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "the primary, then the fallback");
    assert_eq!(
        bodies[0],
        sent.as_bytes(),
        "the primary gets the body as sent"
    );
    let expected = sent.replace(r#""model": "primary""#, r#""model": "fallback""#);
    assert_eq!(
        String::from_utf8_lossy(&bodies[1]),
        expected,
        "the fallback gets the same bytes but for the model"
    );
}

#[tokio::test]
async fn stream_events_reach_the_client_as_the_upstream_framed_them() {
    let (upstream, recorded) = recorder().await;
    let base = gateway(&upstream).await;
    let sent = request(true);
    let response = post(&base, sent.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["request-id"], "req_stream");
    let received = response.text().await.unwrap();
    // Every event's frame, byte for byte; only the comment-only block is not an event.
    let expected: String = FRAMES
        .iter()
        .filter(|f| !f.starts_with(':'))
        .copied()
        .collect();
    assert_eq!(received, expected);
    let bodies = recorded.bodies.lock().unwrap().clone();
    let expected = sent.replace(r#""model": "primary""#, r#""model": "fallback""#);
    assert_eq!(String::from_utf8_lossy(&bodies[1]), expected);
}
