"""The official Python SDK (the plain `Anthropic` client, its own retries off) through
`breakwater serve` whose chain is claude-sonnet-5-5@anthropic -> claude-sonnet-5-5@bedrock,
with the Claude API's mock overloaded for the model (529 on every request,
bedrock_fallback_scenario.toml) and a Bedrock mock answering (bedrock_scenario.toml): the SDK
sees one ordinary answer, whole and streamed, its request id Bedrock's (`x-amzn-requestid`,
which breakwater passes on as `request-id`). Run twice: the gateway given SigV4 credentials
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), then a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK).

Run by tests/python_sdk.rs (BREAKWATER_BIN names the binary). Exits non-zero, naming each case
that failed and why, unless every case holds.
"""

import json
import os
import signal
import tempfile
import urllib.request
import warnings
from contextlib import ExitStack
from pathlib import Path

import anthropic

from servers import (
    AMZN_REQUEST_ID,
    BEDROCK_API_KEY,
    BEDROCK_KEY_ID,
    BEDROCK_SECRET,
    Server,
    check,
    clean_env,
    conclude,
    start_watchdog,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)

HERE = Path(__file__).resolve().parent
MODEL = "claude-sonnet-5-5"
# bedrock_scenario.toml's credentials.
REQUEST_TIMEOUT_S = 30
WATCHDOG_S = 180
PROMPT = "hello through the gateway"
CREDENTIALS = {
    "SigV4": {"AWS_ACCESS_KEY_ID": BEDROCK_KEY_ID, "AWS_SECRET_ACCESS_KEY": BEDROCK_SECRET},
    "API key": {"AWS_BEARER_TOKEN_BEDROCK": BEDROCK_API_KEY},
}


def request():
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
    }


def check_headers(headers, case):
    """An ordinary answer: breakwater's headers say the model on Bedrock answered on the second
    attempt (the Claude API's 529, then Bedrock), and the request id is Bedrock's."""
    target = headers.get("x-breakwater-model")
    assert target == f"{MODEL}@bedrock", f"{case}: x-breakwater-model is {target!r}"
    attempts = headers.get("x-breakwater-attempts")
    assert attempts == "2", f"{case}: x-breakwater-attempts is {attempts!r}, not '2'"
    request_id = headers.get("request-id", "")
    assert AMZN_REQUEST_ID.match(request_id), f"{case}: request-id {request_id!r}, not Bedrock's"
    return request_id


def check_message(message, case):
    """The mock's answer (claude-sonnet-5-5 thinks by default: a thinking block may come first)."""
    assert message.model == MODEL, f"{case}: the message is from {message.model}"
    assert message.stop_reason == "end_turn", f"{case}: stop_reason {message.stop_reason}"
    kinds = [block.type for block in message.content]
    assert kinds[-1:] == ["text"], f"{case}: content {kinds}"
    expected = f"mock reply from {MODEL}: {PROMPT[:40]}"
    assert message.content[-1].text == expected, f"{case}: text {message.content[-1].text!r}"


def whole(sdk, case):
    raw = sdk.messages.with_raw_response.create(**request())
    assert raw.status_code == 200, f"{case}: status {raw.status_code}"
    request_id = check_headers(raw.headers, case)
    message = raw.parse()
    check_message(message, case)
    seen = message._request_id
    assert seen == request_id, f"{case}: the SDK's request id {seen!r}"


def streamed(sdk, case):
    with sdk.messages.stream(**request()) as stream:
        response = stream.response
        assert response.status_code == 200, f"{case}: status {response.status_code}"
        request_id = check_headers(response.headers, case)
        check_message(stream.get_final_message(), case)
    assert stream.request_id == request_id, f"{case}: the stream's request id {stream.request_id!r}"


def statuses(mock_url):
    with urllib.request.urlopen(f"{mock_url}/stats", timeout=REQUEST_TIMEOUT_S) as response:
        stats = json.load(response)
    return stats["models"].get(MODEL, {}).get("by_status", {})


def gateway_config(directory, bedrock_url):
    """bedrock_fallback_gateway.toml with Bedrock's endpoint (its mock) in [platforms.bedrock],
    the file's last table."""
    text = (HERE / "bedrock_fallback_gateway.toml").read_text()
    path = Path(directory) / "gateway.toml"
    path.write_text(f'{text}endpoint = "{bedrock_url}"\n')
    return str(path)


def main():
    start_watchdog(WATCHDOG_S)
    binary = os.environ["BREAKWATER_BIN"]
    failures = []
    with ExitStack() as servers:
        directory = servers.enter_context(tempfile.TemporaryDirectory())
        claude = servers.enter_context(Server(
            "claude-mock",
            [binary, "mock", "--listen", "127.0.0.1:0",
             "--scenario", str(HERE / "bedrock_fallback_scenario.toml")],
            signal.SIGINT,  # `breakwater mock` runs until Ctrl-C
            env=clean_env(),
        ))
        bedrock = servers.enter_context(Server(
            "bedrock-mock",
            [binary, "mock", "--listen", "127.0.0.1:0",
             "--scenario", str(HERE / "bedrock_scenario.toml")],
            signal.SIGINT,
            env=clean_env(),
        ))
        config = gateway_config(directory, bedrock.url)
        for name, credentials in CREDENTIALS.items():
            # The gateway's upstream key for the Claude API (the mock takes any) and Bedrock's
            # credentials: nothing else from the environment decides where it sends requests.
            env = clean_env(ANTHROPIC_API_KEY="sdk-bedrock-upstream-key", **credentials)
            with Server(
                f"gateway ({name})",
                [binary, "serve", "--listen", "127.0.0.1:0",
                 "--config", config, "--base-url", claude.url],
                signal.SIGTERM,
                env=env,
            ) as gateway:
                sdk = anthropic.Anthropic(
                    base_url=gateway.url,
                    api_key="sdk-bedrock-caller-key",
                    max_retries=0,
                    timeout=REQUEST_TIMEOUT_S,
                )
                for case in (whole, streamed):
                    label = f"{case.__name__} ({name})"
                    check(
                        failures,
                        label,
                        lambda: case(sdk, label) or "one ordinary answer, Bedrock's request id",
                    )
                if failures:
                    failures.append(f"the gateway's output:\n{gateway.log()}")
        # Each of the four requests met the Claude API's 529, then Bedrock's answer.
        for mock, expected in ((claude, {"529": 4}), (bedrock, {"200": 4})):
            seen = statuses(mock.url)
            if seen != expected:
                failures.append(f"{mock.name} answered {seen}, not {expected}")
    conclude(
        failures, "the Claude API overloaded, Bedrock answered every request, whole and streamed"
    )


if __name__ == "__main__":
    main()
