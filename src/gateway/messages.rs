//! `POST /v1/messages` through the runtime, and `POST /v1/messages/count_tokens` passed on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::error::{error, error_body};
use super::state::Gateway;
use crate::api::{ErrorBody, ErrorType, RequestHeaders, WireRequest};
use crate::catalog::AdaptMode;
use crate::client::{Credentials, Secret};
use crate::engine::{Answer, Class, Error, RequestOptions, Target};
use crate::runtime::Runtime;

/// How long a forwarded `count_tokens` may take.
const COUNT_TOKENS_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest model name accepted: it names actors and labels metrics.
const MAX_MODEL_NAME: usize = 256;

pub(super) async fn messages(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let held = match read_body(&parts.headers, body, &gateway).await {
        Ok(held) => held,
        Err(response) => return *response,
    };
    let request = match WireRequest::from_json(held.bytes.clone()) {
        Ok(request) => request.with_headers(forwarded(&parts.headers, &gateway)),
        Err(err) => return error(400, ErrorType::InvalidRequest, err.to_string()),
    };
    let (chain, adapt) = match chain(&gateway, request.model()).await {
        Ok(chain) => chain,
        Err(response) => return *response,
    };
    let request = request.with_adapt(adapt);
    let options = RequestOptions {
        chain: Some(chain),
        ..RequestOptions::default()
    };
    let stream = request.stream();
    let response = if stream {
        streamed(&gateway.runtime, request, options).await
    } else {
        whole(&gateway.runtime, request, options).await
    };
    // The engine has let go of the body: an answer, or a stream past its commit.
    drop(held);
    count(&gateway, response.status(), stream);
    response
}

/// Counts an answer in `breakwater_gateway_requests_total`. Those with status 200, nearly
/// all of them, go to counters the gateway fetched once (see [`Gateway::answered`]); the
/// rest are looked up by their labels.
fn count(gateway: &Gateway, status: StatusCode, stream: bool) {
    let kind = if stream { "stream" } else { "whole" };
    let fetch = || {
        let status = status.as_str().to_owned();
        metrics::counter!("breakwater_gateway_requests_total", "status" => status, "kind" => kind)
    };
    if status == StatusCode::OK {
        gateway.answered[usize::from(stream)]
            .get_or_init(fetch)
            .increment(1);
    } else {
        fetch().increment(1);
    }
}

pub(super) async fn count_tokens(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let held = match read_body(&parts.headers, body, &gateway).await {
        Ok(held) => held,
        Err(response) => return *response,
    };
    let Some(client) = gateway.runtime.client() else {
        return error(
            501,
            ErrorType::Api,
            "count_tokens is not available: this runtime has no HTTP upstream",
        );
    };
    match client
        .forward_count_tokens(
            held.bytes.clone(),
            &forwarded(&parts.headers, &gateway),
            COUNT_TOKENS_TIMEOUT,
        )
        .await
    {
        Ok(answer) => {
            let status = axum::http::StatusCode::from_u16(answer.status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            let mut response = (status, answer.body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(id) = answer
                .request_id
                .and_then(|id| HeaderValue::from_str(&id).ok())
            {
                headers.insert("request-id", id);
            }
            response
        }
        Err(failure) => error(
            502,
            ErrorType::Api,
            format!("count_tokens upstream: {}", failure.message()),
        ),
    }
}

/// Reads a whole body under the gateway's body budget (see [`super::body`]).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    gateway: &Gateway,
) -> Result<super::body::Held, Box<Response>> {
    gateway
        .bodies
        .read(headers, body, gateway.config.body_timeout)
        .await
}

/// The caller's `anthropic-version` and `anthropic-beta`, to send upstream as they came;
/// and its key, when the gateway has none of its own and does not require its own keys
/// (the one key rule, as on forwarded routes).
fn forwarded(headers: &HeaderMap, gateway: &Gateway) -> RequestHeaders {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let passes_keys = !gateway.config.require_keys
        && gateway
            .runtime
            .client()
            .is_some_and(|client| !client.has_credentials());
    let credentials = passes_keys.then(|| caller_key(headers)).flatten();
    // Every copy of the header: an SDK may send one per flag.
    let betas: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    RequestHeaders {
        version: text("anthropic-version"),
        beta: (!betas.is_empty()).then(|| betas.join(",")),
        credentials,
    }
}

/// The key a caller presented: `x-api-key`, else `Authorization: Bearer`.
fn caller_key(headers: &HeaderMap) -> Option<Credentials> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(key) = value("x-api-key").filter(|key| !key.is_empty()) {
        return Some(Credentials::ApiKey(Secret::new(key)));
    }
    let authorization = value("authorization")?;
    let (scheme, token) = authorization.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| Credentials::Bearer(Secret::new(token.trim())))
}

/// The chain a request for `model` runs on (see [`Runtime::chain_for_model`]); a model in no chain is
/// served alone when `serve-unlisted` allows and the upstream confirms the model, else 404.
async fn chain(
    gateway: &Gateway,
    model: &str,
) -> Result<(Arc<[Target]>, AdaptMode), Box<Response>> {
    let runtime = &gateway.runtime;
    if let Some(chain) = runtime.shared_chain_for_model(model) {
        return Ok(chain);
    }
    let alone = |target: Target| (Arc::from([target]), runtime.config().adapt);
    let refuse = |why: String| {
        let message = format!("model: {model} {why}");
        Err(Box::new(error(404, ErrorType::NotFound, message)))
    };
    if model.is_empty() || model.len() > MAX_MODEL_NAME || model.chars().any(char::is_control) {
        return refuse("is not a valid model name".into());
    }
    let target = Target::new(model);
    if runtime.engine().serves(&target) {
        // Configured (or served alone already) though in no chain.
        return Ok(alone(target));
    }
    if !gateway.config.serve_unlisted {
        let configured: Vec<&str> = runtime.config().models.keys().map(String::as_str).collect();
        return refuse(format!(
            "is not served by this gateway (configured: {}; gateway.serve-unlisted is off)",
            configured.join(", ")
        ));
    }
    if !runtime.confirms_model(model) {
        // Checked before a slot is taken: made-up names must not use up `max-unlisted`.
        return refuse(
            "is not known to the upstream (neither the model catalogue nor its GET /v1/models, \
             read at start, lists it; name it in [models] to serve it anyway)"
                .into(),
        );
    }
    let max = gateway.config.max_unlisted as usize;
    match runtime.serve_alone_within(model, max).await {
        Ok(true) => Ok(alone(target)),
        Ok(false) => refuse(format!(
            "is in no chain, and the gateway already serves gateway.max-unlisted = {max} \
             models outside its chains (they stay served while it runs)"
        )),
        Err(failure) => Err(Box::new(failed(&failure))),
    }
}

/// The headers breakwater adds, named once: a name given as a string is parsed, and a
/// custom one copied, each time it is inserted.
const MODEL: HeaderName = HeaderName::from_static("x-breakwater-model");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-breakwater-attempts");
const ADAPTED: HeaderName = HeaderName::from_static("x-breakwater-adapted");
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// `body` as a `content_type` answer with what breakwater adds to it: the target that
/// answered (`MODEL`, or `MODEL@bedrock` / `MODEL@vertex` for another platform), the
/// attempts it took, the upstream's `request-id`, and what was adapted for a fallback
/// (`x-breakwater-adapted`).
fn answered<T>(answer: &Answer<T>, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let model = match answer.target.upstream() {
        None => HeaderValue::from_str(answer.target.model()),
        Some(_) => HeaderValue::from_str(&answer.target.to_string()),
    }
    .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    headers.insert(MODEL, model);
    headers.insert(ATTEMPTS, HeaderValue::from(answer.attempts.len()));
    if let Some(id) = answer
        .request_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(REQUEST_ID, id);
    }
    if let Some(changes) = answer
        .changes
        .as_deref()
        .and_then(|changes| HeaderValue::from_str(changes).ok())
    {
        headers.insert(ADAPTED, changes);
    }
    response
}

async fn whole(runtime: &Runtime, request: WireRequest, options: RequestOptions) -> Response {
    match runtime.send_wire(request, options).await {
        Ok(answer) => {
            let body = Body::from(answer.value.bytes());
            answered(&answer, "application/json", body)
        }
        Err(failure) => failed(&failure),
    }
}

async fn streamed(runtime: &Runtime, request: WireRequest, options: RequestOptions) -> Response {
    let answer = match runtime.stream_wire(request, options).await {
        Ok(answer) => answer,
        Err(failure) => return failed(&failure),
    };
    let mut response = answered(&answer, "text/event-stream", Body::empty());
    let committed = answer.value;
    let head = futures::stream::iter(committed.head).map(|event| Ok(event.frame()));
    // After content has been handed over nothing can be retried: a failure ends the stream
    // with an explicit error event, never a silent cut.
    let tail = committed.tail.map(|event| match event {
        Ok(event) => Ok::<_, std::convert::Infallible>(event.frame()),
        Err(failure) => {
            metrics::counter!("breakwater_gateway_stream_errors_total").increment(1);
            let kind = failure.error_type().map_or(ErrorType::Api, ErrorType::from);
            let body = ErrorBody::new(kind, failure.message().to_owned());
            let data = serde_json::to_string(&body).unwrap_or_default();
            Ok(Bytes::from(format!("event: error\ndata: {data}\n\n")))
        }
    });
    *response.body_mut() = Body::from_stream(head.chain(tail));
    response
}

/// The Anthropic-shaped answer to a request that ended without one, with the `request-id`
/// of the upstream answer it ended on, if any.
fn failed(failure: &Error) -> Response {
    let mut response = failed_body(failure);
    let upstream = match failure {
        Error::Upstream { failure, .. } => Some(failure),
        Error::Exhausted { last, .. } => last.as_ref(),
        _ => None,
    };
    if let Some(id) = upstream
        .and_then(|failure| failure.request_id())
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

fn failed_body(failure: &Error) -> Response {
    match failure {
        Error::Upstream { failure, .. } => {
            let status = failure.status().unwrap_or(400);
            let kind = failure
                .error_type()
                .map_or(ErrorType::InvalidRequest, ErrorType::from);
            // As it came: the API's error bodies carry their request id, as the header does.
            let mut body = ErrorBody::new(kind, failure.message().to_owned());
            if let Some(id) = failure.request_id() {
                body = body.with_request_id(id);
            }
            error_body(status, body)
        }
        Error::Exhausted {
            retry_after, last, ..
        } => {
            // The gateway's own shortage (out of file descriptors, memory) is not the model's
            // overload: a 503 says so, and no breaker heard of it.
            let local = last.as_ref().is_some_and(|l| l.class() == Class::Local);
            let (status, kind) = if local {
                (503, ErrorType::Api)
            } else {
                (529, ErrorType::Overloaded)
            };
            let mut response = error(status, kind, failure.to_string());
            let seconds = retry_after
                .unwrap_or(Duration::from_secs(1))
                .as_secs()
                .max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Error::Shed { .. } | Error::Shutdown => {
            error(529, ErrorType::Overloaded, failure.to_string())
        }
        Error::DeadlineExceeded { .. } => error(504, ErrorType::Timeout, failure.to_string()),
        Error::Invalid(message) => error(400, ErrorType::InvalidRequest, message.clone()),
        _ => error(500, ErrorType::Api, failure.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Failure;

    fn exhausted(class: Class) -> Error {
        Error::Exhausted {
            last: Some(Failure::new(class, "why")),
            attempts: Vec::new(),
            retry_after: None,
        }
    }

    #[test]
    fn the_gateways_own_shortage_is_a_503_and_an_overload_a_529() {
        let local = failed_body(&exhausted(Class::Local));
        assert_eq!(local.status(), 503);
        assert!(local.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(failed_body(&exhausted(Class::Overloaded)).status(), 529);
    }
}
