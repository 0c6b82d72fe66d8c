//! The seam between the fleet link and whatever holds the fleet's shared memory: Redis in the
//! runtime, [`MemoryStore`] in tests and the simulator.
//!
//! The store is deliberately small and dumb: versioned values under keys, written by
//! compare-and-swap (one atomic operation on one key, as Redis Cluster needs), every
//! successful write published to every subscriber, and a membership set kept by heartbeats.
//! Every decision about what the values mean is made in Rust, in [`super::record`], so the
//! Redis store and the in-memory one cannot disagree about the rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A value and its version. Versions start at 1 and grow by one per write; 0 means absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The write count of the key.
    pub version: u64,
    /// The value, as written (the link writes JSON).
    pub value: String,
}

/// A write every subscriber is told of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The key written (as the link named it, without any store prefix).
    pub key: String,
    /// What it holds now.
    pub value: Versioned,
}

/// What a compare-and-swap did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The value was written as this version, and published.
    Written(u64),
    /// The key was not at the expected version; this is what it holds (`None`: absent).
    Conflict(Option<Versioned>),
}

/// Why a store call failed. No message ever holds a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or refused the call (connection, authentication, timeout,
    /// a server error): the link goes on in local mode and reconnects later.
    #[error("{0}")]
    Unreachable(String),
    /// `key` holds something this version cannot read (another program's data, or an older
    /// version's): that key is left alone and its target kept local.
    #[error("{key} holds {reason}")]
    Garbage {
        /// The key, as the link named it.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The fleet's shared memory. Implementations must be cancel-safe: the link drops a call that
/// takes too long, and goes on in local mode.
///
/// Keys are chosen by the link and carry their own Redis Cluster hash tag (`{target}:breaker`);
/// an implementation may prefix them, but must publish them unprefixed.
pub trait Store: Send + Sync + 'static {
    /// The value under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>>;

    /// Writes `value` as version `expect + 1` if `key` is at version `expect` (0: absent),
    /// and publishes the write; otherwise changes nothing and says what the key holds.
    fn swap<'a>(
        &'a self,
        key: &'a str,
        expect: u64,
        value: String,
    ) -> BoxFuture<'a, Result<Swap, StoreError>>;

    /// Every write from now on, in the order the store made them. The stream ends (or yields
    /// nothing more) when the connection is lost; the link then resubscribes.
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Published>, StoreError>>;

    /// Marks `replica` alive until `now_ms + ttl`, forgets replicas whose time has passed, and
    /// returns the replicas alive (including this one). Times are the link's Unix
    /// milliseconds.
    fn heartbeat<'a>(
        &'a self,
        replica: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Sets `field` of the table under `key` to `value` until `now_ms + ttl`, forgets the
    /// fields whose time has passed, and returns every field left with its value (in any
    /// order). One atomic operation on one key.
    fn report<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: String,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>>;

    /// Removes `replica` from the living at once (a clean shutdown).
    fn leave<'a>(&'a self, replica: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A store in memory, shared by the engines of one process: the simulator's fleet and the
/// tests'. It can be made slow ([`set_latency`](Self::set_latency)) or unreachable
/// ([`set_down`](Self::set_down)), in tokio time, so outages are simulated in virtual time.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<(Published, Instant)>,
}

struct Inner {
    values: HashMap<String, Versioned>,
    members: HashMap<String, u64>,
    tables: HashMap<String, HashMap<String, (String, u64)>>,
    latency: Duration,
    down: bool,
    calls: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty, reachable store that answers at once.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                values: HashMap::new(),
                members: HashMap::new(),
                tables: HashMap::new(),
                latency: Duration::ZERO,
                down: false,
                calls: 0,
            })),
            events,
        }
    }

    /// Every call, and every published write, takes `latency` (one way) from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Makes the store unreachable (every call fails, subscriptions end) or reachable again.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
        if down {
            // Subscribers see their stream end, as with a dropped connection.
            let marker = Published {
                key: String::new(),
                value: Versioned {
                    version: 0,
                    value: String::new(),
                },
            };
            let _ = self.events.send((marker, Instant::now()));
        }
    }

    /// Puts `value` under `key` as is, as another program (or an older version) might have.
    pub fn put_raw(&self, key: &str, value: &str) {
        let mut inner = self.lock();
        let version = inner.values.get(key).map_or(0, |v| v.version) + 1;
        inner.values.insert(
            key.to_owned(),
            Versioned {
                version,
                value: value.to_owned(),
            },
        );
    }

    /// Calls made so far (including failed ones).
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits the latency, then fails if the store is down.
    async fn reach(&self) -> Result<(), StoreError> {
        let latency = {
            let mut inner = self.lock();
            inner.calls += 1;
            inner.latency
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.lock().down {
            return Err(StoreError::Unreachable("the store is down".to_owned()));
        }
        Ok(())
    }
}

impl Store for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            self.reach().await?;
            let found = self.lock().values.get(key).cloned();
            Ok(found)
        })
    }

    fn swap<'a>(
        &'a self,
        key: &'a str,
        expect: u64,
        value: String,
    ) -> BoxFuture<'a, Result<Swap, StoreError>> {
        Box::pin(async move {
            self.reach().await?;
            let written = {
                let mut inner = self.lock();
                let current = inner.values.get(key).cloned();
                if current.as_ref().map_or(0, |v| v.version) != expect {
                    return Ok(Swap::Conflict(current));
                }
                let written = Versioned {
                    version: expect + 1,
                    value,
                };
                inner.values.insert(key.to_owned(), written.clone());
                written
            };
            let version = written.version;
            let published = Published {
                key: key.to_owned(),
                value: written,
            };
            let _ = self.events.send((published, Instant::now()));
            Ok(Swap::Written(version))
        })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Published>, StoreError>> {
        Box::pin(async move {
            self.reach().await?;
            let receiver = self.events.subscribe();
            let store = self.clone();
            let stream = futures::stream::unfold(receiver, move |mut receiver| {
                let store = store.clone();
                async move {
                    loop {
                        match receiver.recv().await {
                            // The down marker ends the stream, as a dropped connection would.
                            Ok((published, _)) if published.key.is_empty() => return None,
                            Ok((published, at)) => {
                                // Each write reaches each subscriber one latency after it
                                // was made (not one latency after the one before it).
                                let latency = store.lock().latency;
                                tokio::time::sleep_until(at + latency).await;
                                return Some((published, receiver));
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                }
            });
            Ok(Box::pin(stream) as BoxStream<'static, Published>)
        })
    }

    fn heartbeat<'a>(
        &'a self,
        replica: &'a str,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.reach().await?;
            let mut inner = self.lock();
            let until = now_ms.saturating_add(ttl.as_millis() as u64);
            inner.members.insert(replica.to_owned(), until);
            inner.members.retain(|_, until| *until > now_ms);
            let mut alive: Vec<String> = inner.members.keys().cloned().collect();
            alive.sort();
            Ok(alive)
        })
    }

    fn report<'a>(
        &'a self,
        key: &'a str,
        field: &'a str,
        value: String,
        now_ms: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        Box::pin(async move {
            self.reach().await?;
            let mut inner = self.lock();
            let table = inner.tables.entry(key.to_owned()).or_default();
            let until = now_ms.saturating_add(ttl.as_millis() as u64);
            table.insert(field.to_owned(), (value, until));
            table.retain(|_, (_, until)| *until > now_ms);
            Ok(table
                .iter()
                .map(|(field, (value, _))| (field.clone(), value.clone()))
                .collect())
        })
    }

    fn leave<'a>(&'a self, replica: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.reach().await?;
            self.lock().members.remove(replica);
            Ok(())
        })
    }
}
