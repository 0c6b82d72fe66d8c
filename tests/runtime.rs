//! The runtime over real HTTP against the mock, one server per test on 127.0.0.1:0, in real
//! time with millisecond settings: brownouts reroute and recover, permanent errors are never
//! retried nor rerouted, a 429's `retry-after` is waited out once.

use std::time::Duration;

use breakwater::api::MessagesRequest;
use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::engine::policy::Jitter;
use breakwater::engine::{Class, Error, RequestOptions};
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::Runtime;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn mock(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// A runtime for `chain` against `server`, with millisecond-scale policies.
async fn runtime(server: &MockServer, chain: &[&str]) -> Runtime {
    runtime_with(server, chain, |_| {}).await
}

/// As [`runtime`], with `change` applied to the config.
async fn runtime_with(
    server: &MockServer,
    chain: &[&str],
    change: impl FnOnce(&mut Config),
) -> Runtime {
    let models: Vec<String> = chain.iter().map(|m| (*m).to_owned()).collect();
    let mut config = Config::for_chain(&models);
    config.retry.backoff.base = ms(10);
    config.retry.backoff.cap = ms(40);
    config.retry.backoff.jitter = Jitter::None;
    config.breaker.open_for = ms(200);
    config.breaker.max_open_for = ms(400);
    config.breaker.open_jitter = 0.0;
    config.seed = Some(3);
    change(&mut config);
    Runtime::builder()
        .config(config)
        .base_url(server.base_url())
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .expect("runtime starts")
}

fn request() -> MessagesRequest {
    MessagesRequest::new("p", 32).with_user("hello")
}

fn requests_to(server: &MockServer, model: &str) -> u64 {
    server.stats().models.get(model).map_or(0, |m| m.requests)
}

#[tokio::test]
async fn a_brownout_moves_traffic_to_the_fallback_and_back_after_recovery() {
    let server = mock(
        r#"
        [models.p]
        service-time = "5ms"
        brownouts = [{ start = "0s", end = "1s", fraction = 0.0 }]
        [models.f]
        service-time = "5ms"
        "#,
    )
    .await;
    let runtime = runtime(&server, &["p", "f"]).await;
    let started = Instant::now();
    let mut answered = Vec::new();
    while started.elapsed() < ms(2_500) {
        let answer = runtime
            .send_with(request(), RequestOptions::default().with_timeout(ms(2_000)))
            .await;
        let answer = answer.expect("every request is answered, by one model or the other");
        answered.push((started.elapsed(), answer.target.model().to_owned()));
        tokio::time::sleep(ms(20)).await;
    }
    let during: Vec<_> = answered
        .iter()
        .filter(|(at, _)| *at > ms(100) && *at < ms(900))
        .collect();
    assert!(
        !during.is_empty() && during.iter().all(|(_, m)| m == "f"),
        "during: {during:?}"
    );
    let after: Vec<_> = answered.iter().filter(|(at, _)| *at > ms(2_000)).collect();
    assert!(
        !after.is_empty() && after.iter().all(|(_, m)| m == "p"),
        "after: {after:?}"
    );
    let breakers = runtime.breakers();
    assert!(
        breakers
            .iter()
            .any(|(t, s)| t.model() == "p"
                && s.state == breakwater::engine::policy::StateKind::Closed)
    );
}

#[tokio::test]
async fn count_tokens_counts_each_request_before_it_is_sent_only_when_configured() {
    for count in [false, true] {
        let server = mock("[models.p]\nservice-time = \"1ms\"\n").await;
        let runtime = runtime_with(&server, &["p"], |c| c.upstream.count_tokens = count).await;
        for _ in 0..3 {
            runtime.send(request()).await.unwrap();
        }
        let calls = server.stats().count_tokens;
        assert_eq!(calls, if count { 3 } else { 0 }, "count-tokens = {count}");
        assert_eq!(requests_to(&server, "p"), 3);
    }
}

#[tokio::test]
async fn the_client_counts_tokens_with_the_endpoints_own_fields() {
    let server = mock("[models.p]\nservice-time = \"1ms\"\n").await;
    let config = breakwater::client::ClientConfig {
        base_url: server.base_url(),
        credentials: Some(Credentials::ApiKey(Secret::new("test-key"))),
        ..Default::default()
    };
    let client = breakwater::client::ClaudeClient::new(&config).unwrap();
    let request = MessagesRequest::new("p", 32)
        .with_user("x".repeat(41))
        .into();
    // The mock refuses max_tokens there, as the API does, so this also shows it is left out.
    let counted = client.count_tokens("p", &request, ms(1_000)).await.unwrap();
    assert_eq!(counted, 11, "41 characters at four a token");
    let unknown = client.count_tokens("nope", &request, ms(1_000)).await;
    assert_eq!(unknown.unwrap_err().status(), Some(404));
}

#[tokio::test]
async fn permanent_errors_are_never_retried_nor_rerouted() {
    for (status, error_type) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (413, "request_too_large"),
    ] {
        let server = mock(&format!(
            "[models.p]\nservice-time = \"1ms\"\nfaults = [{{ kind = \"status\", status = {status}, error-type = \"{error_type}\" }}]\n[models.f]\n"
        ))
        .await;
        let runtime = runtime(&server, &["p", "f"]).await;
        let error = runtime.send(request()).await.unwrap_err();
        let Error::Upstream { failure, attempts } = &error else {
            panic!("{status}: {error}")
        };
        assert_eq!(
            (failure.status(), failure.class()),
            (Some(status), Class::Invalid)
        );
        assert_eq!(attempts.len(), 1, "{status}");
        assert_eq!(
            (requests_to(&server, "p"), requests_to(&server, "f")),
            (1, 0),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_exactly_once() {
    let server = mock(
        r#"
        [models.p]
        service-time = "1ms"
        faults = [{ kind = "status", status = 429, retry-after = "1", end = "500ms" }]
        "#,
    )
    .await;
    let runtime = runtime(&server, &["p"]).await;
    let started = Instant::now();
    let answer = runtime
        .send(request())
        .await
        .expect("the retry after one second succeeds");
    let waited = started.elapsed();
    assert!(
        waited >= ms(1_000) && waited < ms(1_900),
        "waited {waited:?}"
    );
    let classes: Vec<_> = answer.attempts.iter().map(|a| a.failure).collect();
    assert_eq!(classes, vec![Some(Class::RateLimited), None]);
    assert_eq!(requests_to(&server, "p"), 2);
}

/// Every event of a committed stream as SSE text, reading the tail to its end; `Err` with the
/// text so far if the tail ended with a failure.
async fn drain(
    committed: breakwater::engine::Committed<breakwater::api::MessageStreamEvent>,
) -> Result<String, String> {
    use futures::StreamExt;
    let mut text: String = committed
        .head
        .iter()
        .map(breakwater::api::MessageStreamEvent::to_sse)
        .collect();
    let mut tail = committed.tail;
    while let Some(event) = tail.next().await {
        match event {
            Ok(event) => text.push_str(&event.to_sse()),
            Err(_) => return Err(text),
        }
    }
    Ok(text)
}

#[tokio::test]
async fn in_stream_overloads_before_content_fall_back_and_count_toward_the_breaker() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nfaults = [{ kind = \"stream-error\", after-events = 1, error-type = \"overloaded_error\" }]\n[models.f]\nservice-time = \"1ms\"\n",
    )
    .await;
    let runtime = runtime_with(&server, &["p", "f"], |config| {
        config.retry.max_retries_per_target = 0;
        config.throttle.enabled = false;
    })
    .await;
    for _ in 0..8 {
        let answer = runtime.stream(request()).await.expect("answered");
        assert_eq!(answer.target.model(), "f");
        let text = drain(answer.value).await.expect("whole");
        assert!(text.contains("message_stop"), "{text}");
        assert!(!text.contains("event: error"), "{text}");
    }
    assert_eq!(
        requests_to(&server, "p"),
        5,
        "five in-stream overloads opened p's breaker, as five 529s would"
    );
}

#[tokio::test]
async fn a_stream_dropped_before_content_falls_back_invisibly() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\nfaults = [{ kind = \"stream-drop\", after-events = 1 }]\n[models.f]\nservice-time = \"1ms\"\n",
    )
    .await;
    let runtime = runtime_with(&server, &["p", "f"], |config| {
        config.retry.max_retries_per_target = 1;
    })
    .await;
    let answer = runtime.stream(request()).await.expect("answered");
    assert_eq!(answer.target.model(), "f");
    let failures: Vec<_> = answer.attempts.iter().map(|a| a.failure).collect();
    assert_eq!(failures, [Some(Class::Connect), Some(Class::Connect), None]);
    let text = drain(answer.value).await.expect("whole");
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    assert!(
        text.contains(r#""model":"f""#) && text.contains("message_stop"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stream_that_stalls_before_content_falls_back_after_the_stall_timeout() {
    use axum::response::IntoResponse;
    // p sends message_start, then nothing (pings would count as events); f streams whole.
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(|body: String| async move {
            let model = if body.contains(r#""model":"p""#) { "p" } else { "f" };
            let start = format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"{model}\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}}}\n\n"
            );
            let rest = [
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"whole\"}}\n\n",
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":1}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ];
            let head = futures::stream::iter([Ok::<_, std::convert::Infallible>(start)]);
            let body = if model == "p" {
                axum::body::Body::from_stream(
                    futures::StreamExt::chain(head, futures::stream::pending()),
                )
            } else {
                let rest = futures::stream::iter(rest.map(|e| Ok(e.to_owned())));
                axum::body::Body::from_stream(futures::StreamExt::chain(head, rest))
            };
            ([("content-type", "text/event-stream")], body).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = Config::for_chain(&["p".to_owned(), "f".to_owned()]);
    config.retry.max_retries_per_target = 0;
    for limits in config.models.values_mut() {
        limits.stall_timeout = ms(100);
    }
    let runtime = Runtime::builder()
        .config(config)
        .base_url(base)
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    let answer = runtime.stream(request()).await.expect("answered");
    assert_eq!(answer.target.model(), "f");
    assert_eq!(answer.attempts.len(), 2);
    assert_eq!(answer.attempts[0].failure, Some(Class::Timeout));
    assert!(started.elapsed() >= ms(100), "{:?}", started.elapsed());
    let text = drain(answer.value).await.expect("whole");
    assert!(
        text.contains("whole") && text.contains("message_stop"),
        "{text}"
    );
}

#[tokio::test]
async fn a_model_that_is_gone_falls_back_at_once_and_alone_its_404_comes_back() {
    // The mock answers 404 not_found_error for a model it does not serve, as the API does
    // for a retired one.
    let server = mock("[models.f]\nservice-time = \"1ms\"\n").await;
    let runtime = runtime(&server, &["retired", "f"]).await;
    let answer = runtime
        .send(MessagesRequest::new("retired", 32).with_user("hello"))
        .await
        .expect("the next model answers");
    assert_eq!(answer.target.model(), "f");
    let failures: Vec<_> = answer
        .attempts
        .iter()
        .map(|a| (a.status, a.failure))
        .collect();
    assert_eq!(
        failures,
        [(Some(404), Some(Class::Invalid)), (None, None)],
        "one 404, no retry in place"
    );

    let alone = runtime
        .send_with(
            MessagesRequest::new("retired", 32).with_user("hello"),
            RequestOptions::default().with_chain([breakwater::engine::Target::new("retired")]),
        )
        .await
        .unwrap_err();
    let Error::Upstream { failure, attempts } = &alone else {
        panic!("{alone}")
    };
    assert_eq!(failure.status(), Some(404));
    assert_eq!(failure.error_type(), Some("not_found_error"));
    assert_eq!(attempts.len(), 1);
}
