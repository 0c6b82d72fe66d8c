//! `MODEL@bedrock` end to end (issue #19): chains route a Bedrock target to
//! `{endpoint}/anthropic/v1/messages`, signed with SigV4 (or a Bedrock API key), against the
//! mock serving that path as Bedrock does (`[bedrock]` in its scenario). Two mocks per test:
//! one as the Claude API, one as Bedrock (one mock shares a model's capacity between both
//! paths). Real loopback HTTP, millisecond settings.

use std::collections::BTreeMap;

use breakwater::api::MessagesRequest;
use breakwater::client::{AwsCredentials, BedrockAuth, Credentials, Secret};
use breakwater::config::{BedrockConfig, Config, VertexConfig};
use breakwater::engine::policy::{Jitter, StateKind};
use breakwater::engine::{Class, TargetLimits};
use breakwater::mock::MockServer;
use breakwater::runtime::{Runtime, RuntimeError};
use futures::StreamExt;

#[path = "support/platforms.rs"]
mod platforms;

use platforms::{mock, ms};

const MODEL: &str = "claude-sonnet-5-5";
const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A mock as Bedrock in us-east-1, accepting [`KEY_ID`] and [`SECRET`], serving [`MODEL`] as
/// `model_toml` says (Bedrock's errors: no `retry-after`, no rate-limit headers).
async fn bedrock_mock(model_toml: &str) -> MockServer {
    mock(&format!(
        "[bedrock]\nregion = \"us-east-1\"\naccess-key-id = \"{KEY_ID}\"\n\
         secret-access-key = \"{SECRET}\"\napi-key = \"bedrock-api-key\"\n\
         [models.{MODEL}]\nservice-time = \"1ms\"\nretry-after = false\n\
         rate-limit-headers = false\n{model_toml}"
    ))
    .await
}

/// `chain` (entries as written) with only `[models.MODEL]` configured, Bedrock's endpoint
/// at `bedrock`, millisecond policies.
fn config(chain: &[&str], bedrock: &MockServer) -> Config {
    let mut config = Config {
        models: BTreeMap::from([(MODEL.to_owned(), TargetLimits::default())]),
        chains: BTreeMap::from([(
            "default".to_owned(),
            chain.iter().map(|entry| (*entry).to_owned()).collect(),
        )]),
        ..Config::default()
    };
    config.platforms.bedrock = Some(BedrockConfig {
        region: "us-east-1".into(),
        endpoint: Some(bedrock.base_url()),
    });
    config.retry.backoff.base = ms(10);
    config.retry.backoff.cap = ms(40);
    config.retry.backoff.jitter = Jitter::None;
    config.breaker.open_for = ms(500);
    config.breaker.open_jitter = 0.0;
    config.seed = Some(3);
    config
}

fn sigv4(secret: &str) -> BedrockAuth {
    BedrockAuth::SigV4(AwsCredentials::new(KEY_ID, Secret::new(secret), None))
}

async fn runtime(config: Config, anthropic: &MockServer, auth: BedrockAuth) -> Runtime {
    Runtime::builder()
        .config(config)
        .base_url(anthropic.base_url())
        .credentials(Credentials::ApiKey(Secret::new("anthropic-key")))
        .bedrock_credentials(auth)
        .start()
        .await
        .expect("runtime starts")
}

fn request() -> MessagesRequest {
    MessagesRequest::new(MODEL, 32).with_user("hello")
}

fn by_status(server: &MockServer, status: &str) -> u64 {
    platforms::by_status(server, MODEL, status)
}

#[tokio::test]
async fn an_overloaded_model_falls_back_to_itself_on_bedrock_whole_and_streamed() {
    let anthropic = mock(&format!(
        "[models.{MODEL}]\nservice-time = \"1ms\"\n\
         brownouts = [{{ start = \"0s\", end = \"1h\", fraction = 0.0 }}]\n"
    ))
    .await;
    let bedrock = bedrock_mock("").await;
    for auth in [
        sigv4(SECRET),
        BedrockAuth::ApiKey(Secret::new("bedrock-api-key")),
    ] {
        let chain = [MODEL, &format!("{MODEL}@bedrock")];
        let runtime = runtime(config(&chain, &bedrock), &anthropic, auth).await;
        let answer = runtime.send(request()).await.expect("answered by Bedrock");
        assert_eq!(answer.target.to_string(), format!("{MODEL}@bedrock"));
        assert_eq!(answer.value.model, MODEL);
        let answer = runtime
            .stream(request())
            .await
            .expect("streamed by Bedrock");
        assert_eq!(answer.target.upstream(), Some("bedrock"));
        let events: Vec<_> = answer.value.tail.collect().await;
        assert!(events.iter().all(Result::is_ok), "the stream ends whole");
    }
    assert!(
        by_status(&anthropic, "529") >= 2,
        "the Claude API was overloaded"
    );
    assert_eq!(by_status(&bedrock, "200"), 4, "Bedrock answered all four");
}

/// A signature Bedrock refuses is breakwater's fault, not the caller's: the request moves on
/// down its chain; alone, it ends as an overload would, the last failure naming Bedrock.
#[tokio::test]
async fn a_wrong_secret_is_bedrocks_refusal_and_the_request_moves_on() {
    let anthropic = mock(&format!("[models.{MODEL}]\nservice-time = \"1ms\"\n")).await;
    let bedrock = bedrock_mock("").await;
    let on_bedrock = format!("{MODEL}@bedrock");
    let fallback = [on_bedrock.as_str(), MODEL];
    let runtime_with_fallback = runtime(
        config(&fallback, &bedrock),
        &anthropic,
        sigv4("not-the-secret"),
    )
    .await;
    let answer = runtime_with_fallback
        .send(request())
        .await
        .expect("answered by the Claude API");
    assert_eq!(answer.target.to_string(), MODEL);

    let alone = runtime(
        config(&[on_bedrock.as_str()], &bedrock),
        &anthropic,
        sigv4("not-the-secret"),
    )
    .await;
    let error = alone.send(request()).await.unwrap_err();
    let failure = platforms::last_failure(&error);
    assert_eq!(
        (failure.status(), failure.class()),
        (Some(403), Class::ServerError)
    );
    assert!(
        failure.message().starts_with("Bedrock refused")
            && failure
                .message()
                .contains("signature we calculated does not match"),
        "{}",
        failure.message()
    );
    assert!(error.to_string().contains("Bedrock refused"), "{error}");
    assert!(!error.to_string().contains("not-the-secret"), "{error}");
    assert_eq!(
        bedrock.stats().models.get(MODEL).map_or(0, |m| m.requests),
        0,
        "refused before the model"
    );
}

#[tokio::test]
async fn bedrock_throttling_holds_back_only_the_bedrock_target() {
    let anthropic = mock(&format!("[models.{MODEL}]\nservice-time = \"1ms\"\n")).await;
    let bedrock = bedrock_mock("rpm = 60\n").await;
    let chain = [&*format!("{MODEL}@bedrock"), MODEL];
    let runtime = runtime(config(&chain, &bedrock), &anthropic, sigv4(SECRET)).await;
    let mut answered_by = Vec::new();
    for _ in 0..6 {
        let answer = runtime.send(request()).await.expect("answered");
        answered_by.push(answer.target.to_string());
    }
    assert_eq!(answered_by[0], format!("{MODEL}@bedrock"));
    assert!(answered_by.iter().any(|t| t == MODEL), "{answered_by:?}");
    assert!(by_status(&bedrock, "429") >= 1, "Bedrock throttled");
    for (target, status) in runtime.breakers() {
        if target.upstream().is_none() {
            assert_eq!(status.state, StateKind::Closed, "{target} stays closed");
        }
    }
}

#[test]
fn chains_name_platforms_and_bedrock_needs_its_table() {
    let base = "[models.claude-x]\n[chains]\n";
    let error = Config::from_toml(&format!(
        "{base}default = [\"claude-x\", \"claude-x@bedrock\"]\n"
    ))
    .unwrap_err();
    assert_eq!(error.field(), Some("chains.default[1]"));
    assert!(error.to_string().contains("[platforms.bedrock]"), "{error}");
    let text = format!("{base}default = [\"claude-x\", \"claude-x@vertex\"]\n");
    let error = Config::from_toml(&text).unwrap_err();
    assert_eq!(error.field(), Some("chains.default[1]"));
    assert!(error.to_string().contains("[platforms.vertex]"), "{error}");
    let vertex = "[platforms.vertex]\nproject = \"p\"\nregion = \"us-east5\"\n";
    Config::from_toml(&format!("{text}{vertex}")).expect("a chain naming a configured Vertex");
    let error = Config::from_toml(&format!("{base}default = [\"claude-x@bedrok\"]\n")).unwrap_err();
    assert_eq!(error.field(), Some("chains.default[0]"));
    let text =
        "[models.claude-x]\n[platforms.bedrock]\nregion = \"us-east-1\"\nendpoint = \"ftp://x\"\n";
    let error = Config::from_toml(text).unwrap_err();
    assert_eq!(error.field(), Some("platforms.bedrock.endpoint"));
    let text = "[models.claude-x]\n[platforms.vertex]\nproject = \"\"\nregion = \"us-east5\"\n";
    let error = Config::from_toml(text).unwrap_err();
    assert_eq!(error.field(), Some("platforms.vertex.project"));
    let _ = VertexConfig {
        project: "p".into(),
        region: "global".into(),
        endpoint: None,
    };
}

#[test]
fn a_bedrock_target_takes_its_own_limits_else_the_models() {
    let text = r#"
        [models.claude-x]
        concurrency = 4
        [models."claude-y@bedrock"]
        concurrency = 2
        [models.claude-y]
        concurrency = 9
        [chains]
        default = ["claude-x", "claude-x@bedrock", "claude-y@bedrock"]
        [platforms.bedrock]
        region = "us-east-1"
    "#;
    let config = Config::from_toml(text).unwrap();
    let engine = config.engine_config();
    let targets: Vec<(String, u32)> = engine
        .targets
        .iter()
        .map(|(target, limits)| (target.to_string(), limits.concurrency.get()))
        .collect();
    assert_eq!(
        targets,
        [
            ("claude-x".into(), 4),
            ("claude-x@bedrock".into(), 4),
            ("claude-y@bedrock".into(), 2),
            ("claude-y".into(), 9),
        ]
    );
    let written = toml::to_string(&config).unwrap();
    assert_eq!(Config::from_toml(&written).unwrap(), config);
}

#[tokio::test]
async fn a_chain_naming_bedrock_without_credentials_does_not_start() {
    if BedrockAuth::from_env().is_some() {
        return; // This machine has AWS credentials in its environment.
    }
    let bedrock = bedrock_mock("").await;
    let chain = [&*format!("{MODEL}@bedrock")];
    let error = Runtime::builder()
        .config(config(&chain, &bedrock))
        .start()
        .await
        .err()
        .expect("no credentials, no start");
    assert!(
        matches!(error, RuntimeError::NoCredentials { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("platforms.bedrock")
            && message.contains("AWS_ACCESS_KEY_ID")
            && message.contains("AWS_BEARER_TOKEN_BEDROCK"),
        "{message}"
    );
}

/// Whether `id` is the mock's Bedrock request id (`x-amzn-requestid`, a UUID), not a
/// Claude API `request-id`.
fn is_bedrock_request_id(id: Option<&str>) -> bool {
    id.is_some_and(|id| id.starts_with("00000000-0000-4000-8000-") && id.len() == 36)
}

#[tokio::test]
async fn bedrocks_x_amzn_requestid_is_the_answers_request_id_whole_streamed_and_refused() {
    let anthropic = mock(&format!("[models.{MODEL}]\nservice-time = \"1ms\"\n")).await;
    let bedrock = bedrock_mock("").await;
    let chain = [&*format!("{MODEL}@bedrock")];
    let good = runtime(config(&chain, &bedrock), &anthropic, sigv4(SECRET)).await;
    let whole = good.send(request()).await.expect("answered by Bedrock");
    assert!(
        is_bedrock_request_id(whole.request_id.as_deref()),
        "{:?}",
        whole.request_id
    );
    let streamed = good.stream(request()).await.expect("streamed by Bedrock");
    assert!(
        is_bedrock_request_id(streamed.request_id.as_deref()),
        "{:?}",
        streamed.request_id
    );
    assert_ne!(whole.request_id, streamed.request_id, "one id per answer");
    let _: Vec<_> = streamed.value.tail.collect().await;

    let refused = runtime(
        config(&chain, &bedrock),
        &anthropic,
        sigv4("not-the-secret"),
    )
    .await;
    let error = refused.send(request()).await.unwrap_err();
    let failure = platforms::last_failure(&error);
    assert_eq!(failure.status(), Some(403));
    assert!(
        is_bedrock_request_id(failure.request_id()),
        "{:?}",
        failure.request_id()
    );
}

#[tokio::test]
async fn the_mocks_bedrock_route_takes_the_key_as_bearer_or_x_api_key_with_amazons_request_id() {
    let bedrock = bedrock_mock("").await;
    let url = format!("{}/anthropic/v1/messages", bedrock.base_url());
    let body = format!(
        r#"{{"model":"{MODEL}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let post = |name: &'static str, value: &'static str| {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .header(name, value)
            .body(body.clone())
            .send()
    };
    for (name, value, status) in [
        ("authorization", "Bearer bedrock-api-key", 200),
        ("x-api-key", "bedrock-api-key", 200),
        ("authorization", "Bearer not-the-key", 403),
        ("x-api-key", "not-the-key", 403),
    ] {
        let response = post(name, value).await.expect("the mock answers");
        assert_eq!(response.status().as_u16(), status, "{name}: {value}");
        let headers = response.headers();
        assert!(headers.get("request-id").is_none(), "{headers:?}");
        let id = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok());
        assert!(is_bedrock_request_id(id), "{headers:?}");
    }
    assert_eq!(by_status(&bedrock, "200"), 2);
}

/// `breakwater send` through a chain of [`MODEL`] on Bedrock only, in a process whose AWS
/// environment is `env` (with `files` in its directory) and nothing of this machine's: its
/// exit status and output, at `RUST_LOG=trace`.
async fn send_on_bedrock(
    bedrock: &MockServer,
    anthropic: &MockServer,
    env: &[(&'static str, &str)],
    files: &[(&'static str, &str)],
) -> (bool, String) {
    let config = format!(
        "[models.{MODEL}]\n[chains]\ndefault = [\"{MODEL}@bedrock\"]\n\
         [platforms.bedrock]\nregion = \"us-east-1\"\nendpoint = \"{}\"\n",
        bedrock.base_url()
    );
    let mut vars = vec![
        ("AWS_CONFIG_FILE", "{dir}/no-config".to_owned()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "{dir}/no-credentials".to_owned(),
        ),
        ("RUST_LOG", "trace".to_owned()),
    ];
    vars.extend(env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    platforms::Send {
        config,
        anthropic: anthropic.base_url(),
        target: format!("{MODEL}@bedrock"),
        remove: &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_BEARER_TOKEN_BEDROCK",
            "ANTHROPIC_AWS_API_KEY",
        ],
        env: vars,
        files: files.iter().map(|(n, t)| (*n, (*t).to_owned())).collect(),
    }
    .run()
    .await
}

#[tokio::test]
async fn credentials_come_from_a_profile_file_or_its_credential_process_and_are_never_printed() {
    let anthropic = mock(&format!("[models.{MODEL}]\nservice-time = \"1ms\"\n")).await;
    let bedrock = bedrock_mock("").await;
    let profiles = format!(
        "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n\
         [breakwater]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    );
    let process = format!(
        "[profile from-process]\ncredential_process = echo '{{\"Version\": 1, \
         \"AccessKeyId\": \"{KEY_ID}\", \"SecretAccessKey\": \"{SECRET}\"}}'\n"
    );
    let cases = [
        (
            ("credentials", profiles.as_str()),
            [
                ("AWS_SHARED_CREDENTIALS_FILE", "{dir}/credentials"),
                ("AWS_PROFILE", "breakwater"),
            ],
        ),
        (
            ("config", process.as_str()),
            [
                ("AWS_CONFIG_FILE", "{dir}/config"),
                ("AWS_PROFILE", "from-process"),
            ],
        ),
    ];
    for (answered, (file, env)) in cases.iter().enumerate() {
        let (ok, output) = send_on_bedrock(&bedrock, &anthropic, env, &[*file]).await;
        assert!(ok, "{env:?}:\n{output}");
        assert_eq!(by_status(&bedrock, "200"), answered as u64 + 1, "{output}");
        assert!(
            !output.contains(SECRET),
            "the secret was printed:\n{output}"
        );
    }
    let role = format!(
        "[profile base]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n\
         [profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n"
    );
    let env = [("AWS_CONFIG_FILE", "{dir}/config"), ("AWS_PROFILE", "role")];
    let (ok, output) = send_on_bedrock(&bedrock, &anthropic, &env, &[("config", &role)]).await;
    assert!(!ok, "assumed a role without STS:\n{output}");
    assert!(output.contains("breakwater does not reach"), "{output}");
    assert!(
        !output.contains(SECRET),
        "the secret was printed:\n{output}"
    );
    let (ok, output) = send_on_bedrock(&bedrock, &anthropic, &[], &[]).await;
    assert!(!ok, "started with no credentials:\n{output}");
    assert!(
        output.contains("platforms.bedrock has no credentials") && output.contains("AWS_PROFILE"),
        "{output}"
    );
}
