//! `breakwater batch` as a user runs it: the real binary against a mock server on
//! 127.0.0.1:0, killed with SIGKILL mid-run and run again; validation; bad state.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use breakwater::mock::{MockServer, Scenario};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_breakwater");

async fn mock(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// Both models keep a quarter of their slots for the whole run: every model browns out.
const EVERY_MODEL_BROWNING_OUT: &str = r#"
[models.a]
slots = 4
service-time = "15ms"
brownouts = [{ start = "0s", end = "1h", fraction = 0.25 }]
[models.b]
slots = 4
service-time = "15ms"
brownouts = [{ start = "0s", end = "1h", fraction = 0.25 }]
"#;

fn line(id: &str, prompt: &str) -> String {
    json!({"custom_id": id, "params": {"model": "a", "max_tokens": 16,
        "messages": [{"role": "user", "content": prompt}]}})
    .to_string()
}

fn write_input(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("in.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn batch(dir: &Path, server: &MockServer, extra: &[&str]) -> Command {
    batch_at(dir, &server.base_url(), extra)
}

fn batch_at(dir: &Path, base_url: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .args(["batch", "run", "in.jsonl", "--out", "out.jsonl"])
        .args(["--state", "state.sqlite", "--chain", "a,b"])
        .args(["--base-url", base_url])
        .args(["--backoff", "20ms", "--max-backoff", "200ms"])
        .args(extra)
        .env("ANTHROPIC_API_KEY", "test-key")
        .env_remove("ANTHROPIC_BASE_URL")
        .stdin(Stdio::null());
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

fn results(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .expect("the output exists")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// `batch status --json` on the test's state file.
fn status(dir: &Path) -> Value {
    let status = output(Command::new(BIN).current_dir(dir).args([
        "batch",
        "status",
        "--state",
        "state.sqlite",
        "--json",
    ]));
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    serde_json::from_slice(&status.stdout).unwrap()
}

fn successes(server: &MockServer) -> u64 {
    server
        .stats()
        .models
        .values()
        .map(|m| m.by_status.get("200").copied().unwrap_or(0))
        .sum()
}

fn requests(server: &MockServer) -> u64 {
    server.stats().models.values().map(|m| m.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_sigkill_mid_run_and_rerun_every_item_is_answered_exactly_once() {
    const ITEMS: usize = 300;
    const CONCURRENCY: u64 = 8;
    let server = mock(EVERY_MODEL_BROWNING_OUT).await;
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..ITEMS)
        .map(|i| line(&format!("item-{i}"), &format!("prompt number {i}")))
        .collect();
    write_input(dir.path(), &lines);
    let concurrency = CONCURRENCY.to_string();
    let mut kills = 0;
    for pause in [700, 500, 600] {
        let mut child = batch(dir.path(), &server, &["--concurrency", &concurrency])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        assert!(
            !dir.path().join("out.jsonl").exists(),
            "no output is presented before the job is done"
        );
    }
    assert!(kills >= 2, "the job was killed mid-run more than once");
    let before = successes(&server);
    assert!(before > 0, "the killed runs got some answers");
    let done = output(&mut batch(
        dir.path(),
        &server,
        &["--concurrency", &concurrency],
    ));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let results = results(dir.path());
    assert_eq!(results.len(), ITEMS);
    let ids: HashSet<&str> = results
        .iter()
        .map(|r| r["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), ITEMS, "every custom_id exactly once");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["custom_id"], format!("item-{i}"), "in input order");
        assert_eq!(result["result"]["type"], "succeeded", "{result}");
        let text = result["result"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            text.ends_with(&format!(": prompt number {i}")),
            "each result answers its own request: {text}"
        );
    }
    // Only requests in flight at a kill (their results not yet stored) may have been sent
    // again: at most `concurrency` per kill.
    let answered = successes(&server);
    assert!(
        answered <= ITEMS as u64 + kills * CONCURRENCY,
        "{answered} answers for {ITEMS} items over {kills} kills"
    );

    let sent = requests(&server);
    let again = output(&mut batch(dir.path(), &server, &[]));
    assert!(again.status.success());
    assert_eq!(requests(&server), sent, "a finished job sends nothing");
    assert_eq!(self::results(dir.path()).len(), ITEMS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bad_line_is_reported_with_its_number_and_nothing_is_sent() {
    let server = mock("[models.a]\n[models.b]\n").await;
    let dir = tempfile::tempdir().unwrap();
    write_input(
        dir.path(),
        &[
            line("ok-1", "fine"),
            "{broken".to_owned(),
            json!({"params": {}}).to_string(),
            line("ok-1", "again"),
            json!({"custom_id": "no-model", "params": {"max_tokens": 8, "messages": []}})
                .to_string(),
            json!({"custom_id": "no-max", "params": {"model": "a", "messages": []}}).to_string(),
            json!({"custom_id": "no-messages", "params": {"model": "a", "max_tokens": 8}})
                .to_string(),
        ],
    );
    let run = output(&mut batch(dir.path(), &server, &[]));
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    for expected in [
        "6 invalid line(s); nothing was sent",
        "line 2: not valid JSON",
        "line 3: missing custom_id",
        "line 4: duplicate custom_id \"ok-1\" (first on line 1)",
        "line 5: params: missing field `model`",
        "line 6: params: missing field `max_tokens`",
        "line 7: params: missing field `messages`",
        "--skip-invalid cannot skip them",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    assert_eq!(requests(&server), 0);
    assert!(!dir.path().join("out.jsonl").exists());
    assert!(
        !dir.path().join("state.sqlite").exists(),
        "no state for a refused run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_invalid_writes_bad_lines_as_errored_results() {
    let server = mock("[models.a]\n[models.b]\n").await;
    let dir = tempfile::tempdir().unwrap();
    write_input(
        dir.path(),
        &[
            line("good", "fine"),
            json!({"custom_id": "bad", "params": {"model": "a", "messages": []}}).to_string(),
        ],
    );
    let run = output(&mut batch(dir.path(), &server, &["--skip-invalid"]));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results = results(dir.path());
    assert_eq!(results[0]["result"]["type"], "succeeded");
    assert_eq!(results[1]["custom_id"], "bad");
    assert_eq!(results[1]["result"]["type"], "errored");
    assert_eq!(
        results[1]["result"]["error"]["type"],
        "invalid_request_error"
    );
    let message = results[1]["result"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 2") && message.contains("max_tokens"),
        "{message}"
    );
    assert_eq!(requests(&server), 1, "the bad line was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_written_as_errored_at_once() {
    let server = mock(
        "[models.a]\nfaults = [{ kind = \"status\", status = 400, error-type = \"invalid_request_error\" }]\n[models.b]\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), &[line("one", "hello")]);
    let run = output(&mut batch(dir.path(), &server, &[]));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results = results(dir.path());
    assert_eq!(results[0]["result"]["type"], "errored");
    assert_eq!(
        results[0]["result"]["error"]["type"],
        "invalid_request_error"
    );
    assert_eq!(requests(&server), 1, "neither retried nor rerouted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_from_another_input_is_refused_naming_the_file() {
    let server = mock("[models.a]\n[models.b]\n").await;
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), &[line("one", "hello")]);
    assert!(
        output(&mut batch(dir.path(), &server, &[]))
            .status
            .success()
    );
    write_input(dir.path(), &[line("one", "changed")]);
    let run = output(&mut batch(dir.path(), &server, &[]));
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("state.sqlite"), "{stderr}");
    assert!(stderr.contains("--state"), "says what to do: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_state_file_is_refused_naming_the_file() {
    let server = mock("[models.a]\n[models.b]\n").await;
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), &[line("one", "hello")]);
    std::fs::write(dir.path().join("state.sqlite"), vec![0x5a; 8192]).unwrap();
    let run = output(&mut batch(dir.path(), &server, &[]));
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("state.sqlite"), "{stderr}");
    assert_eq!(requests(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_a_finished_job() {
    let server = mock("[models.a]\n[models.b]\n").await;
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), &[line("one", "hello"), line("two", "there")]);
    assert!(
        output(&mut batch(dir.path(), &server, &[]))
            .status
            .success()
    );
    let report = status(dir.path());
    assert_eq!(report["succeeded"], 2);
    assert_eq!(report["pending"], 0);
    assert_eq!(report["in_flight"], 0);
    assert_eq!(report["errored"], 0);
    assert_eq!(report["oldest_pending_age_s"], Value::Null);
    let missing = output(Command::new(BIN).current_dir(dir.path()).args([
        "batch",
        "status",
        "--state",
        "nope.sqlite",
    ]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.sqlite"));
}

/// `batch status` on the test's state file, once it answers: its JSON report and its text.
fn status_when_readable(dir: &Path) -> Option<(Value, String)> {
    let args = ["batch", "status", "--state", "state.sqlite"];
    let json = output(Command::new(BIN).current_dir(dir).args(args).arg("--json"));
    let text = output(Command::new(BIN).current_dir(dir).args(args));
    (json.status.success() && text.status.success()).then(|| {
        let report = serde_json::from_slice(&json.stdout).unwrap();
        (report, String::from_utf8_lossy(&text.stdout).into_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_items_claimed_ahead_apart_from_the_one_in_flight() {
    // Slow answers: the one request the runner may send at once is still out when looked at.
    let server = mock("[models.a]\nservice-time = \"20s\"\n[models.b]\n").await;
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..20)
        .map(|i| line(&format!("item-{i}"), "slow"))
        .collect();
    write_input(dir.path(), &lines);
    let mut child = batch(dir.path(), &server, &["--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let number = |report: &Value, key: &str| report[key].as_u64().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let seen = loop {
        // The runner claims 16 ahead (twice its concurrency, at least 8 of each); once its
        // one request is out, both are in the file.
        if let Some((report, text)) = status_when_readable(dir.path())
            && number(&report, "in_flight") + number(&report, "claimed") == 16
            && number(&report, "in_flight") >= 1
        {
            break Some((report, text));
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let (report, text) = seen.expect("the runner claimed ahead and sent one request");
    assert_eq!(requests(&server), 1, "one request was sent");
    assert_eq!(
        report["in_flight"], 1,
        "only the request sent is in flight: {report}"
    );
    assert_eq!(report["claimed"], 15, "{report}");
    assert_eq!(report["pending"], 4, "{report}");
    assert_eq!(report["total"], 20, "{report}");
    assert!(
        text.contains("4 pending, 15 claimed (next to be sent), 1 in flight"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_halts_the_run_without_marking_items_errored() {
    let server = mock(
        "[models.a]\nfaults = [{ kind = \"status\", status = 401, error-type = \"authentication_error\" }]\n[models.b]\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), &[line("one", "hello"), line("two", "there")]);
    let run = output(&mut batch(dir.path(), &server, &["--concurrency", "1"]));
    assert_eq!(run.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("refused the key"), "{stderr}");
    assert!(!dir.path().join("out.jsonl").exists());
    let report = status(dir.path());
    assert_eq!(
        report["errored"], 0,
        "nothing was stored as a result: {report}"
    );
    assert_eq!(report["pending"], 2, "{report}");
}

/// A base URL where nothing listens: a port bound, then let go.
fn dead_upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_at_a_dead_upstream_stops_after_max_stall_naming_the_cause_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..30).map(|i| line(&format!("id-{i}"), "hi")).collect();
    write_input(dir.path(), &lines);
    let dead = dead_upstream();
    let started = tokio::time::Instant::now();
    let run = output(&mut batch_at(dir.path(), &dead, &["--max-stall", "1s"]));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    assert!(stderr.contains("no progress for"), "{stderr}");
    assert!(stderr.contains("connect"), "the class is named: {stderr}");
    let port = dead.rsplit(':').next().unwrap();
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    let report = status(dir.path());
    assert_eq!(report["errored"], 0, "nothing is marked errored: {report}");
    assert_eq!(report["succeeded"], 0, "{report}");

    let server = mock("[models.a]\n[models.b]\n").await;
    let rerun = output(&mut batch(dir.path(), &server, &[]));
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let results = results(dir.path());
    assert_eq!(results.len(), 30);
    assert!(results.iter().all(|r| r["result"]["type"] == "succeeded"));
}

#[test]
fn with_no_chain_and_no_config_the_default_chain_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let request = json!({"custom_id": "one", "params": {"model": "claude-sonnet-5-5",
        "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}});
    write_input(dir.path(), &[request.to_string()]);
    let run = output(
        Command::new(BIN)
            .current_dir(dir.path())
            .args(["batch", "run", "in.jsonl", "--out", "out.jsonl", "--mock"])
            .env_remove("ANTHROPIC_BASE_URL"),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("serving claude-sonnet-5-5 -> claude-haiku-5-5"),
        "{stderr}"
    );
    assert_eq!(results(dir.path())[0]["result"]["type"], "succeeded");
}
