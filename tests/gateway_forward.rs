//! The gateway's forwarded routes over real HTTP: everything under `/v1/` it does not model
//! goes upstream unchanged (method, path, query, headers but hop-by-hop ones, body streamed
//! both ways) and comes back as it came, `request-id` included. Each test runs its own
//! upstream (the mock, or a recording stand-in) and gateway on 127.0.0.1:0, in real time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::gateway::{ClientKey, Gateway, serve};
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::Runtime;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

const UPSTREAM_KEY: &str = "sk-gateway-upstream-key";

async fn mock() -> MockServer {
    let scenario =
        Scenario::from_toml("[models.p]\nservice-time = \"1ms\"\n[models.claude-sonnet-5-5]\n")
            .expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// A gateway in front of `upstream`, with the upstream key `credentials` (`None`: whatever
/// the environment holds) and `tune` applied; its base URL.
async fn gateway(
    upstream: &str,
    credentials: Option<Credentials>,
    tune: impl FnOnce(&mut Config),
) -> String {
    let mut config = Config::for_chain(&["p".to_owned()]);
    // The recorder logs every request it gets: no catalogue refresh at start among them.
    config.catalog.refresh = false;
    tune(&mut config);
    let mut builder = Runtime::builder().config(config).base_url(upstream);
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    let runtime = Arc::new(builder.start().await.expect("runtime starts"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let gateway = Gateway::new(runtime);
    let settings = gateway.config().clone();
    tokio::spawn(async move {
        serve(
            listener,
            gateway.router(),
            &settings,
            std::future::pending(),
        )
        .await
    });
    format!("http://{address}")
}

/// A gateway with its own upstream key, in front of `upstream`.
async fn keyed(upstream: &str) -> String {
    let key = Credentials::ApiKey(Secret::new(UPSTREAM_KEY));
    gateway(upstream, Some(key), |_| {}).await
}

/// Starts `app` on 127.0.0.1:0 as a stand-in upstream; its base URL.
async fn upstream(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// What a recording upstream received.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An upstream that records every request and answers with `answer`'s status, headers and
/// body.
async fn recording(answer: fn() -> axum::response::Response) -> (String, Log) {
    let log = Log::default();
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            let (head, body) = request.into_parts();
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                // Cut short: not a request the upstream got.
                return StatusCode::BAD_REQUEST.into_response();
            };
            seen.lock().unwrap().push(Seen {
                method: head.method,
                uri: head.uri,
                headers: head.headers,
                body,
            });
            answer()
        }
    });
    (upstream(app).await, log)
}

fn ok_json() -> axum::response::Response {
    axum::response::Response::builder()
        .header("content-type", "application/json")
        .header("request-id", "req_upstream_1")
        .body(Body::from(r#"{"ok":true}"#))
        .unwrap()
}

fn last(log: &Log) -> Seen {
    log.lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the upstream got a request")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn request_id(response: &reqwest::Response) -> String {
    let id = response.headers().get("request-id").expect("a request-id");
    id.to_str().unwrap().to_owned()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let id = request_id(&response);
    (status, id, response.json().await.unwrap())
}

#[tokio::test]
async fn models_are_forwarded_with_the_upstreams_request_id() {
    let server = mock().await;
    let base = keyed(&server.base_url()).await;
    let http = reqwest::Client::new();
    let list = http
        .get(format!("{base}/v1/models?limit=1"))
        .send()
        .await
        .unwrap();
    let (status, id, page) = json_of(list).await;
    assert_eq!(status, 200, "{page}");
    assert!(id.starts_with("req_mock_"), "{id}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["has_more"], true, "limit=1 reached the mock: {page}");
    let first = page["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(page["first_id"], first.as_str());

    let one = http
        .get(format!("{base}/v1/models/claude-sonnet-5-5"))
        .send()
        .await
        .unwrap();
    let (status, _, model) = json_of(one).await;
    assert_eq!(status, 200);
    assert_eq!(model["type"], "model");
    assert_eq!(model["display_name"], "Claude Sonnet 5.5");

    let missing = http
        .get(format!("{base}/v1/models/nope"))
        .send()
        .await
        .unwrap();
    let (status, id, error) = json_of(missing).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["type"], "not_found_error");
    assert_eq!(
        error["request_id"],
        id.as_str(),
        "the upstream's error, as it came"
    );
}

#[tokio::test]
async fn message_batches_round_trip_through_the_gateway() {
    let server = mock().await;
    let base = keyed(&server.base_url()).await;
    let http = reqwest::Client::new();
    let params = |model: &str, text: &str| json!({"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": text}]});
    let create = json!({"requests": [
        {"custom_id": "a", "params": params("p", "first question")},
        {"custom_id": "b", "params": params("unknown-model", "second")},
    ]});
    let created = http
        .post(format!("{base}/v1/messages/batches"))
        .json(&create)
        .send()
        .await;
    let (status, id, batch) = json_of(created.unwrap()).await;
    assert_eq!(status, 200, "{batch}");
    assert!(id.starts_with("req_mock_"));
    assert_eq!(batch["type"], "message_batch");
    assert_eq!(batch["processing_status"], "ended");
    assert_eq!(batch["request_counts"]["succeeded"], 1);
    assert_eq!(batch["request_counts"]["errored"], 1);
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    let results_path = format!("/v1/messages/batches/{batch_id}/results");
    assert_eq!(
        batch["results_url"], results_path,
        "the upstream's absolute URL became a path on the gateway"
    );

    let list = http
        .get(format!("{base}/v1/messages/batches"))
        .send()
        .await
        .unwrap();
    let (_, _, page) = json_of(list).await;
    assert_eq!(page["data"][0]["id"], batch_id.as_str());
    assert_eq!(page["data"][0]["results_url"], results_path);

    let one = http
        .get(format!("{base}/v1/messages/batches/{batch_id}"))
        .send()
        .await;
    assert_eq!(json_of(one.unwrap()).await.2["id"], batch_id.as_str());

    let results = http
        .get(format!("{base}{results_path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(results.status(), 200);
    assert!(request_id(&results).starts_with("req_mock_"));
    let lines: Vec<Value> = results
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["custom_id"], "a");
    assert_eq!(lines[0]["result"]["type"], "succeeded");
    let text = &lines[0]["result"]["message"]["content"][0]["text"];
    assert_eq!(text, "mock reply from p: first question");
    assert_eq!(lines[1]["result"]["type"], "errored");
    assert_eq!(
        lines[1]["result"]["error"]["error"]["type"],
        "not_found_error"
    );

    let cancel = http
        .post(format!("{base}/v1/messages/batches/{batch_id}/cancel"))
        .send()
        .await;
    assert_eq!(
        json_of(cancel.unwrap()).await.2["processing_status"],
        "ended"
    );
    let deleted = http
        .delete(format!("{base}/v1/messages/batches/{batch_id}"))
        .send()
        .await;
    assert_eq!(
        json_of(deleted.unwrap()).await.2["type"],
        "message_batch_deleted"
    );
    let gone = http
        .get(format!("{base}/v1/messages/batches/{batch_id}"))
        .send()
        .await;
    assert_eq!(gone.unwrap().status(), 404);
}

/// A multipart body with one `file` field.
fn multipart(filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "breakwater-test-boundary";
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\ncontent-type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn files_round_trip_through_the_gateway() {
    let server = mock().await;
    let base = keyed(&server.base_url()).await;
    let http = reqwest::Client::new();
    // Past the mock's in-memory cap, so it comes back from disk.
    let content: Vec<u8> = (0..5_000_000u32).map(|n| (n % 251) as u8).collect();
    let (kind, body) = multipart("dir/notes.txt", &content);
    let uploaded = http
        .post(format!("{base}/v1/files"))
        .header("content-type", kind)
        .header("anthropic-beta", "files-api-2025-04-14")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, id, file) = json_of(uploaded).await;
    assert_eq!(status, 200, "{file}");
    assert!(id.starts_with("req_mock_"));
    assert_eq!(file["type"], "file");
    assert_eq!(file["filename"], "notes.txt");
    assert_eq!(file["size_bytes"], content.len());
    let file_id = file["id"].as_str().unwrap().to_owned();

    let list = http.get(format!("{base}/v1/files")).send().await.unwrap();
    assert_eq!(json_of(list).await.2["data"][0]["id"], file_id.as_str());
    let meta = http
        .get(format!("{base}/v1/files/{file_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(meta).await.2["mime_type"], "text/plain");
    let download = http
        .get(format!("{base}/v1/files/{file_id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(request_id(&download).starts_with("req_mock_"));
    assert_eq!(download.content_length(), Some(content.len() as u64));
    assert!(
        download.bytes().await.unwrap() == content,
        "the bytes came back as sent"
    );

    let deleted = http
        .delete(format!("{base}/v1/files/{file_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(deleted).await.2["type"], "file_deleted");
    let gone = http
        .get(format!("{base}/v1/files/{file_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn count_tokens_answers_carry_the_upstreams_request_id() {
    let server = mock().await;
    let base = keyed(&server.base_url()).await;
    let counted = reqwest::Client::new()
        .post(format!("{base}/v1/messages/count_tokens"))
        .json(&json!({"model": "p", "messages": [{"role": "user", "content": "count me"}]}))
        .send()
        .await
        .unwrap();
    let (status, id, body) = json_of(counted).await;
    assert_eq!(status, 200, "{body}");
    assert!(id.starts_with("req_mock_"), "{id}");
}

#[tokio::test]
async fn method_path_query_headers_and_body_arrive_unchanged_but_hop_by_hop_headers() {
    let (up, log) = recording(|| {
        axum::response::Response::builder()
            .status(201)
            .header("request-id", "req_upstream_7")
            .header("x-upstream-thing", "kept")
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "dropped")
            .body(Body::from("created"))
            .unwrap()
    })
    .await;
    let base = keyed(&up).await;
    let response = reqwest::Client::new()
        .put(format!(
            "{base}/v1/some/future/route?limit=2&after_id=x%20y"
        ))
        .header("anthropic-beta", "files-api-2025-04-14")
        .header("anthropic-version", "2023-06-01")
        .header("x-custom", "one")
        .header("connection", "x-private-hop")
        .header("x-private-hop", "secret-hop")
        .header("keep-alive", "timeout=5")
        .body("the body, as sent")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(request_id(&response), "req_upstream_7");
    assert_eq!(header(response.headers(), "x-upstream-thing"), Some("kept"));
    assert_eq!(header(response.headers(), "x-upstream-hop"), None);
    assert_eq!(response.text().await.unwrap(), "created");

    let seen = last(&log);
    assert_eq!(seen.method, Method::PUT);
    assert_eq!(
        seen.uri.to_string(),
        "/v1/some/future/route?limit=2&after_id=x%20y"
    );
    assert_eq!(seen.body, "the body, as sent");
    assert_eq!(
        header(&seen.headers, "anthropic-beta"),
        Some("files-api-2025-04-14")
    );
    assert_eq!(header(&seen.headers, "x-custom"), Some("one"));
    assert_eq!(header(&seen.headers, "content-length"), Some("17"));
    for hop in ["x-private-hop", "keep-alive"] {
        assert_eq!(header(&seen.headers, hop), None, "{hop} is hop-by-hop");
    }
    assert_ne!(
        header(&seen.headers, "host"),
        Some(base.trim_start_matches("http://"))
    );
}

#[tokio::test]
async fn an_upstream_error_comes_back_as_it_came() {
    let (up, _) = recording(|| {
        axum::response::Response::builder()
            .status(429)
            .header("request-id", "req_upstream_limited")
            .header("retry-after", "7")
            .header("content-type", "text/html")
            .body(Body::from("<html>slow down</html>"))
            .unwrap()
    })
    .await;
    let base = keyed(&up).await;
    let response = reqwest::get(format!("{base}/v1/files")).await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(request_id(&response), "req_upstream_limited");
    assert_eq!(header(response.headers(), "retry-after"), Some("7"));
    assert_eq!(
        header(response.headers(), "content-type"),
        Some("text/html")
    );
    assert_eq!(response.text().await.unwrap(), "<html>slow down</html>");
}

async fn get_with(base: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{base}/v1/models"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_gateways_key_replaces_whatever_key_the_caller_sent() {
    let (up, log) = recording(ok_json).await;
    let base = keyed(&up).await;
    let asked = [
        ("x-api-key", "sk-caller"),
        ("authorization", "Bearer caller-token"),
    ];
    assert_eq!(get_with(&base, &asked).await.status(), 200);
    let seen = last(&log);
    assert_eq!(header(&seen.headers, "x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(header(&seen.headers, "authorization"), None);
}

#[tokio::test]
async fn without_a_key_of_its_own_the_gateway_passes_the_callers_key() {
    if Credentials::from_env().is_some() {
        eprintln!(
            "skipped: ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN is set, so the gateway has a key"
        );
        return;
    }
    let (up, log) = recording(ok_json).await;
    let base = gateway(&up, None, |_| {}).await;
    assert_eq!(
        get_with(&base, &[("x-api-key", "sk-caller")])
            .await
            .status(),
        200
    );
    assert_eq!(header(&last(&log).headers, "x-api-key"), Some("sk-caller"));
    let bearer = [("authorization", "Bearer caller-token")];
    assert_eq!(get_with(&base, &bearer).await.status(), 200);
    let seen = last(&log);
    assert_eq!(
        header(&seen.headers, "authorization"),
        Some("Bearer caller-token")
    );
    assert_eq!(header(&seen.headers, "x-api-key"), None);
    // The same rule on the routes the runtime serves: the caller's key goes with its
    // request to /v1/messages (whatever the recorder answers). The model is one the
    // catalogue knows: the recorder's answer to GET /v1/models is no model list.
    let body = r#"{"model":"claude-haiku-5-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "sk-caller-messages")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let seen = last(&log);
    assert_eq!(seen.uri.path(), "/v1/messages");
    assert_eq!(
        header(&seen.headers, "x-api-key"),
        Some("sk-caller-messages")
    );
}

#[tokio::test]
async fn a_gateway_key_never_leaks_upstream() {
    let (up, log) = recording(ok_json).await;
    let require = |config: &mut Config| {
        config.gateway.require_keys = true;
        config.gateway.keys = vec![ClientKey::new("gw-client-key")];
    };
    let with_key = Credentials::ApiKey(Secret::new(UPSTREAM_KEY));
    let keyed = gateway(&up, Some(with_key), require).await;
    let refused = get_with(&keyed, &[("x-api-key", "not-a-gateway-key")]).await;
    assert_eq!(refused.status(), 401);
    assert!(
        log.lock().unwrap().is_empty(),
        "a refused caller sent nothing upstream"
    );
    let admitted = get_with(&keyed, &[("authorization", "Bearer gw-client-key")]).await;
    assert_eq!(admitted.status(), 200);
    let seen = last(&log);
    assert_eq!(header(&seen.headers, "x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(header(&seen.headers, "authorization"), None);

    if Credentials::from_env().is_none() {
        let keyless = gateway(&up, None, require).await;
        assert_eq!(
            get_with(&keyless, &[("x-api-key", "gw-client-key")])
                .await
                .status(),
            200
        );
        let seen = last(&log);
        assert_eq!(
            header(&seen.headers, "x-api-key"),
            None,
            "the gateway key stayed here"
        );
        assert_eq!(header(&seen.headers, "authorization"), None);
    }
}

/// A body fed by the test, chunk by chunk: the sender, and the body.
fn fed_body() -> (tokio::sync::mpsc::Sender<Bytes>, reqwest::Body) {
    let (feed, chunks) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), chunks))
    });
    (feed, reqwest::Body::wrap_stream(stream))
}

#[tokio::test]
async fn an_upload_streams_through_before_the_caller_has_sent_it_all() {
    let (first_in, first_arrived) = tokio::sync::oneshot::channel::<()>();
    let first_in = Arc::new(Mutex::new(Some(first_in)));
    let app = axum::Router::new().route(
        "/v1/files",
        axum::routing::post(move |body: Body| async move {
            let mut chunks = body.into_data_stream();
            let mut total = 0;
            while let Some(chunk) = chunks.next().await {
                total += chunk.unwrap().len();
                if let Some(told) = first_in.lock().unwrap().take() {
                    let _ = told.send(());
                }
            }
            total.to_string()
        }),
    );
    let base = keyed(&upstream(app).await).await;
    let (feed, body) = fed_body();
    let sent = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{base}/v1/files"))
            .body(body)
            .send(),
    );
    feed.send(Bytes::from(vec![b'x'; 64 << 10])).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), first_arrived)
        .await
        .expect("the first chunk reached the upstream while the caller was still sending")
        .unwrap();
    for _ in 0..15 {
        feed.send(Bytes::from(vec![b'y'; 64 << 10])).await.unwrap();
    }
    drop(feed);
    let response = sent.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        (16 * (64 << 10)).to_string()
    );
}

#[tokio::test]
async fn a_download_streams_through_before_the_upstream_has_sent_it_all() {
    let (go_on, may_go_on) = tokio::sync::oneshot::channel::<()>();
    let may_go_on = Arc::new(Mutex::new(Some(may_go_on)));
    let app = axum::Router::new().route(
        "/v1/messages/batches/b/results",
        axum::routing::get(move || async move {
            let wait = may_go_on.lock().unwrap().take().unwrap();
            let first =
                futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from("{\"line\":1}\n"))]);
            let rest = futures::stream::once(async move {
                let _ = wait.await;
                Ok(Bytes::from("{\"line\":2}\n"))
            });
            Body::from_stream(first.chain(rest))
        }),
    );
    let base = keyed(&upstream(app).await).await;
    let mut response = reqwest::get(format!("{base}/v1/messages/batches/b/results"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first line came through before the upstream sent the rest")
        .unwrap();
    assert_eq!(first.as_deref(), Some(&b"{\"line\":1}\n"[..]));
    go_on.send(()).unwrap();
    assert_eq!(response.text().await.unwrap(), "{\"line\":2}\n");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_never_reaches_the_upstream_whole() {
    let (up, log) = recording(ok_json).await;
    let key = Credentials::ApiKey(Secret::new(UPSTREAM_KEY));
    let base = gateway(&up, Some(key), |config| {
        config.gateway.forward_body_limit = bytesize::ByteSize::b(1000);
    })
    .await;
    let http = reqwest::Client::new();
    let declared = http
        .post(format!("{base}/v1/files"))
        .body(vec![0u8; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    let error: Value = declared.json().await.unwrap();
    assert_eq!(error["error"]["type"], "request_too_large");
    assert!(
        log.lock().unwrap().is_empty(),
        "refused before anything went upstream"
    );

    let (feed, body) = fed_body();
    let sent = tokio::spawn(http.post(format!("{base}/v1/files")).body(body).send());
    feed.send(Bytes::from(vec![0u8; 600])).await.unwrap();
    let _ = feed.send(Bytes::from(vec![0u8; 600])).await;
    let chunked = sent.await.unwrap().unwrap();
    assert_eq!(
        chunked.status(),
        413,
        "an undeclared body is cut as it crosses the limit"
    );
    assert!(
        log.lock().unwrap().is_empty(),
        "the upstream never got a whole request"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_silent_one_504() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let base = keyed(&format!("http://{address}")).await;
    let response = reqwest::get(format!("{base}/v1/models")).await.unwrap();
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "api_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains(&address.to_string()) && !message.contains(UPSTREAM_KEY),
        "{message}"
    );

    let silent = axum::Router::new().fallback(std::future::pending::<()>);
    let key = Credentials::ApiKey(Secret::new(UPSTREAM_KEY));
    let base = gateway(&upstream(silent).await, Some(key), |config| {
        config.gateway.forward_timeout = Duration::from_millis(200);
    })
    .await;
    let started = tokio::time::Instant::now();
    let response = reqwest::get(format!("{base}/v1/models")).await.unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "timeout_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("forward-timeout")
    );
}

#[tokio::test]
async fn a_caller_that_stalls_its_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, _) = recording(ok_json).await;
    let key = Credentials::ApiKey(Secret::new(UPSTREAM_KEY));
    let base = gateway(&up, Some(key), |config| {
        config.gateway.body_timeout = Duration::from_millis(100);
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "POST /v1/files HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\npartial";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut read)).await;
    let answer = String::from_utf8_lossy(&read);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
}

#[tokio::test]
async fn dot_segments_are_refused_before_they_reach_the_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, log) = recording(ok_json).await;
    let base = keyed(&up).await;
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "GET /v1/models/../../admin HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut read)).await;
    let answer = String::from_utf8_lossy(&read);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(log.lock().unwrap().is_empty());
}
