//! Every `/v1/` route the gateway does not model (models, Message Batches, Files, and routes
//! yet to come) goes to the upstream unchanged: method, path, query, headers but the
//! hop-by-hop ones, and the body, streamed both ways and never held whole. The answer comes
//! back as it came, `request-id` and errors included.
//!
//! Keys, one rule for every route: callers authenticate to the gateway as on
//! `/v1/messages` (`require-keys`), and a key presented to the gateway never goes upstream.
//! The gateway's own credentials (`ANTHROPIC_API_KEY`, else `ANTHROPIC_AUTH_TOKEN`), when it
//! has them, replace whatever key a caller sent. A gateway without credentials and without
//! `require-keys` (only when embedded: `breakwater serve` always has its own) passes the
//! caller's `x-api-key` / `Authorization` through on these routes.
//!
//! What the gateway adds: a body past `forward-body-limit` gets 413 `request_too_large`, a
//! caller pausing its body past `body-timeout` 408, an upstream that cannot be reached 502
//! `api_error`, one silent past `forward-timeout` before its answer 504 `timeout_error`
//! (after, the answer is cut); and Message Batches' `results_url` made a gateway path.

mod headers;
mod results_url;
mod upload;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;

use super::error::error;
use super::state::Gateway;
use crate::api::ErrorType;
use crate::client::AnswerStream;
use crate::engine::{Class, Failure};
use results_url::Rewrite;
use upload::Fault;

pub(super) async fn forward(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let method = method_label(request.method());
    let response = relay(&gateway, request).await;
    let status = response.status().as_str().to_owned();
    tracing::debug!(method, %status, "forwarded");
    metrics::counter!("breakwater_gateway_forwarded_total", "method" => method, "status" => status)
        .increment(1);
    response
}

async fn relay(gateway: &Gateway, request: Request) -> Response {
    let Some(client) = gateway.runtime.client() else {
        let message = "this route is forwarded, and this runtime has no HTTP upstream";
        return error(501, ErrorType::Api, message);
    };
    let config = &gateway.config;
    let limit = config.forward_body_limit.as_u64();
    let (mut head, body) = request.into_parts();
    if headers::has_dot_segment(head.uri.path()) {
        let message = "a forwarded path may not hold . or .. segments";
        return error(400, ErrorType::InvalidRequest, message);
    }
    if headers::declared_length(&head.headers).is_some_and(|n| n > limit) {
        return refused(&Fault::TooLarge(limit));
    }
    headers::strip_hop_by_hop(&mut head.headers);
    if config.require_keys {
        headers::strip_keys(&mut head.headers);
    }
    let rewrite = Rewrite::for_request(&mut head, client.base_url());
    let (body, fault) = upload::upload(body, limit, config.body_timeout);
    match client.forward(head, body, config.forward_timeout).await {
        Ok(answer) => respond(answer, rewrite.as_ref()),
        Err(failure) => match fault.get() {
            Some(fault) => refused(fault),
            None => failed(&failure, gateway),
        },
    }
}

/// The upstream's answer as it came, but for hop-by-hop headers and `results_url`s.
fn respond(answer: axum::http::Response<AnswerStream>, rewrite: Option<&Rewrite>) -> Response {
    let (mut head, mut body) = answer.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    if let Some(rewrite) = rewrite {
        body = rewrite.apply(&mut head, body);
    }
    Response::from_parts(head, Body::from_stream(body))
}

/// The answer to a caller whose body was refused.
fn refused(fault: &Fault) -> Response {
    let mut response = match fault {
        Fault::TooLarge(limit) => {
            let message =
                format!("request body exceeds {limit} bytes (gateway.forward-body-limit)");
            error(413, ErrorType::RequestTooLarge, message)
        }
        Fault::Stalled(pause) => {
            let message =
                format!("the request body paused for over {pause:?} (gateway.body-timeout)");
            error(408, ErrorType::Timeout, message)
        }
        Fault::Broken(_) => error(400, ErrorType::InvalidRequest, fault.to_string()),
    };
    // The rest of the body is not read: the connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The answer when the upstream gave none.
fn failed(failure: &Failure, gateway: &Gateway) -> Response {
    match failure.class() {
        Class::Timeout => {
            let message = format!(
                "the upstream did not answer within {:?} (gateway.forward-timeout)",
                gateway.config.forward_timeout
            );
            error(504, ErrorType::Timeout, message)
        }
        Class::Invalid => error(400, ErrorType::InvalidRequest, failure.message()),
        _ => {
            let message = format!("the upstream could not be reached: {}", failure.message());
            error(502, ErrorType::Api, message)
        }
    }
}

/// A metrics label for `method`: callers may send any token, and labels must stay few.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
