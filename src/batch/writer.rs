//! The [`Writer`]: the one task that stores a run's results. It commits whatever has arrived
//! since its last commit in one transaction (a group commit: one disk sync per group rather
//! than per item); [`WriterCommand`] is what it is told.

use tokio::sync::{mpsc, oneshot};

use crate::store::{BATCH, ItemUpdate, SharedStore, StoreError};

/// What the writer is told.
pub(super) enum WriterCommand {
    /// Store this.
    Store(ItemUpdate),
    /// Reply once everything sent before is stored.
    Flush(oneshot::Sender<()>),
}

/// The one task that stores results: it commits whatever has arrived since its last commit
/// in one transaction.
pub(super) struct Writer {
    pub(super) task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl Writer {
    /// The most updates committed at once.
    const GROUP: usize = 512;

    pub(super) fn start(store: SharedStore) -> (Writer, mpsc::UnboundedSender<WriterCommand>) {
        let (sender, mut inbox) = mpsc::unbounded_channel::<WriterCommand>();
        let task = tokio::spawn(async move {
            while let Some(first) = inbox.recv().await {
                let mut group = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next {
                    match message {
                        WriterCommand::Store(update) => group.push(update),
                        WriterCommand::Flush(reply) => flushes.push(reply),
                    }
                    next = if group.len() < Self::GROUP {
                        inbox.try_recv().ok()
                    } else {
                        None
                    };
                }
                if !group.is_empty() {
                    store
                        .call(move |store| store.update_many(BATCH, &group))
                        .await?;
                }
                for reply in flushes {
                    let _ = reply.send(());
                }
            }
            Ok(())
        });
        (Writer { task }, sender)
    }

    /// Waits until every update sent so far is stored.
    pub(super) async fn flush(
        &self,
        commands: &mpsc::UnboundedSender<WriterCommand>,
    ) -> Result<(), StoreError> {
        let (reply, stored) = oneshot::channel();
        if commands.send(WriterCommand::Flush(reply)).is_ok() && stored.await.is_ok() {
            return Ok(());
        }
        // The writer stopped: it failed, and says why when joined.
        Err(StoreError::Cancelled)
    }

    /// Stores what is left and stops.
    pub(super) async fn close(
        self,
        commands: mpsc::UnboundedSender<WriterCommand>,
    ) -> Result<(), StoreError> {
        drop(commands);
        self.task.await.map_err(|_| StoreError::Cancelled)?
    }
}
