//! `breakwater serve`: the Anthropic-compatible gateway, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use breakwater::gateway::{self, Gateway};

use crate::exit;
use crate::setup::Connection;

/// Serve the Messages API through the runtime, for any client that speaks it.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The default chain, comma-separated: a request for its first model falls back along it.
    #[arg(long, value_delimiter = ',')]
    chain: Vec<String>,
    /// How long in-flight requests may take to finish after SIGTERM (default: the config's
    /// gateway.grace, 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// The most client connections open at once; past it a new one gets 529 and is closed
    /// (default: the config's gateway.max-connections, 1024).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    // Before anything opens a file: a descriptor per connection needs room.
    match gateway::raise_fd_limit() {
        Ok((before, now)) => tracing::info!(before, now, "open-file limit (RLIMIT_NOFILE)"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit; keeping it"),
    }
    let metrics = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(error) => {
            eprintln!("warning: /metrics is off: {error}");
            None
        }
    };
    let started = match args.connection.start(&args.chain).await {
        Ok(started) => started,
        Err(message) => return exit::usage(&message),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => return exit::usage(&format!("cannot listen on {}: {error}", args.listen)),
    };
    let address = listener.local_addr().map_or(args.listen, |a| a);
    let runtime = started.runtime.clone();
    let mut gateway = Gateway::new(runtime.clone());
    let mut config = gateway.config().clone();
    if let Some(grace) = args.grace {
        config.grace = grace;
    }
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    if let Some(handle) = metrics {
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        gateway = gateway.with_metrics(handle);
    }
    let chain: Vec<String> = runtime
        .config()
        .default_chain()
        .iter()
        .map(ToString::to_string)
        .collect();
    // One write: a reader that takes the first line and closes the pipe cannot make a later
    // line fail (a failed print panics).
    let mut banner = format!(
        "breakwater gateway listening on http://{address}\ndefault chain: {}\nat most {} \
         client connections\n",
        chain.join(" -> "),
        config.max_connections
    );
    if config.require_keys {
        banner.push_str("clients must present one of the configured gateway.keys\n");
    }
    banner.push_str("try: ANTHROPIC_BASE_URL=http://");
    banner.push_str(&address.to_string());
    banner.push_str(" with any Anthropic SDK\n");
    print!("{banner}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let drained = gateway::serve(listener, gateway.router(), &config, stop_signal()).await;
    let left = runtime.shutdown(Duration::from_secs(1)).await;
    match drained {
        Ok(drained) if drained.clean && left == 0 => {
            eprintln!("drained in {:.1?}; stopped", drained.took);
            ExitCode::SUCCESS
        }
        Ok(drained) => {
            eprintln!(
                "the grace period of {:?} ended with requests in flight: {} cut with a shutdown \
                 error, {left} left in the engine",
                config.grace, drained.cut
            );
            ExitCode::from(exit::CUT)
        }
        Err(error) => {
            eprintln!("error: the gateway stopped: {error}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
