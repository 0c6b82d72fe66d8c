//! One attempt at `POST /v1/messages`: the body prepared for its target, posted with the
//! request's own headers, read whole or opened as a stream of events, and classified; a
//! fallback's 400 gets one resend in the minimal safe form.

use http::header;

use super::ClaudeClient;
use super::bedrock;
use super::credentials::Credentials;
use super::route::Route;
use super::stream;
use super::transport::transport;
use super::vertex;
use crate::api::json::Chunks;
use crate::api::{self, ResponseMeta, WireEvent, WireMessage, WireRequest};
use crate::engine::{Class, EventStream, Failure, Outcome, Reply, Target};
use crate::{telemetry, wallclock};

impl ClaudeClient {
    /// Posts one attempt's `body`, for a streamed answer or a whole one, within the
    /// request timeout (only until the head, for a stream).
    async fn post(
        &self,
        target: &Target,
        route: Route<'_>,
        request: &WireRequest,
        body: Chunks,
        stream: bool,
    ) -> Result<reqwest::Response, Failure> {
        let mut builder = match route {
            Route::Claude => {
                let builder = self
                    .http
                    .post(self.messages_target.clone())
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
        builder = builder
            .header(header::CONTENT_LENGTH, body.len())
            .body(http_body(body));
        let sent = if stream {
            builder = builder.header(header::ACCEPT, "text/event-stream");
            // Only until the head: the body is bounded per event (`read_timeout`).
            tokio::time::timeout(self.request_timeout, builder.send()).await
        } else {
            // Covers the body too, which `bytes()` reads after `send` returns.
            Ok(builder.timeout(self.request_timeout).send().await)
        };
        match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                let (class, message) = transport(error);
                Err(Failure::new(class, message))
            }
            Err(_) => Err(Failure::new(
                Class::Timeout,
                format!("no response within {:?}", self.request_timeout),
            )),
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
            let status = response.status().as_u16();
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
            let status = response.status().as_u16();
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

/// `builder` with the request's own `anthropic-version` (which replaces the configured one)
/// and `anthropic-beta` (whose flags add to the configured `betas`), and, for a client
/// without credentials, the caller's key.
pub(super) fn with_headers(
    mut builder: reqwest::RequestBuilder,
    headers: &api::RequestHeaders,
    authenticated: bool,
    betas: &[String],
) -> reqwest::RequestBuilder {
    if !authenticated {
        builder = match &headers.credentials {
            Some(Credentials::ApiKey(key)) => builder.header("x-api-key", key.expose()),
            Some(Credentials::Bearer(token)) => builder.bearer_auth(token.expose()),
            None => builder,
        };
    }
    if let Some(version) = &headers.version {
        builder = builder.header("anthropic-version", version);
    }
    if let Some(beta) = &headers.beta {
        builder = builder.header("anthropic-beta", api::merge_betas(betas, [beta.as_str()]));
    }
    builder
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
    response: reqwest::Response,
    meta: &ResponseMeta,
) -> Result<bytes::Bytes, Failure> {
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) => Ok(body),
        Err(error) => {
            let (class, message) = transport(error);
            Err(api::answered(
                class,
                message,
                status,
                meta.request_id.as_deref(),
            ))
        }
    }
}
