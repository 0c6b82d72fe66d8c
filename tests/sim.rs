//! `breakwater sim`: the strategies, the runner and the report on short custom scenarios (a
//! minute of virtual time each, seconds of real time), and the command line's output.

use std::process::Command;
use std::time::Duration;

use breakwater::config::Config;
use breakwater::load::Latency;
use breakwater::sim::SimScenario;
use breakwater::sim::report::StrategyReport;
use breakwater::sim::run::{run, run_strategy};
use breakwater::sim::strategy::{RequestOutcome, StrategyName};

/// A minute at 8 requests/s; the primary keeps `fraction` of its 40 slots from 10 s to 40 s,
/// the fallback stays healthy.
fn scenario(fraction: f64) -> SimScenario {
    let text = format!(
        r#"
duration = "1m"
seed = 3
rps = 8.0
deadline = "30s"
chain = ["primary", "fallback"]
incident = {{ start = "10s", end = "40s" }}

[models.primary]
slots = 40
service-time = "3s"
distribution = "uniform"
service-time-spread = "1s"
brownouts = [{{ start = "10s", end = "40s", fraction = {fraction} }}]

[models.fallback]
slots = 30
service-time = "1500ms"
"#
    );
    SimScenario::from_toml(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The run's report, and every request's outcome in arrival order (each request reported
/// exactly once).
fn played(
    scenario: &SimScenario,
    strategy: StrategyName,
    config: Option<&Config>,
) -> (StrategyReport, Vec<RequestOutcome>) {
    let mut seen: Vec<Option<RequestOutcome>> = Vec::new();
    let report = run_strategy(scenario, strategy, config, |index, outcome| {
        let index = usize::try_from(index).unwrap();
        if seen.len() <= index {
            seen.resize(index + 1, None);
        }
        assert!(seen[index].is_none(), "request {index} ended twice");
        seen[index] = Some(outcome.clone());
    })
    .unwrap();
    let outcomes = seen
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| outcome.unwrap_or_else(|| panic!("request {index} never ended")))
        .collect();
    (report, outcomes)
}

fn outcomes(scenario: &SimScenario, strategy: StrategyName) -> Vec<RequestOutcome> {
    played(scenario, strategy, None).1
}

fn during_incident(scenario: &SimScenario, request: &RequestOutcome) -> bool {
    let incident = &scenario.incident;
    incident.start <= request.arrived && request.arrived < incident.end
}

fn by_name(reports: &[StrategyReport], name: StrategyName) -> &StrategyReport {
    reports.iter().find(|r| r.name == name).unwrap()
}

fn gaps(request: &RequestOutcome) -> Vec<f64> {
    let ends: Vec<Duration> = request.attempts.iter().map(|a| a.at).collect();
    ends.windows(2)
        .map(|w| w[1].checked_sub(w[0]).unwrap().as_secs_f64())
        .collect()
}

#[test]
fn every_strategy_meets_the_same_arrivals() {
    let scenario = scenario(0.05);
    let arrivals = scenario.arrivals();
    assert!(arrivals.len() > 300, "{}", arrivals.len());
    for strategy in StrategyName::ALL {
        let (report, requests) = played(&scenario, strategy, None);
        let seen: Vec<Duration> = requests.iter().map(|r| r.arrived).collect();
        assert_eq!(arrivals, seen, "{strategy}");
        assert_eq!(arrivals.len() as u64, report.requests, "{strategy}");
    }
}

#[test]
fn none_answers_nothing_during_a_full_outage_of_the_primary() {
    let scenario = scenario(0.0);
    let requests = outcomes(&scenario, StrategyName::None);
    let during: Vec<_> = requests
        .iter()
        .filter(|r| during_incident(&scenario, r))
        .collect();
    assert!(during.len() > 100);
    assert!(
        during
            .iter()
            .all(|r| !r.succeeded() && r.attempts.len() == 1)
    );
    let after = requests
        .iter()
        .filter(|r| r.arrived >= scenario.incident.end);
    assert!(after.clone().all(RequestOutcome::succeeded));
}

#[test]
fn tutorial_loop_and_sdk_default_retry_as_their_names_say() {
    let scenario = scenario(0.0);
    let request = |strategy| {
        outcomes(&scenario, strategy)
            .into_iter()
            .find(|r| r.arrived > Duration::from_secs(15) && during_incident(&scenario, r))
            .unwrap()
    };
    let tutorial = request(StrategyName::TutorialLoop);
    assert_eq!(4, tutorial.attempts.len());
    for (i, gap) in gaps(&tutorial).into_iter().enumerate() {
        let base = f64::from(1u32 << i);
        assert!(gap >= base && gap <= base + 1.0, "tutorial gap {i}: {gap}");
    }
    let sdk = request(StrategyName::SdkDefault);
    assert_eq!(3, sdk.attempts.len());
    for (i, gap) in gaps(&sdk).into_iter().enumerate() {
        let ceiling = 0.5 * f64::from(1u32 << i);
        assert!(gap > 0.75 * ceiling && gap <= ceiling, "sdk gap {i}: {gap}");
    }
    assert!(sdk.attempts.iter().all(|a| a.model == "primary"));
}

#[test]
fn sdk_fallback_retries_the_primary_as_the_sdk_then_moves_to_the_next_model() {
    let scenario = scenario(0.0);
    let request = outcomes(&scenario, StrategyName::SdkFallback)
        .into_iter()
        .find(|r| r.arrived > Duration::from_secs(15) && during_incident(&scenario, r))
        .unwrap();
    let models: Vec<&str> = request.attempts.iter().map(|a| a.model.as_str()).collect();
    assert_eq!(models, ["primary", "primary", "primary", "fallback"]);
    assert!(request.attempts[..3].iter().all(|a| a.status == Some(529)));
    for (i, gap) in gaps(&request).into_iter().take(2).enumerate() {
        let ceiling = 0.5 * f64::from(1u32 << i);
        assert!(gap > 0.75 * ceiling && gap <= ceiling, "sdk gap {i}: {gap}");
    }
    assert_eq!(request.answered_by.as_deref(), Some("fallback"));
}

#[test]
fn the_cooldown_router_skips_a_cooled_down_model_then_sends_it_everything_again() {
    // The primary is down from 10 s to 40 s; the router cools it down for 5 s after 3
    // failures in a minute, with no half-open probe.
    let scenario = scenario(0.0);
    let during: Vec<RequestOutcome> = outcomes(&scenario, StrategyName::CooldownRouter)
        .into_iter()
        .filter(|r| during_incident(&scenario, r))
        .collect();
    assert!(during.iter().all(RequestOutcome::succeeded));
    let first_on = |r: &RequestOutcome| r.attempts[0].model.clone();
    let skipped = during.iter().filter(|r| first_on(r) == "fallback").count();
    let tried = during.len() - skipped;
    assert!(
        skipped > tried,
        "{skipped} skipped, {tried} tried the primary"
    );
    // Each cooldown's end sends traffic back to the primary: several separate returns.
    let returns = during
        .windows(2)
        .filter(|w| first_on(&w[0]) == "fallback" && first_on(&w[1]) == "primary")
        .count();
    assert!(returns >= 3, "{returns} returns to the primary");
    // A request that meets the primary tries it at most 3 times (2 retries), then falls back.
    for request in &during {
        let on_primary = request
            .attempts
            .iter()
            .take_while(|a| a.model == "primary")
            .count();
        assert!(on_primary <= 3, "{request:?}");
        assert_eq!(request.answered_by.as_deref(), Some("fallback"));
    }
}

#[test]
fn breakwater_beats_the_sdk_and_retries_less_than_the_tutorial_in_a_brownout() {
    let scenario = scenario(0.05);
    let strategies = [
        StrategyName::SdkDefault,
        StrategyName::TutorialLoop,
        StrategyName::Breakwater,
    ];
    let report = run(&scenario, &strategies, None, |_| {}).unwrap();
    let (sdk, tutorial, breakwater) = (
        by_name(&report.strategies, StrategyName::SdkDefault),
        by_name(&report.strategies, StrategyName::TutorialLoop),
        by_name(&report.strategies, StrategyName::Breakwater),
    );
    assert_eq!(sdk.requests, breakwater.requests);
    assert!(breakwater.success_rate > sdk.success_rate);
    assert!(breakwater.attempts_per_request < tutorial.attempts_per_request);
    assert!(breakwater.primary_share_during_incident < sdk.primary_share_during_incident);
    assert!(breakwater.time_to_recover_s.is_some());
    let primary = &tutorial.incident_load[0];
    assert!(primary.load > 1.0 && primary.capacity > 0.0, "{primary:?}");
}

#[test]
fn the_report_sums_up_every_outcome() {
    let scenario = scenario(0.05);
    for strategy in [StrategyName::None, StrategyName::SdkFallback] {
        let (report, requests) = played(&scenario, strategy, None);
        let answered: Vec<&String> = requests
            .iter()
            .filter_map(|r| r.answered_by.as_ref())
            .collect();
        assert_eq!(requests.len() as u64, report.requests);
        assert_eq!(answered.len() as u64, report.succeeded);
        let mut answered_by = std::collections::BTreeMap::new();
        for model in &answered {
            *answered_by.entry((*model).clone()).or_insert(0) += 1;
        }
        assert_eq!(answered_by, report.answered_by, "{strategy}");
        let seconds = scenario.duration.as_secs() as usize;
        for (second, &n) in report.timeline.requests[..seconds].iter().enumerate() {
            let arrived = requests
                .iter()
                .filter(|r| r.arrived.as_secs() as usize == second);
            assert_eq!(arrived.count() as u64, n, "{strategy} second {second}");
        }
        let mut latencies: Vec<Duration> = requests.iter().map(|r| r.latency).collect();
        let exact = Latency::of(&mut latencies);
        let close = |histogram: f64, exact: f64| (histogram - exact).abs() <= 0.001 + exact * 1e-5;
        for (histogram, exact) in [
            (report.latency_ms.p50, exact.p50),
            (report.latency_ms.p95, exact.p95),
            (report.latency_ms.p99, exact.p99),
        ] {
            assert!(
                close(histogram, exact),
                "{strategy}: {histogram} ms against {exact} ms"
            );
        }
        assert_eq!(
            exact.max.to_bits(),
            report.latency_ms.max.to_bits(),
            "{strategy}"
        );
    }
    // `none` makes one attempt a request, ended well before the deadline: the API saw
    // exactly the attempts the requests logged, and every failure was a 529.
    let (report, requests) = played(&scenario, StrategyName::None, None);
    assert_eq!(report.requests, report.attempts);
    assert_eq!(report.requests - report.succeeded, report.wasted_attempts);
    assert!(requests.iter().all(|r| r.attempts.len() == 1));
}

#[test]
fn the_same_seed_gives_the_same_report_twice() {
    let scenario = scenario(0.05);
    let first = run(&scenario, &StrategyName::ALL, None, |_| {}).unwrap();
    let second = run(&scenario, &StrategyName::ALL, None, |_| {}).unwrap();
    assert_eq!(first, second);
}

#[test]
fn a_breakwater_config_sets_the_policies_breakwater_runs_with() {
    let scenario = scenario(0.0);
    let (_, requests) = played(&scenario, StrategyName::Breakwater, None);
    let retried = requests.iter().filter(|r| r.attempts.len() > 1).count();
    assert!(retried > 0, "by default some requests retry or fall back");
    let config = Config::from_toml(
        r#"
[models.primary]
[models.fallback]
[chains]
default = ["fallback"]
[retry]
max-attempts = 1
"#,
    )
    .unwrap();
    let (limited, requests) = played(&scenario, StrategyName::Breakwater, Some(&config));
    // One attempt a request, whatever fails; the scenario's chain still decides where it goes.
    assert!(requests.iter().all(|r| r.attempts.len() <= 1));
    assert!(limited.attempts <= limited.requests, "{limited:?}");
    assert!(limited.answered_by.contains_key("primary"), "{limited:?}");
}

#[test]
fn adaptive_limits_let_a_browned_out_primary_give_what_it_has_left() {
    // The built-in brownout: the primary keeps 2 of its 40 slots for five minutes.
    let scenario = SimScenario::builtin("brownout").unwrap();
    let fixed = Config::from_toml(
        r#"
[models.claude-sonnet-5-5]
adaptive = false
[models.claude-haiku-5-5]
adaptive = false
[chains]
default = ["claude-sonnet-5-5", "claude-haiku-5-5"]
"#,
    )
    .unwrap();
    let (off, _) = played(&scenario, StrategyName::Breakwater, Some(&fixed));
    let (on, _) = played(&scenario, StrategyName::Breakwater, None);
    let (used_off, used_on) = (
        off.primary_use_of_capacity.unwrap(),
        on.primary_use_of_capacity.unwrap(),
    );
    assert!(used_on > used_off, "on {used_on:.2}, off {used_off:.2}");
    assert!(used_on >= 0.8, "on {used_on:.2} of the primary's capacity");
    assert!(on.wasted_attempts < off.wasted_attempts, "{on:?} {off:?}");
    assert!(on.success_rate >= 0.999, "{}", on.success_rate);
}

#[test]
fn retries_hold_a_metastable_failure_that_breakwater_and_no_retries_recover_from() {
    // The built-in trigger (30% of the primary's slots from 1m to 2m, 3 s of capacity per
    // 529), with a minute of arrivals after it instead of eight.
    let mut scenario = SimScenario::builtin("metastable").unwrap();
    scenario.duration = Duration::from_secs(180);
    assert_eq!(Duration::from_secs(120), scenario.incident.end);
    let recovery = |strategy| played(&scenario, strategy, None).0.time_to_recover_s;
    assert_eq!(None, recovery(StrategyName::TutorialLoop));
    assert!(recovery(StrategyName::Breakwater).is_some());
    // Without retries the primary recovers as soon as the trigger ends: what keeps the
    // tutorial loop down is its own retries.
    assert_eq!(Some(0.0), recovery(StrategyName::None));
}

#[test]
fn strategy_names_parse_and_a_bad_one_lists_the_valid_ones() {
    for strategy in StrategyName::ALL {
        assert_eq!(Ok(strategy), strategy.as_str().parse());
    }
    let error = "retry-forever"
        .parse::<StrategyName>()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("retry-forever") && error.contains("cooldown-router"),
        "{error}"
    );
}

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_breakwater"))
        .arg("sim")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_output_has_every_field() {
    let out = sim(&[
        "--scenario",
        "brownout",
        "--duration",
        "90s",
        "--seed",
        "5",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!("brownout", json["scenario"]);
    assert_eq!(5, json["seed"]);
    let strategies = json["strategies"].as_array().unwrap();
    assert_eq!(StrategyName::ALL.len(), strategies.len());
    for s in strategies {
        for field in ["name", "requests", "success_rate", "attempts_per_request"] {
            assert!(!s[field].is_null(), "{field} in {s}");
        }
        for field in ["p50", "p95", "p99", "max"] {
            assert!(s["latency_ms"][field].is_number(), "latency_ms.{field}");
        }
        let object = s.as_object().unwrap();
        for field in [
            "primary_share_during_incident",
            "primary_use_of_capacity",
            "wasted_attempts",
            "time_to_recover_s",
            "timeline",
        ] {
            assert!(object.contains_key(field), "{field}");
        }
    }
}

#[test]
fn out_writes_a_markdown_report_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = sim(&[
        "--duration",
        "70s",
        "--strategies",
        "none,breakwater",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("breakwater") && table.contains("none"),
        "{table}"
    );
    let markdown = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(markdown.contains("| breakwater |"), "{markdown}");
    for chart in ["success-rate", "attempts-claude-sonnet-5-5"] {
        for ext in ["png", "svg"] {
            let path = out_dir.join(format!("{chart}.{ext}"));
            assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{path:?}");
        }
    }
}

#[test]
fn a_bad_scenario_file_exits_2_naming_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "chain = [\"m\"]\n\n[models.m]\nslots = 0\n").unwrap();
    let out = sim(&["--scenario", path.to_str().unwrap()]);
    assert_eq!(Some(2), out.status.code());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("models.m.slots") && stderr.contains("line 4"),
        "{stderr}"
    );

    std::fs::write(&path, "chain = [\"m\"]\n[models.m]\nslots = \"many\"\n").unwrap();
    let out = sim(&["--scenario", path.to_str().unwrap()]);
    assert_eq!(Some(2), out.status.code());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("slots"),
        "{stderr}"
    );
}

#[test]
fn rps_overrides_the_scenarios_rate() {
    let out = sim(&[
        "--duration",
        "20s",
        "--rps",
        "20",
        "--strategies",
        "none",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(serde_json::json!(20.0), json["rps"]);
    let requests = json["strategies"][0]["requests"].as_u64().unwrap();
    assert!(
        (300..500).contains(&requests),
        "{requests} requests in 20 s"
    );
}

#[test]
fn an_rps_that_is_not_a_number_above_0_is_a_usage_error_naming_rps() {
    for bad in ["0", "abc", "-1", "inf", "NaN"] {
        let out = sim(&["--rps", bad]);
        assert_eq!(Some(2), out.status.code(), "--rps {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--rps"), "--rps {bad}: {stderr}");
    }
}

#[test]
fn config_runs_breakwater_with_a_file_and_a_bad_one_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("breakwater.toml");
    let models = "[models.claude-sonnet-5-5]\n[models.claude-haiku-5-5]\n[chains]\n\
        default = [\"claude-sonnet-5-5\", \"claude-haiku-5-5\"]\n";
    std::fs::write(&path, format!("{models}[retry]\nmax-attempts = 1\n")).unwrap();
    let config = path.to_str().unwrap();
    let run = |config| {
        sim(&[
            "--duration",
            "20s",
            "--strategies",
            "breakwater",
            "--json",
            "--config",
            config,
        ])
    };
    let out = run(config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["strategies"][0]["attempts_per_request"]
            .as_f64()
            .unwrap()
            <= 1.0
    );

    std::fs::write(&path, format!("{models}[breaker]\nfailure-ratio = 2.0\n")).unwrap();
    let out = run(config);
    assert_eq!(Some(2), out.status.code());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--config")
            && stderr.contains(config)
            && stderr.contains("breaker.failure-ratio"),
        "{stderr}"
    );

    let missing = dir.path().join("missing.toml");
    let out = run(missing.to_str().unwrap());
    assert_eq!(Some(2), out.status.code());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.toml"),
        "{stderr}"
    );
}
