//! [`SimScenarioError`]: why a simulator scenario could not be loaded, naming the bad setting
//! by its dotted path, or the file.

use std::path::PathBuf;

/// Why a simulator scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimScenarioError {
    /// The TOML did not parse or did not match the format; the message has line and column.
    #[error("invalid sim scenario toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// A setting parsed but makes no sense; `field` is its dotted path.
    #[error("invalid sim scenario setting {field}: {reason}")]
    Invalid {
        /// Dotted path of the bad setting, e.g. `models.claude-x.slots`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read (and the name is no built-in).
    #[error("cannot read sim scenario file {path} (built-in scenarios: {builtins}): {source}")]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// Comma-separated built-in names, for the reader who mistyped one.
        builtins: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its contents are invalid.
    #[error("sim scenario file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<SimScenarioError>,
    },
}

/// A setting that parsed but makes no sense.
pub(super) fn invalid(field: String, reason: impl Into<String>) -> SimScenarioError {
    SimScenarioError::Invalid {
        field,
        reason: reason.into(),
    }
}
