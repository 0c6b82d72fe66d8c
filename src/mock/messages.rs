//! `POST /v1/messages` past its key check, wherever it came in (the Claude API's path,
//! Bedrock's, Vertex AI's): the body, the model and the model catalogue's rules, then the
//! scenario's faults and capacity model.

use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;

use super::app::App;
use super::capacity::{Admission, SlotGuard};
use super::connection::ConnectionHandle;
use super::fault::{self, Fault, FaultKind};
use super::registry::Model;
use super::reply;
use super::respond::{self, RequestNumber};
use super::rules;
use crate::api::{ErrorType, MessagesRequest};

/// The largest request body accepted, as the real API's 32 MB; a larger one gets 413
/// `request_too_large`.
pub(super) const BODY_LIMIT: usize = 32 << 20;

/// A `/v1/messages` request past its key check.
pub(super) async fn messages_of(
    app: &App,
    number: RequestNumber,
    connection: Option<Extension<ConnectionHandle>>,
    body: Bytes,
) -> Response {
    let request = match MessagesRequest::from_json(&body) {
        Ok(request) => request,
        Err(err) => return respond::error(number, ErrorType::InvalidRequest, err.to_string()),
    };
    let Some(model) = app.registry.get(&request.model) else {
        return respond::error(
            number,
            ErrorType::NotFound,
            format!("model: {}", request.model),
        );
    };
    model.count_request();
    // Before the faults and the capacity model: an invalid request costs no capacity.
    let response = match judge(app, &body) {
        Err(violation) => respond::error(number, ErrorType::InvalidRequest, violation.message),
        Ok(thinker) => {
            let connection = connection.map(|Extension(c)| c);
            let reply = Reply {
                request: &request,
                number,
                thinker: thinker.as_deref(),
            };
            serve(app, &model, reply, connection).await
        }
    };
    model.count_status(response.status().as_str());
    response
}

/// The catalogue's verdict on `body` (see [`rules::judge`]); none without a catalogue.
fn judge(app: &App, body: &[u8]) -> Result<Option<String>, rules::Violation> {
    let Some(catalog) = app.catalog.as_deref() else {
        return Ok(None);
    };
    // The body was already read as a request, so it is JSON.
    match serde_json::from_slice(body) {
        Ok(body) => rules::judge(catalog, &body),
        Err(_) => Ok(None),
    }
}

/// What an answer is made of: the request, its number, and the model signing its thinking
/// when thinking is on.
#[derive(Clone, Copy)]
struct Reply<'a> {
    request: &'a MessagesRequest,
    number: RequestNumber,
    thinker: Option<&'a str>,
}

/// Plays the scenario's faults, then its capacity model, for a request `model` answers.
async fn serve(
    app: &App,
    model: &Model,
    reply: Reply<'_>,
    connection: Option<ConnectionHandle>,
) -> Response {
    let Reply {
        request, number, ..
    } = reply;
    let streaming = request.stream == Some(true);
    let fault = {
        let faults = &model.capacity.spec().faults;
        fault::pick(faults, app.elapsed(), streaming, &mut *app.rng()).cloned()
    };
    let mut stream_fault = None;
    if let Some(fault) = fault {
        match fault.kind {
            FaultKind::Status => return respond::status_fault(&fault, number),
            FaultKind::Drop => return drop_connection(model, connection, number).await,
            FaultKind::Malformed => return respond::malformed(),
            FaultKind::Slow => tokio::time::sleep(fault.delay()).await,
            FaultKind::StreamError | FaultKind::StreamDrop | FaultKind::StreamEnd => {
                stream_fault = Some(fault);
            }
        }
    }
    let spec = model.capacity.spec();
    // What a platform without the headers (Bedrock, Vertex) leaves out.
    let headers = spec.rate_limit_headers;
    match model.capacity.admit(app.elapsed()) {
        Admission::Overloaded { retry_after } => respond::overloaded(number, retry_after),
        Admission::RateLimited {
            retry_after,
            limits,
        } => {
            let retry_after = spec.retry_after.then_some(retry_after);
            respond::rate_limited(number, retry_after, headers.then_some(&limits))
        }
        Admission::Admitted { slot, limits } => {
            let service_time = model.capacity.service_time(&mut *app.rng());
            // tokio's timer rounds every sleep, a zero one included, up to its next 1 ms
            // tick: an instant model (`service-time = "0s"`) would answer in a millisecond.
            if !service_time.is_zero() {
                tokio::time::sleep(service_time).await;
            }
            let mut response = answer(reply, slot, stream_fault.as_ref(), spec.stream_pause);
            if headers {
                respond::add_limits(response.headers_mut(), &limits);
            }
            response
        }
    }
}

/// The reply, as JSON or as a stream (`pause` before each event) that holds `slot` until it
/// ends.
fn answer(reply: Reply<'_>, slot: SlotGuard, fault: Option<&Fault>, pause: Duration) -> Response {
    let message = reply::message(reply.request, reply.number.0, reply.thinker);
    if reply.request.stream != Some(true) {
        drop(slot);
        return Json(message).into_response();
    }
    let body = reply::stream_body(&message, fault, slot, pause);
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

/// Closes the connection with no response: the connection task drops the connection when
/// told, which also drops this future.
async fn drop_connection(
    model: &Model,
    connection: Option<ConnectionHandle>,
    number: RequestNumber,
) -> Response {
    let Some(connection) = connection else {
        // Served outside MockServer's accept loop: nothing below us to cut.
        return respond::error(
            number,
            ErrorType::Api,
            "drop fault needs MockServer's connection handling",
        );
    };
    model.count_status("dropped");
    tracing::debug!(model = %model.name, "mock drops a connection");
    connection.cut();
    std::future::pending().await
}
