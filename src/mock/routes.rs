//! The mock's HTTP surface: `POST /v1/messages` checks the body size, the key, the body, the
//! model and the model catalogue's rules, then plays the scenario's faults and capacity
//! model; `GET /stats` reports counters. Every response carries `request-id: req_mock_N` (the
//! Bedrock route's `x-amzn-requestid` instead), and error bodies repeat it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;

use super::app::{App, has_key};
use super::bedrock;
use super::connection::ConnectionHandle;
use super::messages::{BODY_LIMIT, messages_of};
use super::platform;
use super::respond::{self, RequestNumber};
use super::vertex;
use crate::api::{ErrorType, MessagesRequest};
use crate::wallclock;

/// The router, with its request-id middleware, over `app`.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/anthropic/v1/messages", post(bedrock_messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/stats", get(stats))
        .merge(platform::router(Arc::clone(&app)))
        .merge(vertex::router(Arc::clone(&app)))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            number_request,
        ))
        .with_state(app)
}

async fn number_request(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let number = RequestNumber(app.requests.fetch_add(1, Ordering::Relaxed) + 1);
    request.extensions_mut().insert(number);
    let mut response = next.run(request).await;
    // Bedrock's answers carry their own id instead (`x-amzn-requestid`).
    let bedrock = response.headers().contains_key(crate::api::AMZN_REQUEST_ID);
    if let Ok(id) = HeaderValue::from_str(&number.id())
        && !bedrock
    {
        response.headers_mut().insert("request-id", id);
    }
    response
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.stats()).into_response()
}

async fn no_route(Extension(number): Extension<RequestNumber>, uri: Uri) -> Response {
    respond::error(
        number,
        ErrorType::NotFound,
        format!("no route: {}", uri.path()),
    )
}

/// `POST /v1/messages/count_tokens`: the key and `model`/`messages` checked as for
/// messages, then the input tokens at the mock's four characters a token.
async fn count_tokens(
    State(app): State<Arc<App>>,
    Extension(number): Extension<RequestNumber>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app.registry.scenario().require_key && !has_key(&headers) {
        let message = "missing api key: send x-api-key or authorization: bearer";
        return respond::error(number, ErrorType::Authentication, message);
    }
    let mut body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => return respond::error(number, ErrorType::InvalidRequest, err.to_string()),
    };
    if let Some(fields) = body.as_object_mut() {
        if fields.contains_key("max_tokens") {
            let message = "max_tokens: Extra inputs are not permitted";
            return respond::error(number, ErrorType::InvalidRequest, message);
        }
        fields.insert("max_tokens".into(), 1.into());
    }
    let request = serde_json::to_vec(&body)
        .map_err(|err| err.to_string())
        .and_then(|bytes| MessagesRequest::from_json(&bytes).map_err(|err| err.to_string()));
    match request {
        Ok(request) if app.registry.get(&request.model).is_some() => {
            app.registry.count_tokens_call();
            let input_tokens = request.estimated_input_tokens();
            Json(serde_json::json!({ "input_tokens": input_tokens })).into_response()
        }
        Ok(request) => respond::error(
            number,
            ErrorType::NotFound,
            format!("model: {}", request.model),
        ),
        Err(err) => respond::error(number, ErrorType::InvalidRequest, err),
    }
}

async fn messages(
    State(app): State<Arc<App>>,
    Extension(number): Extension<RequestNumber>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Like the CDN in front of the API, a body over the limit is refused before the key is
    // even looked at.
    let body = match respond::body(body, number, BODY_LIMIT) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if app.registry.scenario().require_key && !has_key(&headers) {
        let message = "missing api key: send x-api-key or authorization: bearer";
        return respond::error(number, ErrorType::Authentication, message);
    }
    messages_of(&app, number, connection, body).await
}

/// `POST /anthropic/v1/messages` when the scenario has `[bedrock]`: Bedrock's authentication
/// (see [`bedrock::check`]), then what `/v1/messages` does, with `x-amzn-requestid`.
async fn bedrock_messages(
    State(app): State<Arc<App>>,
    Extension(number): Extension<RequestNumber>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(spec) = &app.registry.scenario().bedrock else {
        return no_route(Extension(number), uri).await;
    };
    let body = match respond::body(body, number, BODY_LIMIT) {
        Ok(body) => body,
        Err(response) => return bedrock::answered(number, *response),
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if let Err((kind, message)) = bedrock::check(spec, path, &headers, &body, wallclock::unix_now())
    {
        return bedrock::answered(number, bedrock::refused(kind, &message));
    }
    let body = bedrock::with_api_model(&app, body);
    bedrock::answered(number, messages_of(&app, number, connection, body).await)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use http_body_util::BodyExt;
    use tokio::time::Instant;
    use tower::ServiceExt;

    use super::super::scenario::Scenario;
    use super::*;

    const INSTANT: &str = "require-key = false\n\
        [models.m]\nservice-time = \"0s\"\nstream-pause = \"0s\"\n";

    /// Posts `body` to a fresh mock playing `scenario`, mid-tick (where tokio's timer would
    /// round a zero sleep up to the next millisecond); returns the whole answer and the
    /// virtual time it took.
    async fn post(scenario: &str, body: &'static str) -> (StatusCode, Bytes, Duration) {
        let scenario = Scenario::from_toml(scenario).expect("valid");
        let app = Arc::new(App::new(scenario, crate::catalog::Catalog::builtin()));
        tokio::time::advance(Duration::from_micros(300)).await;
        let started = Instant::now();
        let request = Request::post("/v1/messages")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("a valid request");
        let response = router(app).oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("a whole body");
        (status, bytes.to_bytes(), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn zero_service_time_answers_without_waiting_for_a_timer_tick() {
        let body = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
        let (status, _, took) = post(INSTANT, body).await;
        assert_eq!(StatusCode::OK, status);
        assert_eq!(Duration::ZERO, took);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_stream_pause_streams_without_waiting_for_a_timer_tick() {
        let body = r#"{"model":"m","max_tokens":8,"stream":true,
            "messages":[{"role":"user","content":"hi"}]}"#;
        let (status, text, took) = post(INSTANT, body).await;
        assert_eq!(StatusCode::OK, status);
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("event: message_stop"), "{text}");
        assert_eq!(Duration::ZERO, took);
    }

    #[tokio::test(start_paused = true)]
    async fn stream_pause_comes_before_each_event() {
        let scenario = "require-key = false\n[models.m]\nservice-time = \"0s\"\n";
        let body = r#"{"model":"m","max_tokens":8,"stream":true,
            "messages":[{"role":"user","content":"hi"}]}"#;
        let (_, text, took) = post(scenario, body).await;
        let events = String::from_utf8_lossy(&text).matches("event: ").count();
        assert!(events > 3, "{events} events");
        let pause = Duration::from_millis(2);
        assert!(
            took >= pause * u32::try_from(events).expect("a few"),
            "{took:?}"
        );
    }
}
