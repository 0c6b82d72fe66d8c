//! `breakwater serve` as a user runs it: the real binary, stopped with SIGTERM while a request
//! is still running, answers that request with a shutdown error and exits 5 (issue #16).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

#[cfg(unix)]
#[tokio::test]
async fn serve_exits_5_when_its_grace_period_cuts_a_request() {
    let mut scenario = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let slow = "[models.claude-haiku-5-5]\nservice-time = \"5s\"\n";
    scenario.write_all(slow.as_bytes()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_breakwater"))
        .args(["serve", "--listen", "127.0.0.1:0", "--mock", "--scenario"])
        .arg(scenario.path())
        .args(["--chain", "claude-haiku-5-5", "--grace", "200ms"])
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env_remove("ANTHROPIC_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let base = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        first.rsplit(' ').next().unwrap().to_owned()
    })
    .await
    .unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/messages"))
            .header("content-type", "application/json")
            .body(r#"{"model":"claude-haiku-5-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
    });
    // The request must be in the engine before the signal; the mock holds it for 5 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let response = in_flight
        .await
        .unwrap()
        .expect("the cut request was answered");
    assert_eq!(response.status(), 503);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("1 cut"), "{stderr}");
}
