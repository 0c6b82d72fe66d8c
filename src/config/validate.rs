//! [`Config::validate`]: the whole configuration checked before anything starts, the error
//! naming the first bad key by its dotted path (`models.NAME.stall-timeout`,
//! `chains.default[1]`, `gateway.body-memory`).

use std::fmt;

use super::{Config, ConfigError, DEFAULT_CHAIN, Platform, parse_target, target_of};
use crate::engine::TargetLimits;
use crate::engine::policy::PolicyError;

/// A setting that works, but hardly as meant: its dotted key and why. Logged at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The dotted path of the setting, as `models.NAME.attempt-timeout`.
    pub key: String,
    /// What it does that was probably not meant.
    pub reason: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl Config {
    /// Settings that are valid but defeat their purpose: an `attempt-timeout` as long as the
    /// default deadline (`admission.default-timeout`) leaves a model that accepts and never
    /// answers no time to fall back, so the request ends after one attempt.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let deadline = self.admission.default_timeout;
        self.models
            .iter()
            .filter(|(_, limits)| limits.attempt_timeout >= deadline)
            .map(|(model, limits)| ConfigWarning {
                key: format!("models.{model}.attempt-timeout"),
                reason: format!(
                    "{:?} is not shorter than admission.default-timeout ({deadline:?}): a model \
                     that accepts and never answers uses the whole deadline, with no time left \
                     to fall back",
                    limits.attempt_timeout
                ),
            })
            .collect()
    }

    /// Checks the whole configuration; the error names the first bad key by its dotted path.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`]: no model, a zero `attempt-timeout` or `stall-timeout`, an
    /// empty chain or one naming an unknown model, a `[chain-spillover]` or `[chain-adapt]`
    /// key naming no chain, no `chains.default` while more than one model is configured, a
    /// `[catalog.models.ID]` entry the catalogue refuses, or any error of the policies' own
    /// `validate`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.models.is_empty() {
            return Err(ConfigError::invalid(
                "models",
                "must configure at least one model, as [models.NAME]",
            ));
        }
        if let Some((field, reason)) = self.platforms.problem() {
            return Err(ConfigError::invalid(format!("platforms.{field}"), reason));
        }
        for (model, limits) in &self.models {
            self.validate_entry(&format!("models.{model}"), model, true)?;
            validate_limits(model, limits)?;
        }
        for (name, chain) in &self.chains {
            self.validate_chain(name, chain)?;
        }
        self.validate_chain_names("chain-spillover", self.chain_spillover.keys())?;
        self.validate_chain_names("chain-adapt", self.chain_adapt.keys())?;
        self.catalog()?;
        if self.models.len() > 1 && !self.chains.contains_key(DEFAULT_CHAIN) {
            let reason = format!(
                "must be set when more than one model is configured (configured: {})",
                self.model_list()
            );
            return Err(ConfigError::invalid("chains.default", reason));
        }
        self.retry
            .validate()
            .map_err(|e| ConfigError::within("retry", e))?;
        self.breaker
            .validate()
            .map_err(|e| ConfigError::within("breaker", e))?;
        self.budget
            .validate()
            .map_err(|e| ConfigError::within("budget", e))?;
        if let Some((field, reason)) = self.gateway.problem() {
            return Err(ConfigError::invalid(format!("gateway.{field}"), reason));
        }
        if let Some((field, reason)) = self.cluster.problem() {
            return Err(ConfigError::invalid(format!("cluster.{field}"), reason));
        }
        self.cluster
            .fleet
            .validate()
            .map_err(|e| ConfigError::within("cluster", e))?;
        if self.cluster.redis.is_some() {
            // The fleet's probe must not outlive its lease, or a second replica takes it over
            // and probes too.
            let lease = self.cluster.fleet.probe_lease;
            if let Some((model, limits)) = self
                .models
                .iter()
                .find(|(_, limits)| limits.attempt_timeout >= lease)
            {
                let reason = format!(
                    "{lease:?} is not longer than models.{model}.attempt-timeout ({:?}): a probe could outlive its lease",
                    limits.attempt_timeout
                );
                return Err(ConfigError::invalid("cluster.probe-lease", reason));
            }
        }
        self.admission
            .validate()
            .map_err(|e| ConfigError::within("admission", e))
    }

    fn validate_chain(&self, name: &str, chain: &[String]) -> Result<(), ConfigError> {
        if chain.is_empty() {
            let reason = "must name at least one model";
            return Err(ConfigError::invalid(format!("chains.{name}"), reason));
        }
        for (index, model) in chain.iter().enumerate() {
            self.validate_entry(&format!("chains.{name}[{index}]"), model, false)?;
            if self.limits_for(&target_of(model)).is_none() {
                let reason = format!(
                    "{model} is not a configured model (configured: {})",
                    self.model_list()
                );
                return Err(ConfigError::invalid(
                    format!("chains.{name}[{index}]"),
                    reason,
                ));
            }
        }
        Ok(())
    }

    /// A chain entry or (`key`) a `[models]` key, `field` where it is written: it must parse
    /// as `MODEL[@PLATFORM]`, on a platform that is routed and configured.
    fn validate_entry(&self, field: &str, entry: &str, key: bool) -> Result<(), ConfigError> {
        let (_, platform) =
            parse_target(entry).map_err(|error| ConfigError::invalid(field, error.to_string()))?;
        let reason = match platform {
            Platform::Anthropic if key && entry.contains('@') => {
                format!("{entry}: the Claude API's limits are [models.MODEL], without @anthropic")
            }
            Platform::Anthropic => return Ok(()),
            Platform::Bedrock if self.platforms.bedrock.is_some() => return Ok(()),
            Platform::Bedrock => format!(
                "{entry} needs [platforms.bedrock] (its region, and optionally an endpoint)"
            ),
            Platform::Vertex if self.platforms.vertex.is_some() => return Ok(()),
            Platform::Vertex => format!(
                "{entry} needs [platforms.vertex] (its project and region, and optionally an \
                 endpoint)"
            ),
        };
        Err(ConfigError::invalid(field, reason))
    }

    /// Each of `names`, the keys of the per-chain table `table`, must name a chain.
    fn validate_chain_names<'a>(
        &self,
        table: &str,
        mut names: impl Iterator<Item = &'a String>,
    ) -> Result<(), ConfigError> {
        let Some(name) = names.find(|name| !self.chains.contains_key(*name)) else {
            return Ok(());
        };
        let chains: Vec<&str> = self.chains.keys().map(String::as_str).collect();
        let reason = format!(
            "{name} is not a configured chain (configured: {})",
            chains.join(", ")
        );
        Err(ConfigError::invalid(format!("{table}.{name}"), reason))
    }

    fn model_list(&self) -> String {
        let models: Vec<&str> = self.models.keys().map(String::as_str).collect();
        models.join(", ")
    }
}

pub(super) fn validate_limits(model: &str, limits: &TargetLimits) -> Result<(), ConfigError> {
    let timeouts = [
        ("attempt-timeout", limits.attempt_timeout),
        ("stall-timeout", limits.stall_timeout),
    ];
    for (key, timeout) in timeouts {
        if timeout.is_zero() {
            let field = format!("models.{model}.{key}");
            return Err(ConfigError::invalid(field, "must be longer than zero"));
        }
    }
    if let Err(PolicyError::Invalid { field, reason }) = limits.limit.validate() {
        return Err(ConfigError::invalid(
            format!("models.{model}.limit.{field}"),
            reason,
        ));
    }
    Ok(())
}
