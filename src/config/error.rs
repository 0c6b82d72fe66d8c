//! [`ConfigError`]: what is wrong with a configuration, naming the key by its dotted path.

use std::path::PathBuf;

use crate::engine::policy::PolicyError;

/// A configuration that cannot be read or cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not TOML, or a value has the wrong type or range (a zero count, an
    /// unparseable duration, an unknown key). toml's message gives the line, the column and
    /// the offending line.
    #[error("{}", super::cluster::redact_urls(.0.to_string().trim_end()))]
    Toml(#[source] toml::de::Error),
    /// A value parses but cannot work.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The key's dotted path, as in `chains.default[1]` or `retry.backoff.base`.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The file was read but its content is wrong.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it: [`ConfigError::Toml`] or [`ConfigError::Invalid`].
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    /// The dotted path of the invalid key, for an [`Invalid`](ConfigError::Invalid) error
    /// (also when it comes from a file).
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::File { source, .. } => source.field(),
            _ => None,
        }
    }

    pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let (field, reason) = (field.into(), reason.into());
        ConfigError::Invalid { field, reason }
    }

    /// A policy's error, its field prefixed with the policy's table.
    pub(super) fn within(table: &str, error: PolicyError) -> Self {
        match error {
            PolicyError::Invalid { field, reason } => {
                ConfigError::invalid(format!("{table}.{field}"), reason)
            }
            other => ConfigError::invalid(table, other.to_string()),
        }
    }
}
