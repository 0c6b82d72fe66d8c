//! breakwater keeps a service answering when the Claude API is overloaded.
//!
//! This crate holds everything Claude-shaped: the Messages API types ([`api`]), the HTTP
//! [`client`] (the only code that touches the network), the loopback [`mock`] server that
//! browns out on a script, the durable queue [`store`] (one SQLite file) behind
//! `batch run` and deferred requests, the model [`catalog`] (what each model accepts), and
//! [`telemetry`] (request and attempt spans, exported over OTLP).
//! The provider-agnostic engine lives in `breakwater-actors`, re-exported here as [`engine`].

pub mod api;
pub mod batch;
pub mod catalog;
pub mod client;
pub mod config;
pub mod gateway;
pub mod load;
pub mod mock;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod wallclock;

pub use breakwater_actors as engine;
