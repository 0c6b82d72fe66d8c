//! A reverse proxy with no logic at all, as a reference point for the gateway benchmark
//! (`scripts/bench-gateway.sh --reference`): hyper's server and hyper-util's pooled client,
//! the stack `breakwater serve` is built on, relaying every request to one upstream with its
//! body streamed both ways, and nothing else: no routing, no parsing, no retries. What it
//! costs is what the HTTP stack costs, a floor the gateway is unlikely to get under.
//!
//!     cargo run --release --example bare_proxy -- http://127.0.0.1:8080 127.0.0.1:0
//!
//! Prints `listening on http://ADDR` once it accepts connections.

use std::convert::Infallible;

use http::header::{CONNECTION, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, hyper::Error>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_proxy UPSTREAM_URL [LISTEN_ADDR]";
    let upstream: Uri = args.next().ok_or(usage)?.parse()?;
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                relay(request, client.clone(), upstream.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Sends `request` on to `upstream` (its path and query kept, `host` and `connection`
/// dropped) and hands back the answer as it comes; a failed exchange is a 502.
async fn relay(
    request: Request<Incoming>,
    client: Client<HttpConnector, Incoming>,
    upstream: Uri,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let mut target = upstream.into_parts();
    target.path_and_query = parts.uri.path_and_query().cloned();
    let Ok(uri) = Uri::from_parts(target) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    parts.headers.remove(HOST);
    parts.headers.remove(CONNECTION);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => Ok(answer.map(BodyExt::boxed)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = code;
    response
}
