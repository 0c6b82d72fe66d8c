//! What a failed HTTP exchange means to the engine: a transport error as a failure class and
//! a message that can never carry the URL or the key.

use crate::engine::Class;

/// Classifies a transport error: a timeout as [`Class::Timeout`], our own resources failing
/// (see [`local_cause`]) as [`Class::Local`], anything else as [`Class::Connect`].
///
/// The message is built from the error with its URL stripped (reqwest's `without_url`) and
/// from its sources, none of which carries a header, so neither the URL nor the key can leak.
pub(super) fn transport(error: reqwest::Error) -> (Class, String) {
    let error = error.without_url();
    let class = if error.is_timeout() {
        Class::Timeout
    } else if local_cause(&error).is_some() {
        Class::Local
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

/// Classifies an error of the Claude API's own client ([`super::direct`]) as [`transport`]
/// classifies reqwest's: a timeout anywhere in the chain (the connect timeout is an
/// `io::Error` of kind `TimedOut`) as [`Class::Timeout`], a local resource fault as
/// [`Class::Local`], anything else as [`Class::Connect`]. The chain names neither the URL nor
/// a header.
pub(super) fn hyper_transport(error: &hyper_util::client::legacy::Error) -> (Class, String) {
    let (class, message) = classify(error);
    if error.is_connect() {
        return (class, format!("connection failed: {message}"));
    }
    (class, format!("error sending request: {message}"))
}

/// Whether `error` says the server did not process the request, so that sending it again
/// cannot act twice: an HTTP/2 GOAWAY with NO_ERROR from the server (a graceful close of the
/// connection it was sent on), or a stream the server refused (REFUSED_STREAM). The same test
/// as reqwest's retry layer, which the Messages pool does not have.
pub(super) fn unprocessed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && ((h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)));
        }
        next = cause.source();
    }
    false
}

/// Classifies an error reading a response body, as [`hyper_transport`] does.
pub(super) fn body_transport(error: &hyper::Error) -> (Class, String) {
    let (class, message) = classify(error);
    (class, format!("error reading the response body: {message}"))
}

/// The class of `error` by its chain, and the chain's messages joined.
fn classify(error: &(dyn std::error::Error + 'static)) -> (Class, String) {
    let mut parts = Vec::new();
    let mut timeout = false;
    let mut next = Some(error);
    while let Some(cause) = next {
        timeout |= cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            || cause.is::<tokio::time::error::Elapsed>();
        parts.push(cause.to_string());
        next = cause.source();
    }
    parts.dedup();
    let class = if timeout {
        Class::Timeout
    } else if local_cause(error).is_some() {
        Class::Local
    } else {
        Class::Connect
    };
    (class, parts.join(": "))
}

/// The OS errors that say this process (or host) ran out of something, not that the upstream
/// refused: `ENOMEM` (12), `ENFILE` (23) and `EMFILE` (24), the same numbers on Linux and the
/// BSDs. A refusal, a reset or an unreachable host is the remote's, and stays
/// [`Class::Connect`].
const LOCAL_OS_ERRORS: [i32; 3] = [12, 23, 24];

/// Whether `io` is a local fault: one of [`LOCAL_OS_ERRORS`], or an address error that only
/// this host can cause on a connect: `EADDRNOTAVAIL` (no local address or ephemeral port to
/// connect from, as when the ephemeral ports run out: 99 on Linux, 49 on macOS) and
/// `EADDRINUSE` (the local address and port taken: 98 and 48). These two are matched by
/// their `ErrorKind`, which the standard library maps from each platform's own numbers.
fn is_local(io: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    io.raw_os_error()
        .is_some_and(|code| LOCAL_OS_ERRORS.contains(&code))
        || matches!(
            io.kind(),
            ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse
        )
}

/// The first `io::Error` in `error`'s source chain that is a local resource fault (see
/// [`is_local`]), if any.
pub(super) fn local_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a std::io::Error> {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && is_local(io)
        {
            return Some(io);
        }
        next = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector's error around an OS error, as hyper-util wraps one.
    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn emfile_and_enfile_deep_in_the_chain_are_local_faults() {
        for code in [24, 23] {
            let error = Wrapped(std::io::Error::from_raw_os_error(code));
            let cause = local_cause(&error).expect("a local fault");
            assert_eq!(cause.raw_os_error(), Some(code));
        }
    }

    #[test]
    fn a_refusal_or_a_reset_is_the_remotes() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
        ] {
            let error = Wrapped(std::io::Error::from(kind));
            assert!(local_cause(&error).is_none(), "{kind:?}");
        }
        let refused = Wrapped(std::io::Error::from_raw_os_error(111));
        assert!(local_cause(&refused).is_none());
        let unreachable = Wrapped(std::io::Error::from(std::io::ErrorKind::HostUnreachable));
        assert!(local_cause(&unreachable).is_none());
    }

    /// No local address or port to connect from (the ephemeral ports ran out) is this host's
    /// fault, as the platform numbers it: `EADDRNOTAVAIL`, and `EADDRINUSE` on a connect.
    #[test]
    fn no_address_or_port_to_connect_from_is_a_local_fault() {
        #[cfg(target_os = "linux")]
        let codes = [99, 98];
        #[cfg(target_os = "macos")]
        let codes = [49, 48];
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        let codes: [i32; 0] = [];
        for code in codes {
            let error = Wrapped(std::io::Error::from_raw_os_error(code));
            let cause = local_cause(&error).expect("a local fault");
            assert_eq!(cause.raw_os_error(), Some(code));
        }
        for kind in [
            std::io::ErrorKind::AddrNotAvailable,
            std::io::ErrorKind::AddrInUse,
        ] {
            let error = Wrapped(std::io::Error::from(kind));
            assert!(local_cause(&error).is_some(), "{kind:?}");
        }
    }
}
