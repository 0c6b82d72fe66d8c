//! Watching a simulated fleet's breakers, to count open periods: the fleet's own breaker
//! through the writes to its record in the store ([`ObservedStore`]), and each replica's
//! breaker deciding alone through its engine's events ([`count_local_opens`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::engine::fleet::record::{SharedBreaker, SharedState};
use crate::engine::fleet::{MemoryStore, Published, Store, StoreError, Swap, Versioned};
use crate::engine::policy::StateKind;
use crate::engine::policy::breaker::TransitionReason;
use crate::engine::{Event, Target};
use crate::sim::run::lock;

/// A [`MemoryStore`] that keeps, for one target, what every write made of its shared
/// breaker: its state, and its failed half-open rounds, by version.
#[derive(Clone)]
pub(super) struct ObservedStore {
    inner: MemoryStore,
    key: Arc<str>,
    writes: Arc<Mutex<BTreeMap<u64, (StateKind, u32)>>>,
}

impl ObservedStore {
    /// A fresh store answering after `latency`, watching `target`'s record (the key the
    /// [`Store`] documents: `{target}:breaker`).
    pub(super) fn new(target: &str, latency: Duration) -> Self {
        let inner = MemoryStore::new();
        inner.set_latency(latency);
        Self {
            inner,
            key: format!("{{{target}}}:breaker").into(),
            writes: Arc::default(),
        }
    }

    /// Makes the store unreachable, or reachable again.
    pub(super) fn set_down(&self, down: bool) {
        self.inner.set_down(down);
    }

    /// Open periods of the fleet's breaker: writes, in version order, that opened it from
    /// closed (a trip on the fleet's evidence) or after a failed half-open round (a failed
    /// probe: `rounds` grew). A probe given back unused reopens it without a new round, and
    /// continues the same period.
    pub(super) fn opens(&self) -> u64 {
        let writes = lock(&self.writes);
        let mut previous = (StateKind::Closed, 0);
        let mut opens = 0;
        for &(state, rounds) in writes.values() {
            let (was, was_rounds) = previous;
            let opened = was == StateKind::Closed || rounds > was_rounds;
            opens += u64::from(state == StateKind::Open && opened);
            previous = (state, rounds);
        }
        opens
    }

    fn note(&self, version: u64, value: &str) {
        let Ok(record) = SharedBreaker::parse(value) else {
            return;
        };
        let state = match record.state {
            SharedState::Closed => StateKind::Closed,
            SharedState::Open { .. } => StateKind::Open,
            SharedState::HalfOpen { .. } => StateKind::HalfOpen,
        };
        lock(&self.writes).insert(version, (state, record.rounds));
    }
}

impl Store for ObservedStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>> {
        self.inner.get(key)
    }

    fn swap<'a>(
        &'a self,
        key: &'a str,
        expect: u64,
        value: String,
    ) -> BoxFuture<'a, Result<Swap, StoreError>> {
        let watched = (*self.key == *key).then(|| value.clone());
        Box::pin(async move {
            let swap = self.inner.swap(key, expect, value).await;
            if let (Ok(Swap::Written(version)), Some(value)) = (&swap, watched) {
                self.note(*version, &value);
            }
            swap
        })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Published>, StoreError>> {
        self.inner.subscribe()
    }

    fn heartbeat<'a>(
        &'a self,
        replica: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.inner.heartbeat(replica, now_ms, ttl)
    }

    fn leave<'a>(&'a self, replica: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.leave(replica)
    }
}

/// Counts into `opens` the times `primary`'s breaker on `replica` opens on that replica's own
/// decision: a trip on its own evidence, or the failure of a probe it half-opened for itself.
/// Openings that follow the fleet's breaker, and the failure of the fleet's one probe when
/// this replica holds it (it half-opened because the fleet granted it the probe), are the
/// fleet's, counted by [`ObservedStore::opens`]. Runs until the events end or the task is
/// aborted.
pub(super) async fn count_local_opens(
    mut events: broadcast::Receiver<Event>,
    primary: Target,
    opens: Arc<AtomicU64>,
) {
    use broadcast::error::RecvError;
    // Whether the probe under way, if any, is the fleet's.
    let mut fleet_probe = false;
    loop {
        match events.recv().await {
            Ok(Event::Breaker {
                target, to, reason, ..
            }) if target == primary => match (to, reason) {
                (StateKind::HalfOpen, reason) => fleet_probe = reason == TransitionReason::Fleet,
                (StateKind::Open, TransitionReason::Fleet) => {}
                (StateKind::Open, TransitionReason::ProbeFailed) if fleet_probe => {}
                (StateKind::Open, _) => {
                    opens.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
