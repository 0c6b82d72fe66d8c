//! [`MockServer`]: binds, runs its own accept loop and serves the mock router on each
//! connection with hyper. The accept loop is ours, not `axum::serve`, so a `drop` fault can
//! reach below HTTP: each connection's requests carry a [`ConnectionHandle`], and cutting it
//! makes the connection task drop the connection, closing the socket with no response.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use super::app::App;
use super::connection::ConnectionHandle;
use super::registry::Stats;
use super::routes;
use super::scenario::Scenario;
use crate::catalog::Catalog;

/// How long the accept loop rests after a failed accept (out of file descriptors...), so it
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A running mock server. Dropping it (or [`MockServer::shutdown`]) stops it and closes
/// every connection.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    app: Arc<App>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Validates `scenario`, binds `addr` (port 0 picks a free port) and starts serving in
    /// the background, enforcing the built-in model catalogue unless the scenario turns it
    /// off. Scenario time (brownout and fault windows) starts now.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the scenario does not validate; the bind error otherwise.
    pub async fn start(scenario: Scenario, addr: SocketAddr) -> io::Result<Self> {
        Self::start_with_catalog(scenario, Catalog::builtin(), addr).await
    }

    /// [`MockServer::start`], enforcing `catalog` (a configuration's, with its overrides)
    /// instead of the built-in one.
    ///
    /// # Errors
    ///
    /// As [`MockServer::start`].
    pub async fn start_with_catalog(
        scenario: Scenario,
        catalog: Arc<Catalog>,
        addr: SocketAddr,
    ) -> io::Result<Self> {
        scenario
            .validate()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App::new(scenario, catalog));
        let task = tokio::spawn(accept_loop(listener, routes::router(Arc::clone(&app))));
        tracing::debug!(%addr, "mock server listening");
        Ok(Self { addr, app, task })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, with a loopback IP when bound to an unspecified address.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        format!("http://{addr}")
    }

    /// A snapshot of the per-model counters (the same data as `GET /stats`).
    pub fn stats(&self) -> Stats {
        self.app.stats()
    }

    /// Stops accepting, closes every connection, and waits until the port is released.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The task was just aborted: the only outcome left is a cancellation error.
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts until aborted; aborting drops the `JoinSet`, which aborts every connection.
async fn accept_loop(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "mock server accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router) {
    // Small SSE events should leave at once, not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let cut = Arc::new(Notify::new());
    let handle = ConnectionHandle::new(Arc::clone(&cut));
    let service = router.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        request
    });
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "mock connection ended with an error");
            }
        }
        () = cut.notified() => tracing::debug!("mock connection cut by a fault"),
    }
}
