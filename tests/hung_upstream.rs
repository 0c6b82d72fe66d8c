//! A model that accepts a request and never answers (issue #16): with the default retry rules
//! the request falls back to the next model after one `attempt-timeout`, and is answered well
//! within its deadline, whole or streamed. Real time, loopback, millisecond settings.

use std::time::Duration;

use breakwater::api::MessagesRequest;
use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::engine::Class;
use breakwater::runtime::Runtime;
use futures::StreamExt;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const MESSAGE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"f","content":[{"type":"text","text":"answered"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;

const STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"f\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"answered\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":1}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

/// An upstream where model `p` reads the request and never answers, and `f` answers at once.
async fn upstream() -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(|body: String| async move {
            if body.contains(r#""model":"p""#) {
                std::future::pending::<()>().await;
            }
            if body.contains(r#""stream":true"#) {
                ([("content-type", "text/event-stream")], STREAM).into_response()
            } else {
                ([("content-type", "application/json")], MESSAGE).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The default rules, scaled down: an attempt timeout of 100 ms inside a deadline of 1 s.
async fn runtime(base: String) -> Runtime {
    let mut config = Config::for_chain(&["p".to_owned(), "f".to_owned()]);
    config.admission.default_timeout = ms(1000);
    for limits in config.models.values_mut() {
        limits.attempt_timeout = ms(100);
    }
    assert_eq!(config.warnings(), []);
    Runtime::builder()
        .config(config)
        .base_url(base)
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .expect("runtime starts")
}

fn request() -> MessagesRequest {
    MessagesRequest::new("p", 32).with_user("hello")
}

#[tokio::test]
async fn a_hung_primary_falls_back_after_one_attempt_timeout_within_the_deadline() {
    let runtime = runtime(upstream().await).await;
    let started = Instant::now();
    let answer = runtime
        .send(request())
        .await
        .expect("answered by the fallback");
    let took = started.elapsed();
    assert_eq!(answer.target.model(), "f");
    let failures: Vec<_> = answer.attempts.iter().map(|a| a.failure).collect();
    assert_eq!(failures, [Some(Class::Timeout), None]);
    assert!(took >= ms(100) && took < ms(1000), "{took:?}");
}

#[tokio::test]
async fn a_stream_whose_primary_never_answers_falls_back_within_the_deadline() {
    let runtime = runtime(upstream().await).await;
    let started = Instant::now();
    let answer = runtime
        .stream(request())
        .await
        .expect("answered by the fallback");
    assert_eq!(answer.target.model(), "f");
    let failures: Vec<_> = answer.attempts.iter().map(|a| a.failure).collect();
    assert_eq!(failures, [Some(Class::Timeout), None]);
    let events: Vec<_> = answer.value.tail.collect().await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
    let took = started.elapsed();
    assert!(took >= ms(100) && took < ms(1000), "{took:?}");
}
