//! Deferred requests: work that can wait, kept in the runtime's SQLite store until capacity
//! allows, across restarts.
//!
//! [`Runtime::defer`](super::Runtime::defer) returns a [`Ticket`] once the request is
//! durable. A background pump serves deferred work as [`Priority::Sheddable`] (so live traffic
//! is admitted first and deferred work is the first shed), at most a few at a time, only
//! while the engine holds less than half its admission bound and some model is not open.
//! A try that fails retryably puts the request back with a growing backoff; a permanent
//! error is final. After a restart, tickets left pending or in flight are picked up again.
//!
//! [`Priority::Sheddable`]: crate::engine::Priority::Sheddable

mod attempt;
mod stored;
mod ticket;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::core::Core;
use crate::api::MessagesRequest;
use crate::engine::RequestOptions;
use crate::engine::policy::StateKind;
use crate::store::{DEFERRED, SharedStore, Store, StoreError, now_ms};
use attempt::attempt;
use stored::StoredOptions;
use ticket::status_of;

pub use ticket::{DeferError, Ticket, TicketStatus};

/// Deferred requests tried at once.
const CONCURRENCY: usize = 4;

/// The runtime's store and the pump serving it.
pub(crate) struct Deferred {
    store: SharedStore,
    wake: Arc<Notify>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    pump: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Deferred {
    /// Opens (or creates) the store at `path` for this process alone, puts back what a
    /// previous process left in flight, and starts the pump.
    pub(crate) async fn start(path: &Path, core: Arc<Core>) -> Result<Deferred, StoreError> {
        let path = path.to_owned();
        let store = tokio::task::spawn_blocking(move || {
            let store = Store::open_exclusive(&path)?;
            store.recover(DEFERRED)?;
            Ok::<_, StoreError>(store)
        })
        .await
        .map_err(|_| StoreError::Cancelled)??;
        let store = SharedStore::new(store);
        let wake = Arc::new(Notify::new());
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pump = tokio::spawn(pump(core, store.clone(), wake.clone(), closing.clone()));
        Ok(Deferred {
            store,
            wake,
            closing,
            pump: std::sync::Mutex::new(Some(pump)),
        })
    }

    pub(crate) async fn defer(
        &self,
        request: &MessagesRequest,
        options: &RequestOptions,
    ) -> Result<Ticket, DeferError> {
        let stored = StoredOptions::of(request, options);
        let payload = serde_json::to_string(request).unwrap_or_default();
        let options = serde_json::to_string(&stored).unwrap_or_default();
        let ticket = Ticket::new(format!("tkt_{:024x}", rand::random::<u128>() >> 32));
        self.store
            .enqueue(DEFERRED, ticket.id(), payload, Some(options))
            .await?;
        self.wake.notify_one();
        Ok(ticket)
    }

    pub(crate) async fn status(&self, ticket: &Ticket) -> Result<Option<TicketStatus>, DeferError> {
        let Some(item) = self.store.get(DEFERRED, ticket.id()).await? else {
            return Ok(None);
        };
        Ok(Some(status_of(&item)))
    }

    /// Starts nothing more; requests being tried go on (the engine's drain bounds them).
    pub(crate) fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Waits up to `grace` for the pump to store what its requests came to, then stops it;
    /// a request cut short stays in flight and is put back at the next start.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.close();
        let pump = self.pump.lock().ok().and_then(|mut pump| pump.take());
        if let Some(mut pump) = pump
            && tokio::time::timeout(grace, &mut pump).await.is_err()
        {
            pump.abort();
            let _ = pump.await;
        }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.lock().ok().and_then(|mut pump| pump.take()) {
            pump.abort();
        }
    }
}

/// Serves deferred requests while the runtime lives.
async fn pump(
    core: Arc<Core>,
    store: SharedStore,
    wake: Arc<Notify>,
    closing: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if closing.load(std::sync::atomic::Ordering::SeqCst) {
            while running.join_next().await.is_some() {}
            return;
        }
        let room = CONCURRENCY.saturating_sub(running.len());
        let claimed = if room > 0 && has_capacity(&core) {
            match store.claim(DEFERRED, now_ms(), room).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "cannot read deferred requests; retrying");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        // The claim waited on the database: if every model opened meanwhile, give the items
        // back as they were rather than send them into open breakers.
        let claimed = if claimed.is_empty() || has_capacity(&core) {
            claimed
        } else {
            let keys: Vec<String> = claimed.into_iter().map(|item| item.key).collect();
            let given = store
                .call(move |store| keys.iter().try_for_each(|key| store.unclaim(DEFERRED, key)))
                .await;
            if let Err(error) = given {
                // They stay in flight, and are put back at the next start.
                tracing::warn!(%error, "cannot give back deferred requests");
            }
            Vec::new()
        };
        let idle = claimed.is_empty();
        for item in claimed {
            let (core, store) = (core.clone(), store.clone());
            running.spawn(async move {
                let update = attempt(&core, &item).await;
                let stored = store
                    .call(move |store| store.update_many(DEFERRED, &[update]))
                    .await;
                if let Err(error) = stored {
                    // It stays in flight, and is put back at the next start.
                    tracing::warn!(%error, ticket = item.key, "cannot store a deferred result");
                }
            });
        }
        if idle {
            tokio::select! {
                () = wake.notified() => {}
                _ = running.join_next(), if !running.is_empty() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// Whether deferred work may start now: the engine holds less than half its admission bound,
/// and some model is not open.
fn has_capacity(core: &Core) -> bool {
    let engine = &core.engine;
    let bound = engine.config().admission.max_outstanding.get() / 2;
    if engine.outstanding() >= bound.max(1) {
        return false;
    }
    let board = engine.board();
    engine
        .targets()
        .iter()
        .any(|target| matches!(board.state(target), StateKind::Closed | StateKind::HalfOpen))
}
