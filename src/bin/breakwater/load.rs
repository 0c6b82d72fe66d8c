//! `breakwater load`: open-loop Poisson traffic through the embedded runtime, with a progress
//! bar on stderr and a summary (or one JSON object) at the end.

use std::process::ExitCode;
use std::time::Duration;

use breakwater::api::MessagesRequest;
use breakwater::load::{LoadPlan, LoadReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit;
use crate::setup::Connection;

/// Drive open-loop traffic through the runtime and report how it coped.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The chain of models to serve, first choice first (comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "config")]
    chain: Vec<String>,
    /// Mean requests per second (arrivals are a Poisson process).
    #[arg(long, default_value_t = 10.0)]
    rps: f64,
    /// How long requests keep arriving.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Each request's deadline.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// `max_tokens` of each request.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Seed of the arrival process.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Serve Prometheus metrics (`breakwater_*`) at http://ADDR/metrics while the run lasts.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    if !(args.rps.is_finite() && args.rps > 0.0) {
        return exit::usage(&format!(
            "invalid --rps {}: must be a positive number",
            args.rps
        ));
    }
    if let Some(addr) = args.metrics_listen {
        let exporter =
            metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr);
        if let Err(error) = exporter.install() {
            return exit::usage(&format!("cannot serve metrics on {addr}: {error}"));
        }
    }
    let started = match args.connection.start(&args.chain).await {
        Ok(started) => started,
        Err(message) => return exit::usage(&message),
    };
    let runtime = started.runtime.clone();
    let Some(head) = runtime
        .config()
        .default_chain()
        .first()
        .map(|t| t.model().to_owned())
    else {
        return exit::usage("no model to send to: give --chain or a config with chains.default");
    };
    let request =
        MessagesRequest::new(head, args.max_tokens).with_user("Say hello in one short sentence.");
    let plan = LoadPlan {
        rps: args.rps,
        duration: args.duration,
        deadline: args.deadline,
        seed: args.seed,
    };
    let expected = (args.rps * args.duration.as_secs_f64()).ceil() as u64;
    let bar = progress_bar(expected);
    let report = breakwater::load::run(&runtime, &request, &plan, |report| {
        bar.set_length(report.requests.max(expected));
        bar.set_position(report.succeeded + report.failed);
        bar.set_message(format!("ok {} failed {}", report.succeeded, report.failed));
    })
    .await;
    bar.finish_and_clear();
    runtime.shutdown(Duration::from_secs(1)).await;
    if args.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => return exit::usage(&format!("cannot encode the report: {error}")),
        }
    } else {
        print_summary(&report);
    }
    ExitCode::SUCCESS
}

fn progress_bar(length: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(length), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn print_summary(report: &LoadReport) {
    println!("requests     {}", report.requests);
    println!(
        "succeeded    {} ({:.2}%)",
        report.succeeded,
        report.success_rate * 100.0
    );
    println!("failed       {}", report.failed);
    let l = report.latency_ms;
    println!(
        "latency ms   p50 {:.0}  p95 {:.0}  p99 {:.0}  max {:.0}",
        l.p50, l.p95, l.p99, l.max
    );
    println!(
        "attempts     {} ({:.3} per request)",
        report.attempts, report.attempts_per_request
    );
    println!(
        "late         {} (answered after their deadline)",
        report.late
    );
    for (model, outcomes) in &report.attempts_by_model {
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        println!("attempts at  {model}: {}", outcomes.join(", "));
    }
    for (model, count) in &report.answered_by {
        println!("answered by  {model}: {count}");
    }
    for (class, count) in &report.errors {
        println!("error        {class}: {count}");
    }
    for t in &report.breaker_transitions {
        println!(
            "breaker      {:>8}ms  {}  {} -> {}",
            t.at_ms, t.model, t.from, t.to
        );
    }
}
