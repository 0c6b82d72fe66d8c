//! The runtime's configuration: `breakwater.toml`, read into one [`Config`].
//!
//! Each table of the file is a config struct that already exists elsewhere: `[upstream]` is
//! the client's [`ClientConfig`], `[models.NAME]` a target's [`TargetLimits`], and `[retry]`,
//! `[breaker]`, `[budget]`, `[admission]` and `[supervision]` the engine's policies. This module
//! only adds the models and chains around them, checks the whole, and hands the engine its
//! [`EngineConfig`]. `[catalog.models.ID]` corrects the built-in model [`Catalog`]. Errors name
//! the bad key by its dotted path (`models.NAME.concurrency`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{AdaptMode, Catalog, CatalogConfig, CatalogError};
use crate::client::ClientConfig;
use crate::engine::policy::{
    AdmissionConfig, BreakerConfig, BudgetConfig, RetryPolicy, ThrottleConfig,
};
use crate::engine::{EngineConfig, SupervisionConfig, Target, TargetLimits};

pub(crate) mod cluster;
mod error;
pub(crate) mod gateway;
mod platform;
mod validate;

pub use cluster::{ClusterConfig, RedisUrl};
pub use error::ConfigError;
pub use gateway::{ClientKey, GatewayConfig};
pub use platform::{
    BedrockConfig, Platform, PlatformsConfig, TargetSyntaxError, UnknownPlatform, VertexConfig,
    parse_target,
};
pub use validate::ConfigWarning;

/// The name of the chain used by requests that name none.
pub const DEFAULT_CHAIN: &str = "default";

/// Everything `breakwater.toml` holds. Every table and key may be left out; only the models
/// (and, with more than one, `chains.default`) must be given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Fixes every random draw (backoff and breaker jitter), for reproducible runs.
    /// Default: none (a seed is drawn at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How to reach the API. Credentials never come from this file, only from the
    /// environment. Default: see [`ClientConfig`].
    pub upstream: ClientConfig,
    /// The models served, each with its limits; each gets a worker and a circuit breaker.
    /// Default: none (at least one is required).
    pub models: BTreeMap<String, TargetLimits>,
    /// Named fall-back chains of models, tried in order; `default` serves requests that name
    /// none. Default: none (required when more than one model is configured).
    pub chains: BTreeMap<String, Vec<String>>,
    /// Retry and fall-back rules, with `[retry.backoff]`. Default: see [`RetryPolicy`].
    pub retry: RetryPolicy,
    /// Circuit breaker settings, the same for every model. Default: see [`BreakerConfig`].
    pub breaker: BreakerConfig,
    /// Retry budget settings, one budget per model. Default: see [`BudgetConfig`].
    pub budget: BudgetConfig,
    /// Admission bounds. Default: see [`AdmissionConfig`].
    pub admission: AdmissionConfig,
    /// How crashed actors are restarted. Default: see [`SupervisionConfig`].
    pub supervision: SupervisionConfig,
    /// Whether a request whose model is full (its concurrency limit reached, or held back by
    /// a rate-limit pause or pacing) goes on at once to the next model of its chain, when
    /// that one has room, instead of queueing. Default: true.
    pub spillover: bool,
    /// `[chain-spillover]`: per named chain, `spillover` otherwise than the top-level key,
    /// e.g. `quality = false` for a chain whose requests would rather wait for their first
    /// model. Default: none.
    pub chain_spillover: BTreeMap<String, bool>,
    /// Whether a request that moves on to another model of its chain is first adapted to
    /// what that model accepts, by the model [`Catalog`] (`"adapt"`), or sent as it came
    /// (`"skip"`). Default: "adapt".
    pub adapt: AdaptMode,
    /// `[chain-adapt]`: per named chain, `adapt` otherwise than the top-level key, e.g.
    /// `raw = "skip"`. Default: none.
    pub chain_adapt: BTreeMap<String, AdaptMode>,
    /// `[catalog]`: `[catalog.models.ID]` overrides keys of a model the built-in catalogue
    /// knows (by id or alias) or adds one it does not. Default: none (the built-in catalogue).
    pub catalog: CatalogConfig,
    /// The client-side throttle per model (the SRE book's adaptive throttling): when a model
    /// has been rejecting most of what it is sent, turn requests away locally. Default: on,
    /// see [`ThrottleSettings`].
    pub throttle: ThrottleSettings,
    /// `[gateway]`: client keys, unlisted models and client timeouts for `breakwater serve`.
    /// Default: see [`GatewayConfig`].
    pub gateway: GatewayConfig,
    /// `[cluster]`: the fleet this replica shares what it learns with, through Redis.
    /// Default: none (the replica decides alone).
    pub cluster: ClusterConfig,
    /// `[platforms]`: where `MODEL@bedrock` and `MODEL@vertex` chain entries are
    /// served. Default: none (every model on the Claude API).
    #[serde(skip_serializing_if = "PlatformsConfig::is_empty")]
    pub platforms: PlatformsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: None,
            upstream: ClientConfig::default(),
            models: BTreeMap::new(),
            chains: BTreeMap::new(),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            budget: BudgetConfig::default(),
            admission: AdmissionConfig::default(),
            supervision: SupervisionConfig::default(),
            spillover: true,
            chain_spillover: BTreeMap::new(),
            adapt: AdaptMode::Adapt,
            chain_adapt: BTreeMap::new(),
            catalog: CatalogConfig::default(),
            throttle: ThrottleSettings::default(),
            gateway: GatewayConfig::default(),
            cluster: ClusterConfig::default(),
            platforms: PlatformsConfig::default(),
        }
    }
}

/// `[throttle]`: the client-side throttle, on or off, with its settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ThrottleSettings {
    /// Whether to throttle at all. Default: true.
    pub enabled: bool,
    /// K and the window. Default: see [`ThrottleConfig`].
    #[serde(flatten)]
    pub config: ThrottleConfig,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            config: ThrottleConfig::default(),
        }
    }
}

impl Config {
    /// Parses and validates a configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Toml`] if the text does not parse into a `Config`,
    /// [`ConfigError::Invalid`] if it parses but cannot work (see [`Config::validate`]).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(ConfigError::Toml)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] if it cannot be read, otherwise [`ConfigError::File`] around the
    /// error [`Config::from_toml`] gives; both name the path.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::File {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// A config serving exactly `models`, in that order, with default limits and policies,
    /// and `chains.default` naming them: what the command line builds from `--chain M1,M2`.
    pub fn for_chain(models: &[String]) -> Config {
        let config = Config {
            chains: BTreeMap::from([(DEFAULT_CHAIN.to_owned(), models.to_vec())]),
            ..Config::default()
        };
        config.with_models(models)
    }

    /// Adds each of `models` not yet configured, with default limits.
    #[must_use]
    pub fn with_models(mut self, models: &[String]) -> Config {
        for model in models {
            self.models.entry(model.clone()).or_default();
        }
        self
    }

    /// This config's models and chains, with everything else but `upstream` taken from
    /// `other`: the seed, the policies, and the limits `other` gives to models both serve.
    /// For a chain chosen on the command line over a file's.
    #[must_use]
    pub fn with_policies_of(mut self, other: &Config) -> Config {
        for (model, limits) in &mut self.models {
            if let Some(configured) = other.models.get(model) {
                *limits = *configured;
            }
        }
        Config {
            seed: other.seed,
            retry: other.retry,
            breaker: other.breaker,
            budget: other.budget,
            admission: other.admission,
            supervision: other.supervision,
            spillover: other.spillover,
            chain_spillover: other.chain_spillover.clone(),
            adapt: other.adapt,
            chain_adapt: other.chain_adapt.clone(),
            catalog: other.catalog.clone(),
            throttle: other.throttle,
            gateway: other.gateway.clone(),
            cluster: other.cluster.clone(),
            platforms: other.platforms.clone(),
            ..self
        }
    }

    /// The built-in model catalogue with this config's `[catalog.models.ID]` overrides applied
    /// (the built-in one itself when there are none). Builds a new catalogue on each call
    /// with overrides: call it once at start.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `catalog.models.ID.KEY` when an override is refused;
    /// never for a config that passed [`Config::validate`].
    pub fn catalog(&self) -> Result<Arc<Catalog>, ConfigError> {
        let builtin = Catalog::builtin();
        if self.catalog.models.is_empty() {
            return Ok(builtin);
        }
        match builtin.with_overrides(&self.catalog.models) {
            Ok(catalog) => Ok(Arc::new(catalog)),
            Err(CatalogError::Invalid { field, reason }) => {
                Err(ConfigError::invalid(format!("catalog.{field}"), reason))
            }
            Err(other) => Err(ConfigError::invalid("catalog", other.to_string())),
        }
    }

    /// Whether requests of the chain called `chain_name` are adapted on a fallback: its
    /// `[chain-adapt]` entry, else the top-level `adapt`.
    pub fn adapt_for(&self, chain_name: &str) -> AdaptMode {
        self.chain_adapt
            .get(chain_name)
            .copied()
            .unwrap_or(self.adapt)
    }

    /// The chain called `name`, as targets, if it is configured.
    pub fn chain(&self, name: &str) -> Option<Vec<Target>> {
        let entries = self.chains.get(name)?;
        Some(entries.iter().map(|entry| target_of(entry)).collect())
    }

    /// The limits of `target`: `[models."MODEL@PLATFORM"]` when that table exists, else
    /// `[models.MODEL]`, so one table serves a model on every platform unless a platform's
    /// target has its own.
    pub fn limits_for(&self, target: &Target) -> Option<&TargetLimits> {
        self.models
            .get(&target.to_string())
            .or_else(|| self.models.get(target.model()))
    }

    /// The chain for requests that name none: `chains.default`, or else the only model when
    /// exactly one is configured. Empty when neither exists (which [`Config::validate`]
    /// refuses).
    pub fn default_chain(&self) -> Vec<Target> {
        if let Some(chain) = self.chain(DEFAULT_CHAIN) {
            return chain;
        }
        match self.models.keys().collect::<Vec<_>>().as_slice() {
            [only] => vec![target_of(only)],
            _ => Vec::new(),
        }
    }

    /// What the engine runs on: every model as a target with its limits (those of the default
    /// chain first, in its order, then the others by name), the default chain, the policies
    /// and the seed.
    pub fn engine_config(&self) -> EngineConfig {
        let chain = self.default_chain();
        let rest = self.models.keys().map(|model| target_of(model));
        let mut targets: Vec<(Target, TargetLimits)> = Vec::new();
        for target in chain.iter().cloned().chain(rest) {
            let Some(limits) = self.limits_for(&target) else {
                continue;
            };
            if !targets.iter().any(|(known, _)| *known == target) {
                targets.push((target, *limits));
            }
        }
        EngineConfig {
            targets,
            chain,
            retry: self.retry,
            breaker: self.breaker,
            budget: self.budget,
            admission: self.admission,
            supervision: self.supervision,
            spillover: self.spillover,
            chain_spillover: self
                .chain_spillover
                .iter()
                .filter_map(|(name, spill)| Some((self.chain(name)?, *spill)))
                .collect(),
            throttle: self.throttle.enabled.then_some(self.throttle.config),
            seed: self.seed,
        }
    }
}

/// The target a chain entry or a `[models]` key names: `MODEL` and `MODEL@anthropic` the model
/// on the default upstream, `MODEL@bedrock` the model via the upstream called `bedrock`. An
/// entry that does not parse (which [`Config::validate`] refuses) is taken as a model name.
pub fn target_of(entry: &str) -> Target {
    match parse_target(entry) {
        Ok((model, Platform::Anthropic)) => Target::new(model),
        Ok((model, platform)) => Target::new(model).via(platform.name()),
        Err(_) => Target::new(entry),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::path::PathBuf;

    use super::validate::validate_limits;
    use super::*;
    use crate::engine::policy::PolicyError;

    fn models(names: &[&str]) -> Vec<String> {
        names.iter().map(|&name| name.to_owned()).collect()
    }

    #[test]
    fn policy_errors_get_their_table_as_prefix() {
        let error = PolicyError::Invalid {
            field: "window",
            reason: "must be longer than zero".into(),
        };
        let error = ConfigError::within("budget", error);
        assert_eq!(error.field(), Some("budget.window"));
        assert_eq!(
            error.to_string(),
            "invalid budget.window: must be longer than zero"
        );
    }

    #[test]
    fn toml_errors_keep_the_position_without_a_trailing_newline() {
        let error = Config::from_toml("seed = \"x\"\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("TOML parse error at line 1, column 8"),
            "{message}"
        );
        assert!(message.ends_with("expected u64"), "{message:?}");
        assert_eq!(error.field(), None);
    }

    #[test]
    fn field_sees_through_the_file() {
        let error = ConfigError::File {
            path: PathBuf::from("b.toml"),
            source: Box::new(ConfigError::invalid(
                "chains.x",
                "must name at least one model",
            )),
        };
        assert_eq!(error.field(), Some("chains.x"));
        assert_eq!(
            error.to_string(),
            "b.toml: invalid chains.x: must name at least one model"
        );
    }

    #[test]
    fn default_chain_is_empty_when_ambiguous() {
        let config = Config::default().with_models(&models(&["a", "b"]));
        assert!(config.default_chain().is_empty());
        assert!(Config::default().default_chain().is_empty());
    }

    #[test]
    fn engine_targets_follow_the_chain_then_the_name_once_each() {
        let mut config = Config::for_chain(&models(&["c", "a", "c"])).with_models(&models(&["b"]));
        config.models.insert(
            "a".into(),
            TargetLimits {
                stall_timeout: Duration::from_secs(5),
                ..TargetLimits::default()
            },
        );
        let engine = config.engine_config();
        let order: Vec<&str> = engine.targets.iter().map(|(t, _)| t.model()).collect();
        assert_eq!(order, ["c", "a", "b"]);
        assert_eq!(engine.chain.len(), 3);
        let a = engine.limits(&Target::new("a")).map(|l| l.stall_timeout);
        assert_eq!(a, Some(Duration::from_secs(5)));
    }

    #[test]
    fn zero_stall_timeout_names_the_model() {
        let limits = TargetLimits {
            stall_timeout: Duration::ZERO,
            ..TargetLimits::default()
        };
        let error = validate_limits("m", &limits).unwrap_err();
        assert_eq!(error.field(), Some("models.m.stall-timeout"));
    }

    #[test]
    fn an_attempt_timeout_as_long_as_the_deadline_is_warned_about_by_key() {
        let mut config = Config::for_chain(&models(&["a", "b"]));
        assert_eq!(
            config.warnings(),
            [],
            "the defaults leave time to fall back"
        );
        config.models.insert(
            "b".into(),
            TargetLimits {
                attempt_timeout: Duration::from_secs(60),
                ..TargetLimits::default()
            },
        );
        let keys: Vec<String> = config.warnings().into_iter().map(|w| w.key).collect();
        assert_eq!(keys, ["models.b.attempt-timeout"]);
    }
}
