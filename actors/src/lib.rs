//! breakwater's resilience engine, provider-agnostic.
//!
//! The engine is handed an [`Upstream`] (one attempt against one [`Target`]) and chains of
//! targets; it knows nothing of HTTP or of any particular API. [`Engine`] is the handle that
//! starts the actor tree and answers every request by its deadline. What is here:
//!
//! - the actors, one concern each, which match a message, ask a policy, perform the effect
//!   and record metrics: the supervisor (spawns, links and restarts the others), the
//!   dispatcher (admission, routing along the chain, retry or fallback, the parking lot), and
//!   per target a worker (its gate: concurrency, pacing, pauses; each attempt as its own task)
//!   and a breaker (the circuit breaker state machine, its timers and half-open probes);
//! - [`policy`]: every decision, pure and table-tested: retry or fall back after a failure,
//!   routing, the worker's gate, backoff, the breaker, the retry budget, admission, the parking
//!   lot, the adaptive limit, pacing by rate-limit headers, client-side throttling, and the
//!   supervisor's restart policy;
//! - [`upstream`]: the seam to the world: the [`Upstream`] trait, its [`Outcome`], the
//!   failure [`Class`]es, rate-limit [`Window`]s, and [`await_commit`] for streams;
//! - what callers hand over and get back: [`RequestOptions`], [`Answer`], [`Error`];
//! - [`Board`]: the shared, lock-free view of every breaker and limit, and its events;
//! - [`trace`]: request and attempt spans, with `tracing` only;
//! - [`EngineConfig`]: the settings, every one with a default.
//!
//! The layers, the life of a request and the decisions behind them: docs/ARCHITECTURE.md.

mod board;
mod breaker;
mod caller;
pub mod chaos;
mod config;
mod directory;
mod dispatcher;
mod engine;
pub mod fleet;
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
