//! `MODEL@vertex` end to end (issue #19): chains route a Vertex AI target to
//! `{endpoint}/v1/projects/P/locations/R/publishers/anthropic/models/ID:rawPredict` (or
//! `:streamRawPredict`) with a bearer token, against the mock serving those paths as Vertex
//! AI does (`[vertex]` in its scenario: it refuses a body with `model` or without
//! `anthropic_version`, and serves the URL's Vertex id as the model's API id). One mock per
//! platform. Real loopback HTTP, millisecond settings.
//!
//! The model is `claude-haiku-4-5`, whose ids differ on each platform
//! (`anthropic.claude-haiku-4-5` on Bedrock, `claude-haiku-4-5@20251001` on Vertex AI): a
//! platform mock given the wrong id would not know the model.

use std::collections::BTreeMap;

use breakwater::api::MessagesRequest;
use breakwater::client::{AwsCredentials, BedrockAuth, Credentials, Secret, VertexAuth};
use breakwater::config::{BedrockConfig, Config, VertexConfig};
use breakwater::engine::policy::{Jitter, StateKind};
use breakwater::engine::{Class, TargetLimits};
use breakwater::mock::MockServer;
use breakwater::runtime::Runtime;
use futures::StreamExt;

#[path = "support/platforms.rs"]
mod platforms;

use platforms::{mock, ms};

const MODEL: &str = "claude-haiku-4-5";
const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "ya29.ready-token";
const PROJECT: &str = "breakwater-test";

/// [`MODEL`] answering in 1 ms, or (`overloaded`) answering 529 to every request.
fn model_toml(overloaded: bool) -> String {
    let brownout = if overloaded {
        "brownouts = [{ start = \"0s\", end = \"1h\", fraction = 0.0 }]\n"
    } else {
        ""
    };
    format!(
        "[models.{MODEL}]\nservice-time = \"1ms\"\nretry-after = false\n\
         rate-limit-headers = false\n{brownout}"
    )
}

async fn anthropic_mock(overloaded: bool) -> MockServer {
    mock(&model_toml(overloaded)).await
}

async fn bedrock_mock(overloaded: bool) -> MockServer {
    mock(&format!(
        "[bedrock]\nregion = \"us-east-1\"\naccess-key-id = \"{KEY_ID}\"\n\
         secret-access-key = \"{SECRET}\"\n{}",
        model_toml(overloaded)
    ))
    .await
}

/// A mock as Vertex AI for [`PROJECT`] in `global`, accepting [`TOKEN`] and the tokens its
/// `/token` issues (each valid `lifetime`).
async fn vertex_mock(overloaded: bool, lifetime: &str) -> MockServer {
    mock(&format!(
        "[vertex]\nproject = \"{PROJECT}\"\nregion = \"global\"\ntokens = [\"{TOKEN}\"]\n\
         token-lifetime = \"{lifetime}\"\n{}",
        model_toml(overloaded)
    ))
    .await
}

/// `chain` with only `[models.MODEL]` configured, Bedrock and Vertex AI at their mocks,
/// millisecond policies.
fn config(chain: &[String], bedrock: &MockServer, vertex: &MockServer) -> Config {
    let mut config = Config {
        models: BTreeMap::from([(MODEL.to_owned(), TargetLimits::default())]),
        chains: BTreeMap::from([("default".to_owned(), chain.to_vec())]),
        ..Config::default()
    };
    config.platforms.bedrock = Some(BedrockConfig {
        region: "us-east-1".into(),
        endpoint: Some(bedrock.base_url()),
    });
    config.platforms.vertex = Some(VertexConfig {
        project: PROJECT.into(),
        region: "global".into(),
        endpoint: Some(vertex.base_url()),
    });
    // Two tries per platform: a request can meet two overloaded platforms and still
    // reach the third within its attempts.
    config.retry.max_retries_per_target = 1;
    config.retry.backoff.base = ms(10);
    config.retry.backoff.cap = ms(40);
    config.retry.backoff.jitter = Jitter::None;
    config.breaker.open_for = ms(60_000);
    config.breaker.open_jitter = 0.0;
    config.seed = Some(3);
    config
}

fn chain(platforms: &[&str]) -> Vec<String> {
    platforms
        .iter()
        .map(|platform| format!("{MODEL}@{platform}"))
        .collect()
}

async fn start(config: Config, anthropic: &MockServer, vertex: VertexAuth) -> Runtime {
    Runtime::builder()
        .config(config)
        .base_url(anthropic.base_url())
        .credentials(Credentials::ApiKey(Secret::new("anthropic-key")))
        .bedrock_credentials(BedrockAuth::SigV4(AwsCredentials::new(
            KEY_ID,
            Secret::new(SECRET),
            None,
        )))
        .vertex_credentials(vertex)
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

fn token() -> VertexAuth {
    VertexAuth::Token(Secret::new(TOKEN))
}

/// One whole and one streamed request, both answered by `platform`.
async fn answered_on(runtime: &Runtime, platform: &str) {
    let answer = runtime.send(request()).await.expect("answered");
    assert_eq!(answer.target.to_string(), format!("{MODEL}@{platform}"));
    assert_eq!(
        answer.value.model, MODEL,
        "the mock served the model's API id"
    );
    let answer = runtime.stream(request()).await.expect("streamed");
    assert_eq!(answer.target.upstream(), Some(platform));
    let events: Vec<_> = answer.value.tail.collect().await;
    assert!(events.iter().all(Result::is_ok), "the stream ends whole");
}

#[tokio::test]
async fn an_overloaded_model_on_the_claude_api_is_answered_by_bedrock_then_vertex() {
    let entries = chain(&["anthropic", "bedrock", "vertex"]);
    let anthropic = anthropic_mock(true).await;

    // The Claude API overloaded: Bedrock answers, Vertex AI is never asked.
    let (bedrock, vertex) = (bedrock_mock(false).await, vertex_mock(false, "1h").await);
    let runtime = start(config(&entries, &bedrock, &vertex), &anthropic, token()).await;
    answered_on(&runtime, "bedrock").await;
    assert_eq!(by_status(&bedrock, "200"), 2, "Bedrock answered both");
    assert_eq!(vertex.stats().models[MODEL].requests, 0);

    // Bedrock overloaded too: Vertex AI answers, whole and streamed.
    let (bedrock, vertex) = (bedrock_mock(true).await, vertex_mock(false, "1h").await);
    let runtime = start(config(&entries, &bedrock, &vertex), &anthropic, token()).await;
    answered_on(&runtime, "vertex").await;
    assert!(by_status(&bedrock, "529") >= 1, "Bedrock was overloaded");
    assert_eq!(by_status(&vertex, "200"), 2, "Vertex AI answered both");
    assert!(
        by_status(&anthropic, "529") >= 2,
        "the Claude API was overloaded"
    );
}

/// An expired token is breakwater's fault, not the caller's: the request moves on down its
/// chain; alone, it ends as an overload would, the last failure naming Vertex AI and the token.
#[tokio::test]
async fn an_expired_token_is_vertex_ais_refusal_and_the_request_moves_on() {
    let (anthropic, bedrock) = (anthropic_mock(false).await, bedrock_mock(false).await);
    let vertex = vertex_mock(false, "1h").await;
    let expired = || VertexAuth::Token(Secret::new("ya29.expired-token"));
    let with_fallback = start(
        config(&chain(&["vertex", "anthropic"]), &bedrock, &vertex),
        &anthropic,
        expired(),
    )
    .await;
    let answer = with_fallback.send(request()).await.expect("answered");
    assert_eq!(answer.target.to_string(), MODEL, "by the Claude API");

    let alone = start(
        config(&chain(&["vertex"]), &bedrock, &vertex),
        &anthropic,
        expired(),
    )
    .await;
    let error = alone.send(request()).await.unwrap_err();
    let failure = platforms::last_failure(&error);
    assert_eq!(
        (failure.status(), failure.class()),
        (Some(401), Class::ServerError)
    );
    let message = failure.message();
    assert!(
        message.starts_with("Vertex AI refused breakwater's access token")
            && message.contains("UNAUTHENTICATED")
            && message.contains("GOOGLE_OAUTH_ACCESS_TOKEN"),
        "{message}"
    );
    assert!(!error.to_string().contains("expired-token"), "{error}");
    assert_eq!(vertex.stats().models[MODEL].requests, 0);
}

#[tokio::test]
async fn service_account_tokens_are_fetched_and_fetched_again_before_they_expire() {
    let (anthropic, bedrock) = (anthropic_mock(false).await, bedrock_mock(false).await);
    // 25 s: gcp_auth takes a token for expired 20 s before it is, so for 5 s it keeps it,
    // then asks again.
    let vertex = vertex_mock(false, "25s").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key = include_str!("fixtures/vertex_test_key.pem");
    let account = serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": key,
        "client_email": "breakwater-test@breakwater-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}/token", vertex.base_url()),
    });
    let path = dir.path().join("service-account.json");
    std::fs::write(&path, account.to_string()).expect("key file written");
    let auth = VertexAuth::service_account_file(&path).expect("a service-account file");
    let runtime = start(
        config(&chain(&["vertex"]), &bedrock, &vertex),
        &anthropic,
        auth,
    )
    .await;
    runtime
        .send(request())
        .await
        .expect("answered with a token");
    runtime.send(request()).await.expect("answered again");
    assert_eq!(
        vertex.stats().tokens_issued,
        1,
        "the token is kept while fresh"
    );
    tokio::time::sleep(ms(5_500)).await;
    runtime
        .send(request())
        .await
        .expect("answered after refresh");
    assert_eq!(
        vertex.stats().tokens_issued,
        2,
        "a new token before the first expired"
    );
    assert_eq!(by_status(&vertex, "200"), 3);
}

#[tokio::test]
async fn an_overloaded_platform_opens_its_own_breaker_and_no_other() {
    let anthropic = anthropic_mock(false).await;
    let (bedrock, vertex) = (bedrock_mock(true).await, vertex_mock(false, "1h").await);
    let entries = chain(&["bedrock", "vertex", "anthropic"]);
    let mut config = config(&entries, &bedrock, &vertex);
    config.breaker.consecutive_failures = 3.try_into().expect("non-zero");
    let runtime = start(config, &anthropic, token()).await;
    for _ in 0..8 {
        let answer = runtime.send(request()).await.expect("answered");
        assert_eq!(answer.target.to_string(), format!("{MODEL}@vertex"));
    }
    let states: BTreeMap<String, StateKind> = runtime
        .breakers()
        .into_iter()
        .map(|(target, status)| (target.to_string(), status.state))
        .collect();
    assert_eq!(states[&format!("{MODEL}@bedrock")], StateKind::Open);
    assert_eq!(states[&format!("{MODEL}@vertex")], StateKind::Closed);
    assert_eq!(states[MODEL], StateKind::Closed, "{states:?}");
    assert_eq!(anthropic.stats().models[MODEL].requests, 0);
}

#[test]
fn vertex_tables_round_trip_and_name_what_is_wrong() {
    let text = "[models.claude-x]\n[chains]\ndefault = [\"claude-x@vertex\"]\n\
                [platforms.vertex]\nproject = \"p\"\nregion = \"eu\"\n";
    let config = Config::from_toml(text).expect("valid");
    let vertex = config.platforms.vertex.as_ref().expect("vertex table");
    assert_eq!(
        vertex.base_url(),
        "https://aiplatform.eu.rep.googleapis.com"
    );
    let written = toml::to_string(&config).expect("serializes");
    assert_eq!(Config::from_toml(&written).unwrap(), config);
    let text = "[models.claude-x]\n[platforms.vertex]\nproject = \"p\"\nregion = \"us east\"\n";
    let error = Config::from_toml(text).unwrap_err();
    assert_eq!(error.field(), Some("platforms.vertex.region"));
}

#[tokio::test]
async fn a_platform_lacking_a_server_tool_is_passed_over_unasked() {
    let anthropic = anthropic_mock(true).await;
    let (bedrock, vertex) = (bedrock_mock(false).await, vertex_mock(false, "1h").await);
    let entries = chain(&["anthropic", "bedrock", "vertex"]);
    let runtime = start(config(&entries, &bedrock, &vertex), &anthropic, token()).await;
    let body = format!(
        r#"{{"model":"{MODEL}","max_tokens":32,"messages":[{{"role":"user","content":"hi"}}],
            "tools":[{{"type":"web_search_20250305","name":"web_search","max_uses":1}}]}}"#
    );
    let request = MessagesRequest::from_json(body.as_bytes()).expect("valid request");
    let answer = runtime.send(request).await.expect("answered");
    assert_eq!(answer.target.to_string(), format!("{MODEL}@vertex"));
    assert_eq!(
        bedrock.stats().models[MODEL].requests,
        0,
        "Bedrock has no server tools: never asked"
    );
}

/// `breakwater send` to [`MODEL`] on Vertex AI with `config`, the Claude API at `anthropic`,
/// `env` set and every Google credential variable of this machine removed: its exit status
/// and output.
async fn send_with(
    config: String,
    anthropic: &MockServer,
    env: &[(&'static str, &str)],
) -> (bool, String) {
    platforms::Send {
        config,
        anthropic: anthropic.base_url(),
        target: format!("{MODEL}@vertex"),
        remove: &[
            "GOOGLE_OAUTH_ACCESS_TOKEN",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ],
        env: env.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        files: Vec::new(),
    }
    .run()
    .await
}

fn vertex_only_config(vertex: &MockServer) -> String {
    format!(
        "[models.{MODEL}]\n[chains]\ndefault = [\"{MODEL}@vertex\"]\n\
         [platforms.vertex]\nproject = \"{PROJECT}\"\nregion = \"global\"\nendpoint = \"{}\"\n",
        vertex.base_url()
    )
}

#[tokio::test]
async fn the_cli_takes_its_token_from_the_environment_and_never_prints_it() {
    let (anthropic, vertex) = (anthropic_mock(false).await, vertex_mock(false, "1h").await);
    let config = vertex_only_config(&vertex);
    let (ok, output) = send_with(
        config,
        &anthropic,
        &[("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN), ("RUST_LOG", "trace")],
    )
    .await;
    assert!(ok, "{output}");
    assert_eq!(by_status(&vertex, "200"), 1, "Vertex AI answered: {output}");
    assert!(!output.contains(TOKEN), "the token was printed:\n{output}");
}

#[tokio::test]
async fn a_chain_naming_vertex_without_credentials_does_not_start() {
    let (anthropic, vertex) = (anthropic_mock(false).await, vertex_mock(false, "1h").await);
    let config = vertex_only_config(&vertex);
    // A key file that is not there: the Google chain stops at its first link, without
    // asking a metadata server.
    let missing = "/nonexistent/breakwater-test/key.json";
    let (ok, output) = send_with(
        config,
        &anthropic,
        &[("GOOGLE_APPLICATION_CREDENTIALS", missing)],
    )
    .await;
    assert!(!ok, "started without credentials:\n{output}");
    assert!(
        output.contains("platforms.vertex has no credentials")
            && output.contains(&format!("{MODEL}@vertex"))
            && output.contains("GOOGLE_OAUTH_ACCESS_TOKEN"),
        "{output}"
    );
    assert_eq!(vertex.stats().models[MODEL].requests, 0);
}
