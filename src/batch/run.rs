//! The run loop: claims items ahead in small groups (stored as claimed, then as sent when
//! each request goes out), keeps `concurrency` tries in flight (paced to `rps`), hands each
//! verdict to the [`Writer`], and judges the queue when nothing runs: done, waiting for
//! backoffs, or stuck. A stop, a halt or a failing writer winds the run down with every
//! result already in stored.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::error::BatchError;
use super::load::invalid_line;
use super::options::BatchOptions;
use super::output::write_output;
use super::prepare::Batch;
use super::send::send_item;
use super::stall::{Stall, StallWatch, Watch};
use super::writer::{Writer, WriterCommand};
use crate::runtime::Runtime;
use crate::store::{BATCH, Counts, Item, ItemUpdate, SharedStore, StoreError, Verdict, now_ms};

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Whether the state file was new (`false`: a run resumed).
    pub resumed: bool,
    /// The queue at the end.
    pub counts: Counts,
    /// Requests sent by this run (an item tried three times counts three).
    pub sent: u64,
}

impl Batch {
    /// Runs every unfinished item through `runtime` until each is final, calling `progress`
    /// with the queue's counts as they change (and a [`Stall`] when attempts fail and no item
    /// has become final for a while), then writes `out`.
    ///
    /// Items are claimed ahead in small groups, and results are stored by one writer that
    /// commits whatever has commands since its last commit in one transaction: one disk sync
    /// per group rather than per item. A result counts as stored once committed; a crash
    /// before that sends the item again on the next run, never writes it twice.
    ///
    /// # Errors
    /// [`BatchError::Store`] if the state file fails mid-run (every result stored so far is
    /// kept), [`BatchError::Output`] if `out` cannot be written.
    pub async fn run(
        &self,
        runtime: Arc<Runtime>,
        options: &BatchOptions,
        out: &Path,
        progress: impl FnMut(&Progress),
    ) -> Result<Summary, BatchError> {
        self.run_until(runtime, options, out, progress, std::future::pending())
            .await
    }

    /// As [`Batch::run`], until `stop` resolves: then it starts nothing more, stores every
    /// result already in, and ends with [`BatchError::Interrupted`]; requests cut short stay
    /// in flight in the store and are sent again by the next run (items claimed but not yet
    /// started are put back at once).
    ///
    /// # Errors
    /// As [`Batch::run`], plus [`BatchError::Interrupted`], [`BatchError::Halted`] when
    /// the API refuses the key or the runtime stops, and [`BatchError::Stalled`] when no item
    /// became final for `max_stall` while attempts failed.
    pub async fn run_until(
        &self,
        runtime: Arc<Runtime>,
        options: &BatchOptions,
        out: &Path,
        mut progress: impl FnMut(&Progress),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Summary, BatchError> {
        let store = &self.store;
        recover(store).await?;
        let concurrency = options.concurrency.max(1);
        let (writer, commands) = Writer::start(store.clone());
        let (halt, mut halted) = mpsc::unbounded_channel::<String>();
        let mut running: JoinSet<()> = JoinSet::new();
        let mut claimed: VecDeque<Item> = VecDeque::new();
        let mut pacer = options.rps.map(pacer);
        let mut stop = std::pin::pin!(stop);
        let mut counts = store.counts(BATCH, now_ms()).await?;
        let mut sent = 0u64;
        let mut looked = tokio::time::Instant::now();
        let mut watch = StallWatch::new(options.max_stall, upstream_of(&runtime), looked);
        let mut stalled = false;
        let ended = loop {
            if let Ok(why) = halted.try_recv() {
                break Some(BatchError::Halted(why));
            }
            if writer.task.is_finished() {
                break Some(BatchError::Store(StoreError::Cancelled));
            }
            while running.len() < concurrency {
                if claimed.is_empty() {
                    let ahead = concurrency.max(8) * 2;
                    claimed.extend(store.claim_ahead(BATCH, now_ms(), ahead).await?);
                }
                let Some(item) = claimed.pop_front() else {
                    break;
                };
                if let Some(pacer) = pacer.as_mut() {
                    pacer.tick().await;
                }
                let task = try_item(runtime.clone(), options.clone(), item, &commands, &mut sent);
                running.spawn(report(task, commands.clone(), halt.clone()));
            }
            if looked.elapsed() >= Duration::from_secs(1) {
                counts = store.counts(BATCH, now_ms()).await?;
                looked = tokio::time::Instant::now();
            }
            let seen = Progress::seen(&mut watch, &runtime, counts, sent, &mut stalled);
            progress(&seen);
            if let Some(stall) = seen.give_up {
                break Some(BatchError::Stalled(stall));
            }
            if running.is_empty() {
                // Everything commands has to be stored before the queue can be judged.
                if writer.flush(&commands).await.is_err() {
                    break Some(BatchError::Store(StoreError::Cancelled));
                }
                counts = store.counts(BATCH, now_ms()).await?;
                looked = tokio::time::Instant::now();
                let seen = Progress::seen(&mut watch, &runtime, counts, sent, &mut stalled);
                progress(&seen);
                if counts.is_done() {
                    break None;
                }
                if let Some(stall) = seen.give_up {
                    break Some(BatchError::Stalled(stall));
                }
                if counts.pending == 0 {
                    // Held in flight by nothing this run started: it cannot end by itself.
                    let held = counts.in_flight + counts.claimed;
                    let why = format!("{held} item(s) are in flight with no request");
                    break Some(BatchError::Halted(why));
                }
                if counts.due == 0 {
                    let wait = counts.next_due_in().unwrap_or(Duration::from_millis(200));
                    let wait = wait.clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut stop => break Some(BatchError::Interrupted),
                    }
                }
                continue;
            }
            tokio::select! {
                joined = running.join_next() => {
                    if let Some(Err(failure)) = joined
                        && failure.is_panic()
                    {
                        let why = format!("a request task panicked: {failure}");
                        break Some(BatchError::Halted(why));
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = &mut stop => break Some(BatchError::Interrupted),
            }
        };
        if let Some(error) = ended {
            return Err(wind_down(running, claimed, writer, commands, error).await);
        }
        writer.close(commands).await?;
        write_output(store, out).await?;
        Ok(Summary {
            resumed: self.resumed,
            counts,
            sent,
        })
    }
}

/// What a run shows as it goes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Progress {
    /// The queue, as last looked at (at most a second old).
    pub counts: Counts,
    /// Requests sent by this run so far.
    pub sent: u64,
    /// Set while attempts fail and no item has become final for a while: for how long, and
    /// the last failure.
    pub stall: Option<Stall>,
    /// The stall that ends the run (`max_stall` reached).
    give_up: Option<Stall>,
}

impl Progress {
    /// The run's progress now; logs a stall once as it begins.
    fn seen(
        watch: &mut StallWatch,
        runtime: &Runtime,
        counts: Counts,
        sent: u64,
        stalled: &mut bool,
    ) -> Progress {
        let now = tokio::time::Instant::now();
        let (stall, give_up) = match watch.check(&counts, runtime.last_failure().as_ref(), now) {
            Watch::Moving => (None, None),
            Watch::Stalled(stall) => (Some(stall), None),
            Watch::GiveUp(stall) => (Some(stall.clone()), Some(stall)),
        };
        if let Some(stall) = &stall
            && !*stalled
        {
            tracing::warn!(%stall, "the batch is making no progress");
        }
        *stalled = stall.is_some();
        Progress {
            counts,
            sent,
            stall,
            give_up,
        }
    }
}

/// Where `runtime` sends requests, as `host:port`, to name in a stall's cause.
fn upstream_of(runtime: &Runtime) -> Option<String> {
    let url = reqwest::Url::parse(runtime.client()?.base_url()).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// Ends a run that stopped early with `error`: requests cut short stay in flight (the next
/// run sends them again), items claimed but never started are put back at once, and every
/// result already in is stored. The error to report: the writer's own when it failed.
async fn wind_down(
    mut running: JoinSet<()>,
    mut claimed: VecDeque<Item>,
    writer: Writer,
    commands: mpsc::UnboundedSender<WriterCommand>,
    error: BatchError,
) -> BatchError {
    running.abort_all();
    while running.join_next().await.is_some() {}
    for item in claimed.drain(..) {
        let release = ItemUpdate::Release {
            key: item.key,
            not_before: 0,
            last_error: None,
        };
        let _ = commands.send(WriterCommand::Store(release));
    }
    let stored = writer.close(commands).await;
    match (error, stored) {
        (BatchError::Store(StoreError::Cancelled), Err(why)) => BatchError::Store(why),
        (error, _) => error,
    }
}

/// Puts back what a previous run left in flight.
async fn recover(store: &SharedStore) -> Result<(), StoreError> {
    let recovered = store.call(|store| store.recover(BATCH)).await?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "items in flight when the last run stopped are pending again"
        );
    }
    Ok(())
}

/// A clock that lets `rps` starts a second through.
fn pacer(rps: f64) -> tokio::time::Interval {
    let period = Duration::from_secs_f64(1.0 / rps.max(0.001)).max(Duration::from_micros(1));
    let mut pacer = tokio::time::interval(period);
    pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pacer
}

/// One try of `item`, owned, for a task. Unless the line is invalid (settled unsent), its
/// request counts in `sent` and is stored as sent: told the writer now, before the task
/// starts, so that it is stored before the item's result.
fn try_item(
    runtime: Arc<Runtime>,
    options: BatchOptions,
    item: Item,
    commands: &mpsc::UnboundedSender<WriterCommand>,
    sent: &mut u64,
) -> impl std::future::Future<Output = Verdict> + use<> {
    if invalid_line(&item).is_none() {
        *sent += 1;
        let key = item.key.clone();
        let _ = commands.send(WriterCommand::Store(ItemUpdate::Sent { key }));
    }
    async move { send_item(&runtime, &options, item).await }
}

/// Hands what `task` came to to the writer, and says so when it halts the run.
async fn report(
    task: impl std::future::Future<Output = Verdict>,
    commands: mpsc::UnboundedSender<WriterCommand>,
    halt: mpsc::UnboundedSender<String>,
) {
    match task.await {
        Verdict::Store(update) => {
            let _ = commands.send(WriterCommand::Store(update));
        }
        Verdict::Halt { release, why } => {
            let _ = commands.send(WriterCommand::Store(release));
            let _ = halt.send(why);
        }
    }
}
