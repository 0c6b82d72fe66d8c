//! The Claude API over TLS, as `api.anthropic.com` is reached: HTTP/2 when the server offers
//! it by ALPN, HTTP/1.1 otherwise, trusting a private CA named by `ca-file`, and refusing a
//! certificate no trusted root signed. The upstream is a TLS front (rustls, a certificate
//! made per test) relaying every request to a `breakwater mock`, so answers, streams and
//! faults are the mock's, over a real TLS connection on loopback.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakwater::api::{MessageStreamEvent, MessagesRequest, WireEvent, WireRequest};
use breakwater::client::{ClaudeClient, ClientConfig, ClientError, Credentials, Secret};
use breakwater::engine::{Class, Target, Upstream, await_commit};
use breakwater::mock::{MockServer, Scenario};
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const MODEL: &str = "m";
const KEY: &str = "sk-tls-test-secret";

/// A TLS listener on loopback with a certificate made for it: its URL, and the CA file (a
/// temporary file, removed when dropped) that trusts it.
struct Tls {
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    url: String,
    ca_file: tempfile::NamedTempFile,
}

/// A listener whose TLS offers `alpn`.
async fn tls(alpn: &[&[u8]]) -> Tls {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), certified.cert.pem()).unwrap();
    Tls {
        listener,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        url,
        ca_file,
    }
}

/// A client of `url`, trusting the roots of `ca_file` on top of the public ones.
fn client(url: &str, ca_file: Option<PathBuf>) -> ClaudeClient {
    let config = ClientConfig {
        ca_file,
        ..ClientConfig::default()
            .with_base_url(url)
            .with_credentials(Credentials::ApiKey(Secret::new(KEY)))
    };
    ClaudeClient::new(&config).expect("valid config")
}

/// A TLS upstream on loopback relaying to a mock: its URL, the CA file that trusts it, and
/// the HTTP version of every request it received.
struct Front {
    url: String,
    ca_file: tempfile::NamedTempFile,
    versions: Arc<Mutex<Vec<Version>>>,
    _mock: MockServer,
}

impl Front {
    fn versions(&self) -> Vec<Version> {
        self.versions.lock().unwrap().clone()
    }

    fn trusting(&self) -> ClaudeClient {
        client(&self.url, Some(self.ca_file.path().to_owned()))
    }
}

/// Starts a mock with `model_toml` for model `m` and a TLS front offering `alpn`.
async fn front(alpn: &[&[u8]], model_toml: &str) -> Front {
    let scenario = Scenario::from_toml(&format!(
        "[models.{MODEL}]\nservice-time = \"1ms\"\n{model_toml}"
    ))
    .expect("test scenario is valid");
    let mock = MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts");
    let Tls {
        listener,
        acceptor,
        url,
        ca_file,
    } = tls(alpn).await;
    let versions = Arc::new(Mutex::new(Vec::new()));
    let (seen, upstream) = (versions.clone(), mock.base_url());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen, upstream) = (acceptor.clone(), seen.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = hyper::service::service_fn(move |request| {
                    relay(request, upstream.clone(), seen.clone())
                });
                let io = TokioIo::new(tls);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                };
            });
        }
    });
    Front {
        url,
        ca_file,
        versions,
        _mock: mock,
    }
}

/// Records the request's version and relays it to the mock, the answer streamed back.
async fn relay(
    request: Request<Incoming>,
    upstream: String,
    seen: Arc<Mutex<Vec<Version>>>,
) -> Result<Response<BoxBody<Bytes, reqwest::Error>>, Infallible> {
    seen.lock().unwrap().push(request.version());
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let mut relayed = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(parts.method, format!("{upstream}{}", parts.uri.path()))
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            relayed = relayed.header(name, value);
        }
    }
    let answer = relayed.send().await.expect("the mock answers");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) {
            response = response.header(name, value);
        }
    }
    let body = StreamBody::new(answer.bytes_stream().map(|chunk| chunk.map(Frame::data)));
    Ok(response.body(BodyExt::boxed(body)).unwrap())
}

fn request() -> WireRequest {
    MessagesRequest::new(MODEL, 64).with_user("hello").into()
}

#[tokio::test]
async fn over_http2_with_a_private_ca_an_answer_and_a_stream_come_through() {
    let front = front(&[b"h2", b"http/1.1"], "").await;
    let client = front.trusting();
    let reply = client.send(&Target::new(MODEL), &request()).await.unwrap();
    assert_eq!(reply.value.message().unwrap().model, MODEL);
    assert!(reply.request_id.is_some_and(|id| id.starts_with("req_")));

    let opened = client.stream(&Target::new(MODEL), &request()).await;
    let events = opened.expect("a 200 stream").value;
    let typed = events.map(|item| item.map(|event: WireEvent| event.to_event().expect("typed")));
    let committed = await_commit(Box::pin(typed), Duration::from_secs(5))
        .await
        .expect("the stream commits");
    assert!(!committed.head.is_empty());
    let rest: Vec<_> = committed.tail.collect().await;
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    assert!(
        matches!(rest.last(), Some(Ok(MessageStreamEvent::MessageStop))),
        "the stream ends with message_stop: {rest:?}"
    );
    // Both requests on HTTP/2, as ALPN offered it.
    assert_eq!(front.versions(), [Version::HTTP_2, Version::HTTP_2]);
}

#[tokio::test]
async fn a_server_offering_only_http11_is_spoken_to_in_http11() {
    let front = front(&[b"http/1.1"], "").await;
    let reply = front.trusting().send(&Target::new(MODEL), &request()).await;
    assert_eq!(reply.unwrap().value.message().unwrap().model, MODEL);
    assert_eq!(front.versions(), [Version::HTTP_11]);
}

#[tokio::test]
async fn an_overload_over_http2_is_classified_with_its_retry_after() {
    let fault = r#"faults = [{ kind = "status", status = 529, retry-after = "3" }]"#;
    let front = front(&[b"h2", b"http/1.1"], fault).await;
    let failure = front
        .trusting()
        .send(&Target::new(MODEL), &request())
        .await
        .expect_err("the mock answers 529");
    assert_eq!(failure.class(), Class::Overloaded, "{failure}");
    assert_eq!(failure.status(), Some(529));
    assert_eq!(failure.retry_after(), Some(Duration::from_secs(3)));
    assert!(failure.request_id().is_some(), "{failure}");
    assert_eq!(front.versions(), [Version::HTTP_2]);
}

#[tokio::test]
async fn a_certificate_no_trusted_root_signed_fails_the_attempt_naming_why() {
    let front = front(&[b"h2", b"http/1.1"], "").await;
    let failure = client(&front.url, None)
        .send(&Target::new(MODEL), &request())
        .await
        .expect_err("the public roots do not trust the test's certificate");
    assert_eq!(failure.class(), Class::Connect, "{failure}");
    let message = failure.message();
    assert!(message.contains("certificate"), "{message}");
    assert!(!message.contains(KEY), "{message}");
    assert!(front.versions().is_empty(), "no request got through");
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_usable_certificate_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let garbage = dir.path().join("garbage-ca.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let broken = dir.path().join("broken-ca.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (path, reason) in [
        (&missing, "No such file"),
        (&garbage, "no CERTIFICATE block"),
        (&broken, "cannot be a root"),
    ] {
        let config = ClientConfig {
            ca_file: Some(path.clone()),
            ..ClientConfig::default()
        };
        let error = ClaudeClient::new(&config).expect_err("a bad ca-file is refused");
        assert!(matches!(error, ClientError::CaFile { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(message.contains(reason), "{message}");
    }
}

#[tokio::test]
async fn a_peer_that_stalls_the_handshake_fails_the_attempt_at_the_connect_timeout() {
    // Accepts TCP connections and never says a word: no TLS handshake ever completes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_secs(120),
        ..ClientConfig::default()
            .with_base_url(url)
            .with_credentials(Credentials::ApiKey(Secret::new(KEY)))
    };
    let client = ClaudeClient::new(&config).unwrap();
    // Far sooner than the request timeout: the connect timeout covers the handshake.
    let failure = tokio::time::timeout(
        Duration::from_secs(30),
        client.send(&Target::new(MODEL), &request()),
    )
    .await
    .expect("over well before the request timeout")
    .expect_err("no handshake, no answer");
    assert_eq!(failure.class(), Class::Timeout, "{failure}");
    assert!(failure.message().contains("not done within"), "{failure}");
    held.abort();
}

/// An answer the Messages pool accepts.
const ANSWER: &str = r#"{"id":"msg_h2","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;

#[tokio::test]
async fn a_stream_the_server_refused_over_http2_is_sent_again_on_the_same_attempt() {
    // An HTTP/2 server (the h2 crate, no hyper) that refuses the first request's stream
    // (REFUSED_STREAM: it did not act on it) and answers the next.
    let Tls {
        listener,
        acceptor,
        url,
        ca_file,
    } = tls(&[b"h2"]).await;
    let received = Arc::new(Mutex::new(0_u32));
    let count = received.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut connection = h2::server::handshake(tls).await.unwrap();
        while let Some(Ok((_request, mut respond))) = connection.accept().await {
            let seen = {
                let mut count = count.lock().unwrap();
                *count += 1;
                *count
            };
            if seen == 1 {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
                continue;
            }
            let head = Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("request-id", "req_h2")
                .body(())
                .unwrap();
            let mut body = respond.send_response(head, false).unwrap();
            body.send_data(Bytes::from_static(ANSWER.as_bytes()), true)
                .unwrap();
        }
    });
    let reply = client(&url, Some(ca_file.path().to_owned()))
        .send(&Target::new(MODEL), &request())
        .await;
    let reply = reply.expect("the refused stream is sent again and answered");
    assert_eq!(reply.request_id.as_deref(), Some("req_h2"));
    assert_eq!(*received.lock().unwrap(), 2, "refused once, then answered");
}
