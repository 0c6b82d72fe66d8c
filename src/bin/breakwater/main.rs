//! The `breakwater` command line: `send` one request, drive `load` through the runtime, or run
//! the `mock` server.

mod batch;
mod exit;
mod load;
mod mock;
mod send;
mod serve;
mod setup;
mod sim;

use std::process::ExitCode;

/// mimalloc rather than the system allocator: the gateway holds request bodies of up to
/// 32 MB for the length of a request, and glibc's malloc keeps such buffers after a burst
/// (its mmap threshold rises to their size, so they come from arenas it rarely trims),
/// where mimalloc hands the memory back to the OS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use breakwater::telemetry::Telemetry;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// breakwater keeps services answering when the Claude API is overloaded.
#[derive(Debug, Parser)]
#[command(name = "breakwater", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send one Messages request through the runtime and print the reply's text.
    Send(send::Args),
    /// Drive open-loop Poisson traffic through the runtime and report how it coped.
    Load(load::Args),
    /// Run an Anthropic-compatible mock server that browns out on a script.
    Mock(mock::Args),
    /// Compare breakwater with today's retry strategies on a simulated overload, in virtual time.
    Sim(sim::Args),
    /// Serve an Anthropic-compatible gateway through the runtime.
    Serve(serve::Args),
    /// Run a JSONL file of requests resumably through the runtime, or show its progress.
    Batch(batch::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return exit::usage(&format!("cannot start the async runtime: {error}")),
    };
    // Traces for the commands that serve traffic, when an OTLP endpoint is set.
    let traced = matches!(
        cli.command,
        Command::Serve(_) | Command::Load(_) | Command::Batch(_)
    );
    let telemetry = if traced {
        let _entered = runtime.enter();
        breakwater::telemetry::from_env().transpose()
    } else {
        Ok(None)
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => return exit::usage(&error.to_string()),
    };
    install_tracing(telemetry.as_ref());
    let code = run(&runtime, cli.command);
    // Flush on the way out, while the runtime the exporter sends on still runs.
    if let Some(Err(error)) = telemetry.map(Telemetry::shutdown) {
        eprintln!("warning: {error}");
    }
    code
}

/// Logs on stderr by `RUST_LOG` (default `warn`); with `telemetry`, the OpenTelemetry layer
/// beside them, each layer with its own filter. Without it the filter is global, so that
/// spans no layer wants are disabled at their call sites.
fn install_tracing(telemetry: Option<&Telemetry>) {
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let Some(telemetry) = telemetry else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(telemetry.layer())
        .init();
}

fn run(runtime: &tokio::runtime::Runtime, command: Command) -> ExitCode {
    runtime.block_on(async {
        match command {
            Command::Send(args) => send::run(args).await,
            Command::Load(args) => load::run(args).await,
            Command::Mock(args) => mock::run(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Batch(args) => batch::run(args).await,
        }
    })
}
