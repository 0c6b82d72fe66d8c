//! What a caller hands the engine and what it gets back: [`RequestOptions`], the
//! [`Answer`] to a request that succeeded, and the [`Error`] of one that did not.
//!
//! Every request ends, by its deadline, in exactly one of these. An error always says what
//! was tried ([`Attempt`]s) and, where it makes sense, when to come back.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use crate::policy::Cost;
use crate::upstream::{Class, Failure, Target};

/// How much a request matters when there is not enough capacity for all of them.
///
/// Under pressure, `Sheddable` work is refused first, then `Normal`; `Critical` last.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Refused first: background work that can be dropped or redone.
    Sheddable,
    /// Ordinary traffic.
    #[default]
    Normal,
    /// Refused last: a user is waiting on it.
    Critical,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 3] = [Priority::Sheddable, Priority::Normal, Priority::Critical];

    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            Priority::Sheddable => "sheddable",
            Priority::Normal => "normal",
            Priority::Critical => "critical",
        }
    }
}

/// Per-request settings. `Default` means: normal priority, the engine's default timeout,
/// the engine's default chain, fallback allowed.
///
/// The request's deadline is the instant of submission plus its `timeout`: a duration here,
/// an instant (`Job::deadline`) once the engine holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// How much the request matters under pressure.
    pub priority: Priority,
    /// How long the caller will wait, from submission: every request ends, answered or not,
    /// by then (its deadline). `None`: the engine's default (`admission.default-timeout`).
    pub timeout: Option<Duration>,
    /// The targets to try, in order. `None`: the engine's default chain.
    pub chain: Option<Arc<[Target]>>,
    /// Whether a failure may move the request to the next target of its chain.
    pub allow_fallback: Option<bool>,
    /// Whether a full target passes the request on to the next one at once. `None`: the
    /// engine's `spillover` setting.
    pub spillover: Option<bool>,
    /// What an attempt is expected to spend of a rate limit, when the caller knows (e.g.
    /// counted with the API's `count_tokens`). `None`: the upstream's estimate.
    pub cost: Option<Cost>,
}

impl RequestOptions {
    /// Sets what an attempt is expected to spend of a rate limit.
    #[must_use]
    pub fn with_cost(mut self, cost: Cost) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets how long the caller will wait: the request's deadline is now plus `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the chain of targets.
    #[must_use]
    pub fn with_chain(mut self, chain: impl IntoIterator<Item = Target>) -> Self {
        self.chain = Some(chain.into_iter().collect());
        self
    }

    /// Allows or forbids falling back to the next target.
    #[must_use]
    pub fn with_fallback(mut self, allow: bool) -> Self {
        self.allow_fallback = Some(allow);
        self
    }

    /// Allows or forbids spilling over past a full target.
    #[must_use]
    pub fn with_spillover(mut self, spillover: bool) -> Self {
        self.spillover = Some(spillover);
        self
    }
}

/// One attempt a request made, for the caller's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Where it went.
    pub target: Target,
    /// `None` if it succeeded, else the class of its failure.
    pub failure: Option<Class>,
    /// The status the upstream answered with, if any.
    pub status: Option<u16>,
    /// Whether it was a half-open probe.
    pub probe: bool,
    /// When it ended, measured from the request's submission.
    pub ended_after: Duration,
}

/// A request that succeeded: the upstream's answer and how it was obtained.
#[derive(Debug)]
pub struct Answer<T> {
    /// The answer itself.
    pub value: T,
    /// The target that answered.
    pub target: Target,
    /// Every attempt made, the successful one last.
    pub attempts: Vec<Attempt>,
    /// The upstream's request id for the successful attempt.
    pub request_id: Option<String>,
    /// What the upstream changed in the request to suit the target that answered (see
    /// [`Reply::changes`](crate::Reply::changes)).
    pub changes: Option<std::sync::Arc<str>>,
}

/// Why a request ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The upstream refused the request for good (a 4xx): retrying cannot help.
    #[error("upstream refused the request: {failure}")]
    Upstream {
        /// The upstream's answer.
        failure: Failure,
        /// Every attempt made.
        attempts: Vec<Attempt>,
    },
    /// Every target of the chain failed, is open, or the retry rules ran out.
    #[error("{}", exhausted_message(.attempts, *.retry_after, .last.as_ref()))]
    Exhausted {
        /// Every attempt made (possibly none, when every target was open).
        attempts: Vec<Attempt>,
        /// The earliest time it makes sense to try again, when known.
        retry_after: Option<Duration>,
        /// The last failure met, if any attempt was made.
        last: Option<Failure>,
    },
    /// The request's deadline passed before it could be answered.
    #[error("deadline exceeded after {} attempt(s)", .attempts.len())]
    DeadlineExceeded {
        /// Every attempt made.
        attempts: Vec<Attempt>,
    },
    /// Refused at admission to protect more important work.
    #[error("shed: no capacity for {} work", .priority.as_label())]
    Shed {
        /// The refused request's priority.
        priority: Priority,
    },
    /// The engine is shutting down.
    #[error("shutting down")]
    Shutdown,
    /// The request was malformed before it reached any upstream (an empty chain, say).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The engine failed internally (an actor crashed while holding the request).
    #[error("internal engine failure: {0}")]
    Internal(String),
}

fn exhausted_message(
    attempts: &[Attempt],
    retry_after: Option<Duration>,
    last: Option<&Failure>,
) -> String {
    let mut text = format!("every target exhausted after {} attempt(s)", attempts.len());
    if let Some(last) = last {
        let _ = write!(text, "; last: {last}");
    }
    if let Some(after) = retry_after {
        let _ = write!(text, "; retry after {}ms", after.as_millis());
    }
    text
}

impl Error {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Error::Upstream { .. } | Error::Invalid(_))
    }

    /// When it makes sense to try again, if known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Exhausted { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The last status an upstream answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Upstream { failure, .. } => failure.status(),
            Error::Exhausted { last, .. } => last.as_ref().and_then(Failure::status),
            _ => None,
        }
    }

    /// The attempts made, if any.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            Error::Upstream { attempts, .. }
            | Error::Exhausted { attempts, .. }
            | Error::DeadlineExceeded { attempts } => attempts,
            _ => &[],
        }
    }

    /// The error's kind, for metrics labels.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Upstream { .. } => ErrorKind::Upstream,
            Error::Exhausted { .. } => ErrorKind::Exhausted,
            Error::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
            Error::Shed { .. } => ErrorKind::Shed,
            Error::Shutdown => ErrorKind::Shutdown,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// The kind of an [`Error`], without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::Upstream`].
    Upstream,
    /// See [`Error::Exhausted`].
    Exhausted,
    /// See [`Error::DeadlineExceeded`].
    DeadlineExceeded,
    /// See [`Error::Shed`].
    Shed,
    /// See [`Error::Shutdown`].
    Shutdown,
    /// See [`Error::Invalid`].
    Invalid,
    /// See [`Error::Internal`].
    Internal,
}

impl ErrorKind {
    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            ErrorKind::Upstream => "upstream",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Shed => "shed",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_label())
    }
}
