"""The official Python SDK, its own retries off, proves that breakwater's fallbacks never turn
an answerable request into a 400 (issue #14).

`breakwater mock` enforces the model catalogue as the API does and keeps the chain heads down
(every request to claude-sonnet-4-6 or claude-opus-4-6 that keeps their rules gets 529);
`breakwater serve` in front of it serves the chains sonnet-4-6 -> haiku-4-5 and
opus-4-6 -> opus-4-8. For each case the script shows, straight at the mock, that the head
would take the request (it answers 529, not 400: the mock checks the rules before capacity)
and that its fallback refuses it as it came (400); then, through the gateway, that the
fallback answers it (200, `x-breakwater-model`) adapted as `x-breakwater-adapted` says. A
request no model can take comes back as its own 400, unchanged.

Run by tests/python_sdk.rs (BREAKWATER_BIN names the binary). Exits non-zero, naming each
case that failed and why, unless every case holds.
"""

import base64
import os
import signal
import warnings
from contextlib import ExitStack
from pathlib import Path

import anthropic

from servers import Server, check, clean_env, conclude, start_watchdog

# The SDK warns about model deprecations; the mock serves whatever names it is given.
warnings.filterwarnings("ignore", category=DeprecationWarning)

HERE = Path(__file__).resolve().parent
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
OPUS_46, OPUS_48 = "claude-opus-4-6", "claude-opus-4-8"
HAIKU_ID = "claude-haiku-4-5-20251001"  # the catalogue id, which signs Haiku's thinking
REQUEST_TIMEOUT_S = 30  # for each request
WATCHDOG_S = 180  # for the whole run


def client(url):
    # An explicit timeout also keeps the SDK from refusing large non-streamed max_tokens.
    return anthropic.Anthropic(
        base_url=url, api_key="sdk-fallback-test-key", max_retries=0, timeout=REQUEST_TIMEOUT_S
    )


def signed_by(model, number=1):
    """A thinking signature as the mock makes them: base64 of `mock-sig:MODEL:N`."""
    return base64.b64encode(f"mock-sig:{model}:{number}".encode()).decode()


def signer(signature):
    """The model that made a mock signature."""
    text = base64.b64decode(signature).decode()
    return text.removeprefix("mock-sig:").rsplit(":", 1)[0]


def reply(model, prompt):
    # The mock answers "mock reply from MODEL: " and the first 40 characters of the last
    # user text.
    return f"mock reply from {model}: {prompt[:40]}"


# The requests. Each keeps the rules of the model it names, so that model would answer it.

LOOKUP = {
    "name": "lookup",
    "description": "Looks a fact up.",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}


def tool_turn():
    """An agent's tool turn under manual thinking: the primary thought (its signature), then
    called a tool; the tool's result comes back."""
    return {
        "model": SONNET,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [LOOKUP],
        "messages": [
            {"role": "user", "content": "What is the answer? Look it up."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should look it up.",
                 "signature": signed_by(SONNET)},
                {"type": "tool_use", "id": "toolu_01", "name": "lookup",
                 "input": {"q": "the answer"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "42"},
            ]},
        ],
    }


def thinking_history():
    """A conversation under manual thinking whose earlier assistant turn holds the primary's
    thinking and redacted_thinking blocks before its text (no tool call)."""
    return {
        "model": SONNET,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "Tell me a story."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "A short one.", "signature": signed_by(SONNET, 2)},
                {"type": "redacted_thinking", "data": signed_by(SONNET, 3)},
                {"type": "text", "text": "Once upon a time there was a breakwater."},
            ]},
            {"role": "user", "content": "Go on."},
        ],
    }


def simple(model=SONNET, prompt="hello", **fields):
    messages = [{"role": "user", "content": prompt}]
    return {"model": model, "max_tokens": 1024, "messages": messages, **fields}


# What the SDK sees.


def overloaded(sdk, request, case):
    """Asserts that `request` sent as it is gets 529 (its model keeps the rules, but is down)."""
    try:
        sdk.messages.create(**request)
    except anthropic.APIStatusError as error:
        assert isinstance(error, anthropic.OverloadedError), (
            f"{case}: {request['model']} should answer 529, "
            f"got {error.status_code}: {error.api_message}"
        )
        return
    raise AssertionError(f"{case}: {request['model']} answered, but it is down")


def refused(sdk, request, case):
    """Asserts that `request` sent as it is gets 400 invalid_request_error; the error."""
    try:
        sdk.messages.create(**request)
    except anthropic.BadRequestError as error:
        assert error.type == "invalid_request_error", f"{case}: {error.type}: {error.api_message}"
        return error
    except anthropic.APIStatusError as error:
        raise AssertionError(
            f"{case}: {request['model']} should answer 400, "
            f"got {error.status_code}: {error.api_message}"
        ) from None
    raise AssertionError(f"{case}: {request['model']} took the request as it came")


def check_headers(headers, fallback, adapted, case):
    model = headers.get("x-breakwater-model")
    assert model == fallback, f"{case}: x-breakwater-model is {model!r}, not {fallback!r}"
    # The head's 529, then the fallback's answer.
    attempts = headers.get("x-breakwater-attempts")
    assert attempts == "2", f"{case}: x-breakwater-attempts is {attempts!r}, not '2'"
    changes = headers.get("x-breakwater-adapted")
    assert changes == adapted, f"{case}: x-breakwater-adapted is {changes!r}, not {adapted!r}"


def check_message(message, fallback, prompt, thinker, case):
    assert message.model == fallback, f"{case}: the message is from {message.model}"
    assert message.stop_reason == "end_turn", f"{case}: stop_reason {message.stop_reason}"
    kinds = [block.type for block in message.content]
    if thinker:
        assert kinds == ["thinking", "text"], f"{case}: content {kinds}, expected thinking, text"
        made_by = signer(message.content[0].signature)
        assert made_by == thinker, f"{case}: the answer's thinking is signed by {made_by}"
    else:
        assert kinds == ["text"], f"{case}: content {kinds}, expected text alone"
    text = message.content[-1].text
    assert text == reply(fallback, prompt), f"{case}: text {text!r}"


def answered_whole(gateway, request, fallback, adapted, prompt, case, thinker=None):
    raw = gateway.messages.with_raw_response.create(**request)
    assert raw.status_code == 200, f"{case}: status {raw.status_code}"
    check_headers(raw.headers, fallback, adapted, case)
    check_message(raw.parse(), fallback, prompt, thinker, case)


def answered_streamed(gateway, request, fallback, adapted, prompt, case, thinker=None):
    with gateway.messages.stream(**request) as stream:
        assert stream.response.status_code == 200, f"{case}: status {stream.response.status_code}"
        check_headers(stream.response.headers, fallback, adapted, case)
        final = stream.get_final_message()
    check_message(final, fallback, prompt, thinker, case)


def as_is_for(request, fallback):
    """The request with its model switched by hand, as a client falling back alone would."""
    return {**request, "model": fallback}


# The cases. Each returns what it saw, for the run's log.


def baseline_without_breakwater(direct, gateway):
    case = "baseline"
    try:
        direct.messages.create(**tool_turn())
    except anthropic.OverloadedError as error:
        assert error.type == "overloaded_error", f"{case}: {error.type}"
        return "the SDK straight at the mock: the tool turn fails with 529 from the primary"
    raise AssertionError(f"{case}: the primary answered the tool turn, but it is down")


def tool_turn_with_manual_thinking(direct, gateway):
    case, request = "1 tool turn with manual thinking", tool_turn()
    overloaded(direct, request, case)
    # Haiku cannot read Sonnet's signature; stripping the block leaves the final tool turn
    # without thinking, which manual thinking refuses, so thinking goes off for the attempt.
    refused(direct, as_is_for(request, HAIKU), case)
    # The last user turn holds only the tool's result, so the mock's reply echoes no text.
    answered_whole(gateway, request, HAIKU, "thinking,thinking_blocks", "", case)
    answered_streamed(gateway, request, HAIKU, "thinking,thinking_blocks", "", case + " (streamed)")
    return "answered by the fallback, whole and streamed; adapted: thinking,thinking_blocks"


def thinking_blocks_from_the_primary(direct, gateway):
    case, request = "2 thinking and redacted_thinking from the primary", thinking_history()
    overloaded(direct, request, case)
    refused(direct, as_is_for(request, HAIKU), case)
    answered_whole(gateway, request, HAIKU, "thinking_blocks", "Go on.", case, thinker=HAIKU_ID)
    return "answered by the fallback, its own thinking signed by it; adapted: thinking_blocks"


def max_tokens_above_the_fallbacks_ceiling(direct, gateway):
    case, request = "3 max_tokens above the fallback's ceiling", simple(max_tokens=100_000)
    overloaded(direct, request, case)
    refused(direct, as_is_for(request, HAIKU), case)
    answered_whole(gateway, request, HAIKU, "max_tokens", "hello", case)
    return "max_tokens=100000 answered by the fallback (ceiling 64000); adapted: max_tokens"


def sampling_to_a_fallback_that_refuses_it(direct, gateway):
    case = "4 sampling parameters to a fallback that refuses them"
    # SDK 2.x has no sampling parameters and sends anthropic-version 2026-10-21, under which
    # the API refuses them on every model (docs/MODELS.md, "Not encoded"). A client that
    # still sends them does so under 2023-06-01, where Opus 4.6 takes them with thinking off
    # and Opus 4.8 refuses them; the gateway forwards the version per request.
    request = simple(
        model=OPUS_46,
        extra_body={"temperature": 0.2, "top_k": 10},
        extra_headers={"anthropic-version": "2023-06-01"},
    )
    overloaded(direct, request, case)
    refused(direct, as_is_for(request, OPUS_48), case)
    answered_whole(gateway, request, OPUS_48, "sampling", "hello", case)
    return "temperature and top_k answered by claude-opus-4-8 without them; adapted: sampling"


def thinking_type_the_fallback_refuses(direct, gateway):
    case = "5 a thinking type the fallback refuses"
    request = simple(max_tokens=8000, thinking={"type": "adaptive"})
    overloaded(direct, request, case)
    refused(direct, as_is_for(request, HAIKU), case)
    answered_whole(gateway, request, HAIKU, "thinking", "hello", case, thinker=HAIKU_ID)
    return "adaptive thinking answered by the fallback with manual thinking; adapted: thinking"


def no_model_can_take_it(direct, gateway):
    case, request = "6 a request no model can take", simple(max_tokens=200_000)
    ceiling = (
        f"max_tokens: 200000 > 128000, which is the maximum allowed number of output tokens "
        f"for {SONNET}"
    )
    own = refused(direct, request, case)
    assert own.api_message == ceiling, f"{case}: the primary's own 400 says {own.api_message!r}"
    through = refused(gateway, request, case + " (through breakwater)")
    assert through.api_message == ceiling, f"{case}: came back as {through.api_message!r}"
    headers = through.response.headers
    adapted = headers.get("x-breakwater-adapted")
    assert adapted is None, f"{case}: x-breakwater-adapted is {adapted!r}"
    request_id = through.request_id or ""
    assert request_id.startswith("req_mock_"), f"{case}: request-id {request_id!r}, not the mock's"
    # The body as the primary sent it (each answer has its own request id).
    assert through.body == {**own.body, "request_id": request_id}, (
        f"{case}: the body changed: {through.body} (the primary's own: {own.body})"
    )
    return "400 invalid_request_error, the primary's own message, unchanged"


CASES = [
    baseline_without_breakwater,
    tool_turn_with_manual_thinking,
    thinking_blocks_from_the_primary,
    max_tokens_above_the_fallbacks_ceiling,
    sampling_to_a_fallback_that_refuses_it,
    thinking_type_the_fallback_refuses,
    no_model_can_take_it,
]


def main():
    start_watchdog(WATCHDOG_S)
    binary = os.environ["BREAKWATER_BIN"]
    # The gateway's own upstream key (the mock takes any); nothing else from the environment
    # decides where it sends requests.
    env = clean_env(ANTHROPIC_API_KEY="sdk-fallback-upstream-key")
    failures = []
    with ExitStack() as servers:
        mock = servers.enter_context(Server(
            "mock",
            [binary, "mock", "--listen", "127.0.0.1:0",
             "--scenario", str(HERE / "fallback_scenario.toml")],
            signal.SIGINT,  # `breakwater mock` runs until Ctrl-C
            env=env,
        ))
        gateway = servers.enter_context(Server(
            "gateway",
            [binary, "serve", "--listen", "127.0.0.1:0",
             "--config", str(HERE / "fallback_gateway.toml"), "--base-url", mock.url],
            signal.SIGTERM,
            env=env,
        ))
        direct, through = client(mock.url), client(gateway.url)
        for case in CASES:
            check(failures, case.__name__, lambda: case(direct, through))
        if failures:
            failures.append(f"the gateway's output:\n{gateway.log()}")
    conclude(
        failures,
        "every fallback answered; the request no model can take came back as its own 400",
    )


if __name__ == "__main__":
    main()
