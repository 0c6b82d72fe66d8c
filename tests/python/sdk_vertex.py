"""The official Python SDK checks breakwater's Vertex AI on both sides (issue #19).

1. The SDK's own Vertex client (`anthropic.AnthropicVertex`, an access token given) talks
   straight to `breakwater mock` serving Vertex AI (`[vertex]` in its scenario): the mock's
   URL, body and token rules are the ones the real client keeps, so tests that use the mock
   as Vertex AI test against Vertex AI's shape. Whole and streamed, by the model's Vertex id;
   a token the mock does not accept is the SDK's AuthenticationError (401).
2. The plain SDK (`anthropic.Anthropic`, retries off) through `breakwater serve` whose chain
   is claude-haiku-4-5 on the Claude API, then the same model on Vertex AI, the Claude API
   mock overloaded: the SDK sees one ordinary answer, whole and streamed. The gateway finds
   its token in GOOGLE_OAUTH_ACCESS_TOKEN, as an operator would give it.

Run by tests/python_sdk.rs (BREAKWATER_BIN names the binary). Exits non-zero, naming what
failed, unless every check holds.
"""

import os
import signal
import sys
import tempfile
import warnings
from contextlib import ExitStack
from pathlib import Path

import anthropic

from servers import Server, Watchdog, clean_env, start_watchdog, stop_watchdog

warnings.filterwarnings("ignore", category=DeprecationWarning)

MODEL = "claude-haiku-4-5"
VERTEX_ID = "claude-haiku-4-5@20251001"  # the catalogue's Vertex id for MODEL
PROJECT, TOKEN = "breakwater-test", "ya29.sdk-vertex-token"
REQUEST_TIMEOUT_S = 30  # for each request
WATCHDOG_S = 180  # for the whole run

MODEL_TOML = f"""
[models.{MODEL}]
service-time = "1ms"
retry-after = false
rate-limit-headers = false
"""
VERTEX_SCENARIO = f"""
[vertex]
project = "{PROJECT}"
region = "global"
tokens = ["{TOKEN}"]
{MODEL_TOML}"""
OVERLOADED_SCENARIO = f"""{MODEL_TOML}
brownouts = [{{ start = "0s", end = "1h", fraction = 0.0 }}]
"""


def gateway_config(vertex_url):
    return f"""
[models.{MODEL}]

[chains]
default = ["{MODEL}", "{MODEL}@vertex"]

[retry]
max-retries-per-target = 0

[platforms.vertex]
project = "{PROJECT}"
region = "global"
endpoint = "{vertex_url}"
"""


def ask(sdk, model, stream):
    request = dict(model=model, max_tokens=32, messages=[{"role": "user", "content": "hello"}])
    if not stream:
        return sdk.messages.create(**request)
    with sdk.messages.stream(**request) as events:
        return events.get_final_message()


def check_sdk_against_the_mock(vertex_url):
    sdk = anthropic.AnthropicVertex(
        region="global",
        project_id=PROJECT,
        access_token=TOKEN,
        base_url=f"{vertex_url}/v1",
        max_retries=0,
        timeout=REQUEST_TIMEOUT_S,
    )
    for stream in (False, True):
        message = ask(sdk, VERTEX_ID, stream)
        assert message.content and message.content[0].text, f"stream={stream}: {message}"
        assert message.model == MODEL, f"stream={stream}: served {message.model}"
    stranger = sdk.copy(access_token="ya29.not-a-token")
    try:
        ask(stranger, VERTEX_ID, False)
    except anthropic.AuthenticationError as error:
        assert error.status_code == 401, error
    else:
        raise AssertionError("a token the mock does not know was accepted")
    print("ok: the SDK's Vertex client is served by the mock, whole and streamed")


def check_gateway_falls_back_to_vertex(gateway_url):
    sdk = anthropic.Anthropic(
        base_url=gateway_url, api_key="sdk-test-key", max_retries=0, timeout=REQUEST_TIMEOUT_S
    )
    for stream in (False, True):
        message = ask(sdk, MODEL, stream)
        assert message.content and message.content[0].text, f"stream={stream}: {message}"
        assert message.type == "message" and message.role == "assistant", message
    raw = sdk.messages.with_raw_response.create(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "hello"}]
    )
    served_by = raw.headers.get("x-breakwater-model")
    assert served_by == f"{MODEL}@vertex", f"x-breakwater-model is {served_by!r}"
    print("ok: the SDK through the gateway got Vertex AI's answers, whole and streamed")


def main():
    binary = os.environ["BREAKWATER_BIN"]
    # Only the credentials given here: none of this machine's ANTHROPIC_*, AWS_* or Google's.
    env = clean_env(GOOGLE_OAUTH_ACCESS_TOKEN=TOKEN, ANTHROPIC_API_KEY="gateway-key", RUST_LOG="warn")
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        files = {}
        for name, text in (("vertex.toml", VERTEX_SCENARIO), ("down.toml", OVERLOADED_SCENARIO)):
            files[name] = Path(tmp) / name
            files[name].write_text(text)

        def mock(name):
            return servers.enter_context(Server(
                name,
                [binary, "mock", "--listen", "127.0.0.1:0", "--scenario", str(files[name])],
                signal.SIGINT,
                env=env,
            ))

        vertex, anthropic_api = mock("vertex.toml"), mock("down.toml")
        check_sdk_against_the_mock(vertex.url)
        config = Path(tmp) / "gateway.toml"
        config.write_text(gateway_config(vertex.url))
        gateway = servers.enter_context(Server(
            "gateway",
            [binary, "serve", "--listen", "127.0.0.1:0", "--config", str(config),
             "--base-url", anthropic_api.url],
            signal.SIGTERM,
            env=env,
        ))
        check_gateway_falls_back_to_vertex(gateway.url)
    print("ok: Vertex AI checked by the official SDK")


if __name__ == "__main__":
    start_watchdog(WATCHDOG_S)
    try:
        main()
    except (AssertionError, Watchdog) as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    finally:
        stop_watchdog()
