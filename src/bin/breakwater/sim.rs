//! `breakwater sim`: the real runtime and today's retry strategies against a simulated
//! Claude API in virtual time, with a progress bar on stderr and a table (or one JSON
//! object) on stdout; `--out` adds a Markdown report and charts. With `--replicas`, fleets of
//! breakwater replicas sharing their breakers or not (see [`fleet`]).

mod bar;
mod fleet;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bar::progress_bar;
use breakwater::config::Config;
use breakwater::sim::fleet::{FleetOptions, ReplicaCounts, StoreOutage};
use breakwater::sim::report::{SimReport, table, write_dir};
use breakwater::sim::run::Progress;
use breakwater::sim::strategy::StrategyName;
use breakwater::sim::{SimScenario, SimScenarioError};
use indicatif::ProgressBar;

use crate::exit;

/// Compare breakwater with today's retry strategies on a simulated overload.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A built-in scenario (brownout, outage, all-degraded, rate-limited, metastable,
    /// flapping, surge) or a scenario TOML file. Default: brownout; with --replicas, outage.
    #[arg(long, value_name = "NAME|FILE")]
    scenario: Option<String>,
    /// Strategies to run, comma-separated: none, tutorial-loop, sdk-default, sdk-fallback,
    /// cooldown-router, breakwater. Default: all six.
    #[arg(long, value_delimiter = ',', conflicts_with = "replicas")]
    strategies: Vec<StrategyName>,
    /// Run fleets of this many breakwater replicas instead of the strategies, each with
    /// breakers shared through one store and alone, e.g. 1,3,10,30,100; the scenario's
    /// traffic is dealt to them round robin (see docs/SIM.md).
    #[arg(long, value_name = "N,N,...")]
    replicas: Option<ReplicaCounts>,
    /// With --replicas: how long each call to the fleet's store takes (one way).
    #[arg(long, value_name = "D", default_value = "1ms", value_parser = humantime::parse_duration, requires = "replicas")]
    store_latency: Duration,
    /// With --replicas: a window in which the fleet's store is unreachable, e.g. 30s..60s.
    #[arg(long, value_name = "START..END", requires = "replicas")]
    store_outage: Option<StoreOutage>,
    /// With --replicas: write a chart of the fleets (PNG, or SVG for a .svg path).
    #[arg(long, value_name = "PATH", requires = "replicas")]
    chart: Option<PathBuf>,
    /// How long requests keep arriving (overrides the scenario's duration).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Seed of arrivals, service times and jitter (overrides the scenario's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Mean arrivals per second, before surges (overrides the scenario's rps); a number
    /// above 0.
    #[arg(long, value_name = "R", value_parser = parse_rps, allow_negative_numbers = true)]
    rps: Option<f64>,
    /// A breakwater.toml (as `load --config` takes it) whose policies (retry, breaker,
    /// budget, admission, ...) and limits for the scenario's models the breakwater strategy
    /// runs with; the scenario's chain and models remain the targets, and its seed the seed.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write report.md and charts (PNG and SVG) into this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "replicas")]
    out: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let fleets = args.replicas.is_some();
    let name = args
        .scenario
        .as_deref()
        .unwrap_or(if fleets { "outage" } else { "brownout" });
    let mut scenario = match SimScenario::load(name) {
        Ok(scenario) => scenario,
        Err(error) => return exit::usage(&describe(name, &error)),
    };
    if let Some(duration) = args.duration {
        scenario.duration = duration;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(rps) = args.rps {
        scenario.rps = rps;
    }
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => Some(config),
            Err(error) => return exit::usage(&format!("--config: {error}")),
        },
        None => None,
    };
    if let Some(replicas) = &args.replicas {
        let options = FleetOptions {
            replicas: replicas.0.clone(),
            store_latency: args.store_latency,
            store_outage: args.store_outage,
        };
        return fleet::run(scenario, config, options, args.json, args.chart.as_deref()).await;
    }
    let strategies = if args.strategies.is_empty() {
        StrategyName::ALL.to_vec()
    } else {
        args.strategies.clone()
    };
    let bar = progress_bar();
    let shown = bar.clone();
    let simulated = tokio::task::spawn_blocking(move || {
        let report = breakwater::sim::run::run(&scenario, &strategies, config.as_ref(), |p| {
            show(&shown, p);
        });
        report.map_err(|error| error.to_string())
    })
    .await
    .map_err(|error| format!("the simulation crashed: {error}"))
    .and_then(|report| report);
    bar.finish_and_clear();
    match simulated {
        Ok(report) => output(&report, &args),
        Err(message) => exit::usage(&message),
    }
}

fn output(report: &SimReport, args: &Args) -> ExitCode {
    if args.json {
        match serde_json::to_string(report) {
            Ok(json) => println!("{json}"),
            Err(error) => return exit::usage(&format!("cannot encode the report: {error}")),
        }
    } else {
        print!("{}", table::text(report));
    }
    if let Some(dir) = &args.out {
        match write_dir(report, dir) {
            Ok(path) => eprintln!("wrote {}", path.display()),
            Err(error) => return exit::usage(&error.to_string()),
        }
    }
    ExitCode::SUCCESS
}

/// A rate for `--rps`: a finite number above 0.
fn parse_rps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rps) if rps.is_finite() && rps > 0.0 => Ok(rps),
        _ => Err(format!(
            "{text:?} is not a rate: give requests per second as a number above 0, e.g. 50"
        )),
    }
}

fn show(bar: &ProgressBar, p: Progress) {
    // A long run ends hundreds of thousands of requests a second: redrawing for each would
    // cost more than the requests.
    if !p.done.is_multiple_of(256) && p.done != p.requests {
        return;
    }
    bar.set_length(p.requests * p.count as u64);
    bar.set_position(p.requests * p.index as u64 + p.done);
    bar.set_message(format!("{}/{} {}", p.index + 1, p.count, p.strategy));
}

/// The error, plus the line of the bad setting when validation named a field of a file
/// (toml's own errors already carry line and column).
fn describe(name: &str, error: &SimScenarioError) -> String {
    let mut message = error.to_string();
    if let SimScenarioError::File { source, .. } = error
        && let SimScenarioError::Invalid { field, .. } = source.as_ref()
    {
        let text = std::fs::read_to_string(name).unwrap_or_default();
        if let Some(line) = line_of(&text, field) {
            let _ = write!(message, " (line {line})");
        }
    }
    message
}

/// The 1-based line that sets `field` (a dotted path such as `models.m.slots` or
/// `surges[0].end`): the first line, from its `[models.NAME]` table on, that assigns the
/// deepest key of the path it can find.
fn line_of(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let from = field
        .strip_prefix("models.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|model| {
            let header = format!("[models.{model}]");
            lines.iter().position(|l| l.trim() == header)
        })
        .unwrap_or(0);
    let keys = field
        .split('.')
        .rev()
        .map(|k| k.split('[').next().unwrap_or(k));
    keys.filter(|key| !key.is_empty())
        .find_map(|key| {
            lines[from..].iter().position(|line| {
                let line = line.split('#').next().unwrap_or_default();
                line.match_indices(key).any(|(at, _)| {
                    let before = line[..at].chars().next_back();
                    let after = line[at + key.len()..].trim_start();
                    after.starts_with('=')
                        && !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
                })
            })
        })
        .map(|index| from + index + 1)
}
