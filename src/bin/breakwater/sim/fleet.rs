//! `breakwater sim --replicas N,N,...`: fleets of breakwater replicas, with shared and local
//! breakers, on one simulated API; a progress bar on stderr, a table (or one JSON object) on
//! stdout, and `--chart` writes the chart.

use std::path::Path;
use std::process::ExitCode;

use breakwater::config::Config;
use breakwater::sim::SimScenario;
use breakwater::sim::fleet::{FleetOptions, FleetProgress, FleetReport, text, write_chart};
use indicatif::ProgressBar;

use super::bar::progress_bar;
use crate::exit;

pub(super) async fn run(
    scenario: SimScenario,
    config: Option<Config>,
    options: FleetOptions,
    json: bool,
    chart: Option<&Path>,
) -> ExitCode {
    let bar = progress_bar();
    let shown = bar.clone();
    let simulated = tokio::task::spawn_blocking(move || {
        let report = breakwater::sim::fleet::run(&scenario, &options, config.as_ref(), |p| {
            show(&shown, p);
        });
        report.map_err(|error| error.to_string())
    })
    .await
    .map_err(|error| format!("the simulation crashed: {error}"))
    .and_then(|report| report);
    bar.finish_and_clear();
    match simulated {
        Ok(report) => output(&report, json, chart),
        Err(message) => exit::usage(&message),
    }
}

fn output(report: &FleetReport, json: bool, chart: Option<&Path>) -> ExitCode {
    if json {
        match serde_json::to_string(report) {
            Ok(json) => println!("{json}"),
            Err(error) => return exit::usage(&format!("cannot encode the report: {error}")),
        }
    } else {
        print!("{}", text(report));
    }
    if let Some(path) = chart {
        match write_chart(report, path) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(error) => return exit::usage(&error.to_string()),
        }
    }
    ExitCode::SUCCESS
}

fn show(bar: &ProgressBar, p: FleetProgress) {
    if !p.done.is_multiple_of(256) && p.done != p.requests {
        return;
    }
    bar.set_length(p.requests * p.count as u64);
    bar.set_position(p.requests * p.index as u64 + p.done);
    bar.set_message(format!(
        "{}/{} {} replicas, {}",
        p.index + 1,
        p.count,
        p.replicas,
        p.variant
    ));
}
