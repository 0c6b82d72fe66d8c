//! Serving the router over HTTP/1.1 with client timeouts and a graceful drain.
//!
//! axum's own `serve` has no client timeouts, so the accept loop is hyper's, as axum's
//! `serve-with-hyper` example does it: a request head must arrive within `header-timeout`
//! (hyper's `header_read_timeout`), and a connection the client leaves unwritable for
//! `write-timeout` (it reads nothing of an answer or a stream) is dropped, which ends the
//! upstream attempt behind it. The body timeout is the handlers' (see `messages`). At most
//! `max-connections` connections are served at once (see `admit`), and hyper's own answers to
//! heads it cannot parse get Anthropic-shaped bodies (see `shape`).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;

use super::admit::Admission;
use super::cut::{self, Cut};
use super::shape::{self, Shaped};
use crate::config::GatewayConfig;

/// How long the answers cut at the end of the grace period have to reach their clients
/// before their connections are closed.
pub const FAREWELL: Duration = Duration::from_secs(1);

/// How a [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Whether every in-flight connection finished within the grace period.
    pub clean: bool,
    /// Requests cut when the grace period ended: each was answered with a 503 `api_error`
    /// saying the gateway is shutting down, or, a stream already under way, with an SSE
    /// `error` event.
    pub cut: usize,
    /// How long the drain took.
    pub took: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets the
/// connections in flight finish for up to `config.grace`, and cuts what is left: each request
/// still running is answered with a shutdown error (see [`Drained::cut`]), and a connection
/// that has not taken that answer within [`FAREWELL`] is closed.
///
/// # Errors
/// None today: a failed accept (out of file descriptors, say) is logged and retried after a
/// pause, as a server must keep serving through it.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &GatewayConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Drained> {
    let cut = Cut::new();
    let app = app.layer(axum::middleware::from_fn_with_state(
        cut.clone(),
        cut::answer_or_cut,
    ));
    warn_if_short_of_files(config);
    let admission = Admission::new(config.max_connections);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed; pausing");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admission.admit() else {
            if let Some(refusal) = admission.refuse(stream) {
                connections.spawn(refusal);
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(config.write_timeout));
        let io = TokioIo::new(Shaped::new(Box::pin(stream)));
        let service = TowerToHyperService::new(app.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .max_headers(shape::MAX_HEADERS)
            .max_header_size(shape::HEAD_LIMIT)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "gateway connection ended with an error");
            }
        });
    }
    drop(listener);
    let started = tokio::time::Instant::now();
    let clean = tokio::time::timeout(config.grace, graceful.shutdown())
        .await
        .is_ok();
    if !clean {
        // What outlasted the grace period is answered with an error, then closed.
        cut.now();
        let answered = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(FAREWELL, answered).await;
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(Drained {
        clean,
        cut: cut.count(),
        took: started.elapsed(),
    })
}

/// Warns when `max-connections` may not fit in the process's open-file limit (see
/// [`GatewayConfig::fd_problem`]).
fn warn_if_short_of_files(config: &GatewayConfig) {
    match soft_fd_limit() {
        Ok(soft) => {
            if let Some(problem) = config.fd_problem(soft) {
                tracing::warn!(key = "gateway.max-connections", "{problem}");
            }
        }
        Err(error) => tracing::debug!(%error, "cannot read the open-file limit"),
    }
}

/// The soft open-file limit; `u64::MAX` where there is none.
fn soft_fd_limit() -> std::io::Result<u64> {
    #[cfg(unix)]
    return rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft);
    #[cfg(not(unix))]
    Ok(u64::MAX)
}

/// Raises the process's soft open-file limit (`RLIMIT_NOFILE`) to its hard limit (on macOS,
/// to `kern.maxfilesperproc` at most), as a server holding a descriptor per connection
/// should: the soft limit before, and what it became. Where there is no such limit, both are
/// `u64::MAX`.
///
/// # Errors
/// The OS refused to read or set the limit; the process keeps the limit it had.
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let before = soft_fd_limit()?;
    let now = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, now))
}
