//! `[cluster]`: the fleet this replica belongs to, and how it shares state with it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::Secret;
use crate::engine::fleet::FleetConfig;

/// The default `key-prefix`.
pub(crate) const DEFAULT_KEY_PREFIX: &str = "breakwater";

/// The `[cluster]` table of `breakwater.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterConfig {
    /// The Redis server the fleet shares state through (`redis://[user:password@]host:port[/db]`;
    /// `--redis` on the command line wins). Without it the replica decides alone. The URL
    /// may hold a password: it is never logged or printed. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisUrl>,
    /// What every key of this fleet starts with, so that several fleets (or other programs)
    /// can share one Redis. Default: "breakwater".
    pub key_prefix: String,
    /// The replica's name, quorum and timings. Default: see [`FleetConfig`].
    #[serde(flatten)]
    pub fleet: FleetConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            fleet: FleetConfig::default(),
        }
    }
}

impl ClusterConfig {
    /// The first key that cannot work, and why: a `redis` URL of another scheme, an empty
    /// `key-prefix` or one holding braces (they would change the keys' Redis Cluster slots).
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(url) = &self.redis {
            let shown = url.redacted();
            if !url.expose().starts_with("redis://") {
                let reason = format!(
                    "{shown} is not a redis:// URL (redis://[user:password@]host:port[/db])"
                );
                return Some(("redis", reason));
            }
            if url.expose().len() <= "redis://".len() {
                return Some(("redis", "names no host".to_owned()));
            }
        }
        if self.key_prefix.is_empty() {
            return Some(("key-prefix", "must not be empty".to_owned()));
        }
        if self.key_prefix.contains(['{', '}']) {
            let reason = format!(
                "{:?} holds a brace, which Redis Cluster reads as a hash tag",
                self.key_prefix
            );
            return Some(("key-prefix", reason));
        }
        None
    }
}

/// A Redis URL, which may hold a password: `Debug`, `Display` and serialization show it with
/// the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    /// The URL itself, password and all: only to connect with.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(self.0.expose())
    }
}

/// What stands for a password wherever a URL is shown.
pub(crate) const HIDDEN: &str = "***";

/// `url` with the userinfo's password (everything between the user's `:` and the last `@`)
/// replaced, for URLs that do not even parse. Over-eager on purpose: a password with an
/// unescaped `/` or `@` in it is still hidden.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let (userinfo, host) = rest.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:{HIDDEN}{host}"),
        // No `:`: a user name only, unless the scheme is missing and this is all a secret.
        None if scheme.is_empty() => format!("{HIDDEN}{host}"),
        None => url.to_owned(),
    }
}

/// `text` with the password of every URL in it hidden (see [`redact`]): for messages that
/// quote a line of the configuration, such as TOML's parse errors.
pub(crate) fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let is_end = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | ']');
        let start = rest[..at].rfind(is_end).map_or(0, |i| i + 1);
        let tail = &rest[at + 3..];
        let end = at
            + 3
            + tail
                .find(|c: char| is_end(c) || c == '/')
                .unwrap_or(tail.len());
        out.push_str(&rest[..start]);
        out.push_str(&redact(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(RedisUrl::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            ("redis://app:s3cret@host:6379", "redis://app:***@host:6379"),
            ("redis://u:p@ss@h:1/0", "redis://u:***@h:1/0"),
            ("redis://host:6379", "redis://host:6379"),
            ("s3cret@host", "***@host"),
        ] {
            let url = RedisUrl::new(url);
            assert_eq!(url.redacted(), shown);
            assert!(!format!("{url:?} {url}").contains("s3cret"));
        }
    }

    #[test]
    fn urls_in_quoted_configuration_lines_lose_their_passwords() {
        let text = "1 | redis = \"redis://app:s3cret@h:6379/0\"\n  | ^ unknown field, see http://example.com/x";
        let shown = redact_urls(text);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://app:***@h:6379/0\""), "{shown}");
        assert!(shown.ends_with("see http://example.com/x"), "{shown}");
    }

    #[test]
    fn the_table_reads_its_own_keys_and_the_fleets() {
        let text = "redis = \"redis://:pw@127.0.0.1:6390\"\nkey-prefix = \"bw-test\"\nquorum = 3\nheartbeat = \"250ms\"\n";
        let cluster: ClusterConfig = toml::from_str(text).expect("valid");
        assert_eq!(
            cluster.redis.as_ref().map(RedisUrl::expose),
            Some("redis://:pw@127.0.0.1:6390")
        );
        assert_eq!(cluster.key_prefix, "bw-test");
        assert_eq!(cluster.fleet.quorum, 3);
        assert_eq!(
            cluster.fleet.heartbeat,
            std::time::Duration::from_millis(250)
        );
        let error = toml::from_str::<ClusterConfig>("quorom = 2\n").unwrap_err();
        assert!(error.to_string().contains("quorom"), "{error}");
    }

    #[test]
    fn bad_keys_are_named() {
        let with = |redis: &str, prefix: &str| ClusterConfig {
            redis: Some(RedisUrl::new(redis)),
            key_prefix: prefix.to_owned(),
            ..ClusterConfig::default()
        };
        let (field, reason) = with("http://:pw@host", "bw").problem().expect("refused");
        assert_eq!(field, "redis");
        assert!(
            reason.contains("not a redis:// URL") && !reason.contains("pw@"),
            "{reason}"
        );
        assert_eq!(with("redis://", "bw").problem().map(|p| p.0), Some("redis"));
        assert_eq!(
            with("redis://h", "").problem().map(|p| p.0),
            Some("key-prefix")
        );
        assert_eq!(
            with("redis://h", "a{b}").problem().map(|p| p.0),
            Some("key-prefix")
        );
        assert_eq!(with("redis://h:6379", "bw").problem(), None);
    }
}
