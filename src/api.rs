//! Serde types for the Claude Messages API, and the bridge from its responses to the engine:
//! headers into [`ResponseMeta`], errors into a classified [`Failure`](breakwater_actors::Failure).
//!
//! Everything here is pure; the client and the mock server do the I/O. Unknown fields, block
//! types, event types and error types are kept rather than rejected, so new API features pass
//! through breakwater untouched.

pub mod adapt;
pub mod classify;
pub mod content;
pub mod error;
pub mod headers;
pub mod json;
pub mod request;
pub mod response;
pub mod sse;
pub mod stream;
pub mod wire;

pub use classify::{answered, classify, failure, stream_failure};
pub use content::ContentBlock;
pub use error::{ApiError, ErrorBody, ErrorType};
pub use headers::{AMZN_REQUEST_ID, ResponseMeta, merge_betas, rate_limit_headers};
pub use request::{
    InputMessage, MessageContent, MessagesRequest, RequestError, RequestHeaders, Role, System,
};
pub use response::{Message, Usage};
pub use stream::{Delta, MessageAccumulator, MessageDeltaBody, MessageStreamEvent, events_for};
pub use wire::{EventKind, WireEvent, WireMessage, WireRequest};
