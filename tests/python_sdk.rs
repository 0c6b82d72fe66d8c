//! The official Python SDK (`anthropic` from PyPI) as a real client of `breakwater serve`:
//! retries off, the mock browning out the primary and injecting mid-stream overloads; every
//! request, streamed or not, must be answered whole, and the forwarded routes (models,
//! Message Batches, Files) must work through the gateway (see tests/python/sdk_gateway.py).
//!
//! It needs a Python with the SDK installed, named by `BREAKWATER_PYTHON`; `scripts/test`
//! (the README's test command, and CI's) makes one in a virtual environment and sets
//! `BREAKWATER_REQUIRE_PYTHON`, under which a missing Python fails instead of skipping.

use std::process::Command;

#[test]
fn the_official_python_sdk_with_retries_off_is_answered_whole_through_the_gateway() {
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_gateway.py");
    let output = Command::new(&python)
        .arg(script)
        .env("BREAKWATER_BIN", env!("CARGO_BIN_EXE_breakwater"))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.to_string_lossy()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the SDK test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("ok: every request answered whole"),
        "{stdout}"
    );
}
