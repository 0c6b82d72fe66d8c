//! A real `redis-server` for an integration test, on a free loopback port, with no
//! persistence, killed when the guard is dropped. Included by the tests that need it with
//! `#[path = "support/redis.rs"] mod redis_server;`.
//!
//! Without `redis-server` on the PATH, [`RedisServer::start`] prints a skip line and returns
//! `None` (the test then passes without running), unless `BREAKWATER_REQUIRE_REDIS=1`
//! (`scripts/test`, CI), which makes it a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const BINARY: &str = "redis-server";

/// How long a server may take to answer its first PING.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// A running `redis-server`; killed on drop.
pub(crate) struct RedisServer {
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A server without a password; `None` (after a skip line) if there is no `redis-server`.
    pub(crate) async fn start() -> Option<Self> {
        Self::start_with(None).await
    }

    /// A server that requires `password` (`--requirepass`).
    pub(crate) async fn start_with_password(password: &str) -> Option<Self> {
        Self::start_with(Some(password.to_owned())).await
    }

    async fn start_with(password: Option<String>) -> Option<Self> {
        let binary = find_binary()?;
        // Another process may take the free port before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                password: password.clone(),
                dir: tempfile::tempdir().expect("a temporary directory for redis-server"),
                child: None,
            };
            match server.spawn(&binary).await {
                Ok(()) => return Some(server),
                Err(err) => last = err,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:{port}`, with the server's password if it has one.
    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => self.url_without_password(),
        }
    }

    /// `redis://127.0.0.1:{port}`.
    pub(crate) fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, empty, on the same port.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let binary = find_binary().expect("redis-server was there a moment ago");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn(&binary).await {
                Ok(()) => return,
                Err(err) if Instant::now() > deadline => {
                    panic!("redis-server did not restart on port {}: {err}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Starts the server and waits until it answers a PING; on failure, nothing is left
    /// running.
    async fn spawn(&mut self, binary: &PathBuf) -> Result<(), String> {
        let mut command = Command::new(binary);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.arg("--requirepass").arg(password);
        }
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", binary.display()))?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status} (port {} taken?)", self.port));
            }
            if answers_ping(self.port).await {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no PONG on port {} within {READY_WITHIN:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server` on the PATH; `None` (a skip) or a panic (`BREAKWATER_REQUIRE_REDIS=1`) if
/// it is not there.
fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(BINARY))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var("BREAKWATER_REQUIRE_REDIS").as_deref() != Ok("1"),
            "BREAKWATER_REQUIRE_REDIS=1 but {BINARY} is not on the PATH \
             (install it: apt-get install redis-server; scripts/test does so as root)"
        );
        eprintln!("skipped: {BINARY} is not on the PATH (set BREAKWATER_REQUIRE_REDIS=1 to fail)");
    }
    found
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("the port's address").port()
}

/// Whether something on `port` answers a PING as Redis does (`+PONG`, or `-NOAUTH` from a
/// server that wants a password).
async fn answers_ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut answer = [0u8; 16];
        let read = stream.read(&mut answer).await.ok()?;
        let answer = &answer[..read];
        Some(answer.starts_with(b"+PONG") || answer.starts_with(b"-NOAUTH"))
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
