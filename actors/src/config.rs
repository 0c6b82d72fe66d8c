//! The engine's settings, in plain Rust. The `breakwater` crate reads them from TOML; every
//! part has a default, written in its doc.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::{
    AdmissionConfig, BreakerConfig, BudgetConfig, GateConfig, LimitConfig, PolicyError,
    RetryPolicy, ThrottleConfig,
};
use crate::upstream::Target;

/// One target's limits, applied by its worker.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TargetLimits {
    /// Attempts in flight at once. Default: 64.
    pub concurrency: NonZeroU32,
    /// Least time between two attempt starts (pacing); zero for none. Default: 0s.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Longest one attempt may take (never past the request's deadline): a whole answer, or
    /// a stream until its first content event (its time to first content). Default: 20s.
    ///
    /// Why 20 s: well inside the default deadline (`admission.default-timeout`, 60 s), so an
    /// upstream that accepts and never answers costs one attempt and the request still has
    /// two more targets' worth of time (a timeout falls back at once, see
    /// `retry.fall-back-on-timeout`); far above a stream's usual time to first content. A
    /// non-streamed answer longer than this needs a larger value (and deadline), or a stream.
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// Longest a stream may go without an event before it commits. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// How long a 429 pauses the target when it names no `retry-after`. Default: 1s.
    #[serde(with = "humantime_serde")]
    pub rate_limit_pause: Duration,
    /// Adapt the limit to what the target can still serve (AIMD with slow start, never above
    /// `concurrency`) instead of holding it at `concurrency`. Default: true.
    pub adaptive: bool,
    /// Learn a request rate from 429s that announce no rate limits (as Amazon Bedrock and
    /// Google Vertex AI send them), and space starts at it: AIMD on the rate, see
    /// [`RateLearner`](crate::policy::RateLearner). Default: true.
    pub learn_rate: bool,
    /// The adaptive limit's settings, used when `adaptive` is on. Default: see [`LimitConfig`].
    pub limit: LimitConfig,
}

impl Default for TargetLimits {
    fn default() -> Self {
        Self {
            concurrency: NonZeroU32::new(64).expect("64 is not zero"),
            min_interval: Duration::ZERO,
            attempt_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(30),
            rate_limit_pause: Duration::from_secs(1),
            adaptive: true,
            learn_rate: true,
            limit: LimitConfig::default(),
        }
    }
}

impl TargetLimits {
    /// The settings of the target's [`Gate`](crate::policy::Gate).
    pub fn gate(&self) -> GateConfig {
        GateConfig {
            concurrency: self.concurrency,
            min_interval: self.min_interval,
            rate_limit_pause: self.rate_limit_pause,
            limit: self.adaptive.then_some(self.limit),
            learn_rate: self.learn_rate,
        }
    }
}

/// How the supervisor restarts crashed actors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Restarts allowed within `within` before the supervisor gives up and stops. Default: 5.
    pub max_restarts: u32,
    /// The window restarts are counted over. Default: 60s.
    #[serde(with = "humantime_serde")]
    pub within: Duration,
    /// Delay before the first restart of an actor; it doubles with each recent restart. Default: 50ms.
    #[serde(with = "humantime_serde")]
    pub restart_delay: Duration,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within: Duration::from_secs(60),
            restart_delay: Duration::from_millis(50),
        }
    }
}

/// Everything the engine needs besides its upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Every target the engine serves, with its limits; each gets a worker and a breaker.
    pub targets: Vec<(Target, TargetLimits)>,
    /// The chain used by requests that name none. Must be non-empty and name known targets.
    pub chain: Vec<Target>,
    /// Retry and fall-back rules.
    pub retry: RetryPolicy,
    /// Circuit breaker settings, the same for every target.
    pub breaker: BreakerConfig,
    /// Retry budget settings, one budget per target.
    pub budget: BudgetConfig,
    /// Admission bounds.
    pub admission: AdmissionConfig,
    /// Restart policy.
    pub supervision: SupervisionConfig,
    /// Whether a request whose target is full (its concurrency limit reached, or held back by
    /// a rate-limit pause or pacing) goes on at once to the next target of its chain, when
    /// that one has room, instead of queueing. Requests can override it. Default: true.
    pub spillover: bool,
    /// Chains that spill over otherwise than `spillover` says, with their own setting.
    /// A request's own setting still wins. Default: none.
    pub chain_spillover: Vec<(Vec<Target>, bool)>,
    /// The client-side throttle per target, or `None` for none. Default: on, K = 2 over 60 s.
    pub throttle: Option<ThrottleConfig>,
    /// Seed for every random draw (jitter); `None` draws one at start.
    pub seed: Option<u64>,
}

impl EngineConfig {
    /// A config serving `chain`, each target with default limits, and default policies.
    pub fn new(chain: impl IntoIterator<Item = Target>) -> Self {
        let chain: Vec<Target> = chain.into_iter().collect();
        Self {
            targets: chain
                .iter()
                .map(|target| (target.clone(), TargetLimits::default()))
                .collect(),
            chain,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            budget: BudgetConfig::default(),
            admission: AdmissionConfig::default(),
            supervision: SupervisionConfig::default(),
            spillover: true,
            chain_spillover: Vec::new(),
            throttle: Some(ThrottleConfig::default()),
            seed: None,
        }
    }

    /// Checks every part; the error names the bad field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |field, reason: String| Err(PolicyError::Invalid { field, reason });
        if self.chain.is_empty() {
            return invalid("chain", "must name at least one target".into());
        }
        if let Some(unknown) = self
            .chain
            .iter()
            .find(|t| !self.targets.iter().any(|(known, _)| known == *t))
        {
            return invalid(
                "chain",
                format!("names {unknown}, which is not a configured target"),
            );
        }
        self.breaker.validate()?;
        self.budget.validate()?;
        if let Some(throttle) = &self.throttle {
            throttle.validate()?;
        }
        self.admission.validate()
    }

    /// Whether requests on `chain` spill over, unless they say otherwise.
    pub fn spillover_for(&self, chain: &[Target]) -> bool {
        self.chain_spillover
            .iter()
            .find(|(known, _)| known.as_slice() == chain)
            .map_or(self.spillover, |(_, spill)| *spill)
    }

    /// The limits of `target`, if it is configured.
    pub fn limits(&self, target: &Target) -> Option<&TargetLimits> {
        self.targets
            .iter()
            .find(|(known, _)| known == target)
            .map(|(_, limits)| limits)
    }
}
