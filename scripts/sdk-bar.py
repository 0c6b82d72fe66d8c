#!/usr/bin/env python3
"""The gateway's bar, measured with the official Python SDK: open-loop traffic (half streamed)
against a mock whose primary keeps 5% of its capacity, sent (a) through `breakwater serve` with
the SDK's retries off, and (b) straight to the mock with the SDK's default retries (2).

    scripts/test --test python_sdk            # once, to set up target/python-sdk
    cargo build --release
    target/python-sdk/bin/python scripts/sdk-bar.py [--rps 10] [--duration 60]

Prints, for each way, the share of requests answered, of those whose text arrived whole, and
latency percentiles. Both runs see the same arrivals (seeded) and a fresh mock.
"""

import argparse
import os
import random
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import anthropic

warnings.filterwarnings("ignore", category=DeprecationWarning)

from harness import ROOT, start, stop

PRIMARY = "claude-sonnet-5-5"
SCENARIO = """
description = "claude-sonnet-5-5 keeps 5% of its slots for the whole run; claude-haiku-5-5 is healthy"
seed = 5
[models.claude-sonnet-5-5]
slots = 20
service-time = "300ms"
distribution = "exponential"
brownouts = [{ start = "0s", end = "24h", fraction = 0.05 }]
[models.claude-haiku-5-5]
slots = 20
service-time = "150ms"
distribution = "exponential"
"""



def one(client, n, stream):
    prompt = f"request {n}"
    started = time.monotonic()
    try:
        if stream:
            with client.messages.stream(
                model=PRIMARY, max_tokens=64, messages=[{"role": "user", "content": prompt}]
            ) as events:
                text = "".join(events.text_stream)
                model = events.get_final_message().model
        else:
            message = client.messages.create(
                model=PRIMARY, max_tokens=64, messages=[{"role": "user", "content": prompt}]
            )
            text = "".join(b.text for b in message.content if b.type == "text")
            model = message.model
    except anthropic.APIError as error:
        return False, False, time.monotonic() - started, type(error).__name__
    whole = text == f"mock reply from {model}: {prompt}"
    return True, whole, time.monotonic() - started, model


def run(client, rps, duration, seed):
    rng = random.Random(seed)
    results = []
    with ThreadPoolExecutor(256) as pool:
        begun, at, n, futures = time.monotonic(), 0.0, 0, []
        while at < duration:
            delay = begun + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, client, n, n % 2 == 1))
            n += 1
            at += rng.expovariate(rps)
        results = [f.result() for f in futures]
    return results


def report(name, results):
    total = len(results)
    answered = sum(1 for ok, _, _, _ in results if ok)
    whole = sum(1 for ok, w, _, _ in results if ok and w)
    latencies = sorted(t for _, _, t, _ in results)
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    outcomes = {}
    for _, _, _, outcome in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(
        f"| {name} | {total} | {100 * answered / total:.1f}% | {whole} | "
        f"{pct(0.5):.0f} / {pct(0.95):.0f} / {pct(0.99):.0f} | {outcomes} |"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rps", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary", default=str(ROOT / "target/release/breakwater"))
    options = parser.parse_args()
    scenario = ROOT / "target/sdk-bar-scenario.toml"
    scenario.write_text(SCENARIO)
    mock_args = [options.binary, "mock", "--listen", "127.0.0.1:0", "--scenario", str(scenario)]
    print(f"{options.rps} requests/s for {options.duration:.0f} s, half streamed; "
          f"primary {PRIMARY} at 5% of its capacity")
    print("| client | requests | answered | whole texts | p50 / p95 / p99 ms | outcomes |")
    print("| --- | --- | --- | --- | --- | --- |")

    mock, mock_url = start(mock_args, r"listening on (\S+)", subprocess.DEVNULL)
    mock_url = mock_url if mock_url.startswith("http") else f"http://{mock_url}"
    env = dict(os.environ, ANTHROPIC_API_KEY="bar-key")
    gateway, url = start(
        [options.binary, "serve", "--listen", "127.0.0.1:0", "--base-url", mock_url,
         "--chain", f"{PRIMARY},claude-haiku-5-5"],
        r"listening on (http://\S+)", subprocess.DEVNULL, env,
    )
    through = anthropic.Anthropic(base_url=url, api_key="any", max_retries=0, timeout=60)
    report("SDK, max_retries=0, through breakwater serve",
           run(through, options.rps, options.duration, options.seed))
    stop(gateway)
    stop(mock)

    mock, mock_url = start(mock_args, r"listening on (\S+)", subprocess.DEVNULL)
    mock_url = mock_url if mock_url.startswith("http") else f"http://{mock_url}"
    direct = anthropic.Anthropic(base_url=mock_url, api_key="bar-key", timeout=60)
    report("SDK, default retries (2), straight to the server",
           run(direct, options.rps, options.duration, options.seed))
    stop(mock)


if __name__ == "__main__":
    main()
