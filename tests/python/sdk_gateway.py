"""The official Python SDK, its own retries off, against `breakwater serve` in front of a mock
that browns out the primary and injects mid-stream overloads.

Run by tests/python_sdk.rs (BREAKWATER_BIN names the binary). Exits non-zero, saying why,
unless every request, streamed or not, is answered with its whole text.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import warnings

import anthropic

# The SDK warns about model deprecations; the mock serves whatever names it is given.
warnings.filterwarnings("ignore", category=DeprecationWarning)

HERE = Path(__file__).resolve().parent
KEY = "sdk-test-client-key"
PRIMARY, FALLBACK = "claude-sonnet-4-6", "claude-haiku-4-5"
REQUESTS = 60  # of each kind
WORKERS = 8


def start_gateway(binary):
    process = subprocess.Popen(
        [
            binary, "serve", "--listen", "127.0.0.1:0",
            "--config", str(HERE / "gateway.toml"),
            "--mock", "--scenario", str(HERE / "scenario.toml"),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    found = {}

    def read():
        for line in process.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                found["url"] = match.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while "url" not in found:
        if process.poll() is not None:
            sys.exit(f"the gateway exited with {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            sys.exit("the gateway did not start within 60 s")
        time.sleep(0.02)
    return process, found["url"]


def expected(model, prompt):
    # The mock answers "mock reply from MODEL: " and the first 40 characters of the prompt.
    return f"mock reply from {model}: {prompt[:40]}"


def whole(client, n):
    prompt = f"whole request number {n}"
    message = client.messages.create(
        model=PRIMARY, max_tokens=64, messages=[{"role": "user", "content": prompt}]
    )
    text = "".join(block.text for block in message.content)
    assert text == expected(message.model, prompt), (text, message.model)
    return message.model


def streamed(client, n):
    prompt = f"streamed request number {n}"
    with client.messages.stream(
        model=PRIMARY, max_tokens=64, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected(final.model, prompt), (text, final.model)
    assert final.stop_reason == "end_turn", final.stop_reason
    return final.model


def main():
    binary = os.environ["BREAKWATER_BIN"]
    process, url = start_gateway(binary)
    try:
        client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=30)
        outcomes = {"whole": [], "stream": []}
        failures = []

        def run(kind, n):
            try:
                call = whole if kind == "whole" else streamed
                outcomes[kind].append(call(client, n))
            except Exception as error:  # noqa: BLE001 - every failure is reported
                failures.append(f"{kind} #{n}: {type(error).__name__}: {error}")

        with ThreadPoolExecutor(WORKERS) as pool:
            for n in range(REQUESTS):
                pool.submit(run, "whole", n)
                pool.submit(run, "stream", n)

        counted = client.messages.count_tokens(
            model=PRIMARY, messages=[{"role": "user", "content": "count me"}]
        )
        assert counted.input_tokens > 0, counted

        stranger = anthropic.Anthropic(base_url=url, api_key="not-a-gateway-key", max_retries=0)
        try:
            stranger.messages.create(
                model=PRIMARY, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
            failures.append("a wrong client key was let in")
        except anthropic.AuthenticationError:
            pass

        for kind, models in outcomes.items():
            by_model = {m: models.count(m) for m in sorted(set(models))}
            print(f"{kind}: {len(models)}/{REQUESTS} answered, by model {by_model}")
        if failures:
            sys.exit("failed:\n" + "\n".join(failures))
        answered = sum(len(models) for models in outcomes.values())
        assert answered == 2 * REQUESTS, answered
        fallbacks = sum(models.count(FALLBACK) for models in outcomes.values())
        assert fallbacks > 0, "the brownout should have sent some traffic to the fallback"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            sys.exit("the gateway did not stop within 15 s of SIGTERM")
    if code != 0:
        sys.exit(f"the gateway exited with {code} after SIGTERM: {process.stderr.read()}")
    print("ok: every request answered whole; the gateway drained and stopped on SIGTERM")


if __name__ == "__main__":
    main()
