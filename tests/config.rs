//! `breakwater.toml`: the example file, every validation rule, and what the engine is handed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use breakwater::catalog::{AdaptMode, Catalog};
use breakwater::client::ClientConfig;
use breakwater::config::{Config, ConfigError};
use breakwater::engine::policy::{
    AdmissionConfig, BreakerConfig, BudgetConfig, Jitter, RetryPolicy,
};
use breakwater::engine::{EngineConfig, SupervisionConfig, Target, TargetLimits};

const EXAMPLE: &str = include_str!("../breakwater.toml");
const SONNET: &str = "claude-sonnet-5-5";
const HAIKU: &str = "claude-haiku-5-5";

const TWO_MODELS: &str = r#"
[models.claude-sonnet-5-5]
[models.claude-haiku-5-5]
[chains]
default = ["claude-sonnet-5-5", "claude-haiku-5-5"]
"#;

fn names(models: &[&str]) -> Vec<String> {
    models.iter().map(|&model| model.to_owned()).collect()
}

/// The message of the error `text` gives, which must be a TOML error.
fn toml_error(text: &str) -> String {
    match Config::from_toml(text) {
        Err(error @ ConfigError::Toml(_)) => error.to_string(),
        other => panic!("expected a TOML error, got {other:?}"),
    }
}

/// The message of the error `text` gives, which must name `field`.
fn invalid(text: &str, field: &str) -> String {
    let error = Config::from_toml(text).expect_err("the config is invalid");
    assert_eq!(error.field(), Some(field), "{error}");
    error.to_string()
}

fn with_one_model(tables: &str) -> String {
    format!("[models.claude-x]\n{tables}")
}

/// Every dotted key path of a TOML table.
fn key_paths(table: &toml::Table, prefix: &str, paths: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        if let toml::Value::Table(inner) = value {
            key_paths(inner, &format!("{path}."), paths);
        }
        paths.insert(path);
    }
}

#[test]
fn example_parses_validates_and_documents_the_defaults() {
    let example = Config::from_toml(EXAMPLE).expect("the example is valid");
    assert_eq!(example, Config::from_toml(TWO_MODELS).unwrap());
    assert_eq!(example, Config::for_chain(&names(&[SONNET, HAIKU])));
    assert_eq!(example.seed, None);
    assert_eq!(example.upstream, ClientConfig::default());
    assert_eq!(example.models[SONNET], TargetLimits::default());
    assert_eq!(example.models[HAIKU], TargetLimits::default());
    assert_eq!(example.retry, RetryPolicy::default());
    assert_eq!(example.breaker, BreakerConfig::default());
    assert_eq!(example.budget, BudgetConfig::default());
    assert_eq!(example.admission, AdmissionConfig::default());
    assert_eq!(example.supervision, SupervisionConfig::default());
}

#[test]
fn example_sets_every_key() {
    let mut documented = BTreeSet::new();
    key_paths(&toml::from_str(EXAMPLE).unwrap(), "", &mut documented);
    let defaults = toml::to_string(&Config::for_chain(&names(&[SONNET, HAIKU]))).unwrap();
    let mut every = BTreeSet::new();
    key_paths(&toml::from_str(&defaults).unwrap(), "", &mut every);
    assert_eq!(documented, every);
    assert!(EXAMPLE.contains("\n# seed = 42\n"), "seed is documented");
    assert!(EXAMPLE.contains("\n# ca-file = "), "ca-file is documented");
}

#[test]
fn small_config_round_trips() {
    let text = r#"
        seed = 7
        [upstream]
        base-url = "http://127.0.0.1:8080"
        [models.claude-x]
        concurrency = 4
        attempt-timeout = "90s"
        [models.claude-y]
        [chains]
        default = ["claude-x", "claude-y"]
        fast = ["claude-y"]
        [retry.backoff]
        base = "100ms"
        jitter = "none"
        [breaker]
        open-for = "1s"
    "#;
    let config = Config::from_toml(text).unwrap();
    assert_eq!(config.seed, Some(7));
    assert_eq!(config.models["claude-x"].concurrency.get(), 4);
    assert_eq!(config.retry.backoff.jitter, Jitter::None);
    let written = toml::to_string(&config).unwrap();
    assert_eq!(Config::from_toml(&written).unwrap(), config);
}

#[test]
fn a_chain_naming_an_unknown_model_lists_the_configured_ones() {
    let text = r#"
        [models.claude-sonnet-5-5]
        [models.claude-haiku-5-5]
        [chains]
        default = ["claude-sonnet-5-5", "claude-opus-9"]
    "#;
    assert_eq!(
        invalid(text, "chains.default[1]"),
        "invalid chains.default[1]: claude-opus-9 is not a configured model \
         (configured: claude-haiku-5-5, claude-sonnet-5-5)"
    );
}

#[test]
fn chain_spillover_applies_to_its_chain_and_must_name_one() {
    let text = r#"
        spillover = true
        [models.claude-x]
        [models.claude-y]
        [chains]
        default = ["claude-x", "claude-y"]
        careful = ["claude-y", "claude-x"]
        [chain-spillover]
        careful = false
    "#;
    let engine = Config::from_toml(text).unwrap().engine_config();
    let careful: Vec<Target> = ["claude-y", "claude-x"].map(Target::new).to_vec();
    assert!(!engine.spillover_for(&careful));
    assert!(engine.spillover_for(&engine.chain));
    let unknown = text.replace("careful = false", "carful = false");
    assert_eq!(
        invalid(&unknown, "chain-spillover.carful"),
        "invalid chain-spillover.carful: carful is not a configured chain \
         (configured: careful, default)"
    );
}

#[test]
fn an_unknown_model_in_any_named_chain_is_refused() {
    let text = with_one_model("[chains]\nfast = [\"claude-x\", \"claude-z\"]\n");
    let message = invalid(&text, "chains.fast[1]");
    assert!(
        message.contains("claude-z is not a configured model"),
        "{message}"
    );
}

#[test]
fn an_empty_chain_is_refused() {
    let text = with_one_model("[chains]\nfast = []\n");
    assert_eq!(
        invalid(&text, "chains.fast"),
        "invalid chains.fast: must name at least one model"
    );
}

#[test]
fn several_models_need_a_default_chain() {
    let text = "[models.claude-x]\n[models.claude-y]\n";
    assert_eq!(
        invalid(text, "chains.default"),
        "invalid chains.default: must be set when more than one model is configured \
         (configured: claude-x, claude-y)"
    );
}

#[test]
fn no_model_is_refused() {
    assert_eq!(
        invalid("", "models"),
        "invalid models: must configure at least one model, as [models.NAME]"
    );
    assert_eq!(
        Config::default().validate().unwrap_err().field(),
        Some("models")
    );
}

#[test]
fn zero_concurrency_is_refused_at_parse_naming_the_key() {
    let message = toml_error("[models.claude-x]\nconcurrency = 0\n");
    assert!(message.contains("line 2, column 15"), "{message}");
    assert!(message.contains("concurrency = 0"), "{message}");
    assert!(message.contains("expected a nonzero u32"), "{message}");
}

#[test]
fn zero_timeouts_are_refused() {
    let text = with_one_model("attempt-timeout = \"0s\"\n");
    assert_eq!(
        invalid(&text, "models.claude-x.attempt-timeout"),
        "invalid models.claude-x.attempt-timeout: must be longer than zero"
    );
    let text = with_one_model("stall-timeout = \"0s\"\n");
    invalid(&text, "models.claude-x.stall-timeout");
}

#[test]
fn backoff_errors_name_the_backoff_key() {
    let text = with_one_model("[retry.backoff]\nbase = \"10s\"\n");
    assert_eq!(
        invalid(&text, "retry.backoff.base"),
        "invalid retry.backoff.base: 10s is longer than cap (8s)"
    );
    let text = with_one_model("[retry.backoff]\nbase = \"0s\"\ncap = \"0s\"\n");
    assert_eq!(
        invalid(&text, "retry.backoff.cap"),
        "invalid retry.backoff.cap: must be longer than zero"
    );
}

#[test]
fn zero_max_attempts_is_refused_at_parse_naming_the_key() {
    let message = toml_error(&with_one_model("[retry]\nmax-attempts = 0\n"));
    assert!(message.contains("max-attempts = 0"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn policy_errors_are_prefixed_with_their_table() {
    let text = with_one_model("[breaker]\nopen-for = \"5m\"\nmax-open-for = \"2m\"\n");
    assert_eq!(
        invalid(&text, "breaker.open-for"),
        "invalid breaker.open-for: 300s is longer than max-open-for"
    );
    invalid(
        &with_one_model("[breaker]\nfailure-ratio = 0.0\n"),
        "breaker.failure-ratio",
    );
    invalid(&with_one_model("[budget]\nratio = -1.0\n"), "budget.ratio");
    invalid(
        &with_one_model("[budget]\nwindow = \"0s\"\n"),
        "budget.window",
    );
    assert_eq!(
        invalid(
            &with_one_model("[admission]\nnormal-share = 1.5\n"),
            "admission.normal-share"
        ),
        "invalid admission.normal-share: must be within 0..=1, got 1.5"
    );
}

#[test]
fn bad_durations_are_refused_at_parse_naming_the_key() {
    let message = toml_error(&with_one_model("stall-timeout = \"-1s\"\n"));
    assert!(message.contains("stall-timeout = \"-1s\""), "{message}");
    assert!(message.contains("expected a duration"), "{message}");
    let message = toml_error(&with_one_model("[breaker]\nwindow = \"soon\"\n"));
    assert!(message.contains("window = \"soon\""), "{message}");
    assert!(message.contains("line 3, column 10"), "{message}");
}

#[test]
fn unknown_keys_are_refused_naming_the_key() {
    let message = toml_error(&with_one_model("concurency = 4\n"));
    assert!(message.contains("unknown field `concurency`"), "{message}");
    let message = toml_error("[upstream]\napi-key = \"sk-ant-x\"\n");
    assert!(message.contains("unknown field `api-key`"), "{message}");
}

#[test]
fn load_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let error = Config::load(&missing).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert!(error.to_string().starts_with("cannot read "), "{error}");
    assert!(error.to_string().contains("missing.toml"), "{error}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[models.claude-x]\n[chains]\nfast = []\n").unwrap();
    let error = Config::load(&bad).unwrap_err();
    assert_eq!(error.field(), Some("chains.fast"));
    let expected = format!(
        "{}: invalid chains.fast: must name at least one model",
        bad.display()
    );
    assert_eq!(error.to_string(), expected);

    let good = dir.path().join("breakwater.toml");
    std::fs::write(&good, EXAMPLE).unwrap();
    assert_eq!(
        Config::load(&good).unwrap(),
        Config::from_toml(EXAMPLE).unwrap()
    );
}

#[test]
fn for_chain_builds_what_the_engine_accepts() {
    let models = names(&["claude-b", "claude-a"]);
    let config = Config::for_chain(&models);
    config.validate().unwrap();
    let engine = config.engine_config();
    engine.validate().unwrap();
    let chain = [Target::new("claude-b"), Target::new("claude-a")];
    assert_eq!(engine, EngineConfig::new(chain));
}

#[test]
fn engine_config_carries_limits_chain_policies_and_seed() {
    let text = r#"
        seed = 42
        [models.claude-a]
        [models.claude-b]
        [models.claude-c]
        concurrency = 2
        min-interval = "20ms"
        [chains]
        default = ["claude-c", "claude-a"]
        [retry]
        max-retries-per-target = 1
        [breaker]
        consecutive-failures = 3
    "#;
    let config = Config::from_toml(text).unwrap();
    let engine = config.engine_config();
    engine.validate().unwrap();
    assert_eq!(engine.seed, Some(42));
    assert_eq!(
        engine.chain,
        vec![Target::new("claude-c"), Target::new("claude-a")]
    );
    let targets: Vec<&str> = engine.targets.iter().map(|(t, _)| t.model()).collect();
    assert_eq!(targets, ["claude-c", "claude-a", "claude-b"]);
    let limits = engine.limits(&Target::new("claude-c")).unwrap();
    assert_eq!(limits.concurrency.get(), 2);
    assert_eq!(limits.min_interval, Duration::from_millis(20));
    assert_eq!(engine.retry.max_retries_per_target, 1);
    assert_eq!(engine.breaker.consecutive_failures.get(), 3);
    assert_eq!(engine.budget, config.budget);
    assert_eq!(engine.admission, config.admission);
    assert_eq!(engine.supervision, config.supervision);
}

#[test]
fn chains_are_looked_up_by_name() {
    let text = with_one_model("[models.claude-y]\n[chains]\ndefault = [\"claude-y\"]\n");
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.chain("default"), Some(vec![Target::new("claude-y")]));
    assert_eq!(config.chain("fast"), None);
    assert_eq!(config.default_chain(), vec![Target::new("claude-y")]);
}

#[test]
fn a_single_model_is_the_default_chain() {
    let config = Config::from_toml("[models.claude-x]\n").unwrap();
    assert_eq!(config.default_chain(), vec![Target::new("claude-x")]);
    config.engine_config().validate().unwrap();
}

#[test]
fn with_models_adds_only_missing_models_with_default_limits() {
    let text = with_one_model("concurrency = 3\n");
    let config = Config::from_toml(&text)
        .unwrap()
        .with_models(&names(&["claude-x", "claude-y"]));
    assert_eq!(config.models["claude-x"].concurrency.get(), 3);
    assert_eq!(config.models["claude-y"], TargetLimits::default());
    assert_eq!(config.default_chain(), Vec::<Target>::new());
    assert_eq!(
        config.validate().unwrap_err().field(),
        Some("chains.default")
    );
}

#[test]
fn with_policies_of_keeps_the_chain_and_takes_the_rest() {
    let file = Config::from_toml(&with_one_model(
        "concurrency = 3\n[models.claude-y]\n[chains]\ndefault = [\"claude-x\"]\n\
         [breaker]\nprobes = 2\n[upstream]\nbase-url = \"http://127.0.0.1:1\"\n",
    ))
    .unwrap();
    let config = Config::for_chain(&names(&["claude-z", "claude-x"])).with_policies_of(&file);
    config.validate().unwrap();
    assert_eq!(
        config.default_chain(),
        vec![Target::new("claude-z"), Target::new("claude-x")]
    );
    assert_eq!(config.models.len(), 2);
    assert_eq!(config.models["claude-x"].concurrency.get(), 3);
    assert_eq!(config.models["claude-z"], TargetLimits::default());
    assert_eq!(config.breaker.probes.get(), 2);
    assert_eq!(config.upstream, ClientConfig::default());
}

#[test]
fn gateway_keys_are_required_with_require_keys_and_never_printed() {
    let error = Config::from_toml("[models.m]\n[gateway]\nrequire-keys = true\n").unwrap_err();
    assert!(error.to_string().contains("gateway.keys"), "{error}");
    let config = Config::from_toml(
        "[models.m]\n[gateway]\nrequire-keys = true\nkeys = [\"sk-gw-secret\"]\n",
    )
    .unwrap();
    assert!(config.gateway.admits("sk-gw-secret"));
    assert!(!format!("{config:?}").contains("sk-gw-secret"));
    assert!(!toml::to_string(&config).unwrap().contains("sk-gw-secret"));
}

#[test]
fn chain_adapt_applies_to_its_chain_and_must_name_one() {
    let text = r#"
        adapt = "adapt"
        [models.claude-x]
        [models.claude-y]
        [chains]
        default = ["claude-x", "claude-y"]
        raw = ["claude-y", "claude-x"]
        [chain-adapt]
        raw = "skip"
    "#;
    let config = Config::from_toml(text).unwrap();
    assert_eq!(AdaptMode::Skip, config.adapt_for("raw"));
    assert_eq!(AdaptMode::Adapt, config.adapt_for("default"));
    let skip_all =
        Config::from_toml(&text.replace("adapt = \"adapt\"", "adapt = \"skip\"")).unwrap();
    assert_eq!(AdaptMode::Skip, skip_all.adapt_for("default"));
    assert_eq!(
        invalid(
            &text.replace("raw = \"skip\"", "rwa = \"skip\""),
            "chain-adapt.rwa"
        ),
        "invalid chain-adapt.rwa: rwa is not a configured chain (configured: default, raw)"
    );
    let message = toml_error(&text.replace("raw = \"skip\"", "raw = \"never\""));
    assert!(message.contains("raw = \"never\""), "{message}");
}

#[test]
fn catalog_overrides_are_validated_naming_the_key() {
    let text = with_one_model(
        "[catalog.models.claude-haiku-4-5]\nmax-output-tokens = 32000\n\
         [catalog.models.claude-new]\nmax-output-tokens = 8000\n",
    );
    let message = invalid(&text, "catalog.models.claude-new.context-window");
    assert!(message.contains("required for a model"), "{message}");
    let known_only =
        with_one_model("[catalog.models.claude-haiku-4-5]\nmax-output-tokens = 32000\n");
    let config = Config::from_toml(&known_only).unwrap();
    let catalog = config.catalog().unwrap();
    assert_eq!(
        32000,
        catalog
            .get("claude-haiku-4-5-20251001")
            .unwrap()
            .max_output_tokens
    );
    let unknown_key = known_only.replace("max-output-tokens", "max-output");
    let message = toml_error(&unknown_key);
    assert!(message.contains("max-output"), "{message}");
    assert!(Arc::ptr_eq(
        &Config::from_toml(TWO_MODELS).unwrap().catalog().unwrap(),
        &Catalog::builtin()
    ));
}

#[test]
fn the_commented_catalog_example_is_valid() {
    let start = EXAMPLE
        .find("# [catalog.models.claude-haiku-4-5]")
        .expect("example present");
    let end = EXAMPLE[start..].find("\n\n[").expect("example ends") + start;
    let uncommented: Vec<&str> = EXAMPLE[start..end]
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| line.starts_with('[') || line.contains(" = "))
        .collect();
    let uncommented = uncommented.join("\n");
    let config = Config::from_toml(&with_one_model(&uncommented))
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let written = toml::to_string(&config).unwrap();
    assert_eq!(Config::from_toml(&written).unwrap(), config, "{written}");
    let catalog = config.catalog().unwrap();
    assert!(catalog.get("claude-next").is_some());
    assert_eq!(
        Some("2027-02-01"),
        catalog
            .get("claude-haiku-4-5")
            .unwrap()
            .lifecycle
            .retires
            .as_deref()
    );
}

#[test]
fn a_chain_from_the_command_line_keeps_the_files_catalogue_and_adapt_settings() {
    let text = format!(
        "adapt = \"skip\"\n{}",
        with_one_model("[catalog.models.claude-haiku-4-5]\nmax-output-tokens = 32000\n")
    );
    let file = Config::from_toml(&text).unwrap();
    let config = Config::for_chain(&names(&["claude-z"])).with_policies_of(&file);
    assert_eq!(AdaptMode::Skip, config.adapt_for("default"));
    let catalog = config.catalog().unwrap();
    assert_eq!(
        32000,
        catalog.get("claude-haiku-4-5").unwrap().max_output_tokens
    );
}

#[test]
fn a_fleets_probe_lease_must_outlast_every_attempt_and_errors_hide_redis_passwords() {
    let fleet = r#"
        [models.claude-x]
        attempt-timeout = "90s"
        [cluster]
        redis = "redis://:pw@127.0.0.1:6379"
    "#;
    let message = invalid(fleet, "cluster.probe-lease");
    assert!(
        message.contains("models.claude-x.attempt-timeout"),
        "{message}"
    );
    // Without Redis the lease is not used, and the same models are fine.
    let alone = "[models.claude-x]\nattempt-timeout = \"90s\"\n";
    assert!(Config::from_toml(alone).is_ok());
    // A misplaced URL is an unknown key; the error quotes the line, without the password.
    let misplaced = "redis = \"redis://app:s3cret@h:6379\"\n[models.claude-x]\n";
    let message = toml_error(misplaced);
    assert!(
        message.contains("redis://app:***@h:6379") && !message.contains("s3cret"),
        "{message}"
    );
}
