//! `breakwater mock`: serve the loopback mock until interrupted.

use std::net::SocketAddr;
use std::process::ExitCode;

use breakwater::mock::{MockServer, Scenario};

use crate::exit;

/// Serve an Anthropic-compatible `POST /v1/messages` that browns out on a script.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8529")]
    listen: SocketAddr,
    /// A built-in scenario name or a TOML file.
    #[arg(long, default_value = "healthy")]
    scenario: String,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let server = match MockServer::start(scenario, args.listen).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.listen);
            return ExitCode::from(exit::USAGE);
        }
    };
    println!(
        "breakwater mock listening on {} (scenario {})",
        server.base_url(),
        args.scenario
    );
    println!(
        "try: ANTHROPIC_API_KEY=test cargo run --release -- send --base-url {} \"Hello\"",
        server.base_url()
    );
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for ctrl-c: {error}");
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}
