//! Files: uploads parsed as they stream in (multipart, field `file`), kept in memory up to
//! [`MEMORY_CAP`] and past it spilled to a temporary directory that goes with the server,
//! so a mock serving a gateway in-process never holds a large upload in memory. Every file
//! is downloadable (on the API only files a tool made are): `content` streams the bytes
//! back as they were sent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::paging::{Page, PageQuery, rfc3339};
use super::respond::{self, RequestNumber};
use crate::api::ErrorType;
use crate::wallclock::unix_now;

/// The largest upload accepted, as the API's 500 MB.
const FILE_LIMIT: usize = 500 << 20;

/// Uploads up to this size stay in memory; larger ones go to disk.
const MEMORY_CAP: usize = 4 << 20;

/// How much of a file on disk is read per chunk of a download.
const READ_CHUNK: usize = 64 << 10;

/// The files of one mock server, oldest first.
#[derive(Default)]
pub(crate) struct Files {
    stored: Mutex<Vec<Stored>>,
    /// Where large uploads go; made on the first one, removed with the server.
    spill: OnceLock<tempfile::TempDir>,
    spilled: AtomicU64,
}

struct Stored {
    meta: FileMetadata,
    content: Content,
}

#[derive(Clone)]
enum Content {
    Memory(Bytes),
    Disk(PathBuf),
}

/// A file, in the SDK's `FileMetadata` shape.
#[derive(Clone, Debug, Serialize)]
struct FileMetadata {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    filename: String,
    mime_type: String,
    size_bytes: u64,
    created_at: String,
    downloadable: bool,
}

impl Files {
    fn lock(&self) -> MutexGuard<'_, Vec<Stored>> {
        // Files are pushed or removed whole, so a poisoned lock is still consistent.
        self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn find<T>(&self, id: &str, read: impl FnOnce(&Stored) -> T) -> Option<T> {
        self.lock().iter().find(|file| file.meta.id == id).map(read)
    }

    /// A new path in the spill directory.
    fn spill_path(&self) -> std::io::Result<PathBuf> {
        if self.spill.get().is_none() {
            let made = tempfile::Builder::new()
                .prefix("breakwater-mock-files")
                .tempdir()?;
            // Another upload may have made one first: then that one is used.
            let _ = self.spill.set(made);
        }
        let dir = self.spill.get().expect("made just above");
        let n = self.spilled.fetch_add(1, Ordering::Relaxed);
        Ok(dir.path().join(format!("upload-{n}")))
    }
}

/// What the Files routes share: the files uploaded so far.
pub(super) struct FileApi {
    files: Files,
}

/// The Files routes.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let api = Arc::new(FileApi {
        files: Files::default(),
    });
    Router::new()
        .route("/v1/files", get(list).post(upload))
        .route("/v1/files/{id}", get(metadata).delete(delete))
        .route("/v1/files/{id}/content", get(content))
        .layer(DefaultBodyLimit::max(FILE_LIMIT))
        .with_state(api)
}

async fn upload(
    State(platform): State<Arc<FileApi>>,
    Extension(number): Extension<RequestNumber>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let mut multipart = match multipart {
        Ok(multipart) => multipart,
        Err(rejection) => {
            return respond::error(number, ErrorType::InvalidRequest, rejection.body_text());
        }
    };
    let mut uploaded = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") && uploaded.is_none() => {
                match keep(&platform.files, field).await {
                    Ok(kept) => uploaded = Some(kept),
                    Err((kind, message)) => return respond::error(number, kind, message),
                }
            }
            // Other fields (expires_in_seconds) are skipped.
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                let (kind, message) = unreadable(&error);
                return respond::error(number, kind, message);
            }
        }
    }
    let Some((filename, mime_type, size_bytes, content)) = uploaded else {
        return respond::error(number, ErrorType::InvalidRequest, "file: Field required");
    };
    let meta = FileMetadata {
        id: format!("file_mock_{}", number.0),
        kind: "file",
        filename,
        mime_type,
        size_bytes,
        created_at: rfc3339(unix_now()),
        downloadable: true,
    };
    platform.files.lock().push(Stored {
        meta: meta.clone(),
        content,
    });
    Json(meta).into_response()
}

/// An upload's name, type, size and bytes.
type Kept = (String, String, u64, Content);

/// Why an upload was refused: the error's type and message.
type Refusal = (ErrorType, String);

/// Reads the `file` field chunk by chunk into memory, or past [`MEMORY_CAP`] onto disk.
async fn keep(files: &Files, mut field: Field<'_>) -> Result<Kept, Refusal> {
    let filename = field
        .file_name()
        .and_then(|name| name.rsplit(['/', '\\']).next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unnamed")
        .to_owned();
    let mime_type = field
        .content_type()
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut memory = Vec::new();
    let mut disk: Option<(tokio::fs::File, PathBuf)> = None;
    let mut size = 0u64;
    let failed = |error: std::io::Error| {
        let message = format!("the mock could not keep the upload: {error}");
        (ErrorType::Api, message)
    };
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => return Err(unreadable(&error)),
        };
        size += chunk.len() as u64;
        if let Some((file, _)) = &mut disk {
            file.write_all(&chunk).await.map_err(failed)?;
            continue;
        }
        memory.extend_from_slice(&chunk);
        if memory.len() > MEMORY_CAP {
            let path = files.spill_path().map_err(failed)?;
            let mut file = tokio::fs::File::create(&path).await.map_err(failed)?;
            file.write_all(&memory).await.map_err(failed)?;
            memory = Vec::new();
            disk = Some((file, path));
        }
    }
    let content = match disk {
        Some((mut file, path)) => {
            file.flush().await.map_err(failed)?;
            Content::Disk(path)
        }
        None => Content::Memory(memory.into()),
    };
    Ok((filename, mime_type, size, content))
}

/// Why a multipart body cannot be read: too large (413), or malformed (400).
fn unreadable(error: &MultipartError) -> Refusal {
    let kind = if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ErrorType::RequestTooLarge
    } else {
        ErrorType::InvalidRequest
    };
    (kind, error.body_text())
}

async fn list(State(platform): State<Arc<FileApi>>, Query(query): Query<PageQuery>) -> Response {
    // Newest first, as on the API.
    let files: Vec<FileMetadata> = platform
        .files
        .lock()
        .iter()
        .rev()
        .map(|f| f.meta.clone())
        .collect();
    Json(Page::of(files, &query, |file| &file.id)).into_response()
}

async fn metadata(
    State(platform): State<Arc<FileApi>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    match platform.files.find(&id, |file| file.meta.clone()) {
        Some(meta) => Json(meta).into_response(),
        None => unknown(number, &id),
    }
}

async fn delete(
    State(platform): State<Arc<FileApi>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    let removed = {
        let mut files = platform.files.lock();
        let at = files.iter().position(|file| file.meta.id == id);
        at.map(|at| files.remove(at))
    };
    let Some(removed) = removed else {
        return unknown(number, &id);
    };
    if let Content::Disk(path) = removed.content {
        // Gone from the list already; a file left behind goes with the directory.
        let _ = tokio::fs::remove_file(path).await;
    }
    Json(json!({"id": id, "type": "file_deleted"})).into_response()
}

async fn content(
    State(platform): State<Arc<FileApi>>,
    Extension(number): Extension<RequestNumber>,
    Path(id): Path<String>,
) -> Response {
    let Some((meta, content)) = platform
        .files
        .find(&id, |f| (f.meta.clone(), f.content.clone()))
    else {
        return unknown(number, &id);
    };
    let body = match content {
        Content::Memory(bytes) => Body::from(bytes),
        Content::Disk(path) => match tokio::fs::File::open(&path).await {
            Ok(file) => Body::from_stream(read_chunks(file)),
            Err(error) => {
                let message = format!("the mock lost the file: {error}");
                return respond::error(number, ErrorType::Api, message);
            }
        },
    };
    let headers = [
        (header::CONTENT_TYPE, meta.mime_type),
        (header::CONTENT_LENGTH, meta.size_bytes.to_string()),
    ];
    (headers, body).into_response()
}

/// `file` as a stream of chunks of up to [`READ_CHUNK`] bytes.
fn read_chunks(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0; READ_CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    })
}

fn unknown(number: RequestNumber, id: &str) -> Response {
    respond::error(number, ErrorType::NotFound, format!("file: {id}"))
}
