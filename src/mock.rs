//! The loopback mock server: an Anthropic-compatible `POST /v1/messages` that browns out,
//! rate-limits and misbehaves on a script ([`Scenario`]), and minimal models, Message
//! Batches and Files routes (always healthy) for what a gateway forwards. Users point their
//! own clients at it to rehearse an overload; the project's HTTP tests start one per test
//! on `127.0.0.1:0`.
//!
//! [`scenario`](Scenario) is the script, [`ModelCapacity`] the pure per-model capacity model
//! (slots, brownouts, rate limit, service time), and [`MockServer`] the HTTP server that plays
//! them.

mod app;
mod batches;
mod bedrock;
mod capacity;
mod connection;
mod fault;
mod files;
mod messages;
mod paging;
mod platform;
mod registry;
mod reply;
mod respond;
mod routes;
mod rules;
mod scenario;
mod server;
mod signature;
mod sigv4;
mod tokens;
mod vertex;

pub use capacity::{Admission, ModelCapacity, SlotGuard};
pub use fault::{Fault, FaultKind};
pub use registry::{MAX_DEFAULT_MODELS, ModelStats, OVERFLOW_MODEL, Stats};
pub use scenario::{
    BedrockScenario, Brownout, Distribution, ModelSpec, Scenario, ScenarioError, VertexScenario,
};
pub use server::MockServer;
pub use sigv4::{MAX_SKEW, SigV4Rejection, SigV4Verifier};
