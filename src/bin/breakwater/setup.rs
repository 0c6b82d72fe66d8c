//! What every command that sends requests shares: where they go (`--base-url`, `--config`, or
//! an in-process `--mock`), and the runtime built from that.

use std::path::PathBuf;
use std::sync::Arc;

use breakwater::client::{Credentials, Secret};
use breakwater::config::Config;
use breakwater::mock::{MockServer, Scenario};
use breakwater::runtime::Runtime;

/// The chain served when the command line names none and no config file is given.
const DEFAULT_CHAIN: [&str; 2] = ["claude-sonnet-5-5", "claude-haiku-5-5"];

/// Where requests go.
#[derive(Debug, clap::Args)]
pub(crate) struct Connection {
    /// The API's base URL. Default: the config's, else $ANTHROPIC_BASE_URL, else the public API.
    #[arg(long, visible_alias = "upstream")]
    base_url: Option<String>,
    /// A breakwater.toml with models, chains and policies (the chain flags override its default chain).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve requests from a built-in mock started in-process: no key or network needed.
    #[arg(long, conflicts_with = "base_url")]
    mock: bool,
    /// The mock's scenario, with --mock: a built-in name or a TOML file.
    #[arg(long, default_value = "healthy", requires = "mock")]
    scenario: String,
    /// A beta flag to send as `anthropic-beta` (repeat for several).
    #[arg(long = "beta")]
    betas: Vec<String>,
    /// Share breakers, limits and budgets with the other replicas through this Redis
    /// (redis://[user:password@]host:port[/db]; wins over the config's cluster.redis). Put a
    /// URL with a password in the environment rather than on the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "BREAKWATER_REDIS",
        hide_env_values = true
    )]
    redis: Option<String>,
    /// This replica's name in its fleet (default: the config's cluster.replica, else host
    /// name, process id and a random suffix).
    #[arg(long, value_name = "NAME")]
    replica: Option<String>,
}

/// A runtime, and the mock it talks to when there is one (kept alive with it).
pub(crate) struct Started {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) _mock: Option<MockServer>,
}

impl Connection {
    /// Starts a runtime serving `chain` (when not empty) as its default chain.
    pub(crate) async fn start(&self, chain: &[String]) -> Result<Started, String> {
        let mut config = match &self.config {
            Some(path) => Config::load(path).map_err(|error| error.to_string())?,
            None => Config::default(),
        };
        let default_chain: Vec<String>;
        let chain = if chain.is_empty() && self.config.is_none() {
            default_chain = DEFAULT_CHAIN.iter().map(|m| (*m).to_owned()).collect();
            eprintln!(
                "no --chain or --config: serving {} (falling back in that order)",
                DEFAULT_CHAIN.join(" -> ")
            );
            &default_chain[..]
        } else {
            chain
        };
        if !chain.is_empty() {
            let upstream = config.upstream.clone();
            config = Config::for_chain(chain).with_policies_of(&config);
            config.upstream = upstream;
        }
        config.upstream.betas.extend(self.betas.iter().cloned());
        if let Some(url) = &self.redis {
            config.cluster.redis = Some(breakwater::config::RedisUrl::new(url.clone()));
        }
        if let Some(replica) = &self.replica {
            config.cluster.fleet.replica.clone_from(replica);
        }
        // The in-process mock enforces the configured catalogue, overrides included.
        let catalog = config.catalog().map_err(|error| error.to_string())?;
        let mut builder = Runtime::builder().config(config);
        let mut mock = None;
        if self.mock {
            let scenario = Scenario::load(&self.scenario).map_err(|error| error.to_string())?;
            let server =
                MockServer::start_with_catalog(scenario, catalog, ([127, 0, 0, 1], 0).into())
                    .await
                    .map_err(|error| format!("cannot start the mock: {error}"))?;
            let key = Credentials::from_env().unwrap_or(Credentials::ApiKey(Secret::new("mock")));
            builder = builder.base_url(server.base_url()).credentials(key);
            mock = Some(server);
        } else {
            if Credentials::from_env().is_none() {
                return Err("no API key: set ANTHROPIC_API_KEY (sent as x-api-key) or \
                    ANTHROPIC_AUTH_TOKEN (sent as Authorization: Bearer), or try --mock"
                    .into());
            }
            if let Some(base_url) = &self.base_url {
                builder = builder.base_url(base_url.clone());
            }
        }
        let runtime = builder.start().await.map_err(|error| error.to_string())?;
        Ok(Started {
            runtime: Arc::new(runtime),
            _mock: mock,
        })
    }
}
