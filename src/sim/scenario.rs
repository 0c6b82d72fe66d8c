//! The simulator's script: the offered load (Poisson arrivals, surges), the chain of models,
//! each model's capacity on the mock server's model ([`ModelCapacity`]) plus a reject cost,
//! and the window the report calls the incident. Scenarios are TOML (see `scenarios/sim/`);
//! the built-ins are those same files compiled in, so the documented files and the built-ins
//! cannot drift.

mod error;
mod model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::mock::ModelCapacity;

pub use error::SimScenarioError;
pub use model::SimModel;

use error::invalid;

/// The built-in scenarios: name and TOML text. The first is the default.
const BUILTINS: &[(&str, &str)] = &[
    (
        "brownout",
        include_str!("../../scenarios/sim/brownout.toml"),
    ),
    ("outage", include_str!("../../scenarios/sim/outage.toml")),
    (
        "all-degraded",
        include_str!("../../scenarios/sim/all-degraded.toml"),
    ),
    (
        "rate-limited",
        include_str!("../../scenarios/sim/rate-limited.toml"),
    ),
    (
        "metastable",
        include_str!("../../scenarios/sim/metastable.toml"),
    ),
    (
        "flapping",
        include_str!("../../scenarios/sim/flapping.toml"),
    ),
    ("surge", include_str!("../../scenarios/sim/surge.toml")),
];

/// A window in which arrivals come `multiplier` times as fast (`surges = [{ ... }]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Surge {
    /// When it begins, time since the start of the run. Default: 0s
    #[serde(default, with = "humantime_serde")]
    pub start: Duration,
    /// When it ends (exclusive), time since the start of the run. Required.
    #[serde(with = "humantime_serde")]
    pub end: Duration,
    /// Factor on the arrival rate; overlapping surges multiply. Required.
    pub multiplier: f64,
}

/// The window the report calls "the incident" (`[incident]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Incident {
    /// When it begins, time since the start of the run. Default: 0s
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// When it ends; recovery is measured from here. Default: 0s (no incident)
    #[serde(with = "humantime_serde")]
    pub end: Duration,
}

/// A simulator scenario. `SimScenario::default()` has no chain and no models, so it does not
/// validate; start from [`SimScenario::builtin`] or a TOML file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SimScenario {
    /// The scenario's name; [`SimScenario::load`] fills it from the built-in name or the
    /// file stem when empty. Default: ""
    pub name: String,
    /// One line saying what the scenario rehearses. Default: ""
    pub description: String,
    /// How long requests keep arriving. Default: 10m
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Seed for arrivals and service times; every strategy sees the same arrivals. Default: 0
    pub seed: u64,
    /// Mean arrival rate, requests per second (Poisson). Default: 8
    pub rps: f64,
    /// Windows of raised (or lowered) traffic. Default: none
    pub surges: Vec<Surge>,
    /// Each request's deadline from its arrival. Default: 30s
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// The fallback chain, primary first; each must be in `models`. Default: none
    pub chain: Vec<String>,
    /// The window the report calls the incident. Default: none (0s to 0s)
    pub incident: Incident,
    /// Per-model capacity, by model name. Default: none
    pub models: BTreeMap<String, SimModel>,
}

impl Default for SimScenario {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            duration: Duration::from_secs(10 * 60),
            seed: 0,
            rps: 8.0,
            surges: Vec::new(),
            deadline: Duration::from_secs(30),
            chain: Vec::new(),
            incident: Incident::default(),
            models: BTreeMap::new(),
        }
    }
}

impl SimScenario {
    /// Parses and validates a scenario; `name` stays as written. Parse errors keep toml's
    /// line and column.
    pub fn from_toml(text: &str) -> Result<Self, SimScenarioError> {
        let scenario: Self = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// A built-in scenario by name, else the TOML file at that path (named after its stem
    /// unless it sets `name`).
    pub fn load(name_or_path: &str) -> Result<Self, SimScenarioError> {
        if let Some(scenario) = Self::builtin(name_or_path) {
            return Ok(scenario);
        }
        let path = PathBuf::from(name_or_path);
        let text = std::fs::read_to_string(&path).map_err(|source| SimScenarioError::Read {
            path: path.clone(),
            builtins: Self::builtin_names().join(", "),
            source,
        })?;
        let mut scenario = Self::from_toml(&text).map_err(|source| SimScenarioError::File {
            path: path.clone(),
            source: Box::new(source),
        })?;
        if scenario.name.is_empty() {
            scenario.name = stem(&path);
        }
        Ok(scenario)
    }

    /// The built-in scenario called `name`, if there is one.
    ///
    /// # Panics
    ///
    /// Never: every built-in is parsed and validated by the tests.
    pub fn builtin(name: &str) -> Option<Self> {
        let (builtin, text) = BUILTINS.iter().find(|(builtin, _)| *builtin == name)?;
        let mut scenario =
            Self::from_toml(text).expect("built-in scenarios are parsed and validated by tests");
        if scenario.name.is_empty() {
            (*builtin).clone_into(&mut scenario.name);
        }
        Some(scenario)
    }

    /// Names of the built-in scenarios; the first (`brownout`) is the default.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(name, _)| *name).collect()
    }

    /// Checks every setting, naming the first bad one by its dotted path.
    pub fn validate(&self) -> Result<(), SimScenarioError> {
        if !(self.rps.is_finite() && self.rps > 0.0) {
            return Err(invalid("rps".into(), "must be a number above 0"));
        }
        if self.deadline.is_zero() {
            return Err(invalid("deadline".into(), "must be above 0s"));
        }
        for (i, surge) in self.surges.iter().enumerate() {
            if !(surge.multiplier.is_finite() && surge.multiplier > 0.0) {
                let field = format!("surges[{i}].multiplier");
                return Err(invalid(field, "must be a number above 0"));
            }
            if surge.end < surge.start {
                let field = format!("surges[{i}].end");
                return Err(invalid(field, "must not be before start"));
            }
        }
        if self.incident.end < self.incident.start {
            return Err(invalid("incident.end".into(), "must not be before start"));
        }
        if self.chain.is_empty() {
            return Err(invalid("chain".into(), "must name at least one model"));
        }
        for (i, model) in self.chain.iter().enumerate() {
            if !self.models.contains_key(model) {
                let reason = format!("model {model} has no [models.{model}] table");
                return Err(invalid(format!("chain[{i}]"), reason));
            }
        }
        for (name, model) in &self.models {
            model.validate(&format!("models.{name}"))?;
        }
        Ok(())
    }

    /// The arrival rate at `at`: `rps` times every active surge's multiplier.
    pub fn rate_at(&self, at: Duration) -> f64 {
        self.surges
            .iter()
            .filter(|surge| surge.start <= at && at < surge.end)
            .fold(self.rps, |rate, surge| rate * surge.multiplier)
    }

    /// Arrival offsets over `duration`, in order: a Poisson process of rate [`rate_at`],
    /// seeded by `seed`, so every strategy sees the same arrivals.
    ///
    /// [`rate_at`]: Self::rate_at
    pub fn arrivals(&self) -> Vec<Duration> {
        self.arrival_iter().collect()
    }

    /// The same arrivals as [`Self::arrivals`], one at a time, for runs too long to hold
    /// them all.
    pub fn arrival_iter(&self) -> impl Iterator<Item = Duration> + '_ {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut now = 0.0_f64;
        let end = self.duration.as_secs_f64();
        std::iter::from_fn(move || {
            while now < end {
                let at = Duration::from_secs_f64(now);
                let rate = self.rate_at(at);
                let boundary = self.next_boundary(at).map_or(end, |b| b.as_secs_f64());
                let u: f64 = rng.random();
                let gap = -(1.0 - u).ln() / rate;
                // Past a rate change the draw no longer applies; the process is memoryless,
                // so restarting there keeps it Poisson.
                if now + gap >= boundary.min(end) {
                    now = boundary.min(end);
                    continue;
                }
                now += gap;
                return Some(Duration::from_secs_f64(now));
            }
            None
        })
    }

    /// The first surge start or end after `at`, if any.
    fn next_boundary(&self, at: Duration) -> Option<Duration> {
        self.surges
            .iter()
            .flat_map(|surge| [surge.start, surge.end])
            .filter(|edge| *edge > at)
            .min()
    }

    /// Slots `model` has at `at` (time since the start of the run), by the mock server's
    /// brownout rule; 0 for a model the scenario does not define.
    pub fn slots_at(&self, model: &str, at: Duration) -> u32 {
        self.models
            .get(model)
            .map_or(0, |m| ModelCapacity::slots_in(m.slots, &m.brownouts, at))
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned())
}
