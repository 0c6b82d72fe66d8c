//! `[gateway]`: who may call the gateway, what it serves, and how long it waits on clients.
//! Kept with the rest of the configuration (the gateway re-exports it), so that reading
//! `breakwater.toml` needs nothing from the gateway that serves it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::Secret;

/// The largest request body the gateway accepts, as the API's 32 MB.
pub const BODY_LIMIT: usize = 32 << 20;

/// The default `max-connections`. HTTP/1.1 carries one request at a time per connection, so
/// 1024 connections carry as many requests as the engine admits at once by default
/// (`admission.max-outstanding`); and twice 1024 (each connection may hold an upstream one), plus
/// [`FD_RESERVE`], fits in 4096 open files, the lowest hard limit of common systems (Linux's
/// own default; systemd's is 524288, macOS's 10240 or more), to which `serve` raises its
/// soft limit.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// File descriptors kept for what is not a served connection: the connections being refused
/// (64 at most), the listener, the store's database, logs, the standard streams, DNS and TLS
/// files.
pub const FD_RESERVE: u64 = 128;

/// The gateway's settings, the `[gateway]` table of `breakwater.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct GatewayConfig {
    /// Whether callers must present one of `keys` (as `x-api-key`, or `Authorization:
    /// Bearer`); without one they get 401. A key presented to the gateway is never sent
    /// upstream. Upstream requests carry the gateway's own key, replacing the caller's; a
    /// gateway without one (embedded over a runtime with no credentials) passes the
    /// caller's key through on forwarded routes when this is off. Default: false.
    pub require_keys: bool,
    /// The keys callers may present when `require-keys` is on. Keep the file readable by the
    /// gateway's user only. Default: none.
    pub keys: Vec<ClientKey>,
    /// Whether a model that heads no chain and is in none is served alone, with its own
    /// breaker, retries and default limits, rather than refused with 404. Only a model the
    /// upstream confirms (the catalogue knows it, or `GET /v1/models` listed it at start)
    /// is; any other gets 404 at once. Default: true.
    pub serve_unlisted: bool,
    /// The most such models served, so that callers naming arbitrary models cannot make the
    /// gateway spawn without bound; once served, a model stays served while the gateway
    /// runs. Default: 16.
    pub max_unlisted: u32,
    /// The most client connections open at once. Past it, a new connection is answered 529
    /// `overloaded_error` with `retry-after` and closed, rather than taken into unbounded
    /// work (counted in `breakwater_gateway_connections_refused_total`). Each connection
    /// holds a file descriptor, and may hold an upstream connection too: `serve` warns when
    /// twice this, plus [`FD_RESERVE`], does not fit in the process's open-file limit.
    /// Default: 1024 (see [`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: u32,
    /// Longest a client may take to send a request's head (line and headers). Default: 30s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body; on forwarded routes, whose
    /// bodies stream through (uploads of hundreds of MB), longest it may pause between two
    /// chunks of it. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Longest a client may leave the gateway unable to write to it (reading nothing of a
    /// response or a stream) before the connection is dropped, and with it the upstream
    /// attempt. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// The largest request body forwarded on a route the gateway does not model (Files
    /// uploads, Message Batches); a larger one gets 413 `request_too_large`,
    /// before anything is sent upstream when its `content-length` says so, else as soon as
    /// it crosses the limit (`"512MiB"`, `"1GiB"`, or a number of bytes). Bodies stream
    /// through, so the limit bounds the upstream's load, not the gateway's memory (nor is
    /// it counted in `body-memory`). Default: 512MiB.
    pub forward_body_limit: bytesize::ByteSize,
    /// Longest the upstream may leave a forwarded request without progress: from the last
    /// chunk of the request body sent to the response head (504 `timeout_error` past it),
    /// and between two chunks of the response body (the response is cut). Default: 2m.
    #[serde(with = "humantime_serde")]
    pub forward_timeout: Duration,
    /// On SIGTERM or Ctrl-C: how long in-flight requests may take to finish after the
    /// gateway stops accepting; what is left is then cut. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The most request-body bytes all requests in flight may hold together (`"512MiB"`,
    /// `"1GiB"`, or a number of bytes). A request whose body does not fit waits for room.
    /// Default: 512MiB.
    pub body_memory: bytesize::ByteSize,
    /// Longest a request waits for room under `body-memory` before it is answered 529
    /// `overloaded_error` with `retry-after`. Default: 10s.
    #[serde(with = "humantime_serde")]
    pub body_memory_wait: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            require_keys: false,
            keys: Vec::new(),
            serve_unlisted: true,
            max_unlisted: 16,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            forward_body_limit: bytesize::ByteSize::mib(512),
            forward_timeout: Duration::from_secs(120),
            grace: Duration::from_secs(30),
            body_memory: bytesize::ByteSize::mib(512),
            body_memory_wait: Duration::from_secs(10),
        }
    }
}

impl GatewayConfig {
    /// Checks the settings; the error is the bad key (under `gateway.`) and why.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        if self.require_keys && self.keys.is_empty() {
            return Some((
                "keys",
                "must list at least one key when require-keys = true".into(),
            ));
        }
        if let Some(index) = self.keys.iter().position(|key| key.0.expose().is_empty()) {
            return Some(("keys", format!("key #{} is empty", index + 1)));
        }
        if let Some(index) = self.keys.iter().position(|key| key.0.expose() == "***") {
            // What a serialized config holds in place of a key: never a key itself.
            return Some((
                "keys",
                format!("key #{} is \"***\", a redacted placeholder", index + 1),
            ));
        }
        if self.body_memory.as_u64() < BODY_LIMIT as u64 {
            return Some((
                "body-memory",
                format!("must hold at least one whole body ({BODY_LIMIT} bytes)"),
            ));
        }
        for (field, value) in [
            ("header-timeout", self.header_timeout),
            ("body-timeout", self.body_timeout),
            ("write-timeout", self.write_timeout),
            ("forward-timeout", self.forward_timeout),
        ] {
            if value.is_zero() {
                return Some((field, "must be greater than zero".into()));
            }
        }
        if self.forward_body_limit.as_u64() == 0 {
            return Some(("forward-body-limit", "must be greater than zero".into()));
        }
        if self.max_connections == 0 {
            return Some(("max-connections", "must be greater than zero".into()));
        }
        None
    }

    /// Why `max-connections` may not fit in `fd_limit` open files (the soft `RLIMIT_NOFILE`),
    /// if it may not: each client connection takes a descriptor and may hold an upstream
    /// connection too, and [`FD_RESERVE`] are kept for the rest. Past the limit, accepting
    /// or connecting fails with `EMFILE` (the gateway pauses its accepts; a request's
    /// upstream connect fails as a local fault, 503).
    pub fn fd_problem(&self, fd_limit: u64) -> Option<String> {
        let needed = 2 * u64::from(self.max_connections) + FD_RESERVE;
        (needed > fd_limit).then(|| {
            format!(
                "{} connections may need {needed} open files (one per client connection, one \
                 per upstream connection, {FD_RESERVE} for the rest), more than the open-file \
                 limit of {fd_limit}: raise the limit (ulimit -n, LimitNOFILE=) or lower \
                 gateway.max-connections",
                self.max_connections
            )
        })
    }

    /// Whether `presented` is one of the configured keys, compared in constant time.
    pub fn admits(&self, presented: &str) -> bool {
        self.keys
            .iter()
            .fold(false, |found, key| found | key.matches(presented))
    }
}

/// A key a client may present to the gateway. Like every secret here, its `Debug` and
/// `Display` print `***`, and it serializes as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey(Secret);

impl ClientKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(Secret::new(key))
    }

    /// Compares without an early exit on the first differing byte.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.expose().as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for ClientKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for ClientKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ClientKey::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_never_print() {
        let config = GatewayConfig {
            require_keys: true,
            keys: vec![ClientKey::new("sk-one"), ClientKey::new("sk-two")],
            ..GatewayConfig::default()
        };
        assert!(config.admits("sk-two"));
        assert!(!config.admits("sk-tw"));
        assert!(!config.admits("sk-two "));
        assert!(!config.admits(""));
        assert!(!format!("{config:?}").contains("sk-"));
        assert_eq!(format!("{:?}", config.keys[0]), "***");
    }

    #[test]
    fn require_keys_without_keys_is_refused() {
        let config = GatewayConfig {
            require_keys: true,
            ..GatewayConfig::default()
        };
        assert_eq!(config.problem().unwrap().0, "keys");
        assert!(GatewayConfig::default().problem().is_none());
    }

    #[test]
    fn zero_max_connections_is_refused() {
        let config = GatewayConfig {
            max_connections: 0,
            ..GatewayConfig::default()
        };
        assert_eq!(config.problem().unwrap().0, "max-connections");
    }

    #[test]
    fn max_connections_that_cannot_fit_in_the_fd_limit_are_warned_about() {
        let config = GatewayConfig::default();
        assert_eq!(config.fd_problem(4096), None, "the default fits in 4096");
        assert_eq!(config.fd_problem(2 * 1024 + FD_RESERVE), None);
        let problem = config
            .fd_problem(1024)
            .expect("1024 connections need more than 1024");
        assert!(problem.contains("1024 connections"), "{problem}");
        assert!(problem.contains("2176 open files"), "{problem}");
        assert!(problem.contains("limit of 1024"), "{problem}");
    }
}
