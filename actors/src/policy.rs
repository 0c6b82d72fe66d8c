//! Pure decisions: no tasks, no I/O, and `now` is always an argument, so every rule here is
//! tested with exact values and property tests, and applied unchanged in virtual time.

pub mod admission;
pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod decision;
pub mod gate;
pub mod learn;
pub mod limit;
pub mod pacing;
pub mod parking;
pub mod restart;
pub mod route;
pub mod throttle;

pub use admission::AdmissionConfig;
pub use backoff::{Backoff, BackoffConfig, Jitter};
pub use breaker::{
    Admission, BreakerConfig, BreakerState, CircuitBreaker, Evidence, StateKind, Transition,
    TransitionReason,
};
pub use budget::{BudgetConfig, RetryBudget};
pub use decision::{Attempts, Decision, GiveUp, RetryPolicy};
pub use gate::{Gate, GateConfig, Start};
pub use learn::RateLearner;
pub use limit::{AdaptiveLimit, CapacitySignal, LimitConfig, LimitView};
pub use pacing::{Cost, RateBucket};
pub use parking::{Parked, ParkingLot};
pub use restart::{Restart, RestartPolicy};
pub use throttle::{Throttle, ThrottleConfig};

/// A policy configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A field holds a value outside its valid range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, named as it is written in configuration.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

impl PolicyError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        PolicyError::Invalid { field, reason }
    }
}
