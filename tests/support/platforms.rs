//! What the platform tests (`tests/platforms_bedrock.rs`, `tests/platforms_vertex.rs`) share:
//! a mock per platform, its answers by status, and `breakwater send` run as a child process
//! with an environment of the test's making. Included with
//! `#[path = "support/platforms.rs"] mod platforms;`.

use std::time::Duration;

use breakwater::engine::{Error, Failure};
use breakwater::mock::{MockServer, Scenario};

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The last attempt's failure of a request no target could answer.
pub(crate) fn last_failure(error: &Error) -> &Failure {
    match error {
        Error::Exhausted {
            last: Some(failure),
            ..
        } => failure,
        other => panic!("not exhausted with a failure: {other}"),
    }
}

/// A mock on a free loopback port, playing `toml`.
pub(crate) async fn mock(toml: &str) -> MockServer {
    let scenario = Scenario::from_toml(toml).expect("test scenario is valid");
    MockServer::start(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .expect("mock starts")
}

/// How many of `server`'s answers to `model` had `status`.
pub(crate) fn by_status(server: &MockServer, model: &str, status: &str) -> u64 {
    let stats = server.stats();
    stats
        .models
        .get(model)
        .and_then(|m| m.by_status.get(status).copied())
        .unwrap_or(0)
}

/// One `breakwater send` run: to `target` (`MODEL@PLATFORM`), with the config file `config`,
/// the Claude API at `anthropic`.
pub(crate) struct Send<'a> {
    pub(crate) config: String,
    pub(crate) anthropic: String,
    pub(crate) target: String,
    /// Variables of this machine the child must not see.
    pub(crate) remove: &'a [&'a str],
    /// Variables set for the child; `{dir}` in a value is its temporary directory.
    pub(crate) env: Vec<(&'a str, String)>,
    /// Files written into that directory first, by name.
    pub(crate) files: Vec<(&'a str, String)>,
}

impl Send<'_> {
    /// Runs it on another thread (the mocks run on the test's runtime): whether it succeeded,
    /// and its stdout and stderr.
    pub(crate) async fn run(self) -> (bool, String) {
        let remove: Vec<String> = self.remove.iter().map(|n| (*n).to_owned()).collect();
        let owned = |pairs: Vec<(&str, String)>| -> Vec<(String, String)> {
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        let (env, files) = (owned(self.env), owned(self.files));
        let (config, anthropic, target) = (self.config, self.anthropic, self.target);
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("breakwater.toml");
            std::fs::write(&path, config).expect("config written");
            for (name, text) in &files {
                std::fs::write(dir.path().join(name), text).expect("file written");
            }
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_breakwater"));
            command
                .args(["send", "--deadline", "10s", "--config"])
                .arg(&path)
                .args(["--base-url", &anthropic, "--model", &target, "hello"])
                .env("ANTHROPIC_API_KEY", "anthropic-key");
            for name in &remove {
                command.env_remove(name);
            }
            let dir_text = dir.path().to_string_lossy().into_owned();
            for (name, value) in &env {
                command.env(name, value.replace("{dir}", &dir_text));
            }
            let output = command.output().expect("breakwater runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status.success(), text)
        })
        .await
        .expect("joined")
    }
}
