//! Exit codes shared by every command (usage 2, permanent 3, unavailable 4, cut 5), and the one
//! line each prints on the way out naming what failed.

use std::process::ExitCode;

use breakwater::engine::{Class, Error};

/// Usage or configuration error (clap uses 2 for usage errors too).
pub(crate) const USAGE: u8 = 2;
/// A permanent error: the request itself was refused (4xx).
pub(crate) const PERMANENT: u8 = 3;
/// A retryable failure (overloaded, rate limited, server, timeout, connect) that could not
/// be overcome.
pub(crate) const UNAVAILABLE: u8 = 4;
/// `serve` stopped, but requests still running when its grace period ended were cut (each
/// answered with a shutdown error).
pub(crate) const CUT: u8 = 5;

/// Prints a usage or configuration error.
pub(crate) fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE)
}

/// Prints one line naming the failure's class, status, `error.type` and `request-id`.
pub(crate) fn failed(error: &Error) -> ExitCode {
    match error {
        Error::Upstream { failure, .. } => {
            eprintln!("error: {failure}");
            let permanent = failure.class() == Class::Invalid;
            ExitCode::from(if permanent { PERMANENT } else { UNAVAILABLE })
        }
        Error::Invalid(message) => usage(message),
        Error::Exhausted {
            last: Some(failure),
            attempts,
            retry_after,
        } => {
            let hint = retry_after
                .map(|d| format!("; retry after {}ms", d.as_millis()))
                .unwrap_or_default();
            eprintln!(
                "error: {failure} (after {} attempt(s){hint})",
                attempts.len()
            );
            ExitCode::from(UNAVAILABLE)
        }
        other => {
            eprintln!("error: {other}");
            ExitCode::from(UNAVAILABLE)
        }
    }
}
