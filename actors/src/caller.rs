//! A caller of the [`Engine`](crate::Engine) handle waiting for its answer. A caller that
//! goes away (its `send` or `stream` future dropped: a client that disconnected, a timeout
//! around the call) closes its reply port and tells the dispatcher at once, which sweeps the
//! engine for abandoned jobs: their attempts are aborted, and their worker, queue and
//! admission slots freed, instead of running on for nobody (ARCHITECTURE.md, "Life of a
//! request").

use ractor::concurrency::OneshotReceiver;

use crate::dispatcher::{DispatcherRef, Signal};
use crate::upstream::Upstream;

/// The receiving end of a caller's reply port. Dropped before it is answered, it closes the
/// port first, so that every job it sent reads as abandoned, then signals the dispatcher.
pub(crate) struct Waiting<T, U: Upstream> {
    reply: Option<OneshotReceiver<T>>,
    dispatcher: DispatcherRef<U>,
}

impl<T, U: Upstream> Waiting<T, U> {
    pub(crate) fn new(reply: OneshotReceiver<T>, dispatcher: DispatcherRef<U>) -> Self {
        Self {
            reply: Some(reply),
            dispatcher,
        }
    }

    /// Waits for the answer; `None` if the port was closed without one.
    pub(crate) async fn answer(&mut self) -> Option<T> {
        let reply = self.reply.as_mut()?;
        let answer = reply.await.ok();
        // Answered (or dropped by the engine): nothing is left to cancel.
        self.reply = None;
        answer
    }
}

impl<T, U: Upstream> Drop for Waiting<T, U> {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            drop(reply);
            // A dispatcher that is gone holds nothing to sweep.
            let _ = self.dispatcher.cast(Signal::Left.into());
        }
    }
}
