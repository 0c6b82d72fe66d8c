//! Message Batches, in memory: a batch is answered whole when it is created, each request
//! with the mock's usual reply (no faults, capacity model or catalogue rules), so it is
//! `ended` at once and its `results` are a real JSONL stream in the API's result shape.
//! `cancel` on an ended batch changes nothing, as on the API; `delete` forgets it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::app::App;
use super::paging::{Page, PageQuery, rfc3339};
use super::reply;
use super::respond::{self, RequestNumber};
use crate::api::{ErrorBody, ErrorType, MessagesRequest};
use crate::wallclock::unix_now;

/// The API's limit on a batch's body.
const BATCH_BODY_LIMIT: usize = 256 << 20;

/// How long after creation a batch expires, as on the API.
const EXPIRES_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The batches of one mock server, oldest first.
#[derive(Default)]
pub(crate) struct Batches {
    batches: Mutex<Vec<Batch>>,
}

struct Batch {
    object: MessageBatch,
    /// One JSONL line per request, newline included.
    results: Arc<Vec<String>>,
}

/// A batch, in the SDK's `MessageBatch` shape.
#[derive(Clone, Debug, Serialize)]
struct MessageBatch {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    processing_status: &'static str,
    request_counts: Counts,
    created_at: String,
    ended_at: String,
    expires_at: String,
    archived_at: Option<String>,
    cancel_initiated_at: Option<String>,
    results_url: String,
}

#[derive(Clone, Debug, Default, Serialize)]
struct Counts {
    processing: u64,
    succeeded: u64,
    errored: u64,
    canceled: u64,
    expired: u64,
}

#[derive(Deserialize)]
struct Create {
    requests: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    custom_id: String,
    params: Value,
}

impl Batches {
    fn lock(&self) -> MutexGuard<'_, Vec<Batch>> {
        // Batches are pushed or removed whole, so a poisoned lock is still consistent.
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn find<T>(&self, id: &str, read: impl FnOnce(&Batch) -> T) -> Option<T> {
        self.lock()
            .iter()
            .find(|batch| batch.object.id == id)
            .map(read)
    }
}

/// What the Message Batches routes share: the server, and the batches made so far.
pub(super) struct BatchApi {
    app: Arc<App>,
    batches: Batches,
}

/// The Message Batches routes, over `app`'s scenario.
pub(super) fn router<S: Clone + Send + Sync + 'static>(app: Arc<App>) -> Router<S> {
    let api = Arc::new(BatchApi {
        app,
        batches: Batches::default(),
    });
    Router::new()
        .route("/v1/messages/batches", post(create).get(list))
        .route("/v1/messages/batches/{id}", get(retrieve).delete(delete))
        .route("/v1/messages/batches/{id}/results", get(results))
        .route("/v1/messages/batches/{id}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT))
        .with_state(api)
}

async fn create(
    State(platform): State<Arc<BatchApi>>,
    Extension(number): Extension<RequestNumber>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match respond::body(body, number, BATCH_BODY_LIMIT) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let create = match serde_json::from_slice::<Create>(&body) {
        Ok(create) if !create.requests.is_empty() => create,
        Ok(_) => return respond::error(number, ErrorType::InvalidRequest, "requests: empty"),
        Err(error) => return respond::error(number, ErrorType::InvalidRequest, error.to_string()),
    };
    let mut ids: Vec<&str> = create
        .requests
        .iter()
        .map(|item| item.custom_id.as_str())
        .collect();
    ids.sort_unstable();
    if let Some([twice, ..]) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        let message = format!("requests: duplicate custom_id {twice}");
        return respond::error(number, ErrorType::InvalidRequest, message);
    }
    let id = format!("msgbatch_mock_{}", number.0);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut counts = Counts::default();
    let results = create
        .requests
        .iter()
        .enumerate()
        .map(|(index, item)| {
            answer(
                &platform,
                item,
                &format!("{}_{index}", number.0),
                &mut counts,
            )
        })
        .collect();
    let now = rfc3339(unix_now());
    let object = MessageBatch {
        results_url: format!("http://{host}/v1/messages/batches/{id}/results"),
        id,
        kind: "message_batch",
        processing_status: "ended",
        request_counts: counts,
        created_at: now.clone(),
        ended_at: now,
        expires_at: rfc3339(unix_now() + EXPIRES_AFTER),
        archived_at: None,
        cancel_initiated_at: None,
    };
    let results = Arc::new(results);
    platform.batches.lock().push(Batch {
        object: object.clone(),
        results,
    });
    Json(object).into_response()
}

/// One request's result line: the mock's reply, or why it has none.
fn answer(platform: &BatchApi, item: &Item, message_id: &str, counts: &mut Counts) -> String {
    let request = serde_json::to_vec(&item.params)
        .map_err(|error| error.to_string())
        .and_then(|bytes| MessagesRequest::from_json(&bytes).map_err(|error| error.to_string()));
    let result = match request {
        Ok(request)
            if platform
                .app
                .registry
                .scenario()
                .models
                .contains_key(&request.model)
                || platform.app.registry.scenario().default_model.is_some() =>
        {
            counts.succeeded += 1;
            let mut message = reply::message(&request, 0, None);
            message.id = format!("msg_mock_{message_id}");
            json!({"type": "succeeded", "message": message})
        }
        Ok(request) => {
            counts.errored += 1;
            let error = ErrorBody::new(ErrorType::NotFound, format!("model: {}", request.model));
            json!({"type": "errored", "error": error})
        }
        Err(message) => {
            counts.errored += 1;
            json!({"type": "errored", "error": ErrorBody::new(ErrorType::InvalidRequest, message)})
        }
    };
    let line = json!({"custom_id": item.custom_id, "result": result});
    format!("{line}\n")
}

async fn list(State(platform): State<Arc<BatchApi>>, Query(query): Query<PageQuery>) -> Response {
    // Newest first, as on the API.
    let batches: Vec<MessageBatch> = platform
        .batches
        .lock()
        .iter()
        .rev()
        .map(|b| b.object.clone())
        .collect();
    Json(Page::of(batches, &query, |batch| &batch.id)).into_response()
}

async fn retrieve(
    State(platform): State<Arc<BatchApi>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    match platform.batches.find(&id, |batch| batch.object.clone()) {
        Some(object) => Json(object).into_response(),
        None => unknown(number, &id),
    }
}

/// The object as it stands: a mock batch has always ended, and cancelling an ended batch
/// changes nothing.
async fn cancel(
    state: State<Arc<BatchApi>>,
    number: Extension<RequestNumber>,
    id: Path<String>,
) -> Response {
    retrieve(state, number, id).await
}

async fn delete(
    State(platform): State<Arc<BatchApi>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    let mut batches = platform.batches.lock();
    let Some(at) = batches.iter().position(|batch| batch.object.id == id) else {
        return unknown(number, &id);
    };
    batches.remove(at);
    Json(json!({"id": id, "type": "message_batch_deleted"})).into_response()
}

async fn results(
    State(platform): State<Arc<BatchApi>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    let Some(lines) = platform.batches.find(&id, |batch| batch.results.clone()) else {
        return unknown(number, &id);
    };
    // Streamed a line at a time, as a large results file would be.
    let chunks =
        (0..lines.len()).map(move |at| Ok::<_, std::convert::Infallible>(lines[at].clone()));
    let body = Body::from_stream(futures::stream::iter(chunks));
    ([(header::CONTENT_TYPE, "application/x-jsonl")], body).into_response()
}

fn unknown(number: RequestNumber, id: &str) -> Response {
    respond::error(number, ErrorType::NotFound, format!("message batch: {id}"))
}
