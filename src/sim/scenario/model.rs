//! One simulated model's capacity: the mock server's [`ModelSpec`] settings, plus the reject
//! cost that only the simulator models.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{SimScenarioError, invalid};
use crate::mock::{Brownout, Distribution, ModelSpec};

/// The longest service time, spread or reject cost a model may have: a drawn service time
/// (up to 20 times the mean) must always fit a `Duration`.
const MAX_HOLD: Duration = Duration::from_secs(60 * 60);

/// One simulated model (`[models.NAME]`): the mock's capacity model plus a reject cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SimModel {
    /// Requests served at once; one more gets an immediate 529. Default: 8
    pub slots: u32,
    /// Mean time to serve a request while holding a slot, at most 1h. Default: 200ms
    #[serde(with = "humantime_serde")]
    pub service_time: Duration,
    /// How service time varies around the mean. Default: fixed
    pub distribution: Distribution,
    /// Half-width of the `uniform` distribution, at most 1h. Default: 0s
    #[serde(with = "humantime_serde")]
    pub service_time_spread: Duration,
    /// Requests per second allowed (a token bucket with a burst of one second's worth);
    /// excess gets 429 `rate_limit_error` with `retry-after`. Default: none (unlimited)
    pub rps: Option<u32>,
    /// The same limit per minute, as the API states it (`rps = N` is `rpm = 60 N`).
    /// Default: none
    pub rpm: Option<u32>,
    /// Whether answers and 429s announce the limit (`anthropic-ratelimit-requests-*`); off
    /// as on Bedrock and Vertex. Default: true
    pub rate_limit_headers: bool,
    /// Whether 429s say when to retry (`retry-after`). Default: true
    pub retry_after: bool,
    /// Seconds sent as `retry-after` on 529s. Default: none (no hint, like the real API)
    pub retry_after_on_overload: Option<u64>,
    /// How long a rejected (529) request still occupies one unit of capacity, at most 1h.
    /// Rejections can oversubscribe the model this way, which is what makes retry storms
    /// metastable. Default: 0s
    #[serde(with = "humantime_serde")]
    pub reject_cost: Duration,
    /// Capacity loss windows (times since the start of the run); overlapping windows take
    /// the smallest fraction; fraction 0 is an outage. Default: none
    pub brownouts: Vec<Brownout>,
}

impl Default for SimModel {
    fn default() -> Self {
        let spec = ModelSpec::default();
        Self {
            slots: spec.slots,
            service_time: spec.service_time,
            distribution: spec.distribution,
            service_time_spread: spec.service_time_spread,
            rps: None,
            rpm: None,
            rate_limit_headers: true,
            retry_after: true,
            retry_after_on_overload: None,
            reject_cost: Duration::ZERO,
            brownouts: Vec::new(),
        }
    }
}

impl SimModel {
    /// The mock server's settings for this model (everything but the reject cost).
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            slots: self.slots,
            service_time: self.service_time,
            distribution: self.distribution,
            service_time_spread: self.service_time_spread,
            rps: self.rps,
            rpm: self.rpm,
            rate_limit_headers: self.rate_limit_headers,
            retry_after: self.retry_after,
            retry_after_on_overload: self.retry_after_on_overload,
            brownouts: self.brownouts.clone(),
            ..ModelSpec::default()
        }
    }

    /// Checks the settings; `at` is the table's dotted path, used in errors.
    pub(super) fn validate(&self, at: &str) -> Result<(), SimScenarioError> {
        if self.slots == 0 {
            return Err(invalid(format!("{at}.slots"), "must be at least 1"));
        }
        let holds = [
            ("service-time", self.service_time),
            ("service-time-spread", self.service_time_spread),
            ("reject-cost", self.reject_cost),
        ];
        for (name, hold) in holds {
            if hold > MAX_HOLD {
                return Err(invalid(format!("{at}.{name}"), "must be at most 1h"));
            }
        }
        if self.rps == Some(0) {
            return Err(invalid(format!("{at}.rps"), "must be at least 1"));
        }
        for (i, brownout) in self.brownouts.iter().enumerate() {
            let field = format!("{at}.brownouts[{i}]");
            if !(0.0..=1.0).contains(&brownout.fraction) {
                let reason = format!("must be within 0..=1, got {}", brownout.fraction);
                return Err(invalid(format!("{field}.fraction"), reason));
            }
            if brownout.end.is_some_and(|end| end < brownout.start) {
                return Err(invalid(format!("{field}.end"), "must not be before start"));
            }
        }
        Ok(())
    }
}
