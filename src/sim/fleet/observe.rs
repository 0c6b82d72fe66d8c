//! Watching a simulated fleet's breakers, to count open periods: the fleet's own breaker
//! through the writes to its record in the store ([`ObservedStore`]), and each replica's
//! breaker deciding alone through its engine's events ([`count_local_opens`]); an opening of
//! a replica's own that comes with one of the fleet's is the same period ([`apart`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::engine::fleet::record::{SharedBreaker, SharedState};
use crate::engine::fleet::{MemoryStore, Published, Store, StoreError, Swap, Versioned};
use crate::engine::policy::StateKind;
use crate::engine::policy::breaker::TransitionReason;
use crate::engine::{Event, Target};
use crate::sim::run::lock;

/// How close (either way) an opening of a replica's own breaker must be to an opening of the
/// fleet's to be the same period: a replica that trips on its own evidence tells the fleet,
/// whose breaker opens a store round trip later.
pub(super) const SAME_PERIOD: Duration = Duration::from_secs(1);

/// A [`MemoryStore`] that keeps, for one target, what every write made of its shared
/// breaker: its state, its failed half-open rounds, and when it was written, by version.
#[derive(Clone)]
pub(super) struct ObservedStore {
    inner: MemoryStore,
    key: Arc<str>,
    writes: Arc<Mutex<BTreeMap<u64, Write>>>,
}

/// What one write made of the watched record: its state, its failed half-open rounds, and
/// when it was written.
type Write = (StateKind, u32, Instant);

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

    /// When the fleet's breaker began an open period: writes, in version order, that opened
    /// it from closed (a trip on the fleet's evidence) or after a failed half-open round (a
    /// failed probe: `rounds` grew). A probe given back unused reopens it without a new
    /// round, and continues the same period.
    pub(super) fn opens(&self) -> Vec<Instant> {
        let writes = lock(&self.writes);
        let mut previous = (StateKind::Closed, 0);
        let mut opens = Vec::new();
        for &(state, rounds, at) in writes.values() {
            let (was, was_rounds) = previous;
            if state == StateKind::Open && (was == StateKind::Closed || rounds > was_rounds) {
                opens.push(at);
            }
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
        lock(&self.writes).insert(version, (state, record.rounds, Instant::now()));
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

    fn report<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: String,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        self.inner.report(key, field, value, now_ms, ttl)
    }

    fn leave<'a>(&'a self, replica: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.leave(replica)
    }
}

/// Keeps in `opens` when `primary`'s breaker opens on a replica (whose events these are) on its
/// own decision: a trip on its own evidence, or the failure of a probe it half-opened for itself.
/// Openings that follow the fleet's breaker, and the failure of the fleet's one probe when
/// this replica holds it (it half-opened because the fleet granted it the probe), are the
/// fleet's, counted by [`ObservedStore::opens`]. Runs until the events end or the task is
/// aborted.
pub(super) async fn count_local_opens(
    mut events: broadcast::Receiver<Event>,
    primary: Target,
    opens: Arc<Mutex<Vec<Instant>>>,
) {
    use broadcast::error::RecvError;
    // Whether the probe under way, if any, is the fleet's.
    let mut fleet_probe = false;
    loop {
        match events.recv().await {
            Ok(Event::Breaker {
                target,
                to,
                reason,
                at,
                ..
            }) if target == primary => match (to, reason) {
                (StateKind::HalfOpen, reason) => fleet_probe = reason == TransitionReason::Fleet,
                (StateKind::Open, TransitionReason::Fleet) => {}
                (StateKind::Open, TransitionReason::ProbeFailed) if fleet_probe => {}
                (StateKind::Open, _) => lock(&opens).push(at),
                _ => {}
            },
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// How many of `own` (openings of replicas' own breakers) are periods of their own: not
/// within [`SAME_PERIOD`] of any of `fleet` (openings of the fleet's breaker).
pub(super) fn apart(own: &[Instant], fleet: &[Instant]) -> u64 {
    let near = |a: Instant, b: Instant| {
        a.saturating_duration_since(b)
            .max(b.saturating_duration_since(a))
            <= SAME_PERIOD
    };
    let alone = own
        .iter()
        .filter(|&&at| !fleet.iter().any(|&f| near(at, f)));
    alone.count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: SharedState, rounds: u32) -> String {
        SharedBreaker {
            state,
            rounds,
            ..SharedBreaker::closed("r", 0)
        }
        .to_json()
    }

    #[tokio::test(start_paused = true)]
    async fn the_fleets_open_periods_begin_at_trips_and_failed_probes_only() {
        let store = ObservedStore::new("p", Duration::ZERO);
        let open = || SharedState::Open { until_ms: 0 };
        let half = || SharedState::HalfOpen {
            owner: "r".into(),
            lease_until_ms: 0,
        };
        let writes = [
            (open(), 0),              // a trip: a period
            (half(), 0),              // claimed
            (open(), 0),              // given back unused: the same period
            (half(), 0),              // claimed again
            (open(), 1),              // the probe failed: a period
            (half(), 1),              // claimed
            (SharedState::Closed, 0), // the probe succeeded
            (open(), 0),              // a trip: a period
        ];
        for (version, (state, rounds)) in (0..).zip(writes) {
            let swap = store
                .swap("{p}:breaker", version, record(state, rounds))
                .await;
            assert_eq!(swap, Ok(Swap::Written(version + 1)));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Another target's record is not watched.
        let other = store.swap("{q}:breaker", 0, record(open(), 0)).await;
        assert_eq!(other, Ok(Swap::Written(1)));
        let start = Instant::now() - Duration::from_secs(8);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(store.opens(), vec![at(0), at(4), at(7)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_own_opening_beside_one_of_the_fleets_is_the_same_period() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let fleet = [at(5_000), at(20_000)];
        let own = [at(4_990), at(6_000), at(10_000), at(21_001), at(30_000)];
        assert_eq!(apart(&own, &fleet), 3);
        assert_eq!(apart(&own, &[]), 5);
    }
}
