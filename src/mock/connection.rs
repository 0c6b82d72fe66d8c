//! [`ConnectionHandle`]: lets a request handler close its own connection without a
//! response (the `drop` fault), below HTTP: the server's connection task waits on it.

use std::sync::Arc;

use tokio::sync::Notify;

/// Lets a request handler close its own connection without a response.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionHandle(Arc<Notify>);

impl ConnectionHandle {
    /// A handle that wakes whoever waits on `cut`.
    pub(super) fn new(cut: Arc<Notify>) -> Self {
        Self(cut)
    }

    /// Tells the connection's task to drop the connection.
    pub(crate) fn cut(&self) {
        // notify_one keeps a permit if the task is not waiting yet, so the cut is never lost.
        self.0.notify_one();
    }
}
