//! Anthropic-shaped error responses (`{"type":"error","error":{...}}`), as every route of
//! the gateway answers its own failures.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, ErrorType};

/// An Anthropic-shaped error response.
pub(crate) fn error(status: u16, kind: ErrorType, message: impl Into<String>) -> Response {
    error_body(status, ErrorBody::new(kind, message))
}

/// An error response with this body.
pub(crate) fn error_body(status: u16, body: ErrorBody) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}
