//! The rest of the API, served minimally so that a gateway's forwarding can be exercised
//! end to end: `GET /v1/models` and `/v1/models/{id}` (the scenario's models), Message
//! Batches ([`batches`](super::batches)) and Files ([`files`](super::files)). Shapes follow
//! the official SDK's types; lists page with `limit`, `after_id` and `before_id`. The key
//! check is the one `POST /v1/messages` makes.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::batches::Batches;
use super::files::Files;
use super::respond::{self, RequestNumber};
use super::routes::{App, has_key};
use crate::api::ErrorType;

/// What the platform routes share.
pub(crate) struct Platform {
    pub(crate) app: Arc<App>,
    pub(crate) batches: Batches,
    pub(crate) files: Files,
}

/// The platform routes, over `app`'s scenario.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(app: Arc<App>) -> Router<S> {
    let platform = Arc::new(Platform {
        app,
        batches: Batches::default(),
        files: Files::default(),
    });
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(model))
        .merge(super::batches::routes())
        .merge(super::files::routes())
        .route_layer(middleware::from_fn_with_state(platform.clone(), check_key))
        .with_state(platform)
}

async fn check_key(
    State(platform): State<Arc<Platform>>,
    request: Request,
    next: Next,
) -> Response {
    if platform.app.registry.scenario().require_key && !has_key(request.headers()) {
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

async fn list_models(
    State(platform): State<Arc<Platform>>,
    Query(query): Query<PageQuery>,
) -> Response {
    let models = platform.app.registry.scenario().models.keys();
    let models: Vec<ModelInfo> = models.map(|id| ModelInfo::new(id)).collect();
    Json(Page::of(models, &query, |model| &model.id)).into_response()
}

async fn model(
    State(platform): State<Arc<Platform>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    if platform.app.registry.scenario().models.contains_key(&id) {
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

/// An instant `since_epoch` after the Unix epoch, as RFC 3339 (`2026-12-01T04:31:13Z`).
pub(crate) fn rfc3339(since_epoch: Duration) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string()
}

/// A list call's paging: at most `limit` items after `after_id` or before `before_id`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// A page of a list, in the API's shape.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    data: Vec<T>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl<T> Page<T> {
    /// The page of `items` (in list order) that `query` asks for.
    pub(crate) fn of(items: Vec<T>, query: &PageQuery, id: impl Fn(&T) -> &str) -> Self {
        let limit = query.limit.unwrap_or(20).clamp(1, 1000);
        let position = |wanted: &str| items.iter().position(|item| id(item) == wanted);
        let (start, end, has_more) = if let Some(before) = query.before_id.as_deref() {
            let end = position(before).unwrap_or(0);
            let start = end.saturating_sub(limit);
            (start, end, start > 0)
        } else {
            let start = query
                .after_id
                .as_deref()
                .map_or(0, |after| position(after).map_or(items.len(), |at| at + 1));
            let end = (start + limit).min(items.len());
            (start, end, end < items.len())
        };
        let data: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
        Self {
            first_id: data.first().map(|item| id(item).to_owned()),
            last_id: data.last().map(|item| id(item).to_owned()),
            data,
            has_more,
        }
    }
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

    #[test]
    fn pages_go_forward_and_back() {
        let items: Vec<String> = (1..=5).map(|n| format!("id{n}")).collect();
        let query = |limit, after: Option<&str>, before: Option<&str>| PageQuery {
            limit: Some(limit),
            after_id: after.map(str::to_owned),
            before_id: before.map(str::to_owned),
        };
        let page = Page::of(items.clone(), &query(2, None, None), String::as_str);
        assert_eq!((page.data.len(), page.has_more), (2, true));
        assert_eq!(page.last_id.as_deref(), Some("id2"));
        let page = Page::of(items.clone(), &query(2, Some("id4"), None), String::as_str);
        assert_eq!((page.data, page.has_more), (vec!["id5".to_owned()], false));
        let page = Page::of(items, &query(2, None, Some("id4")), String::as_str);
        assert_eq!(
            (page.data, page.has_more),
            (vec!["id2".to_owned(), "id3".to_owned()], true)
        );
    }
}
