//! [`RuntimeError`]: why a runtime did not start (its configuration, its HTTP client, the
//! engine, or the store for deferred requests).

use crate::client::ClientError;
use crate::config::ConfigError;
use crate::engine::StartError;
use crate::store::StoreError;

/// Why a runtime did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The configuration is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built from the configuration.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The engine did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The store for deferred requests could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chain names a platform whose credentials are not in the environment (nor given to
    /// the builder).
    #[error("{platform} has no credentials: a chain names {entry}; {how}")]
    NoCredentials {
        /// The platform, as `platforms.bedrock`.
        platform: &'static str,
        /// The first chain entry or model naming it.
        entry: String,
        /// Where its credentials come from, or why none were found.
        how: String,
    },
}
