//! `breakwater serve`: the Anthropic-compatible gateway, until interrupted.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::exit;
use crate::setup::Connection;

/// Serve `POST /v1/messages` through the runtime, for any client that speaks the Messages API.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The default chain, comma-separated: a request for its first model falls back along it.
    #[arg(long, value_delimiter = ',')]
    chain: Vec<String>,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let started = match args.connection.start(&args.chain).await {
        Ok(started) => started,
        Err(message) => return exit::usage(&message),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => return exit::usage(&format!("cannot listen on {}: {error}", args.listen)),
    };
    let address = listener.local_addr().map_or(args.listen, |a| a);
    println!("breakwater gateway listening on http://{address}");
    println!("try: ANTHROPIC_BASE_URL=http://{address} with any Anthropic SDK");
    let app = breakwater::gateway::router(started.runtime.clone());
    let served = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    if let Err(error) = served.await {
        eprintln!("error: the gateway stopped: {error}");
        return ExitCode::from(exit::UNAVAILABLE);
    }
    ExitCode::SUCCESS
}
