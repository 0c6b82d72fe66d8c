//! Turns an API error into the engine's [`Failure`]: a [`Class`] chosen from the status and
//! the error type (never the message text), plus everything the response said alongside.
//!
//! A 413 may come from the CDN before the API and carry HTML, so bodies that are not an
//! [`ErrorBody`] are classified by status alone.

use breakwater_actors::{Class, Failure};

use super::error::{ApiError, ErrorBody, ErrorType};
use super::headers::ResponseMeta;

/// The most characters of a non-JSON error body kept as the failure's message.
const EXCERPT_CHARS: usize = 200;

/// The class of a failure answered with `status` and, when the body said, `error_type`.
///
/// Overload (529 or `overloaded_error`) wins over everything, then quota (429 or
/// `rate_limit_error`), then 408. `timeout_error`, `api_error` and any status from 500 are the
/// upstream's failure; other 4xx are the request's. An error inside a 200 stream is the
/// upstream's failure unless its type blames the request.
pub fn classify(status: u16, error_type: Option<&ErrorType>) -> Class {
    match (status, error_type) {
        (529, _) | (_, Some(ErrorType::Overloaded)) => Class::Overloaded,
        (429, _) | (_, Some(ErrorType::RateLimit)) => Class::RateLimited,
        (408, _) => Class::Timeout,
        (500.., _) | (_, Some(ErrorType::Timeout | ErrorType::Api)) => Class::ServerError,
        (400..=499, _)
        | (
            _,
            Some(
                ErrorType::InvalidRequest
                | ErrorType::Authentication
                | ErrorType::Billing
                | ErrorType::Permission
                | ErrorType::NotFound
                | ErrorType::Conflict
                | ErrorType::RequestTooLarge,
            ),
        ) => Class::Invalid,
        (_, Some(ErrorType::Unknown(_)) | None) => Class::ServerError,
    }
}

/// A failure of `class` that the upstream answered with `status`, with its request id when
/// it gave one. Every failure that got as far as a status is built here, so none loses the
/// status or the request id on the way.
pub fn answered(
    class: Class,
    message: impl Into<String>,
    status: u16,
    request_id: Option<&str>,
) -> Failure {
    let mut failure = Failure::new(class, message).with_status(status);
    if status == 404 {
        // The engine falls back past a target that does not exist; it reads no status.
        failure = failure.with_not_found();
    }
    match request_id {
        Some(id) => failure.with_request_id(id),
        None => failure,
    }
}

/// The failure for an error response: `status`, its headers (`meta`) and its `body`.
///
/// The request id comes from the `request-id` header, else from the body.
pub fn failure(status: u16, meta: ResponseMeta, body: &[u8]) -> Failure {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let error_type = parsed.as_ref().map(|b| &b.error.kind);
    let message = parsed
        .as_ref()
        .map_or_else(|| excerpt(status, body), |b| b.error.message.clone());
    let request_id = meta
        .request_id
        .or_else(|| parsed.as_ref().and_then(|b| b.request_id.clone()));
    let mut failure = answered(
        classify(status, error_type),
        message,
        status,
        request_id.as_deref(),
    )
    .with_limits(meta.limits);
    if let Some(kind) = error_type {
        failure = failure.with_error_type(kind.as_str());
    }
    if let Some(delay) = meta.retry_after {
        failure = failure.with_retry_after(delay);
    }
    if let Some(verdict) = meta.should_retry {
        failure = failure.with_should_retry(verdict);
    }
    failure
}

/// The failure for an in-stream `error` event. Status 200 is recorded, so it shows that the
/// failure arrived inside a stream that had been accepted.
pub fn stream_failure(error: &ApiError, request_id: Option<&str>) -> Failure {
    answered(
        classify(200, Some(&error.kind)),
        error.message.clone(),
        200,
        request_id,
    )
    .with_error_type(error.kind.as_str())
}

/// A short, single-line excerpt of a body that is not an API error body.
fn excerpt(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return format!("status {status} with an empty body");
    }
    words.join(" ").chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn body(kind: &str) -> Vec<u8> {
        format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"Something"}},"request_id":"req_body"}}"#)
            .into_bytes()
    }

    fn class(status: u16, kind: Option<&str>) -> Class {
        let body = kind.map(body).unwrap_or_default();
        failure(status, ResponseMeta::default(), &body).class()
    }

    #[test]
    fn every_documented_row() {
        let rows = [
            (400, Some("invalid_request_error"), Class::Invalid),
            (401, Some("authentication_error"), Class::Invalid),
            (402, Some("billing_error"), Class::Invalid),
            (403, Some("permission_error"), Class::Invalid),
            (404, Some("not_found_error"), Class::Invalid),
            (408, None, Class::Timeout),
            (409, Some("conflict_error"), Class::Invalid),
            (429, Some("rate_limit_error"), Class::RateLimited),
            (500, Some("api_error"), Class::ServerError),
            (502, None, Class::ServerError),
            (503, None, Class::ServerError),
            (504, Some("timeout_error"), Class::ServerError),
            (529, Some("overloaded_error"), Class::Overloaded),
            (529, None, Class::Overloaded),
            (503, Some("new_kind_error"), Class::ServerError),
            (400, Some("overloaded_error"), Class::Overloaded),
            (418, None, Class::Invalid),
        ];
        for (status, kind, expected) in rows {
            assert_eq!(class(status, kind), expected, "{status} {kind:?}");
        }
    }

    #[test]
    fn only_a_404_says_the_target_is_not_found() {
        let gone = failure(404, ResponseMeta::default(), &body("not_found_error"));
        assert_eq!(gone.class(), Class::Invalid);
        assert!(gone.is_not_found());
        let bad = failure(400, ResponseMeta::default(), &body("invalid_request_error"));
        assert!(!bad.is_not_found());
    }

    #[test]
    fn non_json_413_from_the_cdn() {
        let html = b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n</html>";
        let failure = failure(413, ResponseMeta::default(), html);
        assert_eq!(failure.class(), Class::Invalid);
        assert_eq!(failure.error_type(), None);
        assert_eq!(
            failure.message(),
            "<html> <head><title>413 Request Entity Too Large</title></head> </html>"
        );
        let long = "x".repeat(500);
        assert_eq!(
            super::failure(413, ResponseMeta::default(), long.as_bytes())
                .message()
                .len(),
            200
        );
    }

    #[test]
    fn empty_502_body() {
        let failure = failure(502, ResponseMeta::default(), b"");
        assert_eq!(failure.class(), Class::ServerError);
        assert_eq!(failure.message(), "status 502 with an empty body");
        assert_eq!(failure.request_id(), None);
    }

    #[test]
    fn unknown_type_is_kept_verbatim() {
        let failure = failure(503, ResponseMeta::default(), &body("new_kind_error"));
        assert_eq!(failure.error_type(), Some("new_kind_error"));
        assert_eq!(
            failure.to_string(),
            "server_error (503, new_kind_error, request-id req_body): Something"
        );
    }

    #[test]
    fn meta_is_carried_and_header_request_id_wins() {
        let meta = ResponseMeta {
            request_id: Some("req_header".into()),
            retry_after: Some(Duration::from_secs(30)),
            should_retry: Some(true),
            limits: breakwater_actors::RateLimits::default(),
        };
        let failure = failure(429, meta, &body("rate_limit_error"));
        assert_eq!(failure.request_id(), Some("req_header"));
        assert_eq!(failure.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(failure.should_retry(), Some(true));
        assert_eq!(failure.status(), Some(429));
    }

    #[test]
    fn in_stream_errors_arrive_with_status_200() {
        let error = |kind: &str| ErrorBody::new(ErrorType::from(kind), "Overloaded").error;
        let overloaded = stream_failure(&error("overloaded_error"), Some("req_1"));
        assert_eq!(overloaded.class(), Class::Overloaded);
        assert_eq!(overloaded.status(), Some(200));
        assert_eq!(overloaded.request_id(), Some("req_1"));
        assert_eq!(
            stream_failure(&error("invalid_request_error"), None).class(),
            Class::Invalid
        );
        assert_eq!(
            stream_failure(&error("new_kind_error"), None).class(),
            Class::ServerError
        );
        assert_eq!(classify(200, None), Class::ServerError);
    }
}
