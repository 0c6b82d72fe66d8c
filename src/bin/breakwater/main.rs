//! The `breakwater` command line: `send` one request, or run the `mock` server.

mod mock;
mod send;

use std::process::ExitCode;

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
    /// Send one Messages request and print the reply's text.
    Send(send::Args),
    /// Run an Anthropic-compatible mock server that browns out on a script.
    Mock(mock::Args),
}

/// Exit codes shared by every command.
mod exit {
    /// Usage or configuration error (clap uses 2 for usage errors too).
    pub(crate) const USAGE: u8 = 2;
    /// A permanent error: the request itself was refused (4xx).
    pub(crate) const PERMANENT: u8 = 3;
    /// A retryable failure (overloaded, rate limited, server, timeout, connect) that could not
    /// be overcome.
    pub(crate) const UNAVAILABLE: u8 = 4;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Send(args) => send::run(args).await,
            Command::Mock(args) => mock::run(args).await,
        }
    })
}
