//! The Messages API as it travels: requests, answers and stream events kept as the bytes a
//! caller or the upstream sent, read only for what breakwater must see.
//!
//! Why bytes: the gateway and the batch runner pass bodies through. Parsing into typed
//! values and serializing again would reorder keys, change number formats and widen or
//! narrow integers, and cost a copy per attempt and per event. Here a request is parsed
//! once for routing ([`WireRequest`]); each attempt's body is the caller's bytes with the
//! target's changes spliced in; an answer ([`WireMessage`]) and each stream event
//! ([`WireEvent`]) go back as received. The typed API (`Runtime::send`) parses on demand.

mod event;
mod message;
mod request;

pub use event::{EventKind, WireEvent};
pub use message::WireMessage;
pub use request::WireRequest;
