//! A response of either HTTP client ([`Response`]): hyper's, from the Claude API's own pool
//! ([`super::direct`]), or reqwest's, from the platforms' and the forwarding routes; read
//! whole or as a stream of chunks, with transport errors already classified.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::HeaderMap;
use http_body_util::{BodyDataStream, BodyExt};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::transport::{body_transport, transport};
use crate::engine::Class;

/// A transport failure's class and message (see [`super::transport`]).
pub(super) type TransportError = (Class, String);

/// The head of a response, its body still to read.
pub(super) enum Response {
    /// From hyper's client; a body read whole (an answer, or the error body of a streamed
    /// request) must be read by `deadline` (the request timeout, started when the request was
    /// sent); a body read as a stream is bounded per event instead (`read_timeout`).
    Hyper {
        response: http::Response<Incoming>,
        deadline: (Instant, Duration),
    },
    /// From reqwest's. A non-streamed request's whole body is bounded by reqwest itself (its
    /// request timeout); a streamed request's, read whole only when it is an error, by
    /// `deadline`, as for hyper's.
    Reqwest {
        response: reqwest::Response,
        deadline: Option<(Instant, Duration)>,
    },
}

impl Response {
    pub(super) fn status(&self) -> u16 {
        match self {
            Response::Hyper { response, .. } => response.status().as_u16(),
            Response::Reqwest { response, .. } => response.status().as_u16(),
        }
    }

    pub(super) fn headers(&self) -> &HeaderMap {
        match self {
            Response::Hyper { response, .. } => response.headers(),
            Response::Reqwest { response, .. } => response.headers(),
        }
    }

    /// The whole body, in one buffer.
    pub(super) async fn bytes(self) -> Result<Bytes, TransportError> {
        match self {
            Response::Hyper {
                response,
                deadline: (deadline, timeout),
            } => {
                let collect = response.into_body().collect();
                let collected = tokio::time::timeout_at(deadline, collect)
                    .await
                    .map_err(|_| unread(timeout))?;
                collected
                    .map(http_body_util::Collected::to_bytes)
                    .map_err(|error| body_transport(&error))
            }
            Response::Reqwest { response, deadline } => match deadline {
                Some((deadline, timeout)) => tokio::time::timeout_at(deadline, response.bytes())
                    .await
                    .map_err(|_| unread(timeout))?
                    .map_err(transport),
                None => response.bytes().await.map_err(transport),
            },
        }
    }

    /// The body's chunks as they arrive.
    pub(super) fn bytes_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, TransportError>> + Send + 'static {
        match self {
            Response::Hyper { response, .. } => BodyDataStream::new(response.into_body())
                .map_err(|error| body_transport(&error))
                .left_stream(),
            Response::Reqwest { response, .. } => {
                response.bytes_stream().map_err(transport).right_stream()
            }
        }
    }
}

/// A body not read within `timeout`.
fn unread(timeout: Duration) -> TransportError {
    let message = format!("response body not read within {timeout:?}");
    (Class::Timeout, message)
}
