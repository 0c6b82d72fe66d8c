//! A fleet of replicas sharing what they learn: each engine keeps deciding locally, from its
//! own breakers and a cached view of the fleet's, while a link task keeps that view fresh and
//! writes this replica's evidence to a shared [`Store`] (Redis in the runtime).
//!
//! Nothing on a request's path waits on the store: the breaker actors hear of the fleet's
//! transitions as messages, and tell the link of outcomes the same way. A store that is down,
//! slow or holding garbage puts the link in local mode, where every breaker works alone as it
//! would without a fleet, until the store is back.
//!
//! What is shared, per target, is the breaker (see [`record`]): it trips on the fleet's
//! evidence from a quorum of replicas, and exactly one replica probes it when it half-opens.

mod config;
pub(crate) mod link;
pub mod record;
mod status;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

pub use config::FleetConfig;
pub use status::{FleetReport, FleetStatus, Mode};
pub use store::{MemoryStore, Published, Store, StoreError, Swap, Versioned};

use crate::policy::PolicyError;
use crate::upstream::Target;
use config::Clock;
use link::Note;
pub(crate) use link::{Deliver, FleetView};

/// A fleet to join: its store and how to share.
#[derive(Clone)]
pub struct Fleet {
    /// The shared memory.
    pub store: Arc<dyn Store>,
    /// How to share.
    pub config: FleetConfig,
    /// The fleet's common clock: an instant and the Unix milliseconds it stands for (the
    /// system clock's, read once at start, for real replicas; the simulator gives every
    /// engine the same pair). Times shared with other replicas are counted from it in tokio
    /// time, so virtual time moves them too.
    pub clock: (Instant, u64),
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A breaker's way to the link: notes it never waits on, and the link's mode.
#[derive(Clone, Debug)]
pub(crate) struct FleetHandle {
    notes: mpsc::Sender<Note>,
    pub(crate) status: Arc<FleetStatus>,
    pub(crate) probe_idle: Duration,
}

impl FleetHandle {
    /// Whether breakers should follow the fleet (rather than decide alone).
    pub(crate) fn shared(&self) -> bool {
        self.status.mode() == Mode::Shared
    }

    pub(crate) fn follow(&self, target: &Target) {
        self.send(Note::Follow(target.clone()));
    }

    pub(crate) fn op(&self, target: &Target, op: record::Op) {
        self.send(Note::Op(target.clone(), op));
    }

    fn send(&self, note: Note) {
        if self.notes.try_send(note).is_err() {
            metrics::counter!("breakwater_fleet_notes_dropped_total").increment(1);
        }
    }
}

/// Starts the link task for an engine; its breakers get the handle.
pub(crate) fn start(
    fleet: Fleet,
    breaker: crate::policy::BreakerConfig,
    deliver: Deliver,
    board: Arc<crate::board::Board>,
    seed: u64,
) -> Result<FleetHandle, PolicyError> {
    let mut fleet = fleet;
    fleet.config.validate()?;
    if fleet.config.replica.is_empty() {
        fleet.config.replica = config::default_replica();
    }
    let (notes, receiver) = mpsc::channel(link::NOTES);
    let status = Arc::new(FleetStatus::new(fleet.config.replica.clone()));
    let probe_idle = fleet.config.probe_idle;
    let link = link::Link::new(link::Parts {
        store: fleet.store,
        config: fleet.config,
        breaker,
        status: status.clone(),
        clock: Clock::new(fleet.clock),
        deliver,
        board,
        seed,
    });
    tokio::spawn(link.run(receiver));
    Ok(FleetHandle {
        notes,
        status,
        probe_idle,
    })
}
