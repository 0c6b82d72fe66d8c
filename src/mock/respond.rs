//! Canned responses: Anthropic-shaped error bodies (with the request id), the scripted
//! `status` faults (with a JSON error body or a raw one) and `malformed` faults, and the
//! rate-limit headers.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::fault::Fault;
use super::reply;
use crate::api::{ErrorBody, ErrorType, rate_limit_headers};
use crate::engine::RateLimits;
use crate::wallclock::unix_now;

/// This request's number, from which `req_mock_N` and `msg_mock_N` are made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestNumber(pub(crate) u64);

impl RequestNumber {
    /// `req_mock_N`.
    pub(crate) fn id(self) -> String {
        format!("req_mock_{}", self.0)
    }
}

pub(crate) fn status_fault(fault: &Fault, number: RequestNumber) -> Response {
    let status = fault.status_code();
    let kind = fault
        .error_type
        .as_deref()
        .map_or_else(|| type_for_status(status), ErrorType::from);
    let mut response = match &fault.body {
        Some(body) => raw(status, body.clone()),
        None => error_with_status(number, status, kind.clone(), reply::error_message(&kind)),
    };
    let headers = response.headers_mut();
    let extra = fault
        .retry_after
        .iter()
        .map(|value| ("retry-after", value.as_str()));
    for (name, value) in extra.chain(fault.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// `body` verbatim with `status`, like a CDN's error page: not necessarily JSON, maybe empty.
fn raw(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn malformed() -> Response {
    let body = "{\"type\": \"message\", \"content\": [{\"type\": \"text\", \"text\": \"mock repl";
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub(crate) fn overloaded(number: RequestNumber, retry_after: Option<Duration>) -> Response {
    let mut response = error(number, ErrorType::Overloaded, "Overloaded");
    if let Some(retry_after) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.as_secs()),
        );
    }
    response
}

/// A 429 `rate_limit_error`, with `retry-after` (whole seconds, at least one) and the
/// rate-limit headers when given.
pub(crate) fn rate_limited(
    number: RequestNumber,
    retry_after: Option<Duration>,
    limits: Option<&RateLimits>,
) -> Response {
    let message = reply::error_message(&ErrorType::RateLimit);
    let mut response = error(number, ErrorType::RateLimit, message);
    let headers = response.headers_mut();
    if let Some(retry_after) = retry_after {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.as_secs().max(1)),
        );
    }
    if let Some(limits) = limits {
        add_limits(headers, limits);
    }
    response
}

pub(crate) fn add_limits(headers: &mut HeaderMap, limits: &RateLimits) {
    for (name, value) in rate_limit_headers(limits, unix_now()) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
}

/// The `error.type` that goes with `status` when a fault does not name one.
fn type_for_status(status: u16) -> ErrorType {
    let known = [
        ErrorType::InvalidRequest,
        ErrorType::Authentication,
        ErrorType::Billing,
        ErrorType::Permission,
        ErrorType::NotFound,
        ErrorType::Conflict,
        ErrorType::RequestTooLarge,
        ErrorType::RateLimit,
        ErrorType::Api,
        ErrorType::Timeout,
        ErrorType::Overloaded,
    ];
    let fallback = if status >= 500 {
        ErrorType::Api
    } else {
        ErrorType::InvalidRequest
    };
    known
        .into_iter()
        .find(|kind| kind.default_status() == status)
        .unwrap_or(fallback)
}

pub(crate) fn error(
    number: RequestNumber,
    kind: ErrorType,
    message: impl Into<String>,
) -> Response {
    error_with_status(number, kind.default_status(), kind, message)
}

pub(crate) fn error_with_status(
    number: RequestNumber,
    status: u16,
    kind: ErrorType,
    message: impl Into<String>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody::new(kind, message).with_request_id(number.id());
    (status, Json(body)).into_response()
}

/// The request body, or the mock's answer to one it could not read: 413
/// `request_too_large` past `limit` bytes, else 400 with the reason.
pub(crate) fn body(
    body: Result<bytes::Bytes, BytesRejection>,
    number: RequestNumber,
    limit: usize,
) -> Result<bytes::Bytes, Box<Response>> {
    match body {
        Ok(body) => Ok(body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("request body exceeds {limit} bytes");
            Err(Box::new(error(number, ErrorType::RequestTooLarge, message)))
        }
        Err(rejection) => Err(Box::new(error(
            number,
            ErrorType::InvalidRequest,
            rejection.body_text(),
        ))),
    }
}
