//! The batch runner behind `breakwater batch run`: a JSONL file of Message Batches-shaped
//! requests, run through the [`Runtime`] and kept in a SQLite [`Store`] so that a run killed
//! at any moment (even `kill -9`) continues where it stopped when run again.
//!
//! Exactly once: every item's result is stored before anything else is done with it, and a
//! stored result is final, so an item is never sent again once its result is stored; the
//! output file is written from the store only when every item is final, to a temporary file
//! renamed into place, so it never holds a partial run and holds every `custom_id` once.
//!
//! Retryable failures that outlast the runtime's deadline (every model overloaded, say) put
//! the item back as pending, due again after a backoff that grows with its attempts, and the
//! run goes on with other items; permanent errors (4xx, a request the API refuses) are stored
//! as `errored` at once.

pub mod input;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::api::{ErrorType, WireMessage, WireRequest};
use crate::engine::{Error, Priority, RequestOptions, Target};
use crate::runtime::Runtime;
use crate::store::{
    BATCH, Binding, Counts, Item, NewItem, Settlement, SharedStore, Store, StoreError, now_ms,
};

pub use input::{Invalid, Problem};

/// How a run goes.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Requests in flight at once. Default: 16.
    pub concurrency: usize,
    /// Requests started per second at most; `None` for no pacing. Default: none.
    pub rps: Option<f64>,
    /// How long the runtime may work on one try of a request (retries and fallbacks
    /// included) before the item goes back to pending. Default: 120s.
    pub deadline: Duration,
    /// The first backoff of an item put back; it doubles per try. Default: 1s.
    pub backoff: Duration,
    /// The longest backoff. Default: 60s.
    pub max_backoff: Duration,
    /// Store invalid lines as `errored` results instead of refusing to start. Default: false.
    pub skip_invalid: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            rps: None,
            deadline: Duration::from_secs(120),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            skip_invalid: false,
        }
    }
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The input has bad lines; nothing was sent.
    #[error("{path}: {} invalid line(s); nothing was sent{}\n{}", .invalid.len(), skip_hint(*.skippable), list(.invalid))]
    Invalid {
        /// The input file.
        path: PathBuf,
        /// Every bad line.
        invalid: Vec<Invalid>,
        /// Whether `--skip-invalid` could write them as errored (false when some have no
        /// usable `custom_id` of their own).
        skippable: bool,
    },
    /// The input file could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The input file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The state file is unusable, or another run holds it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run stopped because going on could only fail every item: the API refused the key
    /// (401, 403), or the runtime stopped. No result was stored for the item that showed it.
    #[error("{0}; every result so far is kept: fix it and run the same command to continue")]
    Halted(String),
    /// The run was interrupted; every result settled so far is stored.
    #[error("interrupted: every result so far is kept; run the same command to continue")]
    Interrupted,
    /// The input changed while it was being loaded.
    #[error("{0} changed while it was being read; run the same command again on the final file")]
    InputChanged(PathBuf),
    /// The output file could not be written; the results are safe in the state file, and
    /// running the same command again writes it.
    #[error(
        "cannot write {path}: {source} (every result is kept in the state file; run the same command again to write it)"
    )]
    Output {
        /// The output file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn skip_hint(skippable: bool) -> &'static str {
    if skippable {
        " (fix them, or pass --skip-invalid to write them as errored results)"
    } else {
        ""
    }
}

fn list(invalid: &[Invalid]) -> String {
    const SHOWN: usize = 20;
    let mut lines: Vec<String> = invalid
        .iter()
        .take(SHOWN)
        .map(|i| format!("  {i}"))
        .collect();
    if invalid.len() > SHOWN {
        lines.push(format!("  ... and {} more", invalid.len() - SHOWN));
    }
    lines.join("\n")
}

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

/// A prepared run: the input validated and loaded into the store.
pub struct Batch {
    store: SharedStore,
    resumed: bool,
    total: u64,
}

impl Batch {
    /// Validates `input` whole, binds `state` to it (refusing a state file made from another
    /// input) and loads every item not yet stored. Nothing is sent.
    ///
    /// # Errors
    /// [`BatchError::Invalid`] listing every bad line (unless `skip_invalid`),
    /// [`BatchError::Input`], or [`BatchError::Store`] naming the state file and what to do.
    pub async fn prepare(
        input: &Path,
        state: &Path,
        options: &BatchOptions,
    ) -> Result<Batch, BatchError> {
        let input = input.to_owned();
        let read_error = |source: io::Error| BatchError::Input {
            path: input.clone(),
            source,
        };
        let validated = {
            let input = input.clone();
            tokio::task::spawn_blocking(move || input::validate(&input))
                .await
                .map_err(|e| read_error(io::Error::other(e.to_string())))?
                .map_err(read_error)?
        };
        if !validated.invalid.is_empty() {
            // A line without a usable custom_id of its own cannot be written as a result.
            let skippable = validated.invalid.iter().all(|bad| {
                bad.custom_id.is_some() && !matches!(bad.problem, Problem::Duplicate { .. })
            });
            if !options.skip_invalid || !skippable {
                return Err(BatchError::Invalid {
                    path: input,
                    invalid: validated.invalid,
                    skippable,
                });
            }
        }
        let state = state.to_owned();
        let fingerprint = validated.fingerprint.clone();
        let shown = input.display().to_string();
        let (store, binding) = tokio::task::spawn_blocking(move || {
            let mut store = Store::open_exclusive(&state)?;
            let binding = store.bind_input(&fingerprint, &shown)?;
            Ok::<_, StoreError>((store, binding))
        })
        .await
        .map_err(|_| StoreError::Cancelled)??;
        let store = SharedStore::new(store);
        let loaded = store
            .call(|store| store.meta(LOADED).map(|v| v.is_some()))
            .await?;
        if !loaded {
            let path = input.clone();
            let validated_as = validated.fingerprint.clone();
            let loaded_as = store
                .call(move |store| load(store, &path))
                .await?
                .map_err(read_error)?;
            if loaded_as != validated_as {
                return Err(BatchError::InputChanged(input));
            }
        }
        let counts = store.counts(BATCH, now_ms()).await?;
        Ok(Batch {
            store,
            resumed: binding == Binding::Resumed,
            total: counts.total(),
        })
    }

    /// Items in the job.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether this run resumes an earlier one.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Runs every unfinished item through `runtime` until each is final, calling `progress`
    /// with the queue's counts as they change, then writes `out`.
    ///
    /// Items are claimed ahead in small groups, and results are stored by one writer that
    /// commits whatever has settled since its last commit in one transaction: one disk sync
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
        progress: impl FnMut(&Counts, u64),
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
    /// As [`Batch::run`], plus [`BatchError::Interrupted`], and [`BatchError::Halted`] when
    /// the API refuses the key or the runtime stops.
    pub async fn run_until(
        &self,
        runtime: Arc<Runtime>,
        options: &BatchOptions,
        out: &Path,
        mut progress: impl FnMut(&Counts, u64),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Summary, BatchError> {
        let store = &self.store;
        recover(store).await?;
        let concurrency = options.concurrency.max(1);
        let (writer, settled) = Writer::start(store.clone());
        let (halt, mut halted) = mpsc::unbounded_channel::<String>();
        let mut running: JoinSet<()> = JoinSet::new();
        let mut claimed: VecDeque<Item> = VecDeque::new();
        let mut pacer = options.rps.map(pacer);
        let mut stop = std::pin::pin!(stop);
        let mut counts = store.counts(BATCH, now_ms()).await?;
        let mut sent = 0u64;
        let mut looked = tokio::time::Instant::now();
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
                    claimed.extend(store.claim(BATCH, now_ms(), ahead).await?);
                }
                let Some(item) = claimed.pop_front() else {
                    break;
                };
                if let Some(pacer) = pacer.as_mut() {
                    pacer.tick().await;
                }
                sent += u64::from(invalid_line(&item).is_none());
                let task = try_item(runtime.clone(), options.clone(), item);
                running.spawn(report(task, settled.clone(), halt.clone()));
            }
            if looked.elapsed() >= Duration::from_secs(1) {
                counts = store.counts(BATCH, now_ms()).await?;
                looked = tokio::time::Instant::now();
            }
            progress(&counts, sent);
            if running.is_empty() {
                // Everything settled has to be stored before the queue can be judged.
                if writer.flush(&settled).await.is_err() {
                    break Some(BatchError::Store(StoreError::Cancelled));
                }
                counts = store.counts(BATCH, now_ms()).await?;
                looked = tokio::time::Instant::now();
                progress(&counts, sent);
                if counts.is_done() {
                    break None;
                }
                if counts.pending == 0 {
                    // Held in flight by nothing this run started: it cannot end by itself.
                    let why = format!("{} item(s) are in flight with no request", counts.in_flight);
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
            return Err(wind_down(running, claimed, writer, settled, error).await);
        }
        writer.close(settled).await?;
        write_output(store, out).await?;
        Ok(Summary {
            resumed: self.resumed,
            counts,
            sent,
        })
    }
}

/// Ends a run that stopped early with `error`: requests cut short stay in flight (the next
/// run sends them again), items claimed but never started are put back at once, and every
/// result already in is stored. The error to report: the writer's own when it failed.
async fn wind_down(
    mut running: JoinSet<()>,
    mut claimed: VecDeque<Item>,
    writer: Writer,
    settled: mpsc::UnboundedSender<Message>,
    error: BatchError,
) -> BatchError {
    running.abort_all();
    while running.join_next().await.is_some() {}
    for item in claimed.drain(..) {
        let release = Settlement::Release {
            key: item.key,
            not_before: 0,
            last_error: None,
        };
        let _ = settled.send(Message::Settle(release));
    }
    let stored = writer.close(settled).await;
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

/// One try of `item`, owned, for a task.
async fn try_item(runtime: Arc<Runtime>, options: BatchOptions, item: Item) -> Settled {
    settle(&runtime, &options, item).await
}

/// Hands what `task` came to to the writer, and says so when it halts the run.
async fn report(
    task: impl std::future::Future<Output = Settled>,
    settled: mpsc::UnboundedSender<Message>,
    halt: mpsc::UnboundedSender<String>,
) {
    match task.await {
        Settled::Store(settlement) => {
            let _ = settled.send(Message::Settle(settlement));
        }
        Settled::Halt { release, why } => {
            let _ = settled.send(Message::Settle(release));
            let _ = halt.send(why);
        }
    }
}

/// What a try of an item came to.
pub(crate) enum Settled {
    /// Store this.
    Store(Settlement),
    /// Store this (the item put back), and stop: every other item would fail the same way.
    Halt {
        /// The item, put back.
        release: Settlement,
        /// Why.
        why: String,
    },
}

/// What the writer is told.
enum Message {
    /// Store this.
    Settle(Settlement),
    /// Reply once everything sent before is stored.
    Flush(oneshot::Sender<()>),
}

/// The one task that stores results: it commits whatever has arrived since its last commit
/// in one transaction.
struct Writer {
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl Writer {
    /// The most settlements committed at once.
    const GROUP: usize = 512;

    fn start(store: SharedStore) -> (Writer, mpsc::UnboundedSender<Message>) {
        let (sender, mut inbox) = mpsc::unbounded_channel::<Message>();
        let task = tokio::spawn(async move {
            while let Some(first) = inbox.recv().await {
                let mut group = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next {
                    match message {
                        Message::Settle(settlement) => group.push(settlement),
                        Message::Flush(reply) => flushes.push(reply),
                    }
                    next = if group.len() < Self::GROUP {
                        inbox.try_recv().ok()
                    } else {
                        None
                    };
                }
                if !group.is_empty() {
                    store
                        .call(move |store| store.settle_many(BATCH, &group))
                        .await?;
                }
                for reply in flushes {
                    let _ = reply.send(());
                }
            }
            Ok(())
        });
        (Writer { task }, sender)
    }

    /// Waits until every settlement sent so far is stored.
    async fn flush(&self, settled: &mpsc::UnboundedSender<Message>) -> Result<(), StoreError> {
        let (reply, stored) = oneshot::channel();
        if settled.send(Message::Flush(reply)).is_ok() && stored.await.is_ok() {
            return Ok(());
        }
        // The writer stopped: it failed, and says why when joined.
        Err(StoreError::Cancelled)
    }

    /// Stores what is left and stops.
    async fn close(self, settled: mpsc::UnboundedSender<Message>) -> Result<(), StoreError> {
        drop(settled);
        self.task.await.map_err(|_| StoreError::Cancelled)?
    }
}

/// Stores every line of `input` not stored yet, in chunks, then marks the input loaded;
/// returns the fingerprint of what it read. An input that cannot be read stops it with
/// nothing marked, and the next run loads again.
fn load(store: &mut Store, input: &Path) -> Result<io::Result<String>, StoreError> {
    const CHUNK: usize = 5_000;
    let mut hasher = Sha256::new();
    let mut lines = match input::lines(input, Some(&mut hasher)) {
        Ok(lines) => lines,
        Err(error) => return Ok(Err(error)),
    };
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        for line in lines.by_ref().take(CHUNK) {
            match line {
                Ok(line) => chunk.push(to_new_item(line)),
                Err(error) => return Ok(Err(error)),
            }
        }
        if chunk.is_empty() {
            break;
        }
        store.insert_many(BATCH, chunk)?;
    }
    drop(lines);
    let fingerprint = input::hex(&hasher.finalize());
    store.set_meta(LOADED, "yes")?;
    Ok(Ok(fingerprint))
}

/// The meta key set once the whole input is in the store.
const LOADED: &str = "input.loaded";

/// The options of an item stored from an invalid line (`--skip-invalid`): what is wrong.
#[derive(serde::Serialize, serde::Deserialize)]
struct InvalidLine {
    invalid: String,
}

fn to_new_item(line: input::Line) -> NewItem {
    match line {
        Ok(item) => NewItem::new(item.custom_id, item.line as u64, item.params),
        Err(bad) => {
            let marker = InvalidLine {
                invalid: bad.to_string(),
            };
            NewItem::new(bad.custom_id.unwrap_or_default(), bad.line as u64, "null")
                .with_options(serde_json::to_string(&marker).unwrap_or_default())
        }
    }
}

/// What is wrong with the line `item` was stored from, if it was invalid.
fn invalid_line(item: &Item) -> Option<String> {
    let options = item.options.as_deref()?;
    serde_json::from_str::<InvalidLine>(options)
        .ok()
        .map(|line| line.invalid)
}

/// Sends one claimed item; what is to be stored of it.
async fn settle(runtime: &Runtime, options: &BatchOptions, item: Item) -> Settled {
    let key = item.key.clone();
    let fail = |kind: &str, message: &str| {
        Settled::Store(Settlement::Fail {
            key: key.clone(),
            error: errored(kind, message),
        })
    };
    if let Some(problem) = invalid_line(&item) {
        return fail("invalid_request_error", &problem);
    }
    let payload = bytes::Bytes::copy_from_slice(item.payload.as_bytes());
    let request = match WireRequest::from_json(payload) {
        Ok(request) => request,
        Err(error) => return fail("invalid_request_error", &error.to_string()),
    };
    let chain = match runtime.chain_for_model(request.model()) {
        Some(chain) => chain,
        None => match runtime.serve_alone(request.model()).await {
            Ok(()) => vec![Target::new(request.model())],
            Err(error) => {
                return Settled::Store(put_back(
                    &item,
                    &error,
                    options.backoff,
                    options.max_backoff,
                ));
            }
        },
    };
    let request_options = RequestOptions::default()
        .with_chain(chain)
        .with_priority(Priority::Normal)
        .with_deadline(options.deadline);
    let sent = runtime.send_wire(request, request_options).await;
    settlement(&item, sent, options.backoff, options.max_backoff)
}

/// What to store of `item` after a send ended with `sent`: a success or a permanent error is
/// final; anything else puts it back, due after a backoff from `backoff` doubling per try up
/// to `max_backoff`. A refused key (401, 403) or a stopped runtime halts: no item could
/// succeed, and storing each as errored would end the job wrongly.
pub(crate) fn settlement(
    item: &Item,
    sent: Result<crate::engine::Answer<WireMessage>, Error>,
    backoff: Duration,
    max_backoff: Duration,
) -> Settled {
    let key = item.key.clone();
    match sent {
        Ok(answer) => Settled::Store(Settlement::Succeed {
            key,
            result: BatchResult::succeeded_json(&answer.value),
        }),
        Err(error @ Error::Upstream { .. }) if refuses_the_key(&error) => Settled::Halt {
            release: put_back(item, &error, Duration::ZERO, Duration::ZERO),
            why: format!("the API refused the key: {error}"),
        },
        Err(Error::Upstream { failure, .. }) => {
            let kind = failure
                .error_type()
                .map_or(ErrorType::InvalidRequest, ErrorType::from);
            Settled::Store(Settlement::Fail {
                key,
                error: errored(kind.as_str(), failure.message()),
            })
        }
        Err(Error::Invalid(message)) => Settled::Store(Settlement::Fail {
            key,
            error: errored("invalid_request_error", &message),
        }),
        Err(error @ Error::Shutdown) => Settled::Halt {
            release: put_back(item, &error, Duration::ZERO, Duration::ZERO),
            why: "the runtime stopped".into(),
        },
        Err(error) => Settled::Store(put_back(item, &error, backoff, max_backoff)),
    }
}

/// Whether `error` is the API refusing the credentials (401 or 403), which no retry of any
/// item can overcome.
fn refuses_the_key(error: &Error) -> bool {
    let Error::Upstream { failure, .. } = error else {
        return false;
    };
    matches!(failure.status(), Some(401 | 403))
        || matches!(
            failure.error_type().map(ErrorType::from),
            Some(ErrorType::Authentication | ErrorType::Permission)
        )
}

/// Puts a retryable failure back as pending, due after a backoff that doubles per try
/// (jittered, at least the failure's `retry-after`).
fn put_back(item: &Item, error: &Error, backoff: Duration, max_backoff: Duration) -> Settlement {
    let doubling = backoff.saturating_mul(1 << item.attempts.saturating_sub(1).min(16));
    let cap = doubling.min(max_backoff);
    let jittered = cap.mul_f64(rand::rng().random_range(0.5..=1.0));
    // A retry-after longer than the cap is cut to it: one header must not stall a job for
    // a day.
    let delay = jittered.max(error.retry_after().unwrap_or_default().min(max_backoff));
    Settlement::Release {
        key: item.key.clone(),
        not_before: now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        last_error: Some(error.to_string()),
    }
}

/// A result as the store keeps it and the output writes it: the Message Batches API's
/// `result` object (`type` first).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum BatchResult {
    /// Answered.
    Succeeded {
        /// The answer.
        message: crate::api::Message,
    },
    /// Refused for good.
    Errored {
        /// Why.
        error: ErrorDetail,
    },
}

/// An errored result's error.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ErrorDetail {
    /// The API's `error.type`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Its message.
    pub(crate) message: String,
}

impl BatchResult {
    /// A succeeded result holding the answer as the upstream sent it (not re-serialized,
    /// so its numbers and key order reach the output unchanged).
    fn succeeded_json(message: &WireMessage) -> String {
        let message = message.bytes();
        format!(
            "{{\"type\":\"succeeded\",\"message\":{}}}",
            String::from_utf8_lossy(&message)
        )
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub(crate) fn errored(kind: &str, message: &str) -> String {
    let error = ErrorDetail {
        kind: kind.to_owned(),
        message: message.to_owned(),
    };
    BatchResult::Errored { error }.to_json()
}

/// Writes every final item, in input order, to a temporary file beside `out`, then renames
/// it over `out`: a reader never sees a partial file under `out`'s name.
async fn write_output(store: &SharedStore, out: &Path) -> Result<(), BatchError> {
    let out = out.to_owned();
    let store = store.clone();
    let result = store
        .call(move |store| Ok(write_output_blocking(store, &out).map_err(|e| (out, e))))
        .await?;
    result.map_err(|(path, source)| BatchError::Output { path, source })
}

fn write_output_blocking(store: &Store, out: &Path) -> io::Result<()> {
    const PAGE: usize = 1_000;
    let name = out
        .file_name()
        .ok_or_else(|| io::Error::other("the output path names no file"))?
        .to_string_lossy();
    let temporary = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let mut writer = BufWriter::new(File::create(&temporary)?);
    let mut after = None;
    loop {
        let page = store
            .finished(BATCH, after, PAGE)
            .map_err(io::Error::other)?;
        let Some(last) = page.last() else { break };
        after = Some(last.ordinal);
        for item in &page {
            let id = serde_json::to_string(&item.key).map_err(io::Error::other)?;
            writeln!(
                writer,
                "{{\"custom_id\":{id},\"result\":{}}}",
                item.outcome.body()
            )?;
        }
    }
    let file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, out)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The queue's counts, from a state file opened read-only (beside a running job).
///
/// # Errors
/// [`StoreError`] naming the file: missing, not a state file, from a newer build.
pub fn status(state: &Path) -> Result<Counts, StoreError> {
    Store::open_read_only(state)?.counts(BATCH, now_ms())
}
