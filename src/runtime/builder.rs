//! [`RuntimeBuilder`]: what a [`Runtime`] starts with (a configuration or a bare chain, a base
//! URL, credentials, another upstream, a store for deferred requests), and starting it: the
//! HTTP client with its model catalogue (refreshed from `GET /v1/models` when asked), the
//! engine's actors, and the deferred requests' pump.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Runtime;
use super::core::{Core, DynUpstream};
use super::deferred::Deferred;
use super::error::RuntimeError;
use super::watch::{FailureNote, Watched};
use crate::catalog::Catalog;
use crate::client::{
    BEDROCK_UPSTREAM, BedrockAuth, ClaudeClient, ClientConfig, Credentials, DEFAULT_BASE_URL,
    VERTEX_UPSTREAM, VertexAuth, non_empty_env,
};
use crate::config::{Config, ConfigError, RedisUrl, target_of};
use crate::engine::Engine;
use crate::engine::fleet::Fleet;

impl Runtime {
    /// A builder with the default configuration.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Starts a runtime from a `breakwater.toml` file.
    ///
    /// # Errors
    /// [`RuntimeError`] naming what is wrong, with the file's path.
    pub async fn from_config(path: impl AsRef<Path>) -> Result<Self, RuntimeError> {
        Self::builder()
            .config(Config::load(path.as_ref())?)
            .start()
            .await
    }
}

/// Builds a [`Runtime`]: `Runtime::builder().chain([...]).start().await`.
#[derive(Default)]
pub struct RuntimeBuilder {
    config: Config,
    base_url: Option<String>,
    credentials: Option<Credentials>,
    bedrock: Option<BedrockAuth>,
    vertex: Option<VertexAuth>,
    upstream: Option<DynUpstream>,
    store: Option<PathBuf>,
    fleet: Option<Fleet>,
    redis: Option<RedisUrl>,
}

impl RuntimeBuilder {
    /// Keeps deferred requests ([`Runtime::defer`]) in the SQLite file at `path`, created if
    /// missing: they survive restarts, and one started with the same file picks them up.
    /// One process at a time may use a file.
    #[must_use]
    pub fn store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }

    /// Uses `config` (models, chains, policies); replaces anything set before.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves exactly these models, in this order, as the default chain, with default limits.
    #[must_use]
    pub fn chain<S: AsRef<str>>(mut self, models: impl IntoIterator<Item = S>) -> Self {
        let models: Vec<String> = models.into_iter().map(|m| m.as_ref().to_owned()).collect();
        let upstream = self.config.upstream.clone();
        self.config = Config::for_chain(&models);
        self.config.upstream = upstream;
        self
    }

    /// Sends requests to this base URL (wins over the config file and `ANTHROPIC_BASE_URL`).
    #[must_use]
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Authenticates with these credentials instead of `ANTHROPIC_API_KEY` /
    /// `ANTHROPIC_AUTH_TOKEN`.
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How requests to Bedrock authenticate, instead of the environment's and the profile
    /// files' (see [`BedrockAuth::discover`]).
    #[must_use]
    pub fn bedrock_credentials(mut self, auth: BedrockAuth) -> Self {
        self.bedrock = Some(auth);
        self
    }

    /// How requests to Vertex AI authenticate, instead of the environment's
    /// (`GOOGLE_OAUTH_ACCESS_TOKEN`, else the standard Google chain: see
    /// [`VertexAuth::discover`]).
    #[must_use]
    pub fn vertex_credentials(mut self, auth: VertexAuth) -> Self {
        self.vertex = Some(auth);
        self
    }

    /// Sends requests to `upstream` instead of the HTTP client.
    #[must_use]
    pub fn upstream(mut self, upstream: DynUpstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Joins `fleet`: the engine's breakers share what they learn with the other replicas
    /// on its store (see `breakwater_actors::fleet`).
    #[must_use]
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Shares what this replica learns with the other replicas of its fleet through the
    /// Redis at `url` (`redis://[user:password@]host:port[/db]`), with the `[cluster]`
    /// settings of the configuration; wins over `cluster.redis`. Redis being down, slow or
    /// refusing the credentials never stops the runtime: it decides alone until Redis answers.
    #[must_use]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(RedisUrl::new(url));
        self
    }

    /// Validates the configuration and starts the actors.
    ///
    /// # Errors
    /// [`RuntimeError`] naming what is wrong.
    pub async fn start(mut self) -> Result<Runtime, RuntimeError> {
        if let Some(url) = self.redis.take() {
            self.config.cluster.redis = Some(url);
        }
        self.config.validate()?;
        let fleet = self
            .fleet
            .take()
            .or_else(|| crate::fleet::join(&self.config.cluster, None));
        for warning in self.config.warnings() {
            tracing::warn!(key = %warning.key, "{}", warning.reason);
        }
        let mut http = None;
        let mut listed = None;
        let upstream = if let Some(upstream) = self.upstream {
            upstream
        } else {
            let mut client = client_config(&self.config, self.base_url);
            client.credentials = self.credentials.or(client.credentials);
            let mut client = ClaudeClient::new(&client)?;
            if let Some(bedrock) = &self.config.platforms.bedrock
                && let Some(entry) = entry_on(&self.config, BEDROCK_UPSTREAM)
            {
                let auth = match self.bedrock.take() {
                    Some(auth) => auth,
                    None => BedrockAuth::discover(&bedrock.region)
                        .await
                        .map_err(|how| RuntimeError::NoCredentials {
                            platform: "platforms.bedrock",
                            entry,
                            how,
                        })?,
                };
                client = client.with_bedrock(&bedrock.base_url(), &bedrock.region, auth)?;
            }
            if let Some(vertex) = &self.config.platforms.vertex
                && let Some(entry) = entry_on(&self.config, VERTEX_UPSTREAM)
            {
                let auth = match self.vertex.take().or_else(VertexAuth::from_env) {
                    Some(auth) => auth,
                    None => VertexAuth::discover().await.map_err(|error| {
                        RuntimeError::NoCredentials {
                            platform: "platforms.vertex",
                            entry,
                            how: error.to_string(),
                        }
                    })?,
                };
                client = client.with_vertex(
                    &vertex.base_url(),
                    &vertex.project,
                    &vertex.region,
                    auth,
                )?;
            }
            let catalog;
            (catalog, listed) = catalog_for(&self.config, &client).await?;
            let client = client.with_catalog(catalog, self.config.adapt);
            http = Some(client.clone());
            Arc::new(client)
        };
        let counter = http.clone().filter(|_| self.config.upstream.count_tokens);
        let failures = FailureNote::default();
        let upstream: DynUpstream = Arc::new(Watched::new(upstream, failures.clone()));
        let engine =
            Engine::start_in(Arc::new(upstream), self.config.engine_config(), fleet).await?;
        let core =
            Arc::new(Core::new(engine, self.config, counter, http, failures).listing(listed));
        let deferred = match &self.store {
            Some(path) => Some(Deferred::start(path, core.clone()).await?),
            None => None,
        };
        Ok(Runtime { core, deferred })
    }
}

/// The client settings: the base URL from the builder, else the config file when it names
/// one, else `ANTHROPIC_BASE_URL`, else the public API; credentials from the environment.
/// The first chain entry or `[models]` key that names a target on `upstream`.
fn entry_on(config: &Config, upstream: &str) -> Option<String> {
    config
        .chains
        .values()
        .flatten()
        .chain(config.models.keys())
        .find(|entry| target_of(entry).upstream() == Some(upstream))
        .cloned()
}

fn client_config(config: &Config, base_url: Option<String>) -> ClientConfig {
    let mut client = config.upstream.clone();
    client.credentials = Credentials::from_env();
    if let Some(base_url) = base_url {
        client.base_url = base_url;
    } else if client.base_url == DEFAULT_BASE_URL
        && let Some(from_env) = non_empty_env("ANTHROPIC_BASE_URL")
    {
        client.base_url = from_env;
    }
    client
}

/// How long the catalogue's refresh may wait for `GET /v1/models`.
const MODELS_TIMEOUT: Duration = Duration::from_secs(3);

/// The model catalogue: the built-in one with `[catalog.models]` over it, and, with
/// `[catalog] refresh`, over what the upstream's `GET /v1/models` says; a refresh that fails
/// keeps the rest, with a warning. Beside it, the ids `GET /v1/models` listed (none without
/// a refresh, or when it failed).
async fn catalog_for(
    config: &Config,
    client: &ClaudeClient,
) -> Result<(Arc<Catalog>, Option<HashSet<String>>), ConfigError> {
    let configured = config.catalog()?;
    if !config.catalog.refresh {
        return Ok((configured, None));
    }
    let models = match client.list_models(MODELS_TIMEOUT).await {
        Ok(models) => models,
        Err(failure) => {
            tracing::warn!(%failure, "GET /v1/models failed: the model catalogue is not refreshed");
            return Ok((configured, None));
        }
    };
    let listed = Some(models.iter().map(|model| model.id().to_owned()).collect());
    match Catalog::with_learned(&config.catalog.models, &models) {
        Ok(catalog) => Ok((Arc::new(catalog), listed)),
        Err(error) => {
            tracing::warn!(%error, "GET /v1/models contradicts the catalogue: not refreshed");
            Ok((configured, listed))
        }
    }
}
