//! Deferred requests: work that can wait, kept in the runtime's SQLite store until capacity
//! allows, across restarts.
//!
//! [`Runtime::defer`](super::Runtime::defer) returns a [`Ticket`] once the request is
//! durable. A background pump serves deferred work as [`Priority::Sheddable`] (so live traffic
//! is admitted first and deferred work is the first shed), at most a few at a time, only
//! while the engine holds less than half its admission bound and some model is not open.
//! A try that fails retryably puts the request back with a growing backoff; a permanent
//! error is final. After a restart, tickets left pending or in flight are picked up again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::Core;
use crate::api::{Message, MessagesRequest, RequestHeaders, WireRequest};
use crate::engine::policy::StateKind;
use crate::engine::{Priority, RequestOptions, Target};
use crate::store::{
    DEFERRED, Item, ItemResult, ItemUpdate, Requeue, SharedStore, State, Store, StoreError,
    Verdict, decide_item, now_ms,
};

/// Deferred requests tried at once.
const CONCURRENCY: usize = 4;
/// How long one try may take, retries and fallbacks included, when the request named no
/// deadline.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
/// How a request put back is delayed: from 1s, doubling per try, up to a minute.
const REQUEUE: Requeue = Requeue {
    first: Duration::from_secs(1),
    max: MAX_BACKOFF,
    seed: None,
};
/// The longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A deferred request's handle: keep its [`Ticket::id`] to ask after it, even after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ticket(String);

impl Ticket {
    /// The ticket with this id, as [`Ticket::id`] gave it.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a deferred request is.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TicketStatus {
    /// Waiting for capacity, or for its backoff after a failed try.
    Pending {
        /// Tries so far.
        attempts: u32,
        /// Why the last try failed, if one did.
        last_error: Option<String>,
    },
    /// Being tried now.
    InFlight {
        /// Tries so far, this one included.
        attempts: u32,
    },
    /// Answered.
    Succeeded(Box<Message>),
    /// Refused for good (a permanent error).
    Errored {
        /// The API's `error.type`.
        kind: String,
        /// Its message.
        message: String,
    },
}

/// Why a request could not be deferred, or a ticket not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeferError {
    /// The runtime keeps no store.
    #[error(
        "this runtime has no store for deferred requests: build it with RuntimeBuilder::store(PATH)"
    )]
    NoStore,
    /// The store failed; the request was not deferred.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a deferred request is to be sent, stored beside it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain: Option<Vec<StoredTarget>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allow_fallback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anthropic_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anthropic_beta: Option<String>,
}

/// A target of a stored chain: its model, and the upstream it goes through when not the
/// default one.
#[derive(Debug, Serialize, Deserialize)]
struct StoredTarget {
    model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    via: Option<String>,
}

impl StoredTarget {
    fn target(&self) -> Target {
        let target = Target::new(self.model.as_str());
        match &self.via {
            Some(via) => target.via(via.as_str()),
            None => target,
        }
    }
}

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
        let stored = StoredOptions {
            chain: options.chain.as_ref().map(|chain| {
                chain
                    .iter()
                    .map(|t| StoredTarget {
                        model: t.model().to_owned(),
                        via: t.upstream().map(str::to_owned),
                    })
                    .collect()
            }),
            deadline_ms: options
                .deadline
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            allow_fallback: options.allow_fallback,
            anthropic_version: request.headers.version.clone(),
            anthropic_beta: request.headers.beta.clone(),
        };
        let payload = serde_json::to_string(request).unwrap_or_default();
        let options = serde_json::to_string(&stored).unwrap_or_default();
        let ticket = Ticket(format!("tkt_{:024x}", rand::random::<u128>() >> 32));
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

fn status_of(item: &Item) -> TicketStatus {
    match item.state {
        State::Pending => TicketStatus::Pending {
            attempts: item.attempts,
            last_error: item.last_error.clone(),
        },
        State::InFlight => TicketStatus::InFlight {
            attempts: item.attempts,
        },
        State::Succeeded | State::Errored => {
            let stored = item
                .result
                .as_deref()
                .and_then(|text| serde_json::from_str::<ItemResult>(text).ok());
            match stored {
                Some(ItemResult::Succeeded { message }) => {
                    TicketStatus::Succeeded(Box::new(message))
                }
                Some(ItemResult::Errored { error }) => TicketStatus::Errored {
                    kind: error.kind,
                    message: error.message,
                },
                None => TicketStatus::Errored {
                    kind: "api_error".into(),
                    message: "the stored result could not be read".into(),
                },
            }
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

/// One try of a deferred request; what to store of it.
async fn attempt(core: &Core, item: &Item) -> ItemUpdate {
    let stored: StoredOptions = item
        .options
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let payload = bytes::Bytes::copy_from_slice(item.payload.as_bytes());
    let request = match WireRequest::from_json(payload) {
        Ok(request) => request,
        Err(error) => {
            return ItemUpdate::Fail {
                key: item.key.clone(),
                error: ItemResult::errored_json("invalid_request_error", &error.to_string()),
            };
        }
    };
    let request = request.with_headers(RequestHeaders {
        version: stored.anthropic_version,
        beta: stored.anthropic_beta,
        credentials: None,
    });
    let mut options = RequestOptions::default()
        .with_priority(Priority::Sheddable)
        .with_deadline(
            stored
                .deadline_ms
                .map_or(DEFAULT_DEADLINE, Duration::from_millis),
        );
    if let Some(chain) = stored.chain {
        let chain: Vec<Target> = chain.iter().map(StoredTarget::target).collect();
        // A model served alone when it was deferred is not served after a restart until
        // asked for again.
        for target in &chain {
            if !core.engine.serves(target)
                && let Err(error) = core.engine.add_target(target.clone()).await
            {
                return update_for(item, Err(error));
            }
        }
        options = options.with_chain(chain);
    }
    if let Some(allow) = stored.allow_fallback {
        options = options.with_fallback(allow);
    }
    let sent = core.send_with(request, options).await;
    update_for(item, sent)
}

/// What to store of a try: as a batch item, except that what would halt a batch (a refused
/// key, a stopped runtime) puts the ticket back for the longest backoff instead.
fn update_for(
    item: &Item,
    sent: Result<crate::engine::Answer<crate::api::WireMessage>, crate::engine::Error>,
) -> ItemUpdate {
    if let Err(crate::engine::Error::Shutdown) = &sent {
        // Cut short by a shutdown: due again at once, in the next runtime.
        return ItemUpdate::Release {
            key: item.key.clone(),
            not_before: 0,
            last_error: None,
        };
    }
    match decide_item(item, sent, &REQUEUE) {
        Verdict::Store(update) => update,
        Verdict::Halt { why, .. } => {
            tracing::warn!(ticket = item.key, why, "deferred request put back");
            ItemUpdate::Release {
                key: item.key.clone(),
                not_before: now_ms().saturating_add(MAX_BACKOFF.as_millis() as u64),
                last_error: Some(why),
            }
        }
    }
}
