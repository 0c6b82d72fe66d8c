//! The breaker's states, its transitions, and its answer to an attempt that asks to go ahead.

use tokio::time::Instant;

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until `until`.
    Open {
        /// When the breaker may go half-open.
        until: Instant,
    },
    /// A few probes are let through to test the target.
    HalfOpen,
    /// Forced open by an operator: everything is rejected until a reset.
    Isolated,
}

impl BreakerState {
    /// The state without its data.
    pub fn kind(self) -> StateKind {
        match self {
            BreakerState::Closed => StateKind::Closed,
            BreakerState::Open { .. } => StateKind::Open,
            BreakerState::HalfOpen => StateKind::HalfOpen,
            BreakerState::Isolated => StateKind::Isolated,
        }
    }
}

/// A breaker state without its data, for events and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// See [`BreakerState::Closed`].
    Closed,
    /// See [`BreakerState::Open`].
    Open,
    /// See [`BreakerState::HalfOpen`].
    HalfOpen,
    /// See [`BreakerState::Isolated`].
    Isolated,
}

impl StateKind {
    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            StateKind::Closed => "closed",
            StateKind::Open => "open",
            StateKind::HalfOpen => "half_open",
            StateKind::Isolated => "isolated",
        }
    }
}

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `consecutive-failures` health failures in a row.
    ConsecutiveFailures,
    /// The window's failure ratio reached `failure-ratio`.
    FailureRatio,
    /// A half-open probe met a health failure.
    ProbeFailed,
    /// `successes-to-close` probes succeeded.
    ProbesSucceeded,
    /// The open interval passed.
    OpenElapsed,
    /// An operator isolated the target.
    Isolated,
    /// An operator reset the breaker.
    Reset,
    /// The fleet's shared breaker moved (another replica's evidence, or its probe).
    Fleet,
}

impl TransitionReason {
    /// A stable, low-cardinality name for metrics labels and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            TransitionReason::ConsecutiveFailures => "consecutive_failures",
            TransitionReason::FailureRatio => "failure_ratio",
            TransitionReason::ProbeFailed => "probe_failed",
            TransitionReason::ProbesSucceeded => "probes_succeeded",
            TransitionReason::OpenElapsed => "open_elapsed",
            TransitionReason::Isolated => "isolated",
            TransitionReason::Reset => "reset",
            TransitionReason::Fleet => "fleet",
        }
    }
}

/// A change of state, for the breaker actor to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: StateKind,
    /// The state entered.
    pub to: StateKind,
    /// When.
    pub at: Instant,
    /// Why.
    pub reason: TransitionReason,
}

/// Whether a call may go to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// Half-open: go ahead as a probe; record its outcome with `probe: true`, or release it.
    Probe,
    /// Not now.
    Rejected {
        /// The open deadline; `None` while half-open with every probe slot taken, or isolated.
        until: Option<Instant>,
    },
}
