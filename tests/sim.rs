//! `breakwater sim`: the strategies, the runner and the report on short custom scenarios (a
//! minute of virtual time each, seconds of real time), and the command line's output.

use std::process::Command;
use std::time::Duration;

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

fn outcomes(scenario: &SimScenario, strategy: StrategyName) -> Vec<RequestOutcome> {
    run_strategy(scenario, strategy, &scenario.arrivals(), |_| {})
        .unwrap()
        .requests
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
        let run = run_strategy(&scenario, strategy, &arrivals, |_| {}).unwrap();
        let seen: Vec<Duration> = run.requests.iter().map(|r| r.arrived).collect();
        assert_eq!(arrivals, seen, "{strategy}");
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
fn breakwater_beats_the_sdk_and_retries_less_than_the_tutorial_in_a_brownout() {
    let scenario = scenario(0.05);
    let strategies = [
        StrategyName::SdkDefault,
        StrategyName::TutorialLoop,
        StrategyName::Breakwater,
    ];
    let report = run(&scenario, &strategies, |_| {}).unwrap();
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
    for chart in ["success-rate", "attempts-claude-sonnet-4-5"] {
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
