//! `breakwater batch`: run a JSONL file of Message Batches-shaped requests through the runtime,
//! resumably, and report a state file's progress.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use breakwater::batch::{Batch, BatchError, BatchOptions, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::exit;
use crate::setup::Connection;

/// Run a batch of requests resumably, or show a batch's progress.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run every request of INPUT (one `{"custom_id", "params"}` per line, as the Message
    /// Batches API takes) and write one result per line to --out. Killed at any moment, the
    /// same command continues where it stopped; a finished job sends nothing.
    Run(Box<RunArgs>),
    /// Counts of pending, claimed (by the runner, next to be sent), in flight (sent, not yet
    /// answered), succeeded and errored items in a state file, and the age of the oldest
    /// pending one; safe to run beside a running job.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The input, JSONL in the Message Batches API's shape.
    input: PathBuf,
    /// Where the results go, one `{"custom_id", "result"}` per line, written once every item
    /// is done (to a temporary file renamed into place).
    #[arg(long)]
    out: PathBuf,
    /// The state file that makes the run resumable. Default: the output's path plus
    /// `.state.sqlite`.
    #[arg(long)]
    state: Option<PathBuf>,
    /// The default chain, comma-separated; a request for its first model falls back along it.
    /// A request for a model in no chain is served alone.
    #[arg(long, value_delimiter = ',')]
    chain: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Requests started per second at most (default: no pacing beyond the runtime's own).
    #[arg(long)]
    rps: Option<f64>,
    /// How long one try of a request may take, retries and fallbacks included, before the item
    /// goes back to pending and is tried again later in the run.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// How long an item that failed retryably (every model overloaded past --deadline) waits
    /// before it is tried again; doubles with each try, jittered, up to --max-backoff.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    backoff: Duration,
    /// The longest such wait.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    max_backoff: Duration,
    /// Write invalid lines as `errored` results instead of refusing to start.
    #[arg(long)]
    skip_invalid: bool,
    /// How long the run may go without an item finishing while requests fail (the upstream
    /// down or refusing) before it stops with exit code 4, naming the last failure; every
    /// result is kept and the same command continues. `0s`: never stop.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    max_stall: Duration,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The state file of a batch run.
    #[arg(long)]
    state: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Run(args) => run_batch(*args).await,
        Command::Status(args) => status(&args),
    }
}

async fn run_batch(args: RunArgs) -> ExitCode {
    if let Some(rps) = args.rps.filter(|rps| !(rps.is_finite() && *rps > 0.0)) {
        return exit::usage(&format!("--rps must be a positive number, not {rps}"));
    }
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| default_state(&args.out));
    let options = BatchOptions {
        concurrency: args.concurrency as usize,
        rps: args.rps,
        deadline: args.deadline,
        backoff: args.backoff,
        max_backoff: args.max_backoff.max(args.backoff),
        skip_invalid: args.skip_invalid,
        max_stall: Some(args.max_stall).filter(|stall| !stall.is_zero()),
        seed: None,
    };
    let batch = match Batch::prepare(&args.input, &state, &options).await {
        Ok(batch) => batch,
        Err(error) => return exit::usage(&error.to_string()),
    };
    let started = match args.connection.start(&args.chain).await {
        Ok(started) => started,
        Err(message) => return exit::usage(&message),
    };
    eprintln!(
        "{} {} item(s) from {}; state in {}",
        if batch.resumed() {
            "resuming"
        } else {
            "running"
        },
        batch.total(),
        args.input.display(),
        state.display()
    );
    let bar = progress_bar(batch.total());
    let mut rate = Rate::default();
    let shown = bar.clone();
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let outcome = batch
        .run_until(
            Arc::clone(&started.runtime),
            &options,
            &args.out,
            move |seen: &Progress| show(&shown, seen, rate.update(seen.sent)),
            interrupted,
        )
        .await;
    started.runtime.shutdown(Duration::from_secs(1)).await;
    match outcome {
        Ok(summary) => {
            bar.finish();
            let c = summary.counts;
            eprintln!(
                "done: {} succeeded, {} errored; {} request(s) sent by this run; results in {}",
                c.succeeded,
                c.errored,
                summary.sent,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(BatchError::Interrupted) => {
            bar.abandon_with_message("interrupted");
            eprintln!(
                "interrupted: every result so far is kept in {}; run the same command to continue",
                state.display()
            );
            ExitCode::from(130)
        }
        Err(error) => {
            bar.abandon();
            eprintln!("error: {error}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

fn default_state(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".state.sqlite");
    PathBuf::from(name)
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("[{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Requests sent per second over the last few seconds.
#[derive(Default)]
struct Rate {
    samples: std::collections::VecDeque<(tokio::time::Instant, u64)>,
}

impl Rate {
    const WINDOW: Duration = Duration::from_secs(5);

    fn update(&mut self, sent: u64) -> f64 {
        let now = tokio::time::Instant::now();
        self.samples.push_back((now, sent));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > Self::WINDOW)
        {
            self.samples.pop_front();
        }
        let Some(&(since, first)) = self.samples.front() else {
            return 0.0;
        };
        let span = now.duration_since(since).as_secs_f64();
        if span < 0.5 {
            return 0.0;
        }
        (sent - first) as f64 / span
    }
}

fn show(bar: &ProgressBar, seen: &Progress, rate: f64) {
    let counts = &seen.counts;
    bar.set_position(counts.succeeded + counts.errored);
    let stall = seen
        .stall
        .as_ref()
        .map(|stall| format!(" · {stall}"))
        .unwrap_or_default();
    bar.set_message(format!(
        "done {} · failed {} · pending {} · claimed {} · in flight {} · {rate:.1} req/s{stall}",
        counts.succeeded, counts.errored, counts.pending, counts.claimed, counts.in_flight
    ));
}

fn status(args: &StatusArgs) -> ExitCode {
    let counts = match breakwater::batch::status(&args.state) {
        Ok(counts) => counts,
        Err(error) => return exit::usage(&error.to_string()),
    };
    let oldest = counts.oldest_pending_age();
    if args.json {
        let report = json!({
            "pending": counts.pending,
            "due": counts.due,
            "claimed": counts.claimed,
            "in_flight": counts.in_flight,
            "succeeded": counts.succeeded,
            "errored": counts.errored,
            "total": counts.total(),
            "oldest_pending_age_s": oldest.map(|age| age.as_secs_f64()),
        });
        println!("{report}");
    } else {
        println!(
            "{} item(s): {} pending, {} claimed (next to be sent), {} in flight, {} succeeded, \
             {} errored",
            counts.total(),
            counts.pending,
            counts.claimed,
            counts.in_flight,
            counts.succeeded,
            counts.errored
        );
        if let Some(age) = oldest {
            println!("oldest pending: {}", humantime::format_duration(round(age)));
        }
        if counts.is_done() {
            println!("finished");
        }
    }
    ExitCode::SUCCESS
}

fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}
