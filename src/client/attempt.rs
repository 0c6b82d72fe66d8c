//! One attempt at `POST /v1/messages`: the body prepared for its target, posted with the
//! request's own headers, read whole or opened as a stream of events, and classified; a
//! fallback's 400 gets one resend in the minimal safe form.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::ClaudeClient;
use super::bedrock;
use super::credentials::Credentials;
use super::response::Response;
use super::route::Route;
use super::stream;
use super::transport::{hyper_transport, transport, unprocessed};
use super::vertex;
use crate::api::json::Chunks;
use crate::api::{self, ResponseMeta, WireEvent, WireMessage, WireRequest};
use crate::engine::{Class, EventStream, Failure, Outcome, Reply, Target};
use crate::{telemetry, wallclock};

/// How many times one attempt is sent again on the Claude API's pool when the server says it
/// did not process it ([`unprocessed`]), as reqwest's retry layer does.
const UNPROCESSED_RESENDS: u32 = 2;

impl ClaudeClient {
    /// An attempt at the Claude API on its own pool ([`super::direct`]), within the request
    /// timeout: the head of a streamed answer, the whole of another. A request the server
    /// says it did not process ([`unprocessed`]) is sent again, at most
    /// [`UNPROCESSED_RESENDS`] times, while the timeout lasts.
    async fn post_direct(
        &self,
        direct: &super::direct::Direct,
        request: &WireRequest,
        body: Chunks,
        stream: bool,
    ) -> Result<Response, Failure> {
        let timeout = self.request_timeout;
        let deadline = Instant::now() + timeout;
        let extra = |headers: &mut HeaderMap| {
            add_headers(headers, request.headers(), self.authenticated, &self.betas);
        };
        let mut resends = 0;
        loop {
            let sent = direct.post(extra, body.clone(), stream);
            return match tokio::time::timeout_at(deadline, sent).await {
                Ok(Ok(response)) => Ok(Response::Hyper {
                    response,
                    deadline: (deadline, timeout),
                }),
                Ok(Err(error))
                    if resends < UNPROCESSED_RESENDS
                        && unprocessed(&error)
                        && Instant::now() < deadline =>
                {
                    resends += 1;
                    continue;
                }
                Ok(Err(error)) => {
                    let (class, message) = hyper_transport(&error);
                    Err(Failure::new(class, message))
                }
                Err(_) => Err(no_response(timeout)),
            };
        }
    }

    async fn post(
        &self,
        target: &Target,
        route: Route<'_>,
        request: &WireRequest,
        body: Chunks,
        stream: bool,
    ) -> Result<Response, Failure> {
        let timeout = self.request_timeout;
        let builder = match route {
            Route::Claude => {
                if let Some(direct) = &self.direct {
                    return self.post_direct(direct, request, body, stream).await;
                }
                // Through a proxy from the environment: reqwest speaks to it.
                let builder = self
                    .http
                    .post(&*self.messages_url)
                    .header(header::CONTENT_TYPE, "application/json");
                with_headers(builder, request.headers(), self.authenticated, &self.betas)
            }
            Route::Bedrock(bedrock) => {
                let headers = bedrock
                    .headers(request, &self.betas, &body, wallclock::unix_now())
                    .await?;
                bedrock.http.post(bedrock.url.clone()).headers(headers)
            }
            Route::Vertex(vertex) => {
                let url = vertex.url(self.model_on(target, route), stream)?;
                let headers = vertex.headers(request, &self.betas).await?;
                vertex.http.post(url).headers(headers)
            }
        };
        let mut builder = builder
            .header(header::CONTENT_LENGTH, body.len())
            .body(http_body(body));
        let deadline = Instant::now() + timeout;
        let sent = if stream {
            builder = builder.header(header::ACCEPT, "text/event-stream");
            // Only until the head: the body is bounded per event (`read_timeout`).
            tokio::time::timeout_at(deadline, builder.send()).await
        } else {
            // Covers the body too, which `bytes()` reads after `send` returns.
            Ok(builder.timeout(timeout).send().await)
        };
        match sent {
            Ok(Ok(response)) => Ok(Response::Reqwest {
                response,
                // A streamed request's error body, read whole: bounded as the head was.
                deadline: stream.then_some((deadline, timeout)),
            }),
            Ok(Err(error)) => {
                let (class, message) = transport(error);
                Err(Failure::new(class, message))
            }
            Err(_) => Err(no_response(timeout)),
        }
    }

    /// One attempt for a whole answer, resent once in the safe form when a fallback refuses it.
    pub(super) async fn complete(
        &self,
        target: &Target,
        request: &WireRequest,
    ) -> Outcome<WireMessage> {
        let route = self.route_for(target)?;
        let mut prepared = self.prepare(target, route, request, false)?;
        let (status, meta, body) = loop {
            let response = self
                .post(target, route, request, prepared.body.clone(), false)
                .await?;
            let status = response.status();
            let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
            let body = read_body(response, &meta).await?;
            if (200..300).contains(&status) {
                break (status, meta, body);
            }
            let failure = platform_failure(route, status, meta, &body);
            match self.safer(target, request, &prepared, &failure) {
                Some(safer) => prepared = safer,
                None => return Err(failure),
            }
        };
        telemetry::spans::answered(&body, &prepared.changes);
        match WireMessage::from_json(body) {
            Ok(message) => Ok(reply(message, meta, &prepared.changes)),
            Err(error) => Err(api::answered(
                Class::ServerError,
                format!("unreadable response body: {error}"),
                status,
                meta.request_id.as_deref(),
            )),
        }
    }

    /// One attempt for a streamed answer, resent as [`ClaudeClient::complete`] is.
    pub(super) async fn open(
        &self,
        target: &Target,
        request: &WireRequest,
    ) -> Outcome<EventStream<WireEvent>> {
        let route = self.route_for(target)?;
        let mut prepared = self.prepare(target, route, request, true)?;
        let (response, meta) = loop {
            let response = self
                .post(target, route, request, prepared.body.clone(), true)
                .await?;
            let status = response.status();
            let meta = ResponseMeta::from_headers(response.headers(), wallclock::unix_now());
            if (200..300).contains(&status) {
                break (response, meta);
            }
            let body = read_body(response, &meta).await?;
            let failure = platform_failure(route, status, meta, &body);
            match self.safer(target, request, &prepared, &failure) {
                Some(safer) => prepared = safer,
                None => return Err(failure),
            }
        };
        let events = stream::events(
            response.bytes_stream(),
            meta.request_id.clone(),
            self.read_timeout,
        );
        let events = telemetry::spans::observed(events, &prepared.changes);
        Ok(reply(events, meta, &prepared.changes))
    }
}

/// The failure for an error response, by the rules of the target's platform.
fn platform_failure(route: Route<'_>, status: u16, meta: ResponseMeta, body: &[u8]) -> Failure {
    match route {
        Route::Claude => api::failure(status, meta, body),
        Route::Bedrock(_) => bedrock::failure(status, &meta, body),
        Route::Vertex(_) => vertex::failure(status, &meta, body),
    }
}

/// `headers` with the request's own `anthropic-version` (which replaces the configured one)
/// and `anthropic-beta` (whose flags add to the configured `betas`), and, for a client
/// without credentials, the caller's key (marked sensitive).
pub(super) fn add_headers(
    headers: &mut HeaderMap,
    request: &api::RequestHeaders,
    authenticated: bool,
    betas: &[String],
) {
    if !authenticated {
        let credential = match &request.credentials {
            Some(Credentials::ApiKey(key)) => HeaderValue::from_str(key.expose())
                .ok()
                .map(|value| (HeaderName::from_static("x-api-key"), value)),
            Some(Credentials::Bearer(token)) => {
                HeaderValue::try_from(format!("Bearer {}", token.expose()))
                    .ok()
                    .map(|value| (header::AUTHORIZATION, value))
            }
            None => None,
        };
        if let Some((name, mut value)) = credential {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    if let Some(version) = &request.version
        && let Ok(value) = HeaderValue::from_str(version)
    {
        headers.insert("anthropic-version", value);
    }
    if let Some(beta) = &request.beta
        && let Ok(value) = HeaderValue::try_from(api::merge_betas(betas, [beta.as_str()]))
    {
        headers.insert("anthropic-beta", value);
    }
}

/// `builder` with the request's own headers, as [`add_headers`] adds them.
pub(super) fn with_headers(
    builder: reqwest::RequestBuilder,
    request: &api::RequestHeaders,
    authenticated: bool,
    betas: &[String],
) -> reqwest::RequestBuilder {
    let mut headers = HeaderMap::new();
    add_headers(&mut headers, request, authenticated, betas);
    builder.headers(headers)
}

/// The failure for no response head within the request timeout.
fn no_response(timeout: std::time::Duration) -> Failure {
    Failure::new(Class::Timeout, format!("no response within {timeout:?}"))
}

/// A request body: the one buffer as it is, or its slices without joining them.
fn http_body(body: Chunks) -> reqwest::Body {
    match body.parts() {
        [one] => reqwest::Body::from(one.clone()),
        _ => reqwest::Body::wrap(body),
    }
}

/// The engine's reply: `value`, with the answer's request id, limits and the changes made.
fn reply<T>(value: T, meta: ResponseMeta, changes: &[&str]) -> Reply<T> {
    Reply {
        value,
        request_id: meta.request_id,
        limits: meta.limits,
        changes: (!changes.is_empty()).then(|| changes.join(",").into()),
    }
}

/// Reads a whole body. The status and headers have arrived, so a failure here keeps the
/// status and the request id.
pub(super) async fn read_body(
    response: Response,
    meta: &ResponseMeta,
) -> Result<bytes::Bytes, Failure> {
    let status = response.status();
    response.bytes().await.map_err(|(class, message)| {
        api::answered(class, message, status, meta.request_id.as_deref())
    })
}
