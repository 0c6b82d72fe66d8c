//! Traces over real HTTP: an in-process OTLP receiver (axum on 127.0.0.1:0, decoding what it
//! is sent with `opentelemetry-proto`'s types), the exporter pointed at it with
//! `telemetry::init`, and `breakwater serve` in front of a mock whose primary answers only
//! 529. One request falls back; the trace it leaves is asserted span by span.
//!
//! The exporter's layer is installed as the process's subscriber, so this file holds one test.

#[path = "support/gateway.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use breakwater::config::Config;
use breakwater::mock::{MockServer, Scenario};
use breakwater::telemetry::{self, Telemetry};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message as _;
use serde_json::json;
use tokio::sync::mpsc;
use tracing_subscriber::prelude::*;

const SONNET: &str = "claude-sonnet-4-6";
const HAIKU: &str = "claude-haiku-4-5";
/// The gateway's upstream key, and the one a client presents: neither may reach a span.
const KEY: &str = "sk-ant-upstream-key-never-traced-4821";
const CLIENT_KEY: &str = "sk-ant-client-key-never-traced-9377";
/// The prompt, which no span may carry either.
const PROMPT: &str = "the prompt nobody traces: seventeen violet herons";

/// The primary keeps none of its capacity: every request to it gets 529.
const SCENARIO: &str = r#"
[models.claude-sonnet-4-6]
service-time = "1ms"
brownouts = [{ start = "0s", end = "1h", fraction = 0.0 }]
[models.claude-haiku-4-5]
service-time = "1ms"
"#;

/// An OTLP/HTTP receiver: its base URL, and every body posted to `/v1/traces`.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Bytes>) {
    async fn traces(
        State(bodies): State<mpsc::UnboundedSender<Bytes>>,
        body: Bytes,
    ) -> impl IntoResponse {
        let _ = bodies.send(body);
        let answer = ExportTraceServiceResponse::default().encode_to_vec();
        ([(header::CONTENT_TYPE, "application/x-protobuf")], answer)
    }
    let (sender, bodies) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), bodies)
}

/// `breakwater serve` for SONNET -> HAIKU in front of a new mock; its base URL and the mock.
async fn gateway() -> (MockServer, String) {
    let scenario = Scenario::from_toml(SCENARIO).expect("test scenario is valid");
    let mock = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts");
    let mut config = Config::for_chain(&[SONNET.to_owned(), HAIKU.to_owned()]);
    config.retry.max_retries_per_target = 0;
    config.seed = Some(5);
    let base = support::start(config, &mock.base_url(), KEY).await;
    (mock, base)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key)? {
        Value::StringValue(text) => Some(text),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        Value::IntValue(value) => Some(*value),
        _ => None,
    }
}

/// Every span in `bodies`, and the bodies joined, for the search for secrets.
fn decode(bodies: &[Bytes]) -> Vec<Span> {
    bodies
        .iter()
        .map(|body| ExportTraceServiceRequest::decode(&body[..]).expect("OTLP protobuf"))
        .flat_map(|request| request.resource_spans)
        .flat_map(|resource| resource.scope_spans)
        .flat_map(|scope| scope.spans)
        .collect()
}

/// Posts one request for SONNET (with a client key of its own) and checks it fell back.
async fn post_one(base: &str) {
    let body = json!({
        "model": SONNET, "max_tokens": 256,
        "messages": [{"role": "user", "content": PROMPT}],
    });
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-breakwater-model"], HAIKU);
}

/// Flushes the exporter and takes every body the receiver got. Every span has ended before
/// the answer was written; the flush sends them and waits for the receiver's answer, so they
/// have all arrived once it returns.
async fn exported(
    telemetry: &Arc<Telemetry>,
    posted: &mut mpsc::UnboundedReceiver<Bytes>,
) -> Vec<Bytes> {
    let flushing = telemetry.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .unwrap()
        .expect("the spans are exported");
    let mut bodies = Vec::new();
    while let Ok(body) = posted.try_recv() {
        bodies.push(body);
    }
    bodies
}

fn assert_request_span(request: &Span, upstream_port: u16) {
    assert_eq!(request.name, format!("chat {SONNET}"));
    assert_eq!(request.kind, SpanKind::Internal as i32);
    assert_eq!(text(request, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(text(request, "gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(text(request, "gen_ai.request.model"), Some(SONNET));
    assert_eq!(int(request, "gen_ai.request.max_tokens"), Some(256));
    assert_eq!(text(request, "gen_ai.response.model"), Some(HAIKU));
    assert_eq!(text(request, "breakwater.model"), Some(HAIKU));
    assert_eq!(int(request, "breakwater.attempts"), Some(2));
    let chain = format!("{SONNET},{HAIKU}");
    assert_eq!(text(request, "breakwater.chain"), Some(chain.as_str()));
    assert_eq!(text(request, "server.address"), Some("127.0.0.1"));
    assert_eq!(int(request, "server.port"), Some(i64::from(upstream_port)));
    assert_eq!(text(request, "error.type"), None);
}

fn assert_overloaded_then_fell_back(first: &Span) {
    assert_eq!(first.name, format!("chat {SONNET}"));
    assert_eq!(first.kind, SpanKind::Client as i32);
    assert_eq!(int(first, "breakwater.attempt"), Some(1));
    assert_eq!(text(first, "breakwater.target"), Some(SONNET));
    assert_eq!(text(first, "breakwater.breaker"), Some("closed"));
    assert_eq!(text(first, "breakwater.class"), Some("overloaded"));
    assert_eq!(int(first, "breakwater.status"), Some(529));
    assert_eq!(text(first, "breakwater.decision"), Some("fall_back"));
    assert_eq!(text(first, "error.type"), Some("overloaded_error"));
    assert_eq!(text(first, "gen_ai.request.model"), Some(SONNET));
    assert_eq!(text(first, "gen_ai.response.model"), None);
    let status = first.status.as_ref().map(|status| status.code);
    assert_eq!(status, Some(StatusCode::Error as i32));
}

fn assert_answered_by_the_fallback(second: &Span) {
    assert_eq!(second.name, format!("chat {HAIKU}"));
    assert_eq!(second.kind, SpanKind::Client as i32);
    assert_eq!(int(second, "breakwater.attempt"), Some(2));
    assert_eq!(text(second, "breakwater.class"), Some("success"));
    assert_eq!(text(second, "breakwater.decision"), None);
    assert_eq!(text(second, "error.type"), None);
    assert_eq!(text(second, "gen_ai.request.model"), Some(HAIKU));
    assert_eq!(text(second, "gen_ai.response.model"), Some(HAIKU));
    assert!(text(second, "gen_ai.response.id").is_some());
    assert!(int(second, "gen_ai.usage.input_tokens").is_some_and(|n| n > 0));
    assert!(int(second, "gen_ai.usage.output_tokens").is_some_and(|n| n > 0));
}

/// No attribute, and no byte of any export, holds a key or the prompt.
fn assert_no_secrets(spans: &[Span], bodies: &[Bytes]) {
    let secrets = [KEY, CLIENT_KEY, PROMPT];
    for kv in spans.iter().flat_map(|span| &span.attributes) {
        let value = format!("{:?}", kv.value);
        for secret in secrets {
            assert!(!value.contains(secret), "{} carries {secret:?}", kv.key);
        }
    }
    for body in bodies {
        for secret in secrets {
            let found = body.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "an export carries {secret:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_leaves_one_request_span_with_an_attempt_span_per_try() {
    let (endpoint, mut posted) = receiver().await;
    let telemetry = Arc::new(telemetry::init(&endpoint).expect("the exporter starts"));
    tracing_subscriber::registry()
        .with(telemetry.layer())
        .init();
    let (mock, base) = gateway().await;

    post_one(&base).await;
    let bodies = exported(&telemetry, &mut posted).await;
    let spans = decode(&bodies);

    assert_eq!(
        spans.len(),
        3,
        "a request span and two attempt spans: {spans:#?}"
    );
    let request = spans
        .iter()
        .find(|span| span.parent_span_id.is_empty())
        .expect("a request span");
    assert_request_span(request, mock.local_addr().port());
    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|span| span.parent_span_id == request.span_id)
        .collect();
    assert_eq!(
        attempts.len(),
        2,
        "both attempts are the request's children"
    );
    assert!(
        attempts
            .iter()
            .all(|span| span.trace_id == request.trace_id)
    );
    attempts.sort_by_key(|span| int(span, "breakwater.attempt"));
    assert_overloaded_then_fell_back(attempts[0]);
    assert_answered_by_the_fallback(attempts[1]);
    assert_no_secrets(&spans, &bodies);
}
