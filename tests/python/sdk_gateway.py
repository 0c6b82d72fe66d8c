"""The official Python SDK, its own retries off, against `breakwater serve` in front of a mock
that browns out the primary and injects mid-stream overloads.

Run by tests/python_sdk.rs (BREAKWATER_BIN names the binary). Exits non-zero, saying why,
unless every request, streamed or not, is answered with its whole text, and the routes the
gateway forwards (models, Message Batches, Files) work through it as they would on the API.
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
PRIMARY, FALLBACK = "claude-sonnet-5-5", "claude-haiku-5-5"
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
    text = "".join(block.text for block in message.content if block.type == "text")
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


def mock_id(response):
    # The upstream's request-id header, which the SDK keeps on each top-level object.
    request_id = response._request_id  # noqa: SLF001 - the SDK's documented accessor
    assert request_id and request_id.startswith("req_mock_"), request_id
    return request_id


def models(client):
    listed = [model.id for model in client.models.list()]
    assert sorted(listed) == sorted([PRIMARY, FALLBACK]), listed
    model = client.models.retrieve(PRIMARY)
    mock_id(model)
    assert model.id == PRIMARY and model.type == "model", model
    assert model.display_name == "Claude Sonnet 5.5", model.display_name
    try:
        client.models.retrieve("claude-no-such-model")
        raise AssertionError("an unknown model was found")
    except anthropic.NotFoundError as error:
        assert error.request_id and error.request_id.startswith("req_mock_"), error.request_id


def batches(client):
    def params(prompt):
        return {"model": PRIMARY, "max_tokens": 32, "messages": [{"role": "user", "content": prompt}]}

    prompts = {"first": "batch question one", "second": "batch question two"}
    batch = client.messages.batches.create(
        requests=[{"custom_id": key, "params": params(text)} for key, text in prompts.items()]
    )
    mock_id(batch)
    assert batch.processing_status == "ended", batch
    assert batch.request_counts.succeeded == 2, batch.request_counts
    # A path, so the SDK fetches the results through the gateway, not around it.
    assert batch.results_url == f"/v1/messages/batches/{batch.id}/results", batch.results_url
    assert batch.id in [listed.id for listed in client.messages.batches.list(limit=5).data]
    assert client.messages.batches.retrieve(batch.id).id == batch.id
    results = {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}
    assert sorted(results) == sorted(prompts), results
    for key, prompt in prompts.items():
        assert results[key].type == "succeeded", results[key]
        text = "".join(b.text for b in results[key].message.content if b.type == "text")
        assert text == expected(PRIMARY, prompt), text
    assert client.messages.batches.cancel(batch.id).processing_status == "ended"
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.type == "message_batch_deleted", deleted


def files(client):
    content = bytes(range(256)) * 4096  # 1 MiB
    uploaded = client.beta.files.upload(file=("notes.bin", content, "application/octet-stream"))
    mock_id(uploaded)
    assert uploaded.size_bytes == len(content) and uploaded.filename == "notes.bin", uploaded
    assert uploaded.id in [listed.id for listed in client.beta.files.list().data]
    metadata = client.beta.files.retrieve_metadata(uploaded.id)
    assert metadata.mime_type == "application/octet-stream", metadata
    assert client.beta.files.download(uploaded.id).read() == content, "downloaded bytes differ"
    assert client.beta.files.delete(uploaded.id).id == uploaded.id
    try:
        client.beta.files.retrieve_metadata(uploaded.id)
        raise AssertionError("a deleted file was still there")
    except anthropic.NotFoundError:
        pass


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

        for check in (models, batches, files):
            try:
                check(client)
                print(f"{check.__name__}: forwarded, ok")
            except Exception as error:  # noqa: BLE001 - every failure is reported
                failures.append(f"{check.__name__}: {type(error).__name__}: {error!r}")

        for kind, answered_by in outcomes.items():
            by_model = {m: answered_by.count(m) for m in sorted(set(answered_by))}
            print(f"{kind}: {len(answered_by)}/{REQUESTS} answered, by model {by_model}")
        if failures:
            sys.exit("failed:\n" + "\n".join(failures))
        answered = sum(len(answered_by) for answered_by in outcomes.values())
        assert answered == 2 * REQUESTS, answered
        fallbacks = sum(answered_by.count(FALLBACK) for answered_by in outcomes.values())
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
    print(
        "ok: every request answered whole; models, batches and files forwarded; "
        "the gateway drained and stopped on SIGTERM"
    )


if __name__ == "__main__":
    main()
