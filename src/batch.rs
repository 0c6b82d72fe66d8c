//! The batch runner behind `breakwater batch run`: a JSONL file of Message Batches-shaped
//! requests, run through the [`Runtime`](crate::runtime::Runtime) and kept in a SQLite
//! [`Store`](crate::store::Store) so that a run killed
//! at any moment (even `kill -9`) continues where it stopped when run again.
//!
//! Exactly once: every item's result is stored before anything else is done with it, and a
//! stored result is final, so an item is never sent again once its result is stored; the
//! output file is written from the store only when every item is final, to a temporary file
//! renamed into place, so it never holds a partial run and holds every `custom_id` once.
//!
//! Retryable failures that outlast the runtime's deadline (every model overloaded, say) put
//! the item back as pending, due again after a backoff that grows with its attempts, and the
//! run goes on with other items; permanent errors (4xx, a request the API refuses) are stored
//! as `errored` at once.
//!
//! Layout, one concern per file: [`BatchOptions`] (`options`), [`BatchError`] (`error`),
//! [`Batch::prepare`] validating and loading the input (`prepare`, `load`), the run loop
//! (`run`), one item's try (`send`), the watch for a run stuck on its upstream (`stall`), the one task storing results (`writer`) and the output
//! file (`output`). What a try comes to is decided by the rule the runtime's deferred
//! requests share, in the store: a `Verdict` carrying an [`ItemUpdate`](crate::store::ItemUpdate).

mod error;
pub mod input;
mod load;
mod options;
mod output;
mod prepare;
mod run;
mod send;
mod stall;
mod writer;

pub use error::BatchError;
pub use input::{Invalid, Problem};
pub use options::BatchOptions;
pub use output::status;
pub use prepare::Batch;
pub use run::{Progress, Summary};
pub use stall::Stall;
