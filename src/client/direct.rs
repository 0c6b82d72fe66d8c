//! The Claude API's own connection pool: hyper's client, without reqwest's layers (redirects,
//! retries, proxies, URL parsing per request), on the request path every attempt takes.
//!
//! It keeps what the reqwest client gave these requests: HTTP/1.1 and HTTP/2 (by ALPN over
//! rustls with `ring` and the webpki roots, plus `ca-file`'s), the connect timeout over TCP and
//! TLS together, TCP keepalive (15 s, 3 probes), idle connections kept 90 s, the default
//! headers (credentials marked sensitive), `accept: */*` and the user agent; an HTTP/2 stream
//! the server did not process is sent again (see `transport::unprocessed`). Not here: proxies.
//! When the environment names one for the API's URL, `ClaudeClient` sends through reqwest.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;

use super::config::{self, ClientConfig};
use super::error::ClientError;
use super::roots;
use crate::api::json::Chunks;

/// How long an idle pooled connection is kept, as reqwest keeps it.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// TCP keepalive: idle time before the first probe, and between probes, as reqwest sets it.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Unanswered keepalive probes before the connection is dropped.
const KEEPALIVE_RETRIES: u32 = 3;

/// The user agent every request carries.
pub(super) const USER_AGENT: &str = concat!("breakwater/", env!("CARGO_PKG_VERSION"));

/// A pooled HTTP client for one URL, with the headers every request to it carries.
#[derive(Clone, Debug)]
pub(super) struct Direct {
    client: Client<Bounded<HttpsConnector<HttpConnector>>, Chunks>,
    uri: Uri,
    headers: HeaderMap,
}

impl Direct {
    /// A client posting to `url` (checked http(s) by `config::messages_url`), with
    /// `config`'s default headers and connect timeout. A URL's userinfo becomes basic
    /// credentials, as reqwest sends it, and is never part of the request line.
    /// TLS trusts the webpki roots and `extra` (`ca-file`'s certificates).
    pub(super) fn new(
        config: &ClientConfig,
        url: &reqwest::Url,
        extra: &[CertificateDer<'static>],
    ) -> Result<Self, ClientError> {
        let mut headers = config::default_headers(config)?;
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        let mut url = url.clone();
        if !url.username().is_empty() || url.password().is_some() {
            if !headers.contains_key(header::AUTHORIZATION) {
                headers.insert(header::AUTHORIZATION, basic_auth(&url)?);
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let bad = |reason: String| ClientError::BaseUrl {
            url: url.origin().ascii_serialization(),
            reason,
        };
        let uri = url
            .as_str()
            .parse::<Uri>()
            .map_err(|error| bad(error.to_string()))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        // As reqwest keeps its connections: a non-streamed answer can be minutes of silence,
        // and a peer gone meanwhile must not go unnoticed until the request timeout.
        http.set_keepalive(Some(KEEPALIVE));
        http.set_keepalive_interval(Some(KEEPALIVE));
        http.set_keepalive_retries(Some(KEEPALIVE_RETRIES));
        let roots = roots::store(extra, config.ca_file.as_deref().unwrap_or(Path::new("")))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let connector = Bounded {
            inner: connector,
            timeout: config.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            uri,
            headers,
        })
    }

    /// Posts `body` with the default headers, then those `extra` adds (which replace them),
    /// as JSON of its exact length; `stream` asks for server-sent events.
    pub(super) fn post(
        &self,
        extra: impl FnOnce(&mut HeaderMap),
        body: Chunks,
        stream: bool,
    ) -> hyper_util::client::legacy::ResponseFuture {
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        let length = request.body().len();
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if stream {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            );
        }
        extra(headers);
        self.client.request(request)
    }
}

/// A connector bounding the whole connect, TCP and TLS handshake, by `timeout`, as reqwest
/// bounds it: hyper's `HttpConnector` bounds only the TCP part, so a peer that accepts and then
/// stalls the handshake would hold the attempt until its request timeout. Running out is an
/// `io::Error` of kind `TimedOut`, which the transport's classification reads as a timeout.
#[derive(Clone, Debug)]
pub(super) struct Bounded<C> {
    inner: C,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower::Service<Uri> for Bounded<C>
where
    C: tower::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect (TCP and TLS) not done within {timeout:?}"),
                )) as BoxError),
            }
        })
    }
}

/// Whether `matcher` (the proxies the environment names, as reqwest reads them) sends requests
/// for `url` through a proxy.
pub(super) fn proxied(url: &reqwest::Url, matcher: &Matcher) -> bool {
    url.as_str()
        .parse::<Uri>()
        .is_ok_and(|uri| matcher.intercept(&uri).is_some())
}

/// `Authorization: Basic` from `url`'s percent-decoded userinfo, marked sensitive.
fn basic_auth(url: &reqwest::Url) -> Result<HeaderValue, ClientError> {
    use base64::Engine as _;
    let decode = |text: &str| percent_encoding::percent_decode_str(text).collect::<Vec<u8>>();
    let mut credentials = decode(url.username());
    credentials.push(b':');
    credentials.extend(decode(url.password().unwrap_or("")));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value =
        HeaderValue::try_from(format!("Basic {encoded}")).map_err(|_| ClientError::Header {
            field: "base-url userinfo",
        })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_for_the_scheme_applies_unless_no_proxy_names_the_host() {
        let url = |text: &str| reqwest::Url::parse(text).unwrap();
        let api = url("https://api.anthropic.com/v1/messages");
        let none = Matcher::builder().build();
        assert!(!proxied(&api, &none));
        let https = Matcher::builder()
            .https("http://proxy.internal:3128")
            .build();
        assert!(proxied(&api, &https));
        assert!(!proxied(&url("http://127.0.0.1:8080/v1/messages"), &https));
        let all = Matcher::builder().all("http://proxy.internal:3128").build();
        assert!(proxied(&url("http://127.0.0.1:8080/v1/messages"), &all));
        let bypassed = Matcher::builder()
            .all("http://proxy.internal:3128")
            .no("anthropic.com")
            .build();
        assert!(!proxied(&api, &bypassed));
    }
}
