//! breakwater's resilience engine, provider-agnostic.
//!
//! The engine is handed an [`Upstream`] and chains of [`Target`]s; it knows nothing of HTTP or
//! of any particular API. [`policy`] holds the pure decisions (what to do after a failed
//! attempt, backoff, the circuit breaker, the retry budget, admission); the actors apply them:
//! a supervisor, one dispatcher, and per target a worker and a breaker. [`Engine`] is the
//! handle that starts the tree and answers every request by its deadline.

mod board;
mod breaker;
mod config;
mod directory;
mod dispatcher;
mod engine;
mod job;
pub mod policy;
mod request;
mod supervisor;
pub mod trace;
pub mod upstream;
mod worker;

pub use board::{Board, BreakerStatus, Event, Load};
pub use config::{EngineConfig, SupervisionConfig, TargetLimits};
pub use dispatcher::{DispatcherMsg, Internal};
pub use engine::{Engine, StartError};
pub use job::{AnswerPort, StreamPort};
pub use request::{Answer, Attempt, Error, ErrorKind, Priority, RequestOptions};
pub use upstream::{
    Class, Committed, EventStream, Failure, Outcome, RateLimits, Reply, StreamEvent, Target,
    Upstream, Window, await_commit,
};
