//! The full failure-classification matrix over real HTTP: the Claude client against the mock
//! server, one server per test on 127.0.0.1:0, in real time with millisecond settings.

use std::time::Duration;

use breakwater::api::{MessageStreamEvent, MessagesRequest, WireEvent, WireRequest};
use breakwater::client::{ClaudeClient, ClientConfig, Credentials, Secret};
use breakwater::engine::policy::{Attempts, Decision, GiveUp, RetryPolicy};
use breakwater::engine::{Class, EventStream, Failure, Target, Upstream, await_commit};
use breakwater::mock::{MockServer, Scenario};
use futures::StreamExt;
use tokio::time::Instant;

const MODEL: &str = "m";

async fn serve(model_toml: &str) -> MockServer {
    let toml = format!("[models.{MODEL}]\nservice-time = \"1ms\"\n{model_toml}");
    let scenario = Scenario::from_toml(&toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

fn config(server: &MockServer) -> ClientConfig {
    ClientConfig::default()
        .with_base_url(server.base_url())
        .with_credentials(Credentials::ApiKey(Secret::new("sk-test-secret")))
}

fn client(server: &MockServer) -> ClaudeClient {
    ClaudeClient::new(&config(server)).expect("valid config")
}

fn request() -> WireRequest {
    MessagesRequest::new(MODEL, 64).with_user("hello").into()
}

async fn fail_with(fault: &str) -> Failure {
    let server = serve(&format!("faults = [{fault}]")).await;
    let outcome = client(&server).send(&Target::new(MODEL), &request()).await;
    outcome.expect_err("the fault makes the attempt fail")
}

fn assert_class(failure: &Failure, class: Class, status: u16, error_type: &str) {
    assert_eq!(failure.class(), class, "{failure}");
    assert_eq!(failure.status(), Some(status), "{failure}");
    assert_eq!(failure.error_type(), Some(error_type), "{failure}");
    assert!(
        failure
            .request_id()
            .is_some_and(|id| id.starts_with("req_")),
        "{failure}"
    );
}

#[tokio::test]
async fn every_status_of_the_error_table_gets_its_class() {
    let rows = [
        (400, "invalid_request_error", Class::Invalid),
        (402, "billing_error", Class::Invalid),
        (403, "permission_error", Class::Invalid),
        (409, "conflict_error", Class::Invalid),
        (413, "request_too_large", Class::Invalid),
        (429, "rate_limit_error", Class::RateLimited),
        (500, "api_error", Class::ServerError),
        (502, "api_error", Class::ServerError),
        (503, "api_error", Class::ServerError),
        (504, "timeout_error", Class::ServerError),
        (529, "overloaded_error", Class::Overloaded),
    ];
    for (status, error_type, class) in rows {
        let fault =
            format!(r#"{{ kind = "status", status = {status}, error-type = "{error_type}" }}"#);
        assert_class(&fail_with(&fault).await, class, status, error_type);
    }
}

#[tokio::test]
async fn unknown_error_types_are_kept_and_classified_by_status() {
    let fault = r#"{ kind = "status", status = 503, error-type = "brand_new_error" }"#;
    assert_class(
        &fail_with(fault).await,
        Class::ServerError,
        503,
        "brand_new_error",
    );
}

#[tokio::test]
async fn missing_key_is_an_authentication_error() {
    let server = serve("").await;
    let config = ClientConfig {
        credentials: None,
        ..config(&server)
    };
    let client = ClaudeClient::new(&config).unwrap();
    let failure = client
        .send(&Target::new(MODEL), &request())
        .await
        .unwrap_err();
    assert_class(&failure, Class::Invalid, 401, "authentication_error");
}

#[tokio::test]
async fn bearer_tokens_authenticate_too() {
    let server = serve("").await;
    let config = config(&server).with_credentials(Credentials::Bearer(Secret::new("tok")));
    let client = ClaudeClient::new(&config).unwrap();
    let reply = client.send(&Target::new(MODEL), &request()).await.unwrap();
    assert!(reply.value.message().unwrap().text().contains("hello"));
}

#[tokio::test]
async fn unknown_model_is_not_found() {
    let server = serve("").await;
    let failure = client(&server)
        .send(&Target::new("no-such-model"), &request())
        .await
        .unwrap_err();
    assert_class(&failure, Class::Invalid, 404, "not_found_error");
}

#[tokio::test]
async fn the_target_model_replaces_the_requests_model() {
    let server = serve("").await;
    let request = MessagesRequest::new("some-other-model", 64).with_user("hi");
    let reply = client(&server)
        .send(&Target::new(MODEL), &request.into())
        .await
        .unwrap();
    assert_eq!(reply.value.message().unwrap().model, MODEL);
    assert!(reply.request_id.is_some());
}

#[tokio::test]
async fn retry_after_seconds_is_read() {
    let failure = fail_with(r#"{ kind = "status", status = 429, retry-after = "7" }"#).await;
    assert_eq!(failure.class(), Class::RateLimited);
    assert_eq!(failure.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn retry_after_ms_takes_precedence_over_retry_after() {
    let fault = r#"{ kind = "status", status = 529, retry-after = "9", headers = { retry-after-ms = "1500" } }"#;
    assert_eq!(
        fail_with(fault).await.retry_after(),
        Some(Duration::from_millis(1500))
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_becomes_a_delay() {
    let at = breakwater::wallclock::unix_now() + Duration::from_secs(30);
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + at);
    let failure = fail_with(&format!(
        r#"{{ kind = "status", status = 529, retry-after = "{date}" }}"#
    ))
    .await;
    let delay = failure.retry_after().expect("the date is parsed");
    assert!(
        delay > Duration::from_secs(27) && delay <= Duration::from_secs(30),
        "{delay:?}"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_is_never_retried_in_place_but_falls_back() {
    let failure = fail_with(r#"{ kind = "status", status = 429 }"#).await;
    assert_eq!(failure.class(), Class::RateLimited);
    assert_eq!(failure.retry_after(), None);
    let policy = RetryPolicy::default();
    let decide = |can_fall_back| {
        let attempts = Attempts {
            total: 1,
            on_target: 1,
            can_fall_back,
        };
        policy.decide(
            &failure,
            attempts,
            &mut policy.backoff.build(0),
            Instant::now(),
            None,
        )
    };
    assert_eq!(
        decide(true),
        Decision::FallBack,
        "the next model may have room"
    );
    assert_eq!(
        decide(false),
        Decision::GiveUp(GiveUp::QuotaSpent),
        "at the end of the chain: a spent quota"
    );
}

#[tokio::test]
async fn x_should_retry_is_read_both_ways() {
    let no = r#"{ kind = "status", status = 529, headers = { x-should-retry = "false" } }"#;
    assert_eq!(fail_with(no).await.should_retry(), Some(false));
    let yes = r#"{ kind = "status", status = 409, error-type = "conflict_error", headers = { x-should-retry = "true" } }"#;
    assert_eq!(fail_with(yes).await.should_retry(), Some(true));
}

#[tokio::test]
async fn rate_limit_headers_are_read_on_success_and_on_429() {
    let server = serve("rps = 1").await;
    let client = client(&server);
    let reply = client.send(&Target::new(MODEL), &request()).await.unwrap();
    let requests = reply.limits.requests;
    assert_eq!(requests.limit, Some(60), "per minute, as the API states it");
    assert_eq!(requests.remaining, Some(0));
    assert!(
        requests
            .reset_in
            .is_some_and(|reset| reset <= Duration::from_secs(2))
    );
    let failure = client
        .send(&Target::new(MODEL), &request())
        .await
        .unwrap_err();
    assert_eq!(failure.class(), Class::RateLimited);
    assert_eq!(failure.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(failure.limits().requests.limit, Some(60));
}

#[tokio::test]
async fn a_dropped_connection_is_a_connect_failure() {
    let failure = fail_with(r#"{ kind = "drop" }"#).await;
    assert_eq!(failure.class(), Class::Connect, "{failure}");
    assert_eq!(failure.status(), None);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = ClaudeClient::new(&ClientConfig::default().with_base_url(base_url)).unwrap();
    let failure = client
        .send(&Target::new(MODEL), &request())
        .await
        .unwrap_err();
    assert_eq!(failure.class(), Class::Connect, "{failure}");
}

#[tokio::test]
async fn a_slow_response_is_a_local_timeout() {
    let server = serve(r#"faults = [{ kind = "slow", delay = "5s" }]"#).await;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(100),
        ..config(&server)
    };
    let client = ClaudeClient::new(&config).unwrap();
    let failure = client
        .send(&Target::new(MODEL), &request())
        .await
        .unwrap_err();
    assert_eq!(failure.class(), Class::Timeout, "{failure}");
}

#[tokio::test]
async fn a_malformed_body_is_a_server_error() {
    let failure = fail_with(r#"{ kind = "malformed" }"#).await;
    assert_eq!(failure.class(), Class::ServerError, "{failure}");
    assert_eq!(failure.status(), Some(200));
    assert!(
        failure.message().starts_with("unreadable response body"),
        "{failure}"
    );
}

/// Opens a stream against a mock with `fault`; the server is returned to outlive the stream.
async fn open_stream(fault: &str) -> (MockServer, EventStream<MessageStreamEvent>) {
    let server = serve(&format!("faults = [{fault}]")).await;
    let opened = client(&server)
        .stream(&Target::new(MODEL), &request())
        .await;
    let events = opened.expect("a 200 stream").value;
    let typed = events.map(|item| item.map(|event: WireEvent| event.to_event().expect("typed")));
    (server, Box::pin(typed))
}

#[tokio::test]
async fn an_overload_inside_a_200_stream_before_content_is_a_retryable_outcome() {
    let (_server, events) = open_stream(r#"{ kind = "stream-error", after-events = 1 }"#).await;
    let failure = await_commit(events, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_class(&failure, Class::Overloaded, 200, "overloaded_error");
}

#[tokio::test]
async fn an_overload_right_after_content_block_start_is_still_retryable() {
    // message_start, ping and content_block_start: an empty block has reached no caller.
    let (_server, events) = open_stream(r#"{ kind = "stream-error", after-events = 3 }"#).await;
    let failure = await_commit(events, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_class(&failure, Class::Overloaded, 200, "overloaded_error");
}

#[tokio::test]
async fn an_overload_after_content_ends_the_stream_with_a_failure() {
    let (_server, events) = open_stream(r#"{ kind = "stream-error", after-events = 4 }"#).await;
    let committed = await_commit(events, Duration::from_secs(5))
        .await
        .expect("content came first");
    let rest: Vec<_> = committed.tail.collect().await;
    let failure = rest.last().unwrap().as_ref().unwrap_err();
    assert_eq!(failure.class(), Class::Overloaded);
    assert_eq!(failure.status(), Some(200));
}

#[tokio::test]
async fn a_stream_cut_after_content_never_ends_silently() {
    let (_server, events) = open_stream(r#"{ kind = "stream-drop", after-events = 4 }"#).await;
    let committed = await_commit(events, Duration::from_secs(5))
        .await
        .expect("content came first");
    let rest: Vec<_> = committed.tail.collect().await;
    let failure = rest.last().unwrap().as_ref().unwrap_err();
    assert_eq!(failure.class(), Class::Connect, "{failure}");
    assert_eq!(failure.status(), Some(200), "{failure}");
    assert!(failure.request_id().is_some(), "{failure}");
}

#[tokio::test]
async fn a_whole_stream_rebuilds_the_message() {
    let server = serve("").await;
    let opened = client(&server)
        .stream(&Target::new(MODEL), &request())
        .await
        .unwrap();
    let mut accumulator = breakwater::api::MessageAccumulator::new();
    let events: Vec<_> = opened.value.collect().await;
    for event in &events {
        let event = event.as_ref().expect("no failure in a healthy stream");
        accumulator.push(&event.to_event().unwrap());
    }
    let message = accumulator
        .finish()
        .expect("the stream reached message_stop");
    assert!(message.text().contains("hello"));
}

#[tokio::test]
async fn the_key_never_appears_in_debug_or_errors() {
    let server = serve(r#"faults = [{ kind = "status", status = 529 }]"#).await;
    let config = config(&server);
    let client = ClaudeClient::new(&config).unwrap();
    let failure = client
        .send(&Target::new(MODEL), &request())
        .await
        .unwrap_err();
    for text in [
        format!("{config:?}"),
        format!("{client:?}"),
        failure.to_string(),
        format!("{failure:?}"),
    ] {
        assert!(!text.contains("sk-test-secret"), "{text}");
    }
}

#[tokio::test]
async fn a_slow_non_streamed_answer_outlives_the_read_timeout() {
    let server = serve(r#"faults = [{ kind = "slow", delay = "300ms" }]"#).await;
    let config = ClientConfig {
        read_timeout: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..config(&server)
    };
    let client = ClaudeClient::new(&config).unwrap();
    let reply = client.send(&Target::new(MODEL), &request()).await;
    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn a_stream_that_ends_without_message_stop_is_a_server_error() {
    let (_server, events) = open_stream(r#"{ kind = "stream-end", after-events = 4 }"#).await;
    let committed = await_commit(events, Duration::from_secs(5))
        .await
        .expect("content came first");
    let rest: Vec<_> = committed.tail.collect().await;
    let failure = rest.last().unwrap().as_ref().unwrap_err();
    assert_eq!(failure.class(), Class::ServerError, "{failure}");
    assert_eq!(failure.status(), Some(200), "{failure}");
    assert!(
        failure
            .request_id()
            .is_some_and(|id| id.starts_with("req_"))
    );
}

#[tokio::test]
async fn a_stream_that_stalls_is_a_timeout() {
    // A listener that answers with headers and one event, then holds the stream open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 64 * 1024];
        let _ = socket.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                    request-id: req_stall\r\ntransfer-encoding: chunked\r\n\r\n";
        let event = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(chunk.as_bytes()).await.unwrap();
        std::future::pending::<()>().await;
    });
    let config = ClientConfig {
        read_timeout: Duration::from_millis(100),
        ..ClientConfig::default().with_base_url(base_url)
    };
    let client = ClaudeClient::new(&config).unwrap();
    let events = client
        .stream(&Target::new(MODEL), &request())
        .await
        .expect("a 200 stream")
        .value;
    let items: Vec<_> = events.collect().await;
    assert!(
        matches!(&items[0], Ok(event) if event.to_event().unwrap() == MessageStreamEvent::Ping),
        "{items:?}"
    );
    let failure = items[1].as_ref().unwrap_err();
    assert_eq!(failure.class(), Class::Timeout, "{failure}");
    assert_eq!(failure.status(), Some(200), "{failure}");
    assert_eq!(failure.request_id(), Some("req_stall"), "{failure}");
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn a_408_is_a_timeout() {
    let failure = fail_with(r#"{ kind = "status", status = 408 }"#).await;
    assert_eq!(failure.class(), Class::Timeout, "{failure}");
    assert_eq!(failure.status(), Some(408));
}

#[tokio::test]
async fn a_418_and_a_422_are_invalid() {
    for status in [418, 422] {
        let failure = fail_with(&format!(r#"{{ kind = "status", status = {status} }}"#)).await;
        assert_eq!(failure.class(), Class::Invalid, "{failure}");
        assert_eq!(failure.status(), Some(status));
    }
}

#[tokio::test]
async fn a_non_json_413_from_the_cdn_is_invalid_with_a_short_message() {
    let page = format!(
        "<html><body>{}</body></html>",
        "413 Request Entity Too Large ".repeat(50)
    );
    let failure = fail_with(&format!(
        r#"{{ kind = "status", status = 413, body = "{page}" }}"#
    ))
    .await;
    assert_eq!(failure.class(), Class::Invalid, "{failure}");
    assert_eq!(failure.status(), Some(413));
    assert_eq!(failure.error_type(), None);
    assert!(
        failure.message().starts_with("<html><body>413"),
        "{failure}"
    );
    assert!(failure.message().chars().count() <= 200, "{failure}");
    assert!(
        failure
            .request_id()
            .is_some_and(|id| id.starts_with("req_"))
    );
}

#[tokio::test]
async fn an_empty_502_is_a_server_error_with_a_short_message() {
    let failure = fail_with(r#"{ kind = "status", status = 502, body = "" }"#).await;
    assert_eq!(failure.class(), Class::ServerError, "{failure}");
    assert_eq!(failure.status(), Some(502));
    assert_eq!(failure.message(), "status 502 with an empty body");
}
