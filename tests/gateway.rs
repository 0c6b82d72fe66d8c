//! The gateway over real HTTP: a mock upstream and a gateway, each on its own 127.0.0.1:0
//! port per test, in real time with millisecond settings.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::engine::policy::Jitter;
use breakwater::gateway::{ClientKey, Drained, Gateway, serve};
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::Runtime;
use futures::StreamExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};

/// Model p keeps none of its capacity: every request to it gets 529.
const P_DOWN: &str = "[models.p]\nservice-time = \"1ms\"\nbrownouts = [{ start = \"0s\", end = \"1h\", fraction = 0.0 }]\n";
/// Model f, healthy.
const F_UP: &str = "[models.f]\nservice-time = \"1ms\"\n";

async fn mock(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// A gateway for `chain` in front of `server`; its base URL.
async fn gateway(server: &MockServer, chain: &[&str]) -> String {
    gateway_with(&server.base_url(), chain, |_| {}).await.base
}

/// A running gateway: its base URL, its runtime, and the switch that starts its drain.
struct Running {
    base: String,
    runtime: Arc<Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<Drained>>,
}

/// A gateway for `chain` in front of the upstream at `upstream`, served as `breakwater
/// serve` does (client timeouts, drain), with `tune` applied to its configuration.
async fn gateway_with(upstream: &str, chain: &[&str], tune: impl FnOnce(&mut Config)) -> Running {
    let models: Vec<String> = chain.iter().map(|m| (*m).to_owned()).collect();
    let mut config = Config::for_chain(&models);
    config.retry.max_retries_per_target = 0;
    config.retry.backoff.jitter = Jitter::None;
    config.breaker.open_for = Duration::from_millis(200);
    config.seed = Some(3);
    tune(&mut config);
    let runtime = Runtime::builder()
        .config(config)
        .base_url(upstream)
        .credentials(Credentials::ApiKey(Secret::new("test-key")))
        .start()
        .await
        .expect("runtime starts");
    let runtime = Arc::new(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let gateway = Gateway::new(runtime.clone()).with_metrics(prometheus());
    let settings = gateway.config().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        // Dropping the switch (as `gateway` does) never stops it.
        let stopped = async {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        serve(listener, gateway.router(), &settings, stopped).await
    });
    Running {
        base: format!("http://{address}"),
        runtime,
        stop: Some(stop),
        served,
    }
}

/// The process's Prometheus recorder, installed once for every test.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other recorder in this test binary")
        })
        .clone()
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
    let server = mock(&format!("{P_DOWN}{F_UP}")).await;
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
    let server = mock(P_DOWN).await;
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
    for stream in [false, true] {
        let response = post(&base, body("p", stream).to_string()).await;
        assert_eq!(response.status(), 403, "stream {stream}");
        let id = header(&response, "request-id")
            .unwrap_or_default()
            .to_owned();
        assert!(
            id.starts_with("req_mock_"),
            "stream {stream}: request-id {id:?}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "permission_error");
        // The body as the upstream sent it, request id included (as the header has it).
        assert_eq!(error["request_id"], id.as_str(), "stream {stream}: {error}");
    }
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

/// Starts `app` on 127.0.0.1:0 as a stand-in upstream; its base URL.
async fn upstream(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn message_json(model: &str, text: &str) -> Value {
    json!({
        "id": "msg_echo", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    })
}

#[tokio::test]
async fn anthropic_version_and_beta_are_forwarded_per_request() {
    let echo = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(|headers: axum::http::HeaderMap| async move {
            let get = |name: &str| {
                headers
                    .get(name)
                    .map_or("-", |v| v.to_str().unwrap())
                    .to_owned()
            };
            let text = format!("{} | {}", get("anthropic-version"), get("anthropic-beta"));
            axum::Json(message_json("p", &text))
        }),
    );
    let running = gateway_with(&upstream(echo).await, &["p"], |_| {}).await;
    let ask = |headers: &[(&str, &str)]| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/messages", running.base))
            .header("content-type", "application/json")
            .body(body("p", false).to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let message: Value = ask(&[
        ("anthropic-version", "2023-01-01"),
        ("anthropic-beta", "tools-2024,files-api"),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        message["content"][0]["text"],
        "2023-01-01 | tools-2024,files-api"
    );
    let message: Value = ask(&[]).await.unwrap().json().await.unwrap();
    assert_eq!(
        message["content"][0]["text"], "2023-06-01 | -",
        "without them, the configured version and no beta"
    );
}

#[tokio::test]
async fn a_callers_betas_add_to_the_gateways_and_every_copy_of_the_header_counts() {
    let echo = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(|headers: axum::http::HeaderMap| async move {
            let betas: Vec<&str> = headers
                .get_all("anthropic-beta")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            axum::Json(message_json("p", &betas.join(" | ")))
        }),
    );
    let running = gateway_with(&upstream(echo).await, &["p"], |config| {
        config.upstream.betas = vec!["gateway-beta".to_owned()];
    })
    .await;
    let message: Value = reqwest::Client::new()
        .post(format!("{}/v1/messages", running.base))
        .header("content-type", "application/json")
        .header("anthropic-beta", "tools-2024")
        .header("anthropic-beta", "files-api,gateway-beta")
        .body(body("p", false).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        message["content"][0]["text"], "gateway-beta,tools-2024,files-api",
        "one header: the gateway's flags, then each of the caller's copies, each flag once"
    );
}

#[tokio::test]
async fn a_wrong_method_gets_an_anthropic_shaped_405() {
    let server = mock("[models.p]\n").await;
    let base = gateway(&server, &["p"]).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "GET is not allowed on /v1/messages"
    );
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_the_upstream() {
    let server = mock("[models.p]\n").await;
    let base = gateway(&server, &["p"]).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/messages/count_tokens"))
        .header("content-type", "application/json")
        .body(
            json!({"model": "p", "messages": [{"role": "user", "content": "count these words please"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let counted: Value = response.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    assert_eq!(server.stats().count_tokens, 1);
}

#[tokio::test]
async fn a_model_in_no_chain_is_served_alone_with_its_own_breaker() {
    let server = mock(
        "[models.p]\nservice-time = \"1ms\"\n[models.solo]\nservice-time = \"1ms\"\nbrownouts = [{ start = \"0s\", end = \"1h\", fraction = 0.0 }]\n",
    )
    .await;
    let running = gateway_with(&server.base_url(), &["p"], |_| {}).await;
    for _ in 0..6 {
        let response = post(&running.base, body("solo", false).to_string()).await;
        assert_eq!(
            response.status(),
            529,
            "alone, it has nothing to fall back to"
        );
    }
    let state: Value = reqwest::get(format!("{}/v1/breakwater/state", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let solo = state["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "solo")
        .expect("solo is listed");
    assert_eq!(solo["configured"], false);
    assert_eq!(solo["breaker"], "open", "{state}");
    assert_eq!(
        server.stats().models["solo"].requests,
        5,
        "its breaker opened after five 529s and sent no more"
    );
    let response = post(&running.base, body("p", false).to_string()).await;
    assert_eq!(response.status(), 200, "the chain's own model is untouched");
}

#[tokio::test]
async fn unlisted_models_are_refused_when_switched_off_or_over_the_cap() {
    let server = mock("[models.p]\n[models.a]\n[models.b]\n").await;
    let off = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.serve_unlisted = false;
    })
    .await;
    let response = post(&off.base, body("a", false).to_string()).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "not_found_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("serve-unlisted"),
        "{error}"
    );

    let capped = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.max_unlisted = 1;
    })
    .await;
    assert_eq!(
        post(&capped.base, body("a", false).to_string())
            .await
            .status(),
        200
    );
    let response = post(&capped.base, body("b", false).to_string()).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max-unlisted"),
        "{error}"
    );
    assert_eq!(
        post(&capped.base, body("a", false).to_string())
            .await
            .status(),
        200,
        "one already served stays served"
    );
}

#[tokio::test]
async fn with_require_keys_only_configured_keys_get_in() {
    let server = mock("[models.p]\n").await;
    let running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.require_keys = true;
        config.gateway.keys = vec![ClientKey::new("gw-key-1"), ClientKey::new("gw-key-2")];
    })
    .await;
    let send = |auth: Option<(&str, &str)>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/messages", running.base))
            .header("content-type", "application/json")
            .body(body("p", false).to_string());
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        request.send()
    };
    let missing = send(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["type"], "authentication_error");
    let wrong = send(Some(("x-api-key", "gw-key-3"))).await.unwrap();
    assert_eq!(wrong.status(), 401);
    let text = wrong.text().await.unwrap();
    assert!(!text.contains("gw-key"), "the key is never echoed: {text}");
    assert_eq!(
        send(Some(("x-api-key", "gw-key-2")))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send(Some(("authorization", "Bearer gw-key-1")))
            .await
            .unwrap()
            .status(),
        200
    );
    let state = reqwest::get(format!("{}/v1/breakwater/state", running.base))
        .await
        .unwrap();
    assert_eq!(
        state.status(),
        401,
        "the state endpoint is behind the keys too"
    );
    let health = reqwest::get(format!("{}/healthz", running.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        server.stats().models["p"].requests,
        2,
        "refused callers sent nothing upstream"
    );
}

#[tokio::test]
async fn state_and_metrics_show_an_open_breaker_and_the_traffic() {
    let server = mock(&format!("{P_DOWN}{F_UP}")).await;
    // Without the client-side throttle, which would turn some of them away before p.
    let running = gateway_with(&server.base_url(), &["p", "f"], |config| {
        config.throttle.enabled = false;
    })
    .await;
    for _ in 0..6 {
        let response = post(&running.base, body("p", false).to_string()).await;
        assert_eq!(response.status(), 200);
    }
    let state: Value = reqwest::get(format!("{}/v1/breakwater/state", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = state["models"].as_array().unwrap();
    assert_eq!(models[0]["model"], "p");
    assert_eq!(models[0]["breaker"], "open", "{state}");
    let open_for = models[0]["open_for_ms"].as_u64().unwrap();
    assert!(
        open_for > 0 && open_for <= 1_000,
        "open for about 200 ms, jittered: {state}"
    );
    assert_eq!(models[1]["model"], "f");
    assert_eq!(models[1]["breaker"], "closed");
    assert!(models[1]["limit"].as_u64().unwrap() >= 1, "{state}");
    assert_eq!(state["chains"]["default"], json!(["p", "f"]));

    let metrics = reqwest::get(format!("{}/metrics", running.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "breakwater_gateway_requests_total",
        "breakwater_attempts_total",
        "breakwater_fallbacks_total",
        "breakwater_breaker_state",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(
        !metrics.contains("test-key"),
        "the upstream key is never a label"
    );
}

/// Writes `head` (and nothing more) on a raw connection to `base`, then waits for the
/// gateway's answer or for it to close the connection; what it read.
async fn raw(base: &str, head: &str, wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut read)).await;
    String::from_utf8_lossy(&read).into_owned()
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_body_gets_408() {
    let server = mock("[models.p]\n").await;
    let running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.body_timeout = Duration::from_millis(100);
    })
    .await;
    let head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"model\":";
    let answer = raw(&running.base, head, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    assert_eq!(server.stats().models["p"].requests, 0);
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let server = mock("[models.p]\n").await;
    let running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.header_timeout = Duration::from_millis(100);
    })
    .await;
    let started = tokio::time::Instant::now();
    let answer = raw(
        &running.base,
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the gateway hung up (after {:?}; read {answer:?})",
        started.elapsed()
    );
}

/// An upstream whose streams never end: a message start, then 64 KiB text deltas for as long
/// as someone reads them. `dropped` turns true when the gateway lets go of the stream.
fn endless(dropped: Arc<std::sync::atomic::AtomicBool>) -> axum::Router {
    struct Flag(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move || {
            let flag = Flag(dropped.clone());
            async move {
                let mut start = message_json("p", "");
                start["content"] = json!([]);
                let head = [
                    format!(
                        "event: message_start\ndata: {}\n\n",
                        json!({"type": "message_start", "message": start})
                    ),
                    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
                ];
                let delta = format!(
                    "event: content_block_delta\ndata: {}\n\n",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x".repeat(64 << 10)}})
                );
                let tail = futures::stream::repeat(delta).map(move |chunk| {
                    let _ = &flag;
                    chunk
                });
                let events = futures::stream::iter(head)
                    .chain(tail)
                    .map(Ok::<_, std::convert::Infallible>);
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(events),
                )
            }
        }),
    )
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stream_is_dropped_and_frees_the_upstream() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dropped = Arc::new(AtomicBool::new(false));
    let running = gateway_with(
        &upstream(endless(dropped.clone())).await,
        &["p"],
        |config| {
            config.gateway.write_timeout = Duration::from_millis(200);
        },
    )
    .await;
    let payload = body("p", true).to_string();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{payload}",
        payload.len()
    );
    let address = running.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 64];
    let read = stream.read(&mut first).await.unwrap();
    assert!(
        String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"),
        "the stream began"
    );
    // Now read nothing more: buffers fill, the gateway cannot write, and must let go.
    let started = tokio::time::Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the upstream stream is still held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let target = breakwater::engine::Target::new("p");
    let board = running.runtime.engine().board();
    while board.load(&target).is_some_and(|load| load.in_flight > 0) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker slot is still held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);
}

/// Starts a request, and 100 ms later the gateway's drain; the request's task.
async fn started_then_stopped(
    running: &mut Running,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let base = running.base.clone();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/messages"))
            .header("content-type", "application/json")
            .body(body("p", false).to_string())
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.stop.take().unwrap().send(()).unwrap();
    in_flight
}

#[tokio::test]
async fn a_drain_finishes_requests_in_flight_and_refuses_new_connections() {
    let server = mock("[models.p]\nservice-time = \"300ms\"\n").await;
    let mut running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.grace = Duration::from_secs(5);
    })
    .await;
    let in_flight = started_then_stopped(&mut running).await;
    let response = in_flight.await.unwrap().expect("answered");
    assert_eq!(response.status(), 200, "the request in flight was finished");
    let drained = (&mut running.served).await.unwrap().unwrap();
    assert!(drained.clean, "{drained:?}");
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/messages", running.base))
        .body(body("p", false).to_string())
        .send()
        .await;
    assert!(refused.is_err(), "no longer accepting");
}

#[tokio::test]
async fn a_request_cut_at_the_end_of_the_grace_period_gets_a_shutdown_error() {
    let server = mock("[models.p]\nservice-time = \"5s\"\n").await;
    let mut running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.grace = Duration::from_millis(200);
    })
    .await;
    let in_flight = started_then_stopped(&mut running).await;
    let drained = (&mut running.served).await.unwrap().unwrap();
    assert!(!drained.clean);
    assert_eq!(drained.cut, 1, "{drained:?}");
    assert!(drained.took < Duration::from_secs(2), "{drained:?}");
    let cut = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("the request was cut, not left to run")
        .unwrap()
        .expect("the cut request was answered");
    assert_eq!(cut.status(), 503);
    let answer: Value = cut.json().await.unwrap();
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["error"]["type"], "api_error");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("shutting down"), "{message}");
}

#[tokio::test]
async fn a_stream_cut_at_the_end_of_the_grace_period_ends_with_an_error_event() {
    let server = mock("[models.p]\nservice-time = \"1ms\"\nstream-pause = \"300ms\"\n").await;
    let mut running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.grace = Duration::from_millis(200);
    })
    .await;
    let response = post(&running.base, body("p", true).to_string()).await;
    assert_eq!(response.status(), 200);
    running.stop.take().unwrap().send(()).unwrap();
    let text = tokio::time::timeout(Duration::from_secs(3), response.text())
        .await
        .expect("the stream was ended, not left to run")
        .expect("the stream ended cleanly");
    assert!(text.contains("event: message_start"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    assert!(
        text.trim_end().ends_with('}') && text.contains("event: error\ndata: {\"type\":\"error\""),
        "{text}"
    );
    assert!(text.contains("shutting down"), "{text}");
    let drained = (&mut running.served).await.unwrap().unwrap();
    assert_eq!(drained.cut, 1, "{drained:?}");
}

#[tokio::test]
async fn concurrent_requests_for_unlisted_models_never_exceed_the_cap() {
    // The made-up names are the mock's own models, so its GET /v1/models confirms them.
    let models = (0..8)
        .map(|n| format!("[models.made-up-{n}]"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let server = mock(&format!(
        "[models.p]\n{models}[default-model]\nservice-time = \"1ms\"\n"
    ))
    .await;
    let running = gateway_with(&server.base_url(), &["p"], |config| {
        config.gateway.max_unlisted = 2;
    })
    .await;
    let asks = (0..8).map(|n| {
        post(
            &running.base,
            body(&format!("made-up-{n}"), false).to_string(),
        )
    });
    let statuses: Vec<u16> = futures::future::join_all(asks)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(running.runtime.engine().added_targets(), 2);
}

#[tokio::test]
async fn without_the_upstreams_model_list_only_the_catalogue_confirms_a_model() {
    // The mock serves "known", but the gateway did not read its GET /v1/models.
    let server =
        mock("[models.p]\n[models.known]\n[default-model]\nservice-time = \"1ms\"\n").await;
    let running = gateway_with(&server.base_url(), &["p"], |config| {
        config.catalog.refresh = false;
    })
    .await;
    let response = post(&running.base, body("known", false).to_string()).await;
    assert_eq!(response.status(), 404, "nobody confirms it");
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not known"),
        "{error}"
    );
    assert_eq!(running.runtime.engine().added_targets(), 0);
    let response = post(&running.base, body("claude-haiku-5-5", false).to_string()).await;
    assert_eq!(response.status(), 200, "the catalogue knows it");
    assert_eq!(running.runtime.engine().added_targets(), 1);
}

#[tokio::test]
async fn made_up_models_get_404_at_once_and_take_no_slot_from_known_ones() {
    let server =
        mock("[models.p]\n[models.known]\n[default-model]\nservice-time = \"1ms\"\n").await;
    let running = gateway_with(&server.base_url(), &["p"], |_| {}).await;
    for n in 0..20 {
        let response = post(
            &running.base,
            body(&format!("made-up-{n}"), false).to_string(),
        )
        .await;
        assert_eq!(response.status(), 404);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "not_found_error");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not known"),
            "{error}"
        );
    }
    assert_eq!(running.runtime.engine().added_targets(), 0);
    assert_eq!(
        server
            .stats()
            .models
            .get("made-up-0")
            .map_or(0, |m| m.requests),
        0
    );
    // Listed by the upstream's GET /v1/models at start; and known to the catalogue.
    for model in ["known", "claude-haiku-5-5"] {
        let response = post(&running.base, body(model, false).to_string()).await;
        assert_eq!(response.status(), 200, "{model}");
    }
    assert_eq!(running.runtime.engine().added_targets(), 2);
}
