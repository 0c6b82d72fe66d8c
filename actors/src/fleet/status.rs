//! What the link tells readers: which mode this replica is in, how many replicas are alive,
//! how late other replicas' transitions arrive, and which targets are kept local.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use crate::upstream::Target;

/// Propagation lags kept for the percentiles.
const LAGS: usize = 1024;

/// Whether a replica is sharing state with its fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Not connected yet.
    Starting,
    /// Reading and writing the fleet's shared state.
    Shared,
    /// The store is unavailable: every breaker decides alone until it is back.
    Local,
}

impl Mode {
    /// A stable name for metrics labels and the state endpoint.
    pub fn as_label(self) -> &'static str {
        match self {
            Mode::Starting => "starting",
            Mode::Shared => "shared",
            Mode::Local => "local",
        }
    }
}

/// The link's state, shared with readers.
#[derive(Debug)]
pub struct FleetStatus {
    replica: String,
    mode: AtomicU8,
    live: AtomicU32,
    lags: Mutex<VecDeque<Duration>>,
    error: Mutex<Option<String>>,
    garbage: Mutex<BTreeSet<String>>,
}

/// A snapshot of [`FleetStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetReport {
    /// This replica's name in the fleet.
    pub replica: String,
    /// Whether it is sharing state.
    pub mode: Mode,
    /// Replicas alive at the last heartbeat (including this one).
    pub live_replicas: u32,
    /// Propagation lag of other replicas' writes (write to arrival, across their clocks and
    /// this one): median, 99th percentile, and how many were measured (the last 1024).
    pub lag_p50: Option<Duration>,
    /// See `lag_p50`.
    pub lag_p99: Option<Duration>,
    /// See `lag_p50`.
    pub lag_samples: usize,
    /// Why it last went local, if it did.
    pub last_error: Option<String>,
    /// Targets whose shared key holds data this version cannot read (kept local).
    pub unreadable: Vec<String>,
}

impl FleetStatus {
    pub(crate) fn new(replica: String) -> Self {
        Self {
            replica,
            mode: AtomicU8::new(0),
            live: AtomicU32::new(1),
            lags: Mutex::new(VecDeque::with_capacity(LAGS)),
            error: Mutex::new(None),
            garbage: Mutex::new(BTreeSet::new()),
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Relaxed) {
            1 => Mode::Shared,
            2 => Mode::Local,
            _ => Mode::Starting,
        }
    }

    pub(crate) fn set_mode(&self, mode: Mode, error: Option<String>) {
        let value = match mode {
            Mode::Starting => 0,
            Mode::Shared => 1,
            Mode::Local => 2,
        };
        self.mode.store(value, Ordering::Relaxed);
        if error.is_some() {
            *lock(&self.error) = error;
        }
        metrics::gauge!("breakwater_fleet_shared").set(if mode == Mode::Shared {
            1.0
        } else {
            0.0
        });
    }

    pub(crate) fn set_live(&self, live: u32) {
        self.live.store(live, Ordering::Relaxed);
        metrics::gauge!("breakwater_fleet_replicas").set(f64::from(live));
    }

    pub(crate) fn record_lag(&self, lag: Duration) {
        metrics::histogram!("breakwater_fleet_propagation_seconds").record(lag.as_secs_f64());
        let mut lags = lock(&self.lags);
        if lags.len() == LAGS {
            lags.pop_front();
        }
        lags.push_back(lag);
    }

    pub(crate) fn set_garbage(&self, target: &Target, unreadable: bool) {
        let mut garbage = lock(&self.garbage);
        if unreadable {
            garbage.insert(target.to_string());
        } else {
            garbage.remove(&target.to_string());
        }
    }

    /// A snapshot for readers.
    pub fn report(&self) -> FleetReport {
        let mut lags: Vec<Duration> = lock(&self.lags).iter().copied().collect();
        lags.sort_unstable();
        let at = |q: f64| {
            let index = ((lags.len() as f64 * q).ceil() as usize).clamp(1, lags.len()) - 1;
            lags.get(index).copied()
        };
        FleetReport {
            replica: self.replica.clone(),
            mode: self.mode(),
            live_replicas: self.live.load(Ordering::Relaxed),
            lag_p50: if lags.is_empty() { None } else { at(0.5) },
            lag_p99: if lags.is_empty() { None } else { at(0.99) },
            lag_samples: lags.len(),
            last_error: lock(&self.error).clone(),
            unreadable: lock(&self.garbage).iter().cloned().collect(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
