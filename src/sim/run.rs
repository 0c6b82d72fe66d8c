//! Plays a scenario against each strategy in turn, in virtual time.
//!
//! Each strategy gets a fresh [`SimUpstream`] and its own current-thread tokio runtime with
//! a paused clock: whenever every task waits on a timer, the clock jumps to the next one, so
//! the real actors run an hour of traffic in seconds. Arrivals are open-loop: every request
//! of [`SimScenario::arrivals`] starts at its time, whatever happened to earlier ones, and
//! every strategy meets the same arrivals.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::report::{SimReport, StrategyReport};
use super::scenario::SimScenario;
use super::strategy::{RequestOutcome, Strategy, StrategyName};
use super::upstream::{AttemptRecord, SimUpstream};
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

/// Everything one strategy's run produced.
#[derive(Clone, Debug)]
pub struct StrategyRun {
    /// The strategy.
    pub name: StrategyName,
    /// One outcome per arrival, in arrival order.
    pub requests: Vec<RequestOutcome>,
    /// Every attempt the simulated API saw, in arrival order.
    pub attempts: Vec<AttemptRecord>,
}

/// Runs every strategy of `strategies` on `scenario`, one after the other, and sums each up
/// as soon as it ends (so only one run's records are held at a time).
///
/// # Errors
/// [`SimRunError`] if a clock or the breakwater runtime cannot start.
pub fn run(
    scenario: &SimScenario,
    strategies: &[StrategyName],
    progress: impl Fn(Progress),
) -> Result<SimReport, SimRunError> {
    let arrivals = scenario.arrivals();
    let mut reports = Vec::with_capacity(strategies.len());
    for (index, &strategy) in strategies.iter().enumerate() {
        let report_progress = |done| {
            progress(Progress {
                strategy,
                index,
                count: strategies.len(),
                done,
                requests: arrivals.len() as u64,
            });
        };
        let run = run_strategy(scenario, strategy, &arrivals, report_progress)?;
        reports.push(StrategyReport::of(scenario, &run));
    }
    Ok(SimReport::new(scenario, reports))
}

/// Runs one strategy on `arrivals` (offsets from the start) in its own paused-clock runtime;
/// `progress` is told how many requests have finished.
///
/// # Errors
/// As [`run`].
pub fn run_strategy(
    scenario: &SimScenario,
    strategy: StrategyName,
    arrivals: &[Duration],
    progress: impl Fn(u64),
) -> Result<StrategyRun, SimRunError> {
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    clock.block_on(async {
        let upstream = Arc::new(SimUpstream::new(scenario));
        let strategy = Arc::new(Strategy::start(strategy, scenario, upstream.clone()).await?);
        upstream.start();
        let requests = play(&strategy, arrivals, progress).await;
        strategy.shutdown().await;
        Ok(StrategyRun {
            name: strategy.name(),
            requests,
            attempts: upstream.attempts(),
        })
    })
}

/// Starts each request at its arrival time and collects the outcomes in arrival order.
async fn play(
    strategy: &Arc<Strategy>,
    arrivals: &[Duration],
    progress: impl Fn(u64),
) -> Vec<RequestOutcome> {
    let epoch = Instant::now();
    let mut outcomes: Vec<Option<RequestOutcome>> = vec![None; arrivals.len()];
    let mut tasks = JoinSet::new();
    let mut done = 0;
    let mut collect = |joined: Result<(usize, RequestOutcome), _>| {
        if let Ok((index, outcome)) = joined {
            outcomes[index] = Some(outcome);
        }
        done += 1;
        progress(done);
    };
    for (index, &at) in arrivals.iter().enumerate() {
        tokio::time::sleep_until(epoch + at).await;
        let strategy = strategy.clone();
        tasks.spawn(async move { (index, strategy.drive(index as u64, at).await) });
        while let Some(joined) = tasks.try_join_next() {
            collect(joined);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        collect(joined);
    }
    // A task that panicked has no outcome: it counts as failed at once.
    let failed = |&arrived| RequestOutcome {
        arrived,
        latency: Duration::ZERO,
        answered_by: None,
        attempts: Vec::new(),
    };
    outcomes
        .into_iter()
        .zip(arrivals)
        .map(|(outcome, arrived)| outcome.unwrap_or_else(|| failed(arrived)))
        .collect()
}
