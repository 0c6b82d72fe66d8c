"""The official Python SDK's Bedrock client (`AnthropicBedrockMantle`) talks straight to
`breakwater mock`'s Bedrock route (tests/python/bedrock_scenario.toml): once with a Bedrock API
key, once with SigV4 (an access key pair, signed by the SDK through boto3/botocore), each whole
and streamed; a wrong secret and a wrong key are refused with 403. The mock is breakwater's
stand-in for Bedrock in its tests, so this proves it speaks what the real SDK speaks: the SDK's
`Authorization: Bearer KEY`, its signatures for service `bedrock-mantle`, and Bedrock's
`x-amzn-requestid` in place of `request-id`.

Run by tests/python_sdk.rs (BREAKWATER_BIN names the binary). Exits non-zero, naming each case
that failed and why, unless every case holds.
"""

import json
import os
import re
import signal
import urllib.request
import warnings
from pathlib import Path

import anthropic
from anthropic import AnthropicBedrockMantle

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
REGION = "us-east-1"
REQUEST_TIMEOUT_S = 30
WATCHDOG_S = 120
# The SDK's SigV4 Authorization header, scoped to Bedrock Mantle's service.
SIGV4 = re.compile(
    rf"^AWS4-HMAC-SHA256 Credential={BEDROCK_KEY_ID}/\d{{8}}/{REGION}/bedrock-mantle/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$"
)
PROMPT = "hello from the SDK"


def sdk(mock_url, **credentials):
    # The SDK's base URL for Bedrock Mantle ends in /anthropic (its default is
    # https://bedrock-mantle.REGION.api.aws/anthropic); it posts to BASE/v1/messages.
    return AnthropicBedrockMantle(
        base_url=f"{mock_url}/anthropic",
        aws_region=REGION,
        max_retries=0,
        timeout=REQUEST_TIMEOUT_S,
        **credentials,
    )


def request():
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": PROMPT}],
    }


def check_sent(headers, authorization, case):
    """What the SDK sent: its credentials in `authorization` (as `authorization` says) and
    never in x-api-key."""
    sent = headers.get("authorization", "")
    if authorization == "bearer":
        assert sent == f"Bearer {BEDROCK_API_KEY}", f"{case}: the SDK sent authorization {sent!r}"
    else:
        assert SIGV4.match(sent), f"{case}: the SDK sent authorization {sent!r}"
        assert "x-amz-date" in headers, f"{case}: no x-amz-date"
    assert "x-api-key" not in headers, f"{case}: the SDK sent x-api-key"


def check_received(headers, case):
    """What Bedrock answers with: x-amzn-requestid, and no request-id."""
    amzn = headers.get("x-amzn-requestid", "")
    assert AMZN_REQUEST_ID.match(amzn), f"{case}: x-amzn-requestid is {amzn!r}"
    assert "request-id" not in headers, f"{case}: request-id {headers.get('request-id')!r}"


def check_message(message, case):
    assert message.model == MODEL, f"{case}: the message is from {message.model}"
    assert message.stop_reason == "end_turn", f"{case}: stop_reason {message.stop_reason}"
    text = "".join(block.text for block in message.content if block.type == "text")
    expected = f"mock reply from {MODEL}: {PROMPT[:40]}"
    assert text == expected, f"{case}: text {text!r}"


def answered_whole_and_streamed(client, authorization, case):
    raw = client.messages.with_raw_response.create(**request())
    assert raw.status_code == 200, f"{case}: status {raw.status_code}"
    check_sent(raw.http_request.headers, authorization, case)
    check_received(raw.headers, case)
    check_message(raw.parse(), case)
    streamed = case + " (streamed)"
    with client.messages.stream(**request()) as stream:
        response = stream.response
        assert response.status_code == 200, f"{streamed}: status {response.status_code}"
        check_sent(response.request.headers, authorization, streamed)
        check_received(response.headers, streamed)
        final = stream.get_final_message()
    check_message(final, streamed)


def refused(client, case, says):
    try:
        client.messages.create(**request())
    except anthropic.PermissionDeniedError as error:
        check_received(error.response.headers, case)
        body = error.body if isinstance(error.body, dict) else {}
        message = body.get("message", "")
        assert says in message, f"{case}: 403 saying {message!r}"
        return
    except anthropic.APIStatusError as error:
        raise AssertionError(f"{case}: {error.status_code}, not 403: {error.message}") from None
    raise AssertionError(f"{case}: answered")


def api_key(mock_url):
    answered_whole_and_streamed(sdk(mock_url, api_key=BEDROCK_API_KEY), "bearer", "API key")
    return "Authorization: Bearer answered, whole and streamed"


def sigv4(mock_url):
    client = sdk(mock_url, aws_access_key=BEDROCK_KEY_ID, aws_secret_key=BEDROCK_SECRET)
    answered_whole_and_streamed(client, "sigv4", "SigV4")
    return "SigV4 for bedrock-mantle (boto3/botocore) answered, whole and streamed"


def wrong_secret(mock_url):
    client = sdk(mock_url, aws_access_key=BEDROCK_KEY_ID, aws_secret_key="not-the-secret")
    refused(client, "wrong secret", "signature we calculated does not match")
    return "403 InvalidSignatureException"


def wrong_api_key(mock_url):
    refused(sdk(mock_url, api_key="not-the-key"), "wrong API key", "security token")
    return "403 UnrecognizedClientException"


CASES = [api_key, sigv4, wrong_secret, wrong_api_key]


def statuses(mock_url):
    with urllib.request.urlopen(f"{mock_url}/stats", timeout=REQUEST_TIMEOUT_S) as response:
        stats = json.load(response)
    return stats["models"].get(MODEL, {}).get("by_status", {})


def main():
    start_watchdog(WATCHDOG_S)
    binary = os.environ["BREAKWATER_BIN"]
    # The SDK resolves credentials and its base URL from the environment too: only what each
    # case gives it counts.
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "AWS_")):
            del os.environ[name]
    failures = []
    with Server(
        "mock",
        [binary, "mock", "--listen", "127.0.0.1:0",
         "--scenario", str(HERE / "bedrock_scenario.toml")],
        signal.SIGINT,  # `breakwater mock` runs until Ctrl-C
        env=clean_env(),
    ) as mock:
        for case in CASES:
            check(failures, case.__name__, lambda: case(mock.url))
        # Refusals come before any capacity is spent: the model saw the four answered.
        seen = statuses(mock.url)
        if seen != {"200": 4}:
            failures.append(f"the mock's model answered {seen}, not four 200s")
        if failures:
            failures.append(f"the mock's output:\n{mock.log()}")
    conclude(
        failures, "the official SDK's Bedrock client is answered by the mock, API key and SigV4"
    )


if __name__ == "__main__":
    main()
