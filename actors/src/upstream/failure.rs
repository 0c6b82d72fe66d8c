//! What an attempt's failure is: its [`Class`], the one thing the policies decide on, and the
//! [`Failure`] that carries the class with everything the upstream said about it.

use std::fmt;
use std::time::Duration;

use super::limits::RateLimits;

/// What kind of failure an attempt met. Each class has one policy (the README's "How failures
/// are classified" lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Class {
    /// The model is out of capacity for everyone (Anthropic: 529 `overloaded_error`).
    Overloaded,
    /// Our own quota is spent (Anthropic: 429 `rate_limit_error`).
    RateLimited,
    /// The upstream failed (500, 502, 503, 504) or answered with something unreadable.
    ServerError,
    /// No answer in time: a local timeout, or a stream that stalled.
    Timeout,
    /// The connection was refused, reset or dropped before a response arrived.
    Connect,
    /// Our own resources failed the attempt before it reached the upstream (out of file
    /// descriptors, `EMFILE`/`ENFILE`, or out of memory for a socket): the caller is told at
    /// once, without a retry or a fallback that would meet the same shortage, and no breaker
    /// hears of it, as the model is not at fault.
    Local,
    /// The request itself is wrong (400, 401, 403, 404, 413, other 4xx): never retried.
    Invalid,
    /// This target cannot take this request, though another may (the upstream found the
    /// request asks for something this target lacks, before sending it): the request moves
    /// on to the next target at once, and the target's health is not in question.
    Unsuitable,
}

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 8] = [
        Class::Overloaded,
        Class::RateLimited,
        Class::ServerError,
        Class::Timeout,
        Class::Connect,
        Class::Local,
        Class::Invalid,
        Class::Unsuitable,
    ];

    /// Whether trying again (later, or elsewhere) can succeed.
    pub fn is_transient(self) -> bool {
        !matches!(self, Class::Invalid | Class::Unsuitable)
    }

    /// Whether this failure says something about the model's health, and so feeds its breaker.
    ///
    /// A 429 is about our quota, not the model's health, and an invalid request is our fault:
    /// neither may open a circuit.
    pub fn counts_toward_breaker(self) -> bool {
        matches!(
            self,
            Class::Overloaded | Class::ServerError | Class::Timeout | Class::Connect
        )
    }

    /// Whether the upstream turned the request away for want of capacity or quota (or never
    /// answered): a rejection for the client-side throttle. Server errors and invalid
    /// requests were accepted and processed, and count as accepts.
    pub fn is_rejection(self) -> bool {
        matches!(
            self,
            Class::Overloaded | Class::RateLimited | Class::Timeout | Class::Connect
        )
    }

    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            Class::Overloaded => "overloaded",
            Class::RateLimited => "rate_limited",
            Class::ServerError => "server_error",
            Class::Timeout => "timeout",
            Class::Connect => "connect",
            Class::Local => "local",
            Class::Invalid => "invalid",
            Class::Unsuitable => "unsuitable",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_label())
    }
}

/// A failed attempt, classified, with everything the upstream said about it.
///
/// Boxed inside, like `reqwest::Error`, so that `Result<_, Failure>` stays small on every
/// happy path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure(Box<Inner>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    class: Class,
    message: String,
    status: Option<u16>,
    error_type: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    not_found: bool,
    limits: RateLimits,
}

impl Failure {
    /// A failure of `class`, described by `message`.
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            class,
            message: message.into(),
            status: None,
            error_type: None,
            request_id: None,
            retry_after: None,
            should_retry: None,
            not_found: false,
            limits: RateLimits::default(),
        }))
    }

    /// Sets the status the upstream answered with.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.0.status = Some(status);
        self
    }

    /// Sets the upstream's own name for the error (Anthropic's `error.type`).
    #[must_use]
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.0.error_type = Some(error_type.into());
        self
    }

    /// Sets the upstream's request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.0.request_id = Some(request_id.into());
        self
    }

    /// Sets how long the upstream asked us to wait before trying again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.0.retry_after = Some(retry_after);
        self
    }

    /// Records an explicit retry verdict from the upstream (Anthropic's `x-should-retry`).
    #[must_use]
    pub fn with_should_retry(mut self, should_retry: bool) -> Self {
        self.0.should_retry = Some(should_retry);
        self
    }

    /// Marks the failure as saying that the target does not exist (for a Messages API, a
    /// retired, misspelled or not enabled model): the request is wrong for this target, but
    /// the next target of the chain may well exist. The upstream decides what says so (an
    /// HTTP upstream: a 404), so the engine never reads a status.
    #[must_use]
    pub fn with_not_found(mut self) -> Self {
        self.0.not_found = true;
        self
    }

    /// Records the rate-limit state reported with the failure.
    #[must_use]
    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.0.limits = limits;
        self
    }

    /// The failure's class.
    pub fn class(&self) -> Class {
        self.0.class
    }

    /// A human-readable description, as the upstream or the transport gave it.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The status the upstream answered with, if it answered at all.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }

    /// The upstream's own name for the error, if it gave one.
    pub fn error_type(&self) -> Option<&str> {
        self.0.error_type.as_deref()
    }

    /// The upstream's request id, if it gave one.
    pub fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }

    /// How long the upstream asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The upstream's explicit retry verdict, if it gave one.
    pub fn should_retry(&self) -> Option<bool> {
        self.0.should_retry
    }

    /// Whether the failure says the target does not exist (see [`Failure::with_not_found`]).
    pub fn is_not_found(&self) -> bool {
        self.0.not_found
    }

    /// The rate-limit state reported with the failure.
    pub fn limits(&self) -> &RateLimits {
        &self.0.limits
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.class)?;
        let mut detail = Vec::new();
        if let Some(status) = self.0.status {
            detail.push(status.to_string());
        }
        if let Some(error_type) = &self.0.error_type {
            detail.push(error_type.clone());
        }
        if let Some(request_id) = &self.0.request_id {
            detail.push(format!("request-id {request_id}"));
        }
        if !detail.is_empty() {
            write!(f, " ({})", detail.join(", "))?;
        }
        write!(f, ": {}", self.0.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_counts_health_failures_only() {
        let counted: Vec<_> = Class::ALL
            .into_iter()
            .filter(|c| c.counts_toward_breaker())
            .collect();
        assert_eq!(
            counted,
            vec![
                Class::Overloaded,
                Class::ServerError,
                Class::Timeout,
                Class::Connect
            ]
        );
        assert!(!Class::Local.counts_toward_breaker() && !Class::Local.is_rejection());
        assert!(!Class::Invalid.is_transient());
        assert!(Class::RateLimited.is_transient());
    }

    #[test]
    fn failure_display_names_class_status_type_and_request_id() {
        let failure = Failure::new(Class::Overloaded, "Overloaded")
            .with_status(529)
            .with_error_type("overloaded_error")
            .with_request_id("req_1");
        assert_eq!(
            failure.to_string(),
            "overloaded (529, overloaded_error, request-id req_1): Overloaded"
        );
    }
}
