//! The cap on open client connections, `gateway.max-connections`.
//!
//! Each connection the gateway serves holds a file descriptor, buffers and a task, and may
//! hold an upstream connection; unbounded, a burst of clients would end in `EMFILE` with
//! every accept and every upstream connect failing. At the cap a new connection is not
//! served: it is answered 529 `overloaded_error` with `retry-after`, as an overloaded API
//! answers, and closed. The answer is written once the request's head is in (an HTTP client
//! takes an answer before its request as a broken connection), and what the client sends
//! after it is read and dropped before the close, so that the close does not reset the
//! connection under the answer; all of it within [`LINGER`]. At most [`REFUSING`] such
//! answers are under way at once; past that a connection is closed at once, unanswered.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{ErrorBody, ErrorType};

/// How long a refused connection is given to take its answer before it is closed.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// The most refusals under way at once, each holding its connection's descriptor.
pub(super) const REFUSING: usize = 64;

/// The most bytes read of a refused request's head before it is answered.
const HEAD_READ: usize = 16 << 10;

/// The connections open, under the cap, and the refusals under way.
#[derive(Debug)]
pub(super) struct Admission {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    answer: Arc<[u8]>,
}

/// A served connection's place under the cap, given back when it is dropped.
#[derive(Debug)]
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("breakwater_gateway_connections_open").decrement(1.0);
    }
}

impl Admission {
    pub(super) fn new(max: u32) -> Self {
        let message = format!(
            "the gateway has as many connections open as gateway.max-connections allows \
             ({max}); try again shortly"
        );
        let body =
            serde_json::to_vec(&ErrorBody::new(ErrorType::Overloaded, message)).unwrap_or_default();
        let mut answer = format!(
            "HTTP/1.1 529 Overloaded\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             retry-after: 1\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        Self {
            open: Arc::new(Semaphore::new(max as usize)),
            refusing: Arc::new(Semaphore::new(REFUSING)),
            answer: answer.into(),
        }
    }

    /// A place for a new connection, if one is free.
    pub(super) fn admit(&self) -> Option<Slot> {
        let permit = self.open.clone().try_acquire_owned().ok()?;
        metrics::gauge!("breakwater_gateway_connections_open").increment(1.0);
        Some(Slot { _permit: permit })
    }

    /// The refusal of `stream`, to run in its own task; `None` when too many are under way,
    /// and `stream` is closed at once.
    pub(super) fn refuse(&self, stream: TcpStream) -> Option<impl Future<Output = ()> + use<>> {
        metrics::counter!("breakwater_gateway_connections_refused_total").increment(1);
        let Ok(turn) = self.refusing.clone().try_acquire_owned() else {
            tracing::debug!("too many refusals under way: a connection closed unanswered");
            return None;
        };
        let answer = self.answer.clone();
        Some(async move {
            let _turn = turn;
            let _ = tokio::time::timeout(LINGER, refuse(stream, &answer)).await;
        })
    }
}

/// Reads the request's head (the first [`HEAD_READ`] bytes at most), writes `answer`, ends
/// the sending side, and reads what the client sends until it closes.
async fn refuse(mut stream: TcpStream, answer: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while head.len() < HEAD_READ && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(answer).await?;
    stream.shutdown().await?;
    while stream.read(&mut chunk).await? > 0 {}
    Ok(())
}
