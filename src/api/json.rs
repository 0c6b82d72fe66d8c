//! Byte-level JSON editing: where the members of an object and the items of an array sit in
//! a document, and a [`Patch`] that splices edits into the original bytes without parsing
//! and re-serializing the rest.
//!
//! Why: a request body goes upstream as the caller wrote it (key order, number formats,
//! integers wider than 64 bits), with only what a target needs changed. Re-serializing
//! through `serde_json::Value` would reorder keys, turn `1e2` into `100.0` and big integers
//! into floats, and copy the whole body once per attempt. A patched body is the original
//! [`Bytes`](bytes::Bytes) cut into shared slices around the edits (see [`Chunks`]).
//!
//! The scanner expects a document serde has already accepted; on anything else it returns
//! [`JsonError`] rather than panicking.

mod edit;
mod object;
mod scan;

pub use edit::{Chunks, Patch, PatchError};
pub use object::ObjectEdit;
pub use scan::{Entry, JsonError, items, members, root};
