//! The gateway at the edge of a request's life (issue #16): the cap on open connections,
//! heads hyper cannot parse, a declared body over the limit, a client that trickles its head,
//! and fuzzed requests. Each test runs a mock upstream and a gateway on their own 127.0.0.1:0
//! ports, in real time with millisecond settings, and speaks raw TCP where a client library
//! would refuse to send what is tested.

#[path = "support/gateway.rs"]
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use breakwater::config::Config;
use breakwater::mock::{MockServer, Scenario};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESSAGE: &str =
    r#"{"model":"p","max_tokens":16,"messages":[{"role":"user","content":"hello"}]}"#;

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

/// A healthy mock upstream serving model `p`, and a gateway for it with `tune` applied; the
/// gateway's address (host:port).
async fn gateway(tune: impl FnOnce(&mut Config)) -> (MockServer, String) {
    prometheus();
    let scenario = Scenario::from_toml("[models.p]\nservice-time = \"1ms\"\n").unwrap();
    let server = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts");
    let mut config = Config::for_chain(&["p".to_owned()]);
    config.retry.max_retries_per_target = 0;
    config.seed = Some(5);
    tune(&mut config);
    let base = support::start(config, &server.base_url(), "test-key").await;
    let address = base.trim_start_matches("http://").to_owned();
    (server, address)
}

/// An answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The body as an Anthropic-shaped error: its `error.type`.
    fn error_type(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{}: not JSON ({error}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        assert_eq!(body["type"], "error", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "an error names what is wrong: {body}");
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn message(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        body["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// Reads one answer (head, then a `content-length` body) within `wait`; `None` if the
/// connection closed first or `wait` ran out.
async fn answer(stream: &mut TcpStream, wait: Duration) -> Option<Answer> {
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 8192];
        let end = loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            bytes.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head.get(9..12)?.parse().ok()?;
        let mut answer = Answer {
            status,
            head,
            body: bytes[end + 4..].to_vec(),
        };
        let length: usize = answer.header("content-length")?.parse().ok()?;
        while answer.body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            answer.body.extend_from_slice(&chunk[..n]);
        }
        // What follows is the next answer's (a pipelined request's).
        answer.body.truncate(length);
        Some(answer)
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// Sends `request` on a new connection and reads its answer.
async fn exchange(address: &str, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    answer(&mut stream, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(request)))
}

fn post(body: &str) -> String {
    format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn connections_past_max_connections_get_529_with_retry_after_and_are_closed() {
    let (_server, address) = gateway(|config| config.gateway.max_connections = 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let served = answer(&mut stream, Duration::from_secs(10)).await.unwrap();
        assert_eq!(served.status, 200, "{served:?}");
        held.push(stream); // kept alive: it holds its place
    }

    let mut third = TcpStream::connect(&address).await.unwrap();
    third.write_all(post(MESSAGE).as_bytes()).await.unwrap();
    let refused = answer(&mut third, Duration::from_secs(10))
        .await
        .expect("the refused connection is answered");
    assert_eq!(refused.status, 529, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.error_type(), "overloaded_error");
    assert!(refused.message().contains("max-connections"), "{refused:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "then closed: {closed:?}");

    // An SDK's HTTP client reads the refusal as an overloaded API.
    let response = reqwest::Client::new()
        .post(format!("http://{address}/v1/messages"))
        .header("content-type", "application/json")
        .body(MESSAGE)
        .send()
        .await
        .expect("reqwest reads the refusal");
    assert_eq!(response.status(), 529);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");

    // A place freed is taken again.
    drop(held.pop());
    let started = tokio::time::Instant::now();
    loop {
        let answered = exchange(&address, post(MESSAGE).as_bytes()).await;
        if answered.status == 200 {
            break;
        }
        assert_eq!(answered.status, 529, "{answered:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the freed place was never taken again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = prometheus().render();
    assert!(
        metrics.contains("breakwater_gateway_connections_refused_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_before_any_body() {
    let (server, address) = gateway(|config| {
        config.gateway.body_timeout = Duration::from_secs(5);
    })
    .await;
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 40000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // Well before the 5 s body timeout, which would answer 408 instead.
    let answered = answer(&mut stream, Duration::from_secs(2))
        .await
        .expect("413 within 2 s, not a wait for the body");
    assert_eq!(answered.status, 413, "{answered:?}");
    assert_eq!(answered.error_type(), "request_too_large");
    assert_eq!(server.stats().models["p"].requests, 0);
}

#[tokio::test]
async fn heads_hyper_refuses_get_anthropic_shaped_errors() {
    let (server, address) = gateway(|_| {}).await;

    let uri = format!(
        "/v1/models?q={}",
        "a".repeat(breakwater::gateway::URI_LIMIT)
    );
    let long = exchange(
        &address,
        format!("GET {uri} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(long.status, 414, "{long:?}");
    assert_eq!(long.error_type(), "invalid_request_error");
    assert!(long.message().contains("65534 bytes"), "{}", long.message());

    let fillers = (0..breakwater::gateway::MAX_HEADERS).fold(String::new(), |mut all, i| {
        use std::fmt::Write;
        let _ = write!(all, "x-filler-{i}: {i}\r\n");
        all
    });
    let many = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\n{fillers}\r\n");
    let many = exchange(&address, many.as_bytes()).await;
    assert_eq!(many.status, 431, "{many:?}");
    assert_eq!(many.error_type(), "invalid_request_error");
    assert!(
        many.message().contains("100 header fields"),
        "{}",
        many.message()
    );

    for malformed in [
        &b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"[..],
        b"GET /v1/models HTTP/1.1\r\nhost: x\r\ncontent-length: nine\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET /v1/models HTTP/9.9\r\nhost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    ] {
        let bad = exchange(&address, malformed).await;
        assert_eq!(bad.status, 400, "{malformed:?}: {bad:?}");
        assert_eq!(bad.error_type(), "invalid_request_error", "{malformed:?}");
        assert!(bad.message().contains("malformed"), "{}", bad.message());
    }
    assert_eq!(server.stats().models["p"].requests, 0);
}

#[tokio::test]
async fn a_client_trickling_its_head_is_dropped_while_others_are_served() {
    let (_server, address) = gateway(|config| {
        config.gateway.header_timeout = Duration::from_millis(300);
    })
    .await;
    let head = post(MESSAGE);
    let (head, _) = head.split_at(head.find("\r\n\r\n").unwrap());
    let mut slow = TcpStream::connect(&address).await.unwrap();
    let started = tokio::time::Instant::now();
    let (mut reader, mut writer) = slow.split();
    // One byte every 40 ms: the whole head would take several seconds.
    let trickle = async {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        true
    };
    let closed = async {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest).await;
        String::from_utf8_lossy(&rest).into_owned()
    };
    let served = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        exchange(&address, post(MESSAGE).as_bytes()).await
    };
    let (outcome, served) = tokio::join!(
        async {
            tokio::select! {
                sent = trickle => Err(sent),
                read = closed => Ok(read),
            }
        },
        served
    );
    assert_eq!(served.status, 200, "another connection is served meanwhile");
    match outcome {
        Ok(read) => assert!(
            read.is_empty() || read.starts_with("HTTP/1.1 408"),
            "{read:?}"
        ),
        Err(sent_whole) => assert!(!sent_whole, "the head was sent whole, never dropped"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before header-timeout"
    );
}

/// A deterministic mutation of `seed`'s bytes: flips, inserts, deletions, truncation.
fn mutate(rng: &mut rand::rngs::SmallRng, seed: &[u8]) -> Vec<u8> {
    use rand::Rng;
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..5) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes.insert(at, rng.random()),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ => {
                let junk = [
                    &b"{"[..],
                    b"}",
                    b"[",
                    b"\"",
                    b"null",
                    b"1e999",
                    b"-",
                    b"\\u0000",
                ];
                let piece = junk[rng.random_range(0..junk.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
        }
    }
    bytes
}

/// Bodies to mutate: valid requests and near-misses of every field's type.
const SEEDS: [&str; 8] = [
    MESSAGE,
    r#"{"model":"p","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"p","max_tokens":16,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"system":"s"}"#,
    r#"{"model":"unknown-model","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"p","max_tokens":-1,"messages":[]}"#,
    r#"{"model":["p"],"max_tokens":"16","messages":{"role":"user"}}"#,
    r#"{"model":"p","max_tokens":16,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}}"#,
    "[1,2,3]",
];

#[tokio::test]
async fn fuzzed_requests_get_expected_statuses_and_anthropic_shaped_errors() {
    use rand::{Rng, SeedableRng};
    let (_server, address) = gateway(|config| {
        config.gateway.body_timeout = Duration::from_millis(500);
    })
    .await;
    let client = reqwest::Client::new();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(16);
    let content_types = [
        "application/json",
        "text/plain",
        "",
        "application/json; charset=utf-16",
        "\x7f",
    ];
    let versions = [
        "2023-06-01",
        "",
        "1999-01-01",
        "\u{e9}t\u{e9}",
        "2023-06-01, 2023-06-01",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for case in 0..300 {
        let seed = SEEDS[rng.random_range(0..SEEDS.len())].as_bytes();
        let body = match rng.random_range(0..10) {
            0 => (0..rng.random_range(0..256))
                .map(|_| rng.random())
                .collect(),
            1 => seed.to_vec(),
            _ => mutate(&mut rng, seed),
        };
        let mut request = client
            .post(format!("http://{address}/v1/messages"))
            .body(body.clone());
        let content_type = content_types[rng.random_range(0..content_types.len())];
        if let Ok(value) = reqwest::header::HeaderValue::from_bytes(content_type.as_bytes()) {
            request = request.header("content-type", value);
        }
        let version = versions[rng.random_range(0..versions.len())];
        if let Ok(value) = reqwest::header::HeaderValue::from_bytes(version.as_bytes()) {
            request = request.header("anthropic-version", value);
        }
        if rng.random_bool(0.3) {
            let flags: String = (0..rng.random_range(0..40))
                .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                .collect();
            request = request.header("anthropic-beta", flags);
        }
        let response = request.send().await.unwrap_or_else(|error| {
            panic!(
                "case {case}: no answer ({error}) to {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        let status = response.status().as_u16();
        *statuses.entry(status).or_insert(0) += 1;
        let text = response.text().await.unwrap();
        assert!(
            [200, 400, 404, 405, 413].contains(&status),
            "case {case}: {status} {text} for {:?}",
            String::from_utf8_lossy(&body)
        );
        if status != 200 {
            let error: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("case {case}: {status} body not JSON ({e}): {text}"));
            assert_eq!(error["type"], "error", "case {case}: {text}");
            assert!(error["error"]["type"].is_string(), "case {case}: {text}");
            assert!(error["error"]["message"].is_string(), "case {case}: {text}");
        }
    }
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400),
        "{statuses:?}"
    );
    // Still serving as before.
    let after = exchange(&address, post(MESSAGE).as_bytes()).await;
    assert_eq!(after.status, 200, "{after:?}");
}

/// Mutated request heads on raw connections: whatever the gateway answers first is a whole
/// HTTP answer, and an error's body is Anthropic-shaped; nothing hangs past the timeouts.
#[tokio::test]
async fn fuzzed_heads_get_anthropic_shaped_errors() {
    use rand::SeedableRng;
    let (_server, address) = gateway(|config| {
        config.gateway.header_timeout = Duration::from_millis(300);
        config.gateway.body_timeout = Duration::from_millis(300);
    })
    .await;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(61);
    let valid = post(MESSAGE);
    for _ in 0..100 {
        let request = mutate(&mut rng, valid.as_bytes());
        let mut stream = TcpStream::connect(&address).await.unwrap();
        if stream.write_all(&request).await.is_err() {
            continue;
        }
        // A head cut short is dropped at header-timeout, unanswered: nothing to check.
        let Some(answered) = answer(&mut stream, Duration::from_secs(10)).await else {
            continue;
        };
        if answered.status >= 400 {
            answered.error_type();
        }
    }
    let after = exchange(&address, valid.as_bytes()).await;
    assert_eq!(after.status, 200, "{after:?}");
}

/// `breakwater serve --max-connections 1`, the real binary: a second connection is refused.
#[cfg(unix)]
#[tokio::test]
async fn serve_takes_max_connections_from_its_flag() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    /// Kills the gateway however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_breakwater"))
        .args(["serve", "--listen", "127.0.0.1:0", "--mock"])
        .args(["--chain", "claude-haiku-5-5", "--max-connections", "1"])
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env_remove("ANTHROPIC_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Running)
        .expect("the binary runs");
    let stdout = child.0.stdout.take().unwrap();
    // Read to the end, so that no line the gateway prints meets a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let lines = tokio::task::spawn_blocking(move || rx.iter().take(3).collect::<Vec<_>>())
        .await
        .unwrap();
    let address = lines[0].rsplit("http://").next().unwrap().to_owned();
    assert_eq!(lines[2], "at most 1 client connections", "{lines:?}");
    let mut first = TcpStream::connect(&address).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let served = answer(&mut first, Duration::from_secs(10)).await;
    let refused = exchange(&address, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    drop(child);
    assert_eq!(served.map(|a| a.status), Some(200));
    assert_eq!(refused.status, 529, "{refused:?}");
    assert_eq!(refused.error_type(), "overloaded_error");
}
