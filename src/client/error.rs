//! [`ClientError`]: a client configuration that cannot work (a bad base URL, a header value
//! that cannot be sent), naming the setting.

/// A bad client configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL cannot be parsed, or is not http(s).
    #[error("invalid base-url {url:?}: {reason}")]
    BaseUrl {
        /// The URL as given, with any userinfo (`user:password@`) replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header value (version, beta flag or credential) contains characters HTTP forbids.
    #[error("invalid {field}: not a valid HTTP header value")]
    Header {
        /// Which setting is bad.
        field: &'static str,
    },
    /// reqwest could not build its client.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The extra root certificates (`ca-file`) cannot be read or hold no certificate.
    #[error("invalid ca-file {}: {reason}", path.display())]
    CaFile {
        /// The file as configured.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("cannot build the HTTP client's TLS configuration: {0}")]
    Tls(String),
}
