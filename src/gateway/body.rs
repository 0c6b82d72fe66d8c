//! Request bodies the gateway holds: read whole into one buffer sized from
//! `Content-Length`, under a cap on the bytes all requests in flight may hold together.
//!
//! Why a cap: a Messages body may be 32 MB, and a burst of large requests would otherwise
//! take the process's memory with it. A request whose body does not fit waits for room for
//! up to `gateway.body-memory-wait`, then gets 529 `overloaded_error` with `retry-after`, as
//! an overloaded API would answer. The room is given back when the request has its answer
//! (or its stream has committed), which is when the engine lets go of the body.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::BytesMut;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::error::error;
use crate::api::ErrorType;
use crate::config::gateway::BODY_LIMIT;

/// Bytes of request bodies the gateway may hold at once, counted in KiB.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    room: Arc<Semaphore>,
    cap_kib: u32,
    wait: Duration,
}

/// A body read under the budget; its room is given back when this is dropped.
#[derive(Debug)]
pub(crate) struct Held {
    /// The body.
    pub(crate) bytes: Bytes,
    _room: Option<OwnedSemaphorePermit>,
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl BodyBudget {
    /// A budget of `cap` bytes; a body waits at most `wait` for room.
    pub(crate) fn new(cap: u64, wait: Duration) -> Self {
        let cap_kib = u32::try_from(cap.div_ceil(1024)).unwrap_or(u32::MAX).max(1);
        Self {
            room: Arc::new(Semaphore::new(cap_kib as usize)),
            cap_kib,
            wait,
        }
    }

    /// KiB of room free now.
    pub(crate) fn free_kib(&self) -> usize {
        self.room.available_permits()
    }

    /// KiB of room in all.
    pub(crate) fn cap_kib(&self) -> usize {
        self.cap_kib as usize
    }

    /// Takes room for `bytes` more, waiting until `until` at the latest.
    async fn reserve(
        &self,
        held: &mut Option<OwnedSemaphorePermit>,
        bytes: usize,
        until: Instant,
    ) -> Result<(), Box<Response>> {
        // A body larger than the whole cap still gets the whole cap, alone.
        let wanted = kib(bytes).min(self.cap_kib);
        let have = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits) as u32;
        if wanted <= have {
            return Ok(());
        }
        let more = self.room.clone().acquire_many_owned(wanted - have);
        if let Ok(Ok(permit)) = tokio::time::timeout_at(until, more).await {
            match held {
                Some(held) => held.merge(permit),
                None => *held = Some(permit),
            }
            return Ok(());
        }
        metrics::counter!("breakwater_gateway_body_memory_rejected_total").increment(1);
        let message = format!(
            "the gateway holds as many request bodies as gateway.body-memory allows \
             ({} KiB); try again shortly",
            self.cap_kib
        );
        let mut response = error(529, ErrorType::Overloaded, message);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
        Err(Box::new(response))
    }

    /// Reads a whole body within `timeout` and [`BODY_LIMIT`], under the budget: 413 at once
    /// for a declared length over the limit, 413 for a body that grows past it, 408 for a
    /// client too slow to send it, 400 for one cut short, 529 when no room frees in time.
    pub(crate) async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        timeout: Duration,
    ) -> Result<Held, Box<Response>> {
        let too_large = || {
            let message = format!("request body exceeds {BODY_LIMIT} bytes");
            Box::new(error(413, ErrorType::RequestTooLarge, message))
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
            return Err(too_large());
        }
        let declared = declared.map_or(0, |length| length as usize);
        let started = Instant::now();
        let mut held = None;
        self.reserve(&mut held, declared, started + self.wait)
            .await?;
        let until = Instant::now() + timeout;
        let mut buffer = BytesMut::with_capacity(declared);
        let mut stream = body.into_data_stream();
        loop {
            let chunk = match tokio::time::timeout_at(until, stream.next()).await {
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(failure))) => {
                    let message = format!("cannot read the request body: {failure}");
                    return Err(Box::new(error(400, ErrorType::InvalidRequest, message)));
                }
                Err(_) => return Err(Box::new(slow(timeout))),
            };
            let length = buffer.len() + chunk.len();
            if length > BODY_LIMIT {
                return Err(too_large());
            }
            self.reserve(&mut held, length, until.min(Instant::now() + self.wait))
                .await?;
            buffer.extend_from_slice(&chunk);
        }
        Ok(Held {
            bytes: buffer.freeze(),
            _room: held,
        })
    }
}

fn slow(timeout: Duration) -> Response {
    let message =
        format!("the request body did not arrive within {timeout:?} (gateway.body-timeout)");
    let mut response = error(408, ErrorType::Timeout, message);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(length: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waits_for_room_then_is_refused_with_529() {
        let budget = BodyBudget::new(8 * 1024, Duration::from_secs(2));
        let first = budget
            .read(
                &headers(6000),
                Body::from(vec![b'x'; 6000]),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(first.bytes.len(), 6000);
        assert_eq!(budget.free_kib(), 2);
        let started = Instant::now();
        let refused = budget
            .read(
                &headers(4000),
                Body::from(vec![b'y'; 4000]),
                Duration::from_secs(30),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.status(), 529);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(first);
        assert_eq!(budget.free_kib(), 8, "room comes back with the body");
        let second = budget
            .read(
                &headers(4000),
                Body::from(vec![b'y'; 4000]),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(second.bytes.len(), 4000);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_at_once() {
        let budget = BodyBudget::new(1 << 30, Duration::from_secs(2));
        let refused = budget
            .read(
                &headers(BODY_LIMIT + 1),
                Body::empty(),
                Duration::from_secs(30),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.status(), 413);
    }

    #[tokio::test]
    async fn an_undeclared_body_takes_room_as_it_arrives() {
        let budget = BodyBudget::new(64 * 1024, Duration::from_secs(2));
        let chunks = futures::stream::iter(
            (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'z'; 3000]))),
        );
        let held = budget
            .read(
                &HeaderMap::new(),
                Body::from_stream(chunks),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(held.bytes.len(), 30_000);
        assert_eq!(budget.free_kib(), 64 - 30);
    }
}
