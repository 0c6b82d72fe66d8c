//! Plays a scenario against each strategy in turn, in virtual time.
//!
//! Each strategy gets a fresh [`SimUpstream`] and its own current-thread tokio runtime with
//! a paused clock: whenever every task waits on a timer, the clock jumps to the next one, so
//! the real actors run an hour of traffic in seconds. Arrivals are open-loop: every request
//! of [`SimScenario::arrivals`] starts at its time, whatever happened to earlier ones, and
//! every strategy meets the same arrivals. Nothing is kept per request once it has ended:
//! the simulated API and the runner feed an [`Aggregate`] as the run goes.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::report::{Aggregate, SimReport, StrategyReport};
use super::scenario::SimScenario;
use super::strategy::{RequestOutcome, Strategy, StrategyName};
use super::upstream::{SeenAttempt, SimUpstream};
use crate::config::Config;
use crate::runtime::RuntimeError;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimRunError {
    /// The tokio runtime that carries the virtual clock could not be built.
    #[error("cannot start the simulation clock: {0}")]
    Clock(#[from] std::io::Error),
    /// The breakwater runtime did not start with the scenario's chain.
    #[error("the breakwater runtime did not start: {0}")]
    Start(#[from] RuntimeError),
}

/// How far a simulation has come, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The strategy being run.
    pub strategy: StrategyName,
    /// Its position among the strategies run, from 0.
    pub index: usize,
    /// How many strategies are run.
    pub count: usize,
    /// Requests of this strategy finished so far.
    pub done: u64,
    /// Requests each strategy runs.
    pub requests: u64,
}

/// Runs every strategy of `strategies` on `scenario`, one after the other; the
/// `breakwater` strategy runs with `breakwater`'s policies when given (see
/// [`Strategy::start`]). Each run is summed up while it plays, so memory stays bounded by the
/// requests in flight and the length of the run, whatever its rate.
///
/// # Errors
/// [`SimRunError`] if a clock or the breakwater runtime cannot start.
pub fn run(
    scenario: &SimScenario,
    strategies: &[StrategyName],
    breakwater: Option<&Config>,
    progress: impl Fn(Progress),
) -> Result<SimReport, SimRunError> {
    let requests = scenario.arrival_iter().count() as u64;
    let mut reports = Vec::with_capacity(strategies.len());
    for (index, &strategy) in strategies.iter().enumerate() {
        let mut done = 0;
        let report_progress = |_: u64, _: &RequestOutcome| {
            done += 1;
            progress(Progress {
                strategy,
                index,
                count: strategies.len(),
                done,
                requests,
            });
        };
        reports.push(run_strategy(
            scenario,
            strategy,
            breakwater,
            report_progress,
        )?);
    }
    Ok(SimReport::new(scenario, reports))
}

/// Runs one strategy on the scenario's arrivals in its own paused-clock runtime and sums it
/// up; `finished` is shown each request's number (its place among the arrivals) and outcome
/// as it ends, in the order requests end.
///
/// # Errors
/// As [`run`].
pub fn run_strategy(
    scenario: &SimScenario,
    strategy: StrategyName,
    breakwater: Option<&Config>,
    mut finished: impl FnMut(u64, &RequestOutcome),
) -> Result<StrategyReport, SimRunError> {
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    clock.block_on(async {
        let aggregate = Arc::new(Mutex::new(Aggregate::new(scenario, strategy)));
        let sink = {
            let aggregate = aggregate.clone();
            move |attempt: SeenAttempt<'_>| lock(&aggregate).attempt(attempt)
        };
        let upstream = Arc::new(SimUpstream::new(scenario).with_sink(sink));
        let strategy =
            Arc::new(Strategy::start(strategy, scenario, upstream.clone(), breakwater).await?);
        let opens = Arc::new(AtomicU64::new(0));
        let counting = strategy.events().map(|events| {
            let primary = scenario.chain.first().cloned();
            tokio::spawn(count_opens(events, primary, opens.clone()))
        });
        upstream.start();
        play(
            std::slice::from_ref(&strategy),
            scenario.arrival_iter(),
            |index, outcome| {
                lock(&aggregate).request(&outcome);
                finished(index, &outcome);
            },
        )
        .await;
        strategy.shutdown().await;
        let mut report = lock(&aggregate).report(scenario);
        if let Some(counting) = counting {
            // Let the counter take what is left in its channel, then stop it.
            tokio::time::sleep(Duration::from_millis(1)).await;
            counting.abort();
            report.breaker_opens = Some(opens.load(Ordering::Relaxed));
        }
        Ok(report)
    })
}

/// Counts into `opens` the times `primary`'s breaker opens, until the events end or the task
/// is aborted.
async fn count_opens(
    mut events: tokio::sync::broadcast::Receiver<breakwater_actors::Event>,
    primary: Option<String>,
    opens: Arc<AtomicU64>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(breakwater_actors::Event::Breaker { target, to, .. })
                if to == breakwater_actors::policy::StateKind::Open
                    && primary.as_deref() == Some(target.model()) =>
            {
                opens.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Starts each request at its arrival time, request `i` on `strategies[i % len]` (round
/// robin, as a load balancer would spread it over replicas), and hands each outcome to
/// `finished` as the request ends.
pub(super) async fn play(
    strategies: &[Arc<Strategy>],
    arrivals: impl Iterator<Item = Duration>,
    mut finished: impl FnMut(u64, RequestOutcome),
) {
    let epoch = Instant::now();
    let mut tasks = JoinSet::new();
    // The tasks catch their own panics, so every joined task has an outcome.
    let mut collect = |joined: Result<(u64, RequestOutcome), _>| {
        if let Ok((index, outcome)) = joined {
            finished(index, outcome);
        }
    };
    let mut turn = strategies.iter().cycle();
    for (index, at) in (0..).zip(arrivals) {
        tokio::time::sleep_until(epoch + at).await;
        let Some(strategy) = turn.next().cloned() else {
            return;
        };
        tasks.spawn(async move {
            let driven = AssertUnwindSafe(strategy.drive(index, at)).catch_unwind();
            (index, driven.await.unwrap_or_else(|_| failed(at)))
        });
        while let Some(joined) = tasks.try_join_next() {
            collect(joined);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        collect(joined);
    }
}

/// The outcome of a request whose task panicked: failed at once.
fn failed(arrived: Duration) -> RequestOutcome {
    RequestOutcome {
        arrived,
        latency: Duration::ZERO,
        answered_by: None,
        attempts: Vec::new(),
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // An aggregate stays consistent across a panic (each count is one statement), so
    // poisoning is moot.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
