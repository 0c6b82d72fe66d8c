//! What a failed HTTP exchange means to the engine: a transport error as a failure class and
//! a message that can never carry the URL or the key.

use crate::engine::Class;

/// Classifies a transport error: a timeout as [`Class::Timeout`], anything else as
/// [`Class::Connect`].
///
/// The message is built from the error with its URL stripped (reqwest's `without_url`) and
/// from its sources, none of which carries a header, so neither the URL nor the key can leak.
pub(super) fn transport(error: reqwest::Error) -> (Class, String) {
    let error = error.without_url();
    let class = if error.is_timeout() {
        Class::Timeout
    } else {
        Class::Connect
    };
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.dedup();
    let message = parts.join(": ");
    if error.is_connect() {
        return (class, format!("connection failed: {message}"));
    }
    (class, message)
}
