//! A fleet of replicas sharing what they learn: each engine keeps deciding locally, from its
//! own breakers and a cached view of the fleet's, while a link task keeps that view fresh and
//! writes this replica's evidence to a shared [`Store`] (Redis in the runtime).
//!
//! Nothing on a request's path waits on the store: the breaker actors hear of the fleet's
//! transitions as messages, and tell the link of outcomes the same way. A store that is down,
//! slow or holding garbage puts the link in local mode, where every breaker works alone as it
//! would without a fleet, until the store is back.

pub mod store;

pub use store::{MemoryStore, Published, Store, StoreError, Swap, Versioned};
