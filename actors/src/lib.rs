//! breakwater's resilience engine, provider-agnostic.
//!
//! The engine is handed an [`Upstream`] and a chain of [`Target`]s; it knows nothing of HTTP
//! or of any particular API. [`policy`] holds the pure decisions (what to do after a failed
//! attempt, how long to back off); the actors that apply them build on this seam.

pub mod policy;
pub mod upstream;

pub use upstream::{
    Class, Committed, EventStream, Failure, Outcome, RateLimits, Reply, StreamEvent, Target,
    Upstream, Window, await_commit,
};
