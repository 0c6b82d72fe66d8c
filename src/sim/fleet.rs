//! `breakwater sim --replicas`: fleets of breakwater replicas in front of one simulated API,
//! with their breakers shared through one store (`shared`) or each deciding alone (`local`).
//!
//! A fleet of N is N runtimes, each built as the `breakwater` strategy builds its own, in one
//! paused-clock tokio runtime, all sending to one [`SimUpstream`]: the API's capacity is the
//! scenario's, whatever N. The scenario's arrivals are dealt to the replicas round robin, so
//! every fleet meets the same traffic. In `shared`, every replica joins one in-memory store
//! (answering after `--store-latency`, unreachable during `--store-outage`) with the same
//! clock. How each figure of a [`FleetRow`] is counted is documented on its field and in
//! `docs/SIM.md`.

mod chart;
mod observe;
mod options;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::report::Aggregate;
use super::run::{SimRunError, lock, play};
use super::scenario::SimScenario;
use super::strategy::{RequestOutcome, Strategy, StrategyName};
use super::upstream::{SeenAttempt, SimUpstream};
use crate::config::Config;
use crate::engine::Target;
use crate::engine::fleet::{Fleet, FleetConfig, Store};
use crate::load::Latency;

pub use chart::write_chart;
pub use options::{FleetOptions, MAX_REPLICAS, ReplicaCounts, StoreOutage};
pub use table::text;

use observe::{ObservedStore, apart, count_local_opens};

/// The Unix milliseconds every simulated replica's clock starts at.
pub const SIM_UNIX_MS: u64 = 1_700_000_000_000;

/// How long the replicas are given to join the store before the first request.
const SETTLE: Duration = Duration::from_millis(100);

/// Whether a fleet's replicas share their breakers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Every replica joins one store: one breaker per target, fleet-wide.
    Shared,
    /// No store: every replica's breakers decide alone.
    Local,
}

impl Variant {
    /// Both, in the order reports list them.
    pub const BOTH: [Variant; 2] = [Variant::Shared, Variant::Local];

    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Shared => "shared",
            Variant::Local => "local",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fleet's run, summed up.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetRow {
    /// Replicas in the fleet.
    pub replicas: u32,
    /// Shared or local breakers.
    pub variant: Variant,
    /// Requests that arrived (the scenario's, whatever the fleet's size).
    pub requests: u64,
    /// Requests answered by their deadline; the others failed, at the latest at it.
    pub answered: u64,
    /// `answered / requests`.
    pub success_rate: f64,
    /// Latency percentiles, ms; `max` is never above the deadline.
    pub latency_ms: Latency,
    /// Attempts the simulated API saw.
    pub attempts: u64,
    /// Attempts answered 529 (overloaded) or 429 (rate limited): the main report's wasted
    /// attempts, sent to a model that had no room for them.
    pub wasted_attempts: u64,
    /// Attempts answered 429.
    pub rate_limited: u64,
    /// Attempts at the primary during the scenario's incident.
    pub primary_incident_attempts: u64,
    /// Attempts at the primary that a replica's engine sent as half-open probes.
    pub probes: u64,
    /// Open periods of the fleet's breaker for the primary: `fleet_opens + local_opens /
    /// replicas` (see those).
    pub open_periods: f64,
    /// `probes / open_periods`; `None` when no breaker opened.
    pub probes_per_open_period: Option<f64>,
    /// Times the shared breaker of the primary opened, from closed or after a failed probe
    /// (from the writes to its record in the store); 0 in `local`.
    pub fleet_opens: u64,
    /// Times a replica's own breaker for the primary opened on its own decision (a trip on
    /// its own evidence, or a failed probe it half-opened for itself rather than the fleet's
    /// one), summed over the replicas, leaving out those within 1 s of an opening of the
    /// fleet's breaker (the same period): in `local` every opening; in `shared`, those made
    /// while the store was unreachable, or on evidence the fleet's breaker did not act on.
    pub local_opens: u64,
}

/// Every fleet run on one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetReport {
    /// The scenario's name.
    pub scenario: String,
    /// How long requests kept arriving, seconds.
    pub duration_s: f64,
    /// Mean arrivals per second, the whole fleet's.
    pub rps: f64,
    /// The scenario's primary model.
    pub primary: String,
    /// The store's one-way latency, ms.
    pub store_latency_ms: f64,
    /// When the store was unreachable, if ever.
    pub store_outage: Option<StoreOutage>,
    /// One row per fleet size and variant.
    pub rows: Vec<FleetRow>,
}

/// How far a fleet simulation has come, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetProgress {
    /// The fleet being run: its size and variant.
    pub replicas: u32,
    /// See `replicas`.
    pub variant: Variant,
    /// Its position among the fleets run, from 0.
    pub index: usize,
    /// How many fleets are run.
    pub count: usize,
    /// Requests of this fleet finished so far.
    pub done: u64,
    /// Requests each fleet runs.
    pub requests: u64,
}

/// Runs every fleet size of `options` on `scenario`, `shared` then `local`, one after the
/// other; the replicas run with `breakwater`'s policies when given (as the `breakwater`
/// strategy does).
///
/// # Errors
/// [`SimRunError`] if a clock or a replica cannot start.
pub fn run(
    scenario: &SimScenario,
    options: &FleetOptions,
    breakwater: Option<&Config>,
    progress: impl Fn(FleetProgress),
) -> Result<FleetReport, SimRunError> {
    let requests = scenario.arrival_iter().count() as u64;
    let fleets: Vec<(u32, Variant)> = options
        .replicas
        .iter()
        .flat_map(|&n| Variant::BOTH.map(|variant| (n, variant)))
        .collect();
    let mut rows = Vec::with_capacity(fleets.len());
    for (index, &(replicas, variant)) in fleets.iter().enumerate() {
        let mut done = 0;
        let finished = |_: u64, _: &RequestOutcome| {
            done += 1;
            progress(FleetProgress {
                replicas,
                variant,
                index,
                count: fleets.len(),
                done,
                requests,
            });
        };
        rows.push(run_fleet(
            scenario, replicas, variant, options, breakwater, finished,
        )?);
    }
    Ok(FleetReport {
        scenario: scenario.name.clone(),
        duration_s: scenario.duration.as_secs_f64(),
        rps: scenario.rps,
        primary: scenario.chain.first().cloned().unwrap_or_default(),
        store_latency_ms: options.store_latency.as_secs_f64() * 1000.0,
        store_outage: options.store_outage,
        rows,
    })
}

/// Counters a fleet run fills as it plays.
#[derive(Default)]
struct Counts {
    rate_limited: AtomicU64,
    probes: AtomicU64,
    local_opens: Arc<Mutex<Vec<Instant>>>,
}

/// Runs one fleet of `replicas` on the scenario's arrivals in its own paused-clock runtime
/// and sums it up; `finished` is shown each request's number and outcome as it ends.
///
/// # Errors
/// As [`run`].
pub fn run_fleet(
    scenario: &SimScenario,
    replicas: u32,
    variant: Variant,
    options: &FleetOptions,
    breakwater: Option<&Config>,
    mut finished: impl FnMut(u64, &RequestOutcome),
) -> Result<FleetRow, SimRunError> {
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    clock.block_on(async {
        let primary = scenario.chain.first().cloned().unwrap_or_default();
        let counts = Arc::new(Counts::default());
        let aggregate = Arc::new(Mutex::new(Aggregate::new(
            scenario,
            StrategyName::Breakwater,
        )));
        let sink = {
            let (aggregate, counts) = (aggregate.clone(), counts.clone());
            move |attempt: SeenAttempt<'_>| {
                if attempt.status == 429 {
                    counts.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                lock(&aggregate).attempt(attempt);
            }
        };
        let upstream = Arc::new(SimUpstream::new(scenario).with_sink(sink));
        let store = (variant == Variant::Shared)
            .then(|| ObservedStore::new(&primary, options.store_latency));
        let outage = options.store_outage;
        if let (Some(store), Some(outage)) = (&store, outage)
            && outage.start.is_zero()
        {
            store.set_down(true);
        }
        let fleet = start_fleet(scenario, &upstream, breakwater, replicas, store.as_ref()).await?;
        let watchers: Vec<_> = fleet
            .iter()
            .filter_map(|replica| {
                let watch = count_local_opens(
                    replica.events()?,
                    Target::new(primary.as_str()),
                    counts.local_opens.clone(),
                );
                Some(tokio::spawn(watch))
            })
            .collect();
        tokio::time::sleep(SETTLE).await;
        upstream.start();
        let outage = store.clone().zip(outage).map(|(store, outage)| {
            let epoch = Instant::now();
            tokio::spawn(async move {
                tokio::time::sleep_until(epoch + outage.start).await;
                store.set_down(true);
                tokio::time::sleep_until(epoch + outage.end).await;
                store.set_down(false);
            })
        });
        play(&fleet, scenario.arrival_iter(), |index, outcome| {
            let probes = outcome
                .attempts
                .iter()
                .filter(|a| a.probe && a.model == primary);
            counts
                .probes
                .fetch_add(probes.count() as u64, Ordering::Relaxed);
            lock(&aggregate).request(&outcome);
            finished(index, &outcome);
        })
        .await;
        futures::future::join_all(fleet.iter().map(|replica| replica.shutdown())).await;
        // Let the watchers take what is left in their channels, then stop them.
        tokio::time::sleep(Duration::from_millis(1)).await;
        for task in watchers.iter().chain(&outage) {
            task.abort();
        }
        let report = lock(&aggregate).report(scenario);
        let fleet_opens = store.as_ref().map_or_else(Vec::new, ObservedStore::opens);
        let local_opens = apart(&lock(&counts.local_opens), &fleet_opens);
        let fleet_opens = fleet_opens.len() as u64;
        let open_periods = fleet_opens as f64 + local_opens as f64 / f64::from(replicas.max(1));
        let probes = counts.probes.load(Ordering::Relaxed);
        Ok(FleetRow {
            replicas,
            variant,
            requests: report.requests,
            answered: report.succeeded,
            success_rate: report.success_rate,
            latency_ms: report.latency_ms,
            attempts: report.attempts,
            wasted_attempts: report.wasted_attempts,
            rate_limited: counts.rate_limited.load(Ordering::Relaxed),
            primary_incident_attempts: report
                .incident_load
                .iter()
                .find(|load| load.model == primary)
                .map_or(0, |load| load.attempts),
            probes,
            open_periods,
            probes_per_open_period: (open_periods > 0.0).then(|| probes as f64 / open_periods),
            fleet_opens,
            local_opens,
        })
    })
}

/// Starts `replicas` breakwater runtimes over `upstream`, each joined to `store` when given,
/// all on one fleet clock.
async fn start_fleet(
    scenario: &SimScenario,
    upstream: &Arc<SimUpstream>,
    breakwater: Option<&Config>,
    replicas: u32,
    store: Option<&ObservedStore>,
) -> Result<Vec<Arc<Strategy>>, SimRunError> {
    let clock = (Instant::now(), SIM_UNIX_MS);
    let mut fleet = Vec::with_capacity(replicas as usize);
    for replica in 0..replicas {
        let joined = store.map(|store| Fleet {
            store: Arc::new(store.clone()) as Arc<dyn Store>,
            config: FleetConfig {
                replica: format!("replica-{replica}"),
                ..FleetConfig::default()
            },
            clock,
        });
        let started = Strategy::replica(
            scenario,
            upstream.clone(),
            breakwater,
            u64::from(replica),
            joined,
        );
        fleet.push(Arc::new(started.await?));
    }
    Ok(fleet)
}
