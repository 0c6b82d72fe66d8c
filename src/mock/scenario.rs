//! The mock server's script: which models it answers, how much capacity each has, and when
//! it browns out or misbehaves. Scenarios are TOML (see `scenarios/mock/`); the built-ins are
//! those same files compiled in, so the documented files and the built-ins cannot drift.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fault::Fault;
use crate::client::BEDROCK_SERVICE;

/// The built-in scenarios: name and TOML text. The first is the default.
const BUILTINS: &[(&str, &str)] = &[
    ("healthy", include_str!("../../scenarios/mock/healthy.toml")),
    (
        "brownout",
        include_str!("../../scenarios/mock/brownout.toml"),
    ),
    ("outage", include_str!("../../scenarios/mock/outage.toml")),
    (
        "rate-limited",
        include_str!("../../scenarios/mock/rate-limited.toml"),
    ),
    (
        "flaky-stream",
        include_str!("../../scenarios/mock/flaky-stream.toml"),
    ),
    ("instant", include_str!("../../scenarios/mock/instant.toml")),
    (
        "chain-down",
        include_str!("../../scenarios/mock/chain-down.toml"),
    ),
    // The capacity bench's cases (scripts/capacity.py, docs/CAPACITY.md).
    (
        "brownout-residual",
        include_str!("../../scenarios/mock/brownout-residual.toml"),
    ),
    (
        "utilisation-60",
        include_str!("../../scenarios/mock/utilisation-60.toml"),
    ),
    (
        "rate-limited-12",
        include_str!("../../scenarios/mock/rate-limited-12.toml"),
    ),
    (
        "rate-limited-12-no-headers",
        include_str!("../../scenarios/mock/rate-limited-12-no-headers.toml"),
    ),
];

/// The longest `service-time` and `service-time-spread` a model may have.
const MAX_SERVICE_TIME: Duration = Duration::from_secs(60 * 60);

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The TOML did not parse or did not match the format; the message has line and column.
    #[error("invalid scenario toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// A setting parsed but makes no sense; `field` is its dotted path.
    #[error("invalid scenario setting {field}: {reason}")]
    Invalid {
        /// Dotted path of the bad setting, e.g. `models.claude-x.slots`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read (and the name is no built-in).
    #[error("cannot read scenario file {path} (built-in scenarios: {builtins}): {source}")]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// Comma-separated built-in names, for the reader who mistyped one.
        builtins: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its contents are invalid.
    #[error("scenario file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<ScenarioError>,
    },
}

/// How a model's service time varies around its mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Always exactly the mean.
    #[default]
    Fixed,
    /// Exponentially distributed with the given mean (a memoryless server).
    Exponential,
    /// Uniform in `mean ± service-time-spread`, floored at zero.
    Uniform,
}

/// A window in which a model loses capacity (`brownouts = [{ ... }]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Brownout {
    /// When it begins, time since server start. Default: 0s
    #[serde(default, with = "humantime_serde")]
    pub start: Duration,
    /// When it ends, time since server start. Default: none (it never ends)
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub end: Option<Duration>,
    /// Share of the slots the model keeps, rounded up; 0 is a full outage. Required.
    pub fraction: f64,
}

impl Brownout {
    /// Whether `elapsed` (time since server start) falls in the window.
    pub fn is_active(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && self.end.is_none_or(|end| elapsed < end)
    }
}

/// One model's capacity and script (`[models.NAME]` or `[default-model]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSpec {
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
    /// Requests per second allowed, the same limit as `rpm = 60 * rps`. Default: none
    pub rps: Option<u32>,
    /// Requests per minute allowed, as the API states its limits: a token bucket replenished
    /// continuously at `rpm / 60` a second and holding one second's worth (at least one), as
    /// the API enforces a per-minute limit over shorter intervals; excess gets 429
    /// `rate_limit_error`. At most one of `rps` and `rpm`. Default: none (unlimited)
    pub rpm: Option<u32>,
    /// Whether answers and 429s carry `anthropic-ratelimit-requests-{limit,remaining,reset}`
    /// (`false`: none, like Bedrock or Vertex). Default: true
    pub rate_limit_headers: bool,
    /// Whether a 429 carries `retry-after`. Default: true
    pub retry_after: bool,
    /// Seconds sent as `retry-after` on 529s. Default: none (no header, like the real API)
    pub retry_after_on_overload: Option<u64>,
    /// Capacity loss windows; overlapping windows take the smallest. Default: none
    pub brownouts: Vec<Brownout>,
    /// Scripted faults, tried in order. Default: none
    pub faults: Vec<Fault>,
    /// Pause before each SSE event of a stream, at most 1h; `0s` sends the events as fast as
    /// the connection takes them. Default: 2ms (the client sees separate chunks)
    #[serde(with = "humantime_serde")]
    pub stream_pause: Duration,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            slots: 8,
            service_time: Duration::from_millis(200),
            distribution: Distribution::Fixed,
            service_time_spread: Duration::ZERO,
            rps: None,
            rpm: None,
            rate_limit_headers: true,
            retry_after: true,
            retry_after_on_overload: None,
            brownouts: Vec::new(),
            faults: Vec::new(),
            stream_pause: Duration::from_millis(2),
        }
    }
}

impl ModelSpec {
    /// The requests-per-minute limit `rps` or `rpm` sets, if any.
    pub fn requests_per_minute(&self) -> Option<u64> {
        self.rpm
            .map(u64::from)
            .or(self.rps.map(|rps| u64::from(rps) * 60))
    }

    /// Checks the settings; `at` is the table's dotted path, used in errors.
    fn validate(&self, at: &str) -> Result<(), ScenarioError> {
        if self.slots == 0 {
            return Err(invalid(format!("{at}.slots"), "must be at least 1"));
        }
        // Bounded so that a drawn service time (up to 20 times the mean) always fits a
        // Duration: `Duration::from_secs_f64` panics on overflow.
        if self.service_time > MAX_SERVICE_TIME {
            return Err(invalid(format!("{at}.service-time"), "must be at most 1h"));
        }
        if self.service_time_spread > MAX_SERVICE_TIME {
            let field = format!("{at}.service-time-spread");
            return Err(invalid(field, "must be at most 1h"));
        }
        if self.stream_pause > MAX_SERVICE_TIME {
            return Err(invalid(format!("{at}.stream-pause"), "must be at most 1h"));
        }
        if self.rps == Some(0) {
            return Err(invalid(format!("{at}.rps"), "must be at least 1"));
        }
        if self.rpm == Some(0) {
            return Err(invalid(format!("{at}.rpm"), "must be at least 1"));
        }
        if self.rps.is_some() && self.rpm.is_some() {
            let reason = "give the rate limit once: rps or rpm, not both";
            return Err(invalid(format!("{at}.rpm"), reason));
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
        for (i, fault) in self.faults.iter().enumerate() {
            fault
                .validate(&format!("{at}.faults[{i}]"))
                .map_err(|(field, reason)| invalid(field, reason))?;
        }
        Ok(())
    }
}

/// A mock server script. `Scenario::default()` answers no model at all; start from
/// [`Scenario::builtin`] or a TOML file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// One line saying what the scenario rehearses. Default: ""
    pub description: String,
    /// Seed for service times and fault coin flips. Default: 0
    pub seed: u64,
    /// Whether a non-empty `x-api-key` or `Authorization: Bearer` is required (any value
    /// passes). Default: true
    pub require_key: bool,
    /// Whether a request to a model the catalogue knows must keep its rules (output ceiling,
    /// thinking types, sampling, effort, tool choice, prefill, `inference_geo`, refused
    /// tools, thinking signatures), else 400 `invalid_request_error`; and whether thinking
    /// answers carry a signed thinking block. Models the catalogue does not know take
    /// anything either way. Default: true
    pub enforce_catalog: bool,
    /// Settings for any model not listed in `models`. Default: none (unknown models get 404)
    pub default_model: Option<ModelSpec>,
    /// Per-model settings, by model name. Default: none
    pub models: BTreeMap<String, ModelSpec>,
    /// `[bedrock]`: also serve `POST /anthropic/v1/messages` as Amazon Bedrock does, with
    /// its authentication. Default: none (that path is 404)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockScenario>,
    /// `[vertex]`: also serve Vertex AI's `rawPredict` / `streamRawPredict` for `project` and
    /// `region`, with bearer tokens, and `POST /token` issuing them. Default: none (those
    /// paths are 404)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertex: Option<VertexScenario>,
}

/// `[vertex]`: where Vertex AI's endpoint serves and the tokens it accepts: any of `tokens`,
/// or one `POST /token` issued (a service account's JWT grant, as Google's token endpoint
/// takes it) that is less than `token-lifetime` old. A request without a valid token gets
/// 401 `UNAUTHENTICATED`, one for another project 403 `PERMISSION_DENIED`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct VertexScenario {
    /// The project served. Default: "breakwater-test"
    pub project: String,
    /// The region (`locations/...`) served. Default: "global"
    pub region: String,
    /// Ready access tokens accepted, never expiring. Default: none
    pub tokens: Vec<String>,
    /// How long an issued token is accepted, and its `expires_in`. Default: 1h
    #[serde(with = "humantime_serde")]
    pub token_lifetime: Duration,
}

impl Default for VertexScenario {
    fn default() -> Self {
        Self {
            project: "breakwater-test".to_owned(),
            region: "global".to_owned(),
            tokens: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// `[bedrock]`: the credentials Bedrock's endpoint accepts. A request with an API key
/// (`Authorization: Bearer KEY`, as the official SDK sends it, or `x-api-key`) must carry
/// `api-key`; any other must be signed with SigV4 for `region` and `service`
/// (`bedrock-mantle`) by `access-key-id` and `secret-access-key` (and `session-token`, when
/// set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BedrockScenario {
    /// The region signatures must be scoped to. Default: "us-east-1"
    pub region: String,
    /// The service signatures must be scoped to. Default: "bedrock-mantle" (the official
    /// SDK's, and breakwater's)
    pub service: String,
    /// The access key id accepted. Default: none (no signature passes)
    pub access_key_id: Option<String>,
    /// Its secret. Default: none
    pub secret_access_key: Option<String>,
    /// The session token required with it. Default: none
    pub session_token: Option<String>,
    /// The Bedrock API key accepted (as `Authorization: Bearer` or `x-api-key`). Default: none
    /// (no key passes)
    pub api_key: Option<String>,
}

impl Default for BedrockScenario {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            service: BEDROCK_SERVICE.to_owned(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            api_key: None,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            description: String::new(),
            seed: 0,
            require_key: true,
            enforce_catalog: true,
            default_model: None,
            models: BTreeMap::new(),
            bedrock: None,
            vertex: None,
        }
    }
}

impl Scenario {
    /// Parses and validates a scenario. Parse errors keep toml's line and column.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// A built-in scenario by name, else the TOML file at that path.
    pub fn load(name_or_path: &str) -> Result<Self, ScenarioError> {
        if let Some(scenario) = Self::builtin(name_or_path) {
            return Ok(scenario);
        }
        let path = PathBuf::from(name_or_path);
        let text = std::fs::read_to_string(&path).map_err(|source| ScenarioError::Read {
            path: path.clone(),
            builtins: Self::builtin_names().join(", "),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ScenarioError::File {
            path,
            source: Box::new(source),
        })
    }

    /// The built-in scenario called `name`, if there is one.
    ///
    /// # Panics
    ///
    /// Never: every built-in is parsed and validated by this module's tests.
    pub fn builtin(name: &str) -> Option<Self> {
        let (_, text) = BUILTINS.iter().find(|(builtin, _)| *builtin == name)?;
        Some(Self::from_toml(text).expect("built-in scenarios are parsed and validated by tests"))
    }

    /// Names of the built-in scenarios; the first (`healthy`) is the default.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(name, _)| *name).collect()
    }

    /// The settings for `model`: its own table, else `[default-model]`, else none (404).
    pub fn model(&self, model: &str) -> Option<&ModelSpec> {
        self.models.get(model).or(self.default_model.as_ref())
    }

    /// Checks every setting, naming the first bad one by its dotted path.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if let Some(spec) = &self.default_model {
            spec.validate("default-model")?;
        }
        for (name, spec) in &self.models {
            spec.validate(&format!("models.{name}"))?;
        }
        if let Some(vertex) = &self.vertex
            && vertex.token_lifetime < Duration::from_secs(1)
        {
            return Err(invalid(
                "vertex.token-lifetime".into(),
                "must be at least 1s",
            ));
        }
        Ok(())
    }
}

fn invalid(field: String, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_validates() {
        for (name, text) in BUILTINS {
            let scenario = Scenario::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !scenario.description.is_empty(),
                "{name} has no description"
            );
        }
        assert_eq!("healthy", Scenario::builtin_names()[0]);
    }

    #[test]
    fn healthy_answers_any_model() {
        let healthy = Scenario::builtin("healthy").expect("healthy is built in");
        assert!(healthy.model("claude-sonnet-5-5").is_some());
        assert!(healthy.model("anything").is_some());
    }

    #[test]
    fn defaults_fill_missing_settings() {
        let scenario = Scenario::from_toml("[models.m]\nrps = 3\n").expect("valid");
        let spec = scenario.model("m").expect("listed");
        assert_eq!(8, spec.slots);
        assert_eq!(Duration::from_millis(200), spec.service_time);
        assert_eq!(Some(3), spec.rps);
        assert!(scenario.require_key);
        assert!(scenario.model("other").is_none());
    }

    #[test]
    fn rate_limit_is_per_minute_whichever_way_it_is_written() {
        let scenario = Scenario::from_toml(
            "[models.s]\nrps = 12\n[models.m]\nrpm = 720\nrate-limit-headers = false\n\
             retry-after = false\n[models.none]\n",
        )
        .expect("valid");
        let spec = |name| scenario.model(name).expect("listed");
        assert_eq!(Some(720), spec("s").requests_per_minute());
        assert_eq!(Some(720), spec("m").requests_per_minute());
        assert_eq!(None, spec("none").requests_per_minute());
        assert!(spec("s").rate_limit_headers && spec("s").retry_after);
        assert!(!spec("m").rate_limit_headers && !spec("m").retry_after);
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let err = Scenario::from_toml("seed = 1\n[models.m]\nslotz = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slotz") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_duration_names_line() {
        let err = Scenario::from_toml("[models.m]\n\nservice-time = \"fast\"\n").unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("line 3") && err.contains("service-time"),
            "{err}"
        );
    }

    #[test]
    fn validate_names_the_bad_field() {
        let cases = [
            ("[models.m]\nslots = 0", "models.m.slots"),
            ("[default-model]\nrps = 0", "default-model.rps"),
            ("[default-model]\nrpm = 0", "default-model.rpm"),
            ("[models.m]\nrps = 1\nrpm = 60", "models.m.rpm"),
            (
                "[models.m]\nbrownouts = [{ fraction = 1.5 }]",
                "models.m.brownouts[0].fraction",
            ),
            (
                "[models.m]\nbrownouts = [{ start = \"2s\", end = \"1s\", fraction = 0.5 }]",
                "models.m.brownouts[0].end",
            ),
            (
                "[models.m]\nfaults = [{ kind = \"drop\", probability = -0.1 }]",
                "models.m.faults[0].probability",
            ),
        ];
        for (text, field) in cases {
            let err = Scenario::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn durations_that_could_overflow_are_refused() {
        let cases = [
            ("[models.m]\nservice-time = \"2h\"", "models.m.service-time"),
            (
                "[default-model]\nservice-time-spread = \"5000000000000s\"",
                "default-model.service-time-spread",
            ),
            (
                "[models.m]\nfaults = [{ kind = \"slow\", delay = \"1000000000h\" }]",
                "models.m.faults[0].delay",
            ),
            ("[models.m]\nstream-pause = \"2h\"", "models.m.stream-pause"),
        ];
        for (text, field) in cases {
            let err = Scenario::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        let most = "[models.m]\nservice-time = \"1h\"\ndistribution = \"uniform\"\n\
                    service-time-spread = \"1h\"";
        assert!(Scenario::from_toml(most).is_ok());
    }

    #[test]
    fn load_names_the_missing_path() {
        let err = Scenario::load("/nonexistent/scenario.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/scenario.toml") && err.contains("healthy"),
            "{err}"
        );
    }
}
