//! The rest of the API, served minimally so that a gateway's forwarding can be exercised
//! end to end: `GET /v1/models` and `/v1/models/{id}` (the scenario's models), Message
//! Batches ([`batches`]) and Files ([`files`]). Shapes follow
//! the official SDK's types; lists page with `limit`, `after_id` and `before_id`. The key
//! check is the one `POST /v1/messages` makes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;

use super::app::{App, has_key};
use super::paging::{Page, PageQuery, rfc3339};
use super::respond::{self, RequestNumber};
use super::{batches, files};
use crate::api::ErrorType;

/// The platform routes, over `app`'s scenario.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(app: Arc<App>) -> Router<S> {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(model))
        .with_state(Arc::clone(&app))
        .merge(batches::router(Arc::clone(&app)))
        .merge(files::router())
        .route_layer(middleware::from_fn_with_state(app, check_key))
}

async fn check_key(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.registry.scenario().require_key && !has_key(request.headers()) {
        let number = request.extensions().get::<RequestNumber>().copied();
        let message = "missing api key: send x-api-key or authorization: bearer";
        return respond::error(
            number.unwrap_or(RequestNumber(0)),
            ErrorType::Authentication,
            message,
        );
    }
    next.run(request).await
}

/// A model, as `GET /v1/models` lists it.
#[derive(Clone, Debug, Serialize)]
struct ModelInfo {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    display_name: String,
    created_at: String,
    lifecycle: &'static str,
}

impl ModelInfo {
    fn new(id: &str) -> Self {
        Self {
            kind: "model",
            id: id.to_owned(),
            display_name: display_name(id),
            // The mock's models have no release date: the API's epoch value for unknown.
            created_at: rfc3339(Duration::ZERO),
            lifecycle: "active",
        }
    }
}

async fn list_models(State(app): State<Arc<App>>, Query(query): Query<PageQuery>) -> Response {
    let models = app.registry.scenario().models.keys();
    let models: Vec<ModelInfo> = models.map(|id| ModelInfo::new(id)).collect();
    Json(Page::of(models, &query, |model| &model.id)).into_response()
}

async fn model(
    State(app): State<Arc<App>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    if app.registry.scenario().models.contains_key(&id) {
        return Json(ModelInfo::new(&id)).into_response();
    }
    respond::error(number, ErrorType::NotFound, format!("model: {id}"))
}

/// `claude-sonnet-4-6` as `Claude Sonnet 4.6`.
fn display_name(id: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    // A trailing date (`20251001`) is no part of the name.
    let dated = |part: &str| part.len() == 8 && part.chars().all(|c| c.is_ascii_digit());
    for part in id
        .split(['-', '_'])
        .filter(|part| !part.is_empty() && !dated(part))
    {
        let numeric = part.chars().all(|c| c.is_ascii_digit());
        match words.last_mut() {
            Some(last) if numeric && last.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                last.push('.');
                last.push_str(part);
            }
            _ => {
                let mut chars = part.chars();
                let first = chars.next().map(|c| c.to_ascii_uppercase());
                words.push(first.into_iter().chain(chars).collect());
            }
        }
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_read_like_the_apis() {
        assert_eq!(display_name("claude-sonnet-4-6"), "Claude Sonnet 4.6");
        assert_eq!(
            display_name("claude-haiku-4-5-20251001"),
            "Claude Haiku 4.5"
        );
        assert_eq!(display_name("p"), "P");
    }
}
