//! Google Cloud Vertex AI's Claude endpoint as the mock serves it, when the scenario has a
//! `[vertex]` table ([`VertexScenario`]):
//!
//! - `POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict`
//!   (and `:streamRawPredict`): a bearer token the table accepts, the table's project and
//!   region, a body with `anthropic_version` and without `model` (the model is the URL's, by
//!   its Vertex id: `claude-haiku-4-5@20251001` is served as `claude-haiku-4-5`). A request
//!   that passes is served as `/v1/messages` serves it (same models, same capacity per model).
//! - `POST /token`: Google's OAuth token endpoint for a service account's JWT grant
//!   (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, a JWT asking for the
//!   `cloud-platform` scope; its signature is not checked), issuing tokens that live
//!   `token-lifetime`.
//!
//! Refusals are Google's error bodies (`{"error": {"code", "message", "status"}}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use super::app::App;
use super::connection::ConnectionHandle;
use super::messages::{BODY_LIMIT, messages_of};
use super::respond::{self, RequestNumber};
use super::scenario::VertexScenario;
use crate::api::ErrorType;
use crate::api::json::{self, ObjectEdit};
use crate::wallclock;

/// The grant a service account's token request makes.
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The scope Vertex AI calls need.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The Vertex routes, served when the scenario has `[vertex]`.
pub(super) fn router<S: Clone + Send + Sync + 'static>(app: Arc<App>) -> Router<S> {
    Router::new()
        .route("/token", post(token))
        .route(
            "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{call}",
            post(predict),
        )
        .with_state(app)
}

/// Google's error body.
fn google_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "error": { "code": status.as_u16(), "message": message, "status": kind }
    });
    (status, Json(body)).into_response()
}

fn not_served() -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "this mock serves no Vertex AI (its scenario has no [vertex] table)",
    )
}

/// `POST /token`: a token for a service account's JWT grant.
async fn token(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Some(spec) = &app.registry.scenario().vertex else {
        return not_served();
    };
    let form: HashMap<String, String> = url_form(&body);
    let bad = |message: &str| {
        let body = serde_json::json!({ "error": "invalid_grant", "error_description": message });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some(JWT_GRANT) {
        return bad("grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer");
    }
    let Some(claims) = form.get("assertion").and_then(|jwt| jwt_claims(jwt)) else {
        return bad("the assertion is not a JWT");
    };
    let scopes = claims.get("scope").and_then(|s| s.as_str()).unwrap_or("");
    if !scopes.split(' ').any(|scope| scope == SCOPE) {
        return bad("the JWT does not ask for the cloud-platform scope");
    }
    if claims
        .get("iss")
        .and_then(|s| s.as_str())
        .is_none_or(str::is_empty)
    {
        return bad("the JWT names no issuer (iss)");
    }
    let token = app
        .vertex_tokens
        .issue(wallclock::unix_now(), spec.token_lifetime);
    Json(serde_json::json!({
        "access_token": token,
        "expires_in": spec.token_lifetime.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn url_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The claims of a JWT (its signature is not checked).
fn jwt_claims(jwt: &str) -> Option<serde_json::Value> {
    let mut parts = jwt.split('.');
    let (_, claims, _) = (parts.next()?, parts.next()?, parts.next()?);
    let claims = URL_SAFE_NO_PAD.decode(claims).ok()?;
    serde_json::from_slice(&claims).ok()
}

/// Why a bearer token is refused, as Google words it.
fn token_problem(app: &App, spec: &VertexScenario, headers: &HeaderMap) -> Option<&'static str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = bearer else {
        return Some(
            "Request is missing required authentication credential. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential.",
        );
    };
    if spec.tokens.iter().any(|accepted| accepted == token) {
        return None;
    }
    match app.vertex_tokens.expires(token) {
        Some(at) if at > wallclock::unix_now() => None,
        _ => Some(
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        ),
    }
}

/// `POST .../models/{model}:rawPredict` and `:streamRawPredict`.
async fn predict(
    State(app): State<Arc<App>>,
    Extension(number): Extension<RequestNumber>,
    connection: Option<Extension<ConnectionHandle>>,
    Path((project, region, call)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(spec) = &app.registry.scenario().vertex else {
        return not_served();
    };
    if let Some(message) = token_problem(&app, spec, &headers) {
        return google_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message);
    }
    if project != spec.project {
        let message = format!(
            "Permission 'aiplatform.endpoints.predict' denied on resource \
             'projects/{project}/locations/{region}' (or it may not exist)."
        );
        return google_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", &message);
    }
    let model = match call.rsplit_once(':') {
        Some((model, "rawPredict" | "streamRawPredict")) if region == spec.region => model,
        _ => {
            let message = format!("The requested URL was not found on this server: {call}");
            return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", &message);
        }
    };
    let body = match respond::body(body, number, BODY_LIMIT) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let body = match with_model(&app, &body, model) {
        Ok(body) => body,
        Err(message) => return respond::error(number, ErrorType::InvalidRequest, message),
    };
    messages_of(&app, number, connection, body).await
}

/// The body as `/v1/messages` takes it: `model` (the API id of the URL's Vertex id) set,
/// `anthropic_version` removed. A body with its own `model`, or without `anthropic_version`,
/// is refused as Vertex AI refuses it.
fn with_model(app: &App, body: &Bytes, vertex_id: &str) -> Result<Bytes, String> {
    let object = json::root(body).map_err(|error| format!("the body is not JSON: {error}"))?;
    let members =
        json::members(body, object).map_err(|_| "the body must be a JSON object".to_owned())?;
    if members.iter().any(|member| member.is("model")) {
        return Err(
            "model: Extra inputs are not permitted (Vertex AI takes the model in the \
                    URL)"
                .to_owned(),
        );
    }
    let Some(version) = members.iter().find(|member| member.is("anthropic_version")) else {
        return Err("anthropic_version: Field required".to_owned());
    };
    let raw = &body[version.value.clone()];
    let version: Option<&str> = serde_json::from_slice(raw).ok();
    if !version.is_some_and(known_version) {
        return Err(format!(
            "anthropic_version: {} is not a version (\"vertex-2023-10-16\", or an API version \
             such as \"2026-10-21\")",
            String::from_utf8_lossy(raw)
        ));
    }
    let model = app
        .platform_model("vertex", vertex_id)
        .unwrap_or(vertex_id)
        .to_owned();
    let mut edit = ObjectEdit::new();
    edit.remove("anthropic_version");
    edit.set("model", &model);
    let body = edit
        .apply(body)
        .map_err(|error| format!("the body cannot be read: {error:?}"))?;
    Ok(body.join())
}

/// Whether `version` is one Vertex AI takes: its own `vertex-2023-10-16`, or an API version
/// (`YYYY-MM-DD`), as the official SDK sends its own.
fn known_version(version: &str) -> bool {
    let date = |text: &str| {
        let bytes = text.as_bytes();
        bytes.len() == 10
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                _ => b.is_ascii_digit(),
            })
    };
    version == "vertex-2023-10-16" || date(version)
}

#[cfg(test)]
mod tests {
    use super::known_version;

    #[test]
    fn versions_are_vertexs_own_or_api_dates() {
        for good in ["vertex-2023-10-16", "2026-10-21", "2023-06-01"] {
            assert!(known_version(good), "{good}");
        }
        for bad in [
            "",
            "vertex",
            "2026-10-2",
            "2026/10/21",
            "vertex-2023-10-17",
            "latest",
        ] {
            assert!(!known_version(bad), "{bad}");
        }
    }
}
