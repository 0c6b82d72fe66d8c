//! An Anthropic-compatible gateway in front of a [`Runtime`]: services in any language point
//! their SDK's base URL here and get breakwater's retries, breakers and fallbacks.
//!
//! `POST /v1/messages` takes a Messages request as the API does. The requested model picks
//! the configured chain it heads (else the default chain when it is in it, served from that
//! model on); the body goes on unchanged but for `model` when falling back. Answers carry the
//! model that answered in the body, as the API does, and `x-breakwater-model` /
//! `x-breakwater-attempts` headers. Errors are Anthropic-shaped JSON: a chain exhausted is
//! 529 `overloaded_error` with `retry-after`; a permanent upstream error passes through with
//! its status and type. Streams are retried or rerouted until their first content event;
//! after that a failure ends the stream with an explicit `error` event.
//!
//! Status: a first slice of the gateway issue; `count_tokens`, `/metrics`, client keys,
//! header forwarding and graceful drain are still to come.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;

use crate::api::{ErrorBody, ErrorType, MessagesRequest};
use crate::engine::{Answer, Error, RequestOptions, Target};
use crate::runtime::Runtime;

/// The largest request body accepted, as the API's 32 MB.
pub const BODY_LIMIT: usize = 32 << 20;

/// The gateway's router over `runtime`.
pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(runtime)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// An Anthropic-shaped error response.
fn error(status: u16, kind: ErrorType, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ErrorBody::new(kind, message))).into_response()
}

async fn messages(
    State(runtime): State<Arc<Runtime>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("request body exceeds {BODY_LIMIT} bytes");
            return error(413, ErrorType::RequestTooLarge, message);
        }
        Err(rejection) => return error(400, ErrorType::InvalidRequest, rejection.body_text()),
    };
    let request = match MessagesRequest::from_json(&body) {
        Ok(request) => request,
        Err(err) => return error(400, ErrorType::InvalidRequest, err.to_string()),
    };
    let Some(chain) = chain_for(&runtime, &request.model) else {
        let message = format!(
            "model: {} is not served by this gateway (configured: {})",
            request.model,
            runtime
                .config()
                .models
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        return error(404, ErrorType::NotFound, message);
    };
    let options = RequestOptions::default().with_chain(chain);
    if request.stream == Some(true) {
        streamed(&runtime, request, options).await
    } else {
        whole(&runtime, request, options).await
    }
}

/// The chain a request for `model` runs on: the configured chain it heads (the default
/// chain first, then the others by name), else the first that holds it, from `model` on;
/// `None` when no chain serves it.
fn chain_for(runtime: &Runtime, model: &str) -> Option<Vec<Target>> {
    let config = runtime.config();
    let others = config
        .chains
        .keys()
        .filter(|name| name.as_str() != crate::config::DEFAULT_CHAIN)
        .filter_map(|name| config.chain(name));
    let chains: Vec<Vec<Target>> = std::iter::once(config.default_chain())
        .chain(others)
        .collect();
    let headed = chains
        .iter()
        .find(|chain| chain.first().is_some_and(|t| t.model() == model));
    if let Some(chain) = headed {
        return Some(chain.clone());
    }
    chains.iter().find_map(|chain| {
        let from = chain.iter().position(|t| t.model() == model)?;
        Some(chain[from..].to_vec())
    })
}

fn attempts_headers<T>(answer: &Answer<T>) -> [(header::HeaderName, HeaderValue); 2] {
    let model = HeaderValue::from_str(answer.target.model())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    [
        (header::HeaderName::from_static("x-breakwater-model"), model),
        (
            header::HeaderName::from_static("x-breakwater-attempts"),
            HeaderValue::from(answer.attempts.len()),
        ),
    ]
}

async fn whole(runtime: &Runtime, request: MessagesRequest, options: RequestOptions) -> Response {
    match runtime.send_with(request, options).await {
        Ok(answer) => {
            let headers = attempts_headers(&answer);
            (headers, Json(answer.value)).into_response()
        }
        Err(failure) => failed(&failure),
    }
}

async fn streamed(
    runtime: &Runtime,
    request: MessagesRequest,
    options: RequestOptions,
) -> Response {
    let answer = match runtime.stream_with(request, options).await {
        Ok(answer) => answer,
        Err(failure) => return failed(&failure),
    };
    let headers = attempts_headers(&answer);
    let committed = answer.value;
    let head = futures::stream::iter(committed.head).map(|event| Ok(event.to_sse()));
    // After content has been handed over nothing can be retried: a failure ends the stream
    // with an explicit error event, never a silent cut.
    let tail = committed.tail.map(|event| match event {
        Ok(event) => Ok::<_, std::convert::Infallible>(event.to_sse()),
        Err(failure) => {
            let kind = failure.error_type().map_or(ErrorType::Api, ErrorType::from);
            let body = ErrorBody::new(kind, failure.message().to_owned());
            let data = serde_json::to_string(&body).unwrap_or_default();
            Ok(format!("event: error\ndata: {data}\n\n"))
        }
    });
    let body = Body::from_stream(head.chain(tail));
    let mut response = (headers, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The Anthropic-shaped answer to a request that ended without one.
fn failed(failure: &Error) -> Response {
    match failure {
        Error::Upstream { failure, .. } => {
            let status = failure.status().unwrap_or(400);
            let kind = failure
                .error_type()
                .map_or(ErrorType::InvalidRequest, ErrorType::from);
            error(status, kind, failure.message().to_owned())
        }
        Error::Exhausted { retry_after, .. } => {
            let mut response = error(529, ErrorType::Overloaded, failure.to_string());
            let seconds = retry_after
                .unwrap_or(Duration::from_secs(1))
                .as_secs()
                .max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Error::Shed { .. } => error(529, ErrorType::Overloaded, failure.to_string()),
        Error::DeadlineExceeded { .. } => error(504, ErrorType::Timeout, failure.to_string()),
        Error::Invalid(message) => error(400, ErrorType::InvalidRequest, message.clone()),
        _ => error(500, ErrorType::Api, failure.to_string()),
    }
}
