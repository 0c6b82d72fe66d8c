//! breakwater keeps a service answering when the Claude API is overloaded.
//!
//! This crate holds everything Claude-shaped; the provider-agnostic engine (actors and pure
//! policies) lives in `breakwater-actors`, re-exported here as [`engine`]. From the bottom up:
//!
//! - [`api`]: the Messages API as types (requests, responses, errors, SSE events, rate-limit
//!   headers) and as bytes on the wire (`WireRequest`, `WireMessage`, `WireEvent`, byte-level
//!   JSON edits, SSE framing), the classification of failures, and the per-attempt adaptation
//!   of a request to a fallback model;
//! - [`catalog`]: the model catalogue (`models.toml`, overrides, what `GET /v1/models` says):
//!   what each model accepts;
//! - [`client`]: the `Upstream` (the Claude API's attempts on hyper's pooled client, the
//!   platforms' on reqwest), the only code that touches the network, and the pass-through
//!   client for routes the gateway forwards;
//! - [`config`]: `breakwater.toml`, read and validated into one [`config::Config`];
//! - [`fleet`]: the fleet's shared memory on Redis ([`fleet::RedisStore`]), behind the engine's
//!   `Store` seam;
//! - [`store`]: the durable queue on one SQLite file, with the result record, the rule that
//!   turns an attempt into an item update, and the requeue delay the batch runner and deferred
//!   requests share;
//! - [`runtime`]: the embedded facade, [`runtime::Runtime`] and its builder: `send`, `stream`,
//!   `defer`, tickets, breakers, shutdown;
//! - [`gateway`]: `breakwater serve`, the Anthropic-compatible gateway;
//! - [`batch`]: `breakwater batch`, a JSONL file of requests run resumably;
//! - [`load`]: open-loop Poisson traffic through a runtime, and its report;
//! - [`mock`]: the loopback Anthropic-compatible mock server that browns out on a script;
//! - [`sim`]: the overload harness: the real runtime and baseline strategies in virtual time;
//! - [`telemetry`]: request and attempt spans in the OpenTelemetry GenAI conventions, over OTLP;
//! - [`wallclock`]: the one place wall-clock time is read, for what is stored.
//!
//! The layers and the rule between them (no import cycle but the actors' messages) are in
//! docs/ARCHITECTURE.md.

pub mod api;
pub mod batch;
pub mod catalog;
pub mod client;
pub mod config;
pub mod fleet;
pub mod gateway;
pub mod load;
pub mod mock;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod wallclock;

pub use breakwater_actors as engine;
