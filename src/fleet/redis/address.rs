//! Where the fleet's Redis is, as the operator may see it: the URL is parsed once, shown
//! everywhere as `redis://user:***@host:port/db`, and every message about it is scrubbed of
//! the password, so no error, log line or `Debug` output ever holds it.

use ::redis::{Client, ConnectionAddr, ErrorKind, RedisError};

use breakwater_actors::fleet::StoreError;

/// The password's stand-in wherever a URL is shown.
use crate::config::cluster::{HIDDEN, redact};

/// The parsed URL: what to show, and what must never be shown.
#[derive(Clone)]
pub(super) struct Address {
    /// `redis://[user[:***]@]host:port[/db]`.
    shown: String,
    /// Whether the URL carries a password.
    has_password: bool,
    /// The password as written in the URL and as decoded: scrubbed from every message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Address {
    /// Parses `url` (`redis://[user][:password@]host[:port][/db]`) into a client that has not
    /// connected yet.
    pub(super) fn parse(url: &str) -> Result<(Client, Self), StoreError> {
        let raw_secret = raw_password(url);
        let invalid = |why: &str| {
            let message = format!("invalid Redis URL {}: {why}", redact(url));
            StoreError::Unreachable(scrub(&message, raw_secret.iter()))
        };
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("redis" | "valkey") => {}
            Some("rediss" | "valkeys") => {
                return Err(invalid(
                    "TLS (rediss://) is not supported by this build; use redis://",
                ));
            }
            Some(other) if other.contains("unix") => {
                return Err(invalid(
                    "unix sockets are not supported; use redis://host:port",
                ));
            }
            _ => {
                return Err(invalid(
                    "expected redis://[user[:password]@]host[:port][/db]",
                ));
            }
        }
        let client = Client::open(url).map_err(|err| {
            let why = err.to_string();
            let why = why.trim_end_matches(" - InvalidClientConfig");
            if why == "Redis URL did not parse" {
                invalid("it does not parse (check the host, the port and the escaping)")
            } else {
                invalid(why)
            }
        })?;
        let info = client.get_connection_info();
        let (host, port) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            _ => return Err(invalid("expected redis://host:port")),
        };
        let settings = info.redis_settings();
        let password = settings.password().filter(|p| !p.is_empty());
        let mut secrets: Vec<String> = raw_secret.into_iter().collect();
        if let Some(password) = password {
            secrets.push(password.to_owned());
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let userinfo = match (settings.username(), password.is_some()) {
            (Some(user), true) => format!("{user}:{HIDDEN}@"),
            (Some(user), false) => format!("{user}@"),
            (None, true) => format!(":{HIDDEN}@"),
            (None, false) => String::new(),
        };
        let db = match settings.db() {
            0 => String::new(),
            db => format!("/{db}"),
        };
        let shown = scrub(
            &format!("redis://{userinfo}{host}:{port}{db}"),
            secrets.iter(),
        );
        let address = Self {
            shown,
            has_password: password.is_some(),
            secrets,
        };
        Ok((client, address))
    }

    /// The URL without its password.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// `message` with every occurrence of the password replaced.
    pub(super) fn scrub(&self, message: &str) -> String {
        scrub(message, self.secrets.iter())
    }

    /// A failure to connect (or of the first PING) as the operator should read it.
    pub(super) fn connect_error(&self, err: &RedisError) -> StoreError {
        let message = if let Some(auth) = self.auth_problem(err) {
            auth
        } else {
            format!("cannot reach Redis at {}: {}", self.shown, reason(err))
        };
        StoreError::Unreachable(self.scrub(&message))
    }

    /// A failure of one call (`doing`: "the swap of {m}:breaker").
    pub(super) fn call_error(&self, doing: &str, err: &RedisError) -> StoreError {
        let message = if let Some(auth) = self.auth_problem(err) {
            auth
        } else {
            format!("Redis at {} failed {doing}: {}", self.shown, reason(err))
        };
        StoreError::Unreachable(self.scrub(&message))
    }

    /// A call that took longer than `limit`.
    pub(super) fn timed_out(&self, doing: &str, limit: std::time::Duration) -> StoreError {
        StoreError::Unreachable(format!(
            "Redis at {} did not answer {doing} within {limit:?}",
            self.shown
        ))
    }

    /// A reply our own script cannot have given: a server that is not what it seems.
    pub(super) fn odd_reply(&self, doing: &str) -> StoreError {
        StoreError::Unreachable(format!(
            "Redis at {} answered {doing} with a reply breakwater does not understand",
            self.shown
        ))
    }

    fn auth_problem(&self, err: &RedisError) -> Option<String> {
        let code = err.code().unwrap_or_default();
        let refused = err.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS";
        if refused {
            return Some(format!("Redis refused the credentials for {}", self.shown));
        }
        if code == "NOAUTH" {
            return Some(if self.has_password {
                format!("Redis refused the credentials for {}", self.shown)
            } else {
                format!(
                    "Redis at {} requires a password, and the URL gives none",
                    self.shown
                )
            });
        }
        None
    }
}

/// What went wrong, in the crate's words (which never hold the URL).
fn reason(err: &RedisError) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    }
}

/// The password as written in `url` (still percent-encoded), if there is one.
fn raw_password(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

fn scrub<'a>(message: &str, secrets: impl Iterator<Item = &'a String>) -> String {
    let mut message = message.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            message = message.replace(secret.as_str(), HIDDEN);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_user_but_never_the_password() {
        let (_, address) = Address::parse("redis://fleet:s3cret%2Fpass@127.0.0.1:6390/2").unwrap();
        assert_eq!(address.shown(), "redis://fleet:***@127.0.0.1:6390/2");
        assert_eq!(format!("{address:?}"), "redis://fleet:***@127.0.0.1:6390/2");
        let (_, address) = Address::parse("redis://:s3cret@localhost").unwrap();
        assert_eq!(address.shown(), "redis://:***@localhost:6379");
        let (_, address) = Address::parse("redis://[::1]:7000").unwrap();
        assert_eq!(address.shown(), "redis://[::1]:7000");
    }

    #[test]
    fn messages_are_scrubbed_of_the_password_raw_and_decoded() {
        let (_, address) = Address::parse("redis://u:s3cret%2Fpass@127.0.0.1:1").unwrap();
        let scrubbed = address.scrub("a s3cret/pass and a s3cret%2Fpass");
        assert_eq!(scrubbed, "a *** and a ***");
        let err = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let StoreError::Unreachable(message) = address.connect_error(&err) else {
            panic!("an auth failure is Unreachable");
        };
        assert_eq!(
            message,
            "Redis refused the credentials for redis://u:***@127.0.0.1:1"
        );
    }

    #[test]
    fn bad_urls_are_unreachable_with_the_password_hidden() {
        for url in [
            "http://u:s3cret@host:6379",
            "rediss://u:s3cret@host:6379",
            "redis://u:s3cret@host:notaport",
            "redis://u:s3/cret@host:6379",
            "u:s3cret@host:6379",
            "redis://u:s3cret@0.0.0.0:6379",
            "redis://u:s3cret@host:6379/notadb",
        ] {
            let err = Address::parse(url).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3"), "{url}: {shown}");
            assert!(shown.contains("invalid Redis URL"), "{url}: {shown}");
            assert!(matches!(err, StoreError::Unreachable(_)));
        }
    }

    #[test]
    fn redact_hides_everything_between_the_user_and_the_last_at() {
        assert_eq!(redact("redis://u:p@ss@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://u@h:1"), "redis://u@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("p@h"), "***@h");
    }
}
