//! `breakwater send` as a user runs it: the real binary, against its in-process mock or a
//! mock started here, checking stdout, the one-line error and the exit code.

use std::io::Write;
use std::process::{Command, Output};

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_breakwater"));
    command
        .args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_BASE_URL");
    command
}

fn breakwater(args: &[&str]) -> Output {
    command(args).output().expect("the binary runs")
}

fn breakwater_with_key(args: &[&str]) -> Output {
    command(args)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .output()
        .expect("the binary runs")
}

fn scenario_file(toml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    file
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn send_prints_the_reply_from_the_built_in_mock() {
    let output = breakwater(&["send", "--mock", "Hello, breakwater"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Hello, breakwater"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn send_streams_the_reply_whole() {
    let output = breakwater(&["send", "--mock", "--stream", "a streamed hello"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("a streamed hello"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_permanent_error_exits_3_with_one_classified_line() {
    let scenario = scenario_file("[models.only-this-one]\n");
    let path = scenario.path().to_str().unwrap();
    let output = breakwater(&[
        "send",
        "--mock",
        "--scenario",
        path,
        "--model",
        "other",
        "hi",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let line = stderr(&output);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("error: invalid (404, not_found_error, request-id req_"),
        "{line}"
    );
}

#[test]
fn an_overload_that_outlasts_the_retries_exits_4() {
    let toml =
        "[models.m]\nservice-time = \"1ms\"\nfaults = [{ kind = \"status\", status = 529 }]\n";
    let scenario = scenario_file(toml);
    let path = scenario.path().to_str().unwrap();
    let output = breakwater(&["send", "--mock", "--scenario", path, "--model", "m", "hi"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let lines: Vec<_> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("retrying m in "))
            .count(),
        2,
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("error: overloaded (529, overloaded_error, request-id req_"),
        "{last}"
    );
    assert!(last.ends_with("(after 3 attempt(s))"), "{last}");
}

#[test]
fn an_overload_that_clears_is_overcome_by_waiting_out_retry_after() {
    // The fault lasts 300 ms; its `retry-after: 1` makes the one retry land after it.
    let fault = "{ kind = \"status\", status = 529, retry-after = \"1\", end = \"300ms\" }";
    let toml = format!("[models.m]\nservice-time = \"1ms\"\nfaults = [{fault}]\n");
    let scenario = scenario_file(&toml);
    let path = scenario.path().to_str().unwrap();
    let output = breakwater(&["send", "--mock", "--scenario", path, "--model", "m", "hi"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("hi"));
    let retries: Vec<_> = stderr(&output).lines().map(str::to_owned).collect();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(
        retries[0].starts_with("retrying m in 1000ms after overloaded"),
        "{retries:?}"
    );
}

#[test]
fn a_bad_scenario_file_is_a_usage_error_naming_the_field() {
    let scenario = scenario_file("[models.m]\nslots = 0\n");
    let path = scenario.path().to_str().unwrap();
    let output = breakwater(&["send", "--mock", "--scenario", path, "hi"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("models.m.slots"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_base_url_is_a_usage_error() {
    let output = breakwater_with_key(&["send", "--base-url", "ftp://nowhere", "hi"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid base-url"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_prompt_is_a_usage_error() {
    assert_eq!(breakwater(&["send", "--mock"]).status.code(), Some(2));
}

#[test]
fn a_missing_key_is_a_usage_error_naming_the_variables() {
    let output = breakwater(&["send", "--base-url", "http://127.0.0.1:9", "hi"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("ANTHROPIC_API_KEY"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_deadline_too_long_to_represent_is_not_a_crash() {
    let output = breakwater(&["send", "--mock", "--deadline", "500000000000years", "hi"]);
    assert!(output.status.success(), "{}", stderr(&output));
}
