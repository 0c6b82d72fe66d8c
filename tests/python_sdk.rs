//! The official Python SDK (`anthropic` from PyPI) as a real client of `breakwater serve`:
//! retries off, the mock browning out the primary and injecting mid-stream overloads; every
//! request, streamed or not, must be answered whole, and the forwarded routes (models,
//! Message Batches, Files) must work through the gateway (see tests/python/sdk_gateway.py).
//! And with the chain heads down behind a mock that enforces the model catalogue, requests a
//! fallback would refuse as they came must be answered by it, adapted, while a request no
//! model can take comes back as its own 400 (see tests/python/sdk_fallback.py). And the SDK's
//! own Vertex AI client is served by the mock as Vertex AI, while the plain SDK through a
//! gateway falling back to Vertex AI sees ordinary answers (see tests/python/sdk_vertex.py).
//! The SDK's Bedrock client (`AnthropicBedrockMantle`) is answered by the mock's Bedrock route
//! with an API key and with SigV4, and refused with a wrong secret
//! (tests/python/sdk_bedrock_mock.py); and the plain SDK through a gateway whose chain falls
//! back from the overloaded Claude API to the same model on Bedrock sees ordinary answers
//! (tests/python/sdk_bedrock_fallback.py).
//!
//! It needs a Python with the SDK installed (and boto3, through which the SDK signs SigV4),
//! named by `BREAKWATER_PYTHON`; `scripts/test` (the README's test command, and CI's) makes
//! one in a virtual environment and sets `BREAKWATER_REQUIRE_PYTHON`, under which a missing
//! Python fails instead of skipping.

use std::process::Command;

#[test]
fn the_official_python_sdk_with_retries_off_is_answered_whole_through_the_gateway() {
    run_script("sdk_gateway.py", "ok: every request answered whole");
}

#[test]
fn the_official_python_sdk_sees_fallbacks_answer_what_the_fallback_would_refuse_as_it_came() {
    run_script("sdk_fallback.py", "ok: every fallback answered");
}

#[test]
fn the_official_python_sdk_speaks_to_the_mock_as_vertex_ai_and_through_a_vertex_fallback() {
    run_script("sdk_vertex.py", "ok: Vertex AI checked by the official SDK");
}

#[test]
fn the_official_python_sdks_bedrock_client_is_answered_by_the_mocks_bedrock_route() {
    run_script(
        "sdk_bedrock_mock.py",
        "ok: the official SDK's Bedrock client is answered by the mock, API key and SigV4",
    );
}

#[test]
fn the_official_python_sdk_sees_bedrock_answer_for_an_overloaded_claude_api_through_the_gateway() {
    run_script(
        "sdk_bedrock_fallback.py",
        "ok: the Claude API overloaded, Bedrock answered every request",
    );
}

/// Runs `tests/python/SCRIPT` with the SDK's Python, and asserts that it succeeds and prints
/// `summary`.
fn run_script(script: &str, summary: &str) {
    let Some(python) = std::env::var_os("BREAKWATER_PYTHON") else {
        assert!(
            std::env::var_os("BREAKWATER_REQUIRE_PYTHON").is_none(),
            "BREAKWATER_REQUIRE_PYTHON is set but BREAKWATER_PYTHON is not"
        );
        eprintln!(
            "skipped: set BREAKWATER_PYTHON to a Python with the `anthropic` package \
             (scripts/test does)"
        );
        return;
    };
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(&python)
        .arg(&script)
        .env("BREAKWATER_BIN", env!("CARGO_BIN_EXE_breakwater"))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.to_string_lossy()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(summary), "{stdout}");
}
