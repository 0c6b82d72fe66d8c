//! The link: one task per engine between its breaker actors and the fleet's [`Store`].
//!
//! Breakers tell it of outcomes, claims and probe results as [`Note`]s on a bounded channel
//! they never wait on; it batches them per target, applies them to the shared records by
//! compare-and-swap, and hands every change of a record (its own writes and every other
//! replica's, from the store's subscription) back to the target's breaker as a
//! [`FleetView`]. Any store call that fails or takes longer than `call-timeout` puts it in
//! local mode: breakers then decide alone, and it reconnects after `retry`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::config::{Clock, FleetConfig};
use super::record::{Context, Op, SharedBreaker};
use super::status::{FleetStatus, Mode};
use super::store::{Published, Store, StoreError, Swap};
use crate::board::Board;
use crate::policy::BreakerConfig;
use crate::upstream::Target;

mod demand;
mod records;

/// What a breaker tells the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// A target to follow (its breaker started).
    Follow(Target),
    /// An op on the target's shared breaker.
    Op(Target, Op),
}

/// The fleet's breaker for one target, as the link hands it to that target's breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FleetView {
    /// Closed fleet-wide.
    Closed,
    /// Open until then.
    Open { until: Instant },
    /// Half-open; `mine`: this replica holds the probe, until `lease_until`.
    HalfOpen { mine: bool, lease_until: Instant },
    /// The fleet's breaker cannot be followed (the store is unavailable, or the target's
    /// record unreadable): decide alone.
    Local,
}

/// Where the link hands each target's view.
pub(crate) type Deliver = Arc<dyn Fn(&Target, FleetView) + Send + Sync>;

/// Notes waiting when the channel is full are dropped (outcomes are evidence, not orders;
/// a lost claim or probe result is recovered by the lease).
pub(crate) const NOTES: usize = 4096;

/// Notes handled in one turn of the loop at most, between looks at the timers and the
/// subscription.
const BATCH: usize = 1024;

/// How long connecting (the first call, which opens the store's connections) may take: more
/// than one call, as it takes several round trips.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at a compare-and-swap before an op is given up (another replica kept winning).
const SWAP_TRIES: usize = 8;

/// What a link is made of.
pub(crate) struct Parts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: FleetConfig,
    pub(crate) breaker: BreakerConfig,
    pub(crate) status: Arc<FleetStatus>,
    pub(crate) clock: Clock,
    pub(crate) deliver: Deliver,
    pub(crate) board: Arc<Board>,
    pub(crate) seed: u64,
}

pub(crate) struct Link {
    store: Arc<dyn Store>,
    config: FleetConfig,
    breaker: BreakerConfig,
    status: Arc<FleetStatus>,
    clock: Clock,
    deliver: Deliver,
    rng: SmallRng,
    targets: BTreeSet<Target>,
    /// Each followed target by its key.
    keys: HashMap<String, Target>,
    /// The last record seen per target, with its version.
    cache: HashMap<Target, (u64, SharedBreaker)>,
    /// Targets whose key holds something this version cannot read: kept local.
    garbage: HashSet<Target>,
    live: u32,
    board: Arc<Board>,
    /// Per target: attempts started as of the last demand report, and when.
    demand: HashMap<Target, (u64, Instant)>,
}

/// Evidence gathered for one target since the last write.
#[derive(Default)]
struct Tally {
    failures: u32,
    successes: u32,
    trailing: u32,
    qualifying: u32,
    retry_after: Duration,
}

impl Link {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            store: parts.store,
            config: parts.config,
            breaker: parts.breaker,
            status: parts.status,
            clock: parts.clock,
            deliver: parts.deliver,
            rng: SmallRng::seed_from_u64(parts.seed),
            targets: BTreeSet::new(),
            keys: HashMap::new(),
            cache: HashMap::new(),
            garbage: HashSet::new(),
            live: 1,
            board: parts.board,
            demand: HashMap::new(),
        }
    }

    /// Runs until every sender of `notes` is gone (the engine stopped).
    pub(crate) async fn run(mut self, mut notes: mpsc::Receiver<Note>) {
        loop {
            let stream = match self.connect().await {
                Ok(stream) => stream,
                Err(error) => {
                    self.local(&error);
                    if !self.wait_local(&mut notes).await {
                        return;
                    }
                    continue;
                }
            };
            match self.shared(stream, &mut notes).await {
                Ok(()) => {
                    let store = self.store.clone();
                    let replica = self.config.replica.clone();
                    let _ =
                        tokio::time::timeout(self.config.call_timeout, store.leave(&replica)).await;
                    return;
                }
                Err(error) => {
                    self.local(&error);
                    if !self.wait_local(&mut notes).await {
                        return;
                    }
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<BoxStream<'static, Published>, StoreError> {
        let store = self.store.clone();
        let limit = self.config.call_timeout.max(CONNECT_TIMEOUT);
        let Ok(subscribed) = tokio::time::timeout(limit, store.subscribe()).await else {
            let reason = format!("could not connect within {limit:?}");
            return Err(StoreError::Unreachable(reason));
        };
        let stream = subscribed?;
        self.heartbeat().await?;
        let targets: Vec<Target> = self.targets.iter().cloned().collect();
        for target in targets {
            self.refresh(&target).await?;
        }
        self.status.set_mode(Mode::Shared, None);
        tracing::info!(replica = %self.config.replica, live = self.live, "fleet: sharing state");
        Ok(stream)
    }

    /// Local mode until `retry` has passed, keeping track of the targets to follow. Returns
    /// `false` if the engine stopped.
    async fn wait_local(&mut self, notes: &mut mpsc::Receiver<Note>) -> bool {
        let until = Instant::now() + self.config.retry;
        loop {
            // Biased: the same order every time, so a simulated fleet replays exactly.
            tokio::select! {
                biased;
                note = notes.recv() => match note {
                    Some(Note::Follow(target)) => self.follow(target),
                    Some(Note::Op(..)) => {}
                    None => return false,
                },
                () = tokio::time::sleep_until(until) => return true,
            }
        }
    }

    fn local(&mut self, error: &StoreError) {
        if self.status.mode() != Mode::Local {
            tracing::warn!(replica = %self.config.replica, error = %error, "fleet: the store is unavailable; every breaker decides alone until it is back");
        }
        self.status.set_mode(Mode::Local, Some(error.to_string()));
        // What was learned from the fleet may be stale by the time it is back; alone, this
        // replica has the whole of every target.
        self.cache.clear();
        for target in &self.targets {
            self.board.set_share(target, 1.0);
            (self.deliver)(target, FleetView::Local);
        }
    }

    async fn shared(
        &mut self,
        mut stream: BoxStream<'static, Published>,
        notes: &mut mpsc::Receiver<Note>,
    ) -> Result<(), StoreError> {
        let mut beat = tokio::time::interval(self.config.heartbeat);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        beat.reset();
        let mut resync = tokio::time::interval(self.config.resync);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        resync.reset();
        loop {
            // Biased, so that a simulated fleet replays exactly; the timers and the
            // subscription first, so that a steady flow of notes cannot starve the heartbeat
            // (the others would count this replica gone) or leave writes unread.
            tokio::select! {
                biased;
                _ = beat.tick() => {
                    self.heartbeat().await?;
                    self.share().await?;
                }
                _ = resync.tick() => {
                    let targets: Vec<Target> = self.targets.iter().cloned().collect();
                    for target in targets {
                        self.refresh(&target).await?;
                    }
                }
                published = stream.next() => {
                    let Some(published) = published else {
                        return Err(StoreError::Unreachable("the subscription ended".to_owned()));
                    };
                    self.published(&published);
                }
                note = notes.recv() => {
                    let Some(note) = note else { return Ok(()) };
                    let mut batch = vec![note];
                    while batch.len() < BATCH {
                        let Ok(more) = notes.try_recv() else { break };
                        batch.push(more);
                    }
                    self.handle(batch).await?;
                }
            }
        }
    }

    async fn handle(&mut self, batch: Vec<Note>) -> Result<(), StoreError> {
        let mut tallies: BTreeMap<Target, Tally> = BTreeMap::new();
        let mut ops = Vec::new();
        for note in batch {
            match note {
                Note::Follow(target) => {
                    if self.targets.contains(&target) {
                        // A breaker restarted: tell it where the fleet's breaker is.
                        if let Some((_, record)) = self.cache.get(&target) {
                            self.deliver(&target, record);
                        }
                    } else {
                        self.follow(target.clone());
                        self.refresh(&target).await?;
                    }
                }
                Note::Op(
                    target,
                    Op::Evidence {
                        failures,
                        successes,
                        trailing,
                        qualifying,
                        retry_after,
                    },
                ) => {
                    let tally = tallies.entry(target).or_default();
                    tally.retry_after = tally.retry_after.max(retry_after);
                    tally.failures += failures;
                    if successes > 0 {
                        tally.successes += successes;
                        tally.trailing = trailing;
                        tally.qualifying = qualifying;
                    } else {
                        tally.trailing += failures;
                        tally.qualifying += qualifying;
                    }
                }
                Note::Op(target, op) => ops.push((target, op)),
            }
        }
        for (target, tally) in tallies {
            let op = Op::Evidence {
                failures: tally.failures,
                successes: tally.successes,
                trailing: tally.trailing,
                qualifying: tally.qualifying,
                retry_after: tally.retry_after,
            };
            self.apply(&target, &op).await?;
        }
        for (target, op) in ops {
            self.apply(&target, &op).await?;
        }
        Ok(())
    }

    /// Applies `op` to the target's shared breaker, retrying on conflict.
    async fn apply(&mut self, target: &Target, op: &Op) -> Result<(), StoreError> {
        if self.garbage.contains(target) {
            return Ok(());
        }
        let key = key(target);
        for _ in 0..SWAP_TRIES {
            let (version, current) = match self.cache.get(target) {
                Some(cached) => cached.clone(),
                None => match self.read(target).await? {
                    Some(found) => found,
                    None => return Ok(()),
                },
            };
            let now_ms = self.clock.now_ms();
            let quorum = self.config.quorum.min(self.live).max(1);
            let cx = Context {
                replica: &self.config.replica,
                now_ms,
                quorum,
                config: self.breaker,
                lease: self.config.probe_lease,
            };
            let Some(mut next) = current.apply(op, &cx, &mut self.rng) else {
                // Nothing to write; a denied claim still tells the breaker who probes.
                if *op == Op::Claim {
                    self.deliver(target, &current);
                }
                return Ok(());
            };
            next.at_us = self.clock.now_us();
            let store = self.store.clone();
            match self.call(store.swap(&key, version, next.to_json())).await {
                Ok(Swap::Written(written)) => {
                    self.accept(target, written, next);
                    return Ok(());
                }
                Ok(Swap::Conflict(found)) => {
                    self.cache.remove(target);
                    if let Some(found) = found {
                        self.take(target, &found, true);
                    }
                }
                Err(StoreError::Garbage { key, reason }) => {
                    self.mark_garbage(target, &key, &reason);
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
        tracing::debug!(target = %target, "fleet: gave up an op after repeated conflicts");
        Ok(())
    }

    /// Reads the target's record (creating a closed one if there is none). `None`: garbage.
    async fn read(&mut self, target: &Target) -> Result<Option<(u64, SharedBreaker)>, StoreError> {
        self.refresh(target).await?;
        if let Some(found) = self.cache.get(target) {
            return Ok(Some(found.clone()));
        }
        if self.garbage.contains(target) {
            return Ok(None);
        }
        Ok(Some((
            0,
            SharedBreaker::closed(&self.config.replica, self.clock.now_us()),
        )))
    }

    fn follow(&mut self, target: Target) {
        self.keys.insert(key(&target), target.clone());
        self.targets.insert(target);
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unreachable(format!(
                "no answer within {:?}",
                self.config.call_timeout
            ))),
        }
    }
}

/// The key of a target's shared breaker; the braces make it its own Redis Cluster slot.
pub(crate) fn key(target: &Target) -> String {
    format!("{{{target}}}:breaker")
}
