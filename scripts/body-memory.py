#!/usr/bin/env python3
"""What `breakwater serve` holds in memory for large request bodies: its peak resident set
(VmHWM in /proc/PID/status) and its resident set (VmRSS) before, right after and 2 s after
each burst, for

  (a) one 30 MiB request through a chain of three models whose first two always answer 529
      (`breakwater mock --scenario chain-down`): three attempts on each before the third
      answers, so the body is sent upstream 7 times;
  (b) 32 concurrent 31 MiB requests to an instant upstream (`--scenario instant`).

Each case runs against a fresh mock and a fresh gateway, REPS times. The bodies are
realistic Messages requests, generated here (seeded): a system prompt, two tools with
JSON schemas, and one long user text of prose (the API's limit is 32 MB).

    python3 scripts/body-memory.py [--reps 3] [--no-build]

It runs `cargo build --release` first unless given --no-build, prints each run, then per
case the median and range over the runs, and exits non-zero when a request was not answered
200 by a model expected to answer it.
"""

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "breakwater"
MIB = 1 << 20
CHAIN = ["claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5"]
# With the default retry.max-attempts (6), the three attempts on each of the two overloaded
# models use them all and the third model is never tried: allow 3 per model.
CHAIN_CONFIG = f"""
[models.{CHAIN[0]}]
[models.{CHAIN[1]}]
[models.{CHAIN[2]}]
[chains]
default = {json.dumps(CHAIN)}
[retry]
max-attempts = 9
"""
WORDS = (
    "the order shipment customer invoice warehouse refund replacement carrier tracking "
    "account payment delivery address return policy damaged package label support ticket "
    "escalation priority region quarter forecast inventory supplier contract renewal "
    "discount subscription billing cycle credit note audit compliance report summary "
    "was is will should could has had been arrived delayed confirmed requested approved "
    "within after before during because although unless while since until and or but"
).split()
TOOLS = [
    {
        "name": "lookup_order",
        "description": "Look up an order by its number: its items, status and shipping history.",
        "input_schema": {
            "type": "object",
            "properties": {
                "order_number": {"type": "string", "description": "The order number, e.g. 4471"},
                "include_history": {"type": "boolean", "description": "Every shipping event"},
            },
            "required": ["order_number"],
        },
    },
    {
        "name": "create_ticket",
        "description": "Open a support ticket for a customer and return its identifier.",
        "input_schema": {
            "type": "object",
            "properties": {
                "customer_id": {"type": "string"},
                "category": {"type": "string", "enum": ["damage", "delay", "billing", "other"]},
                "priority": {"type": "integer", "minimum": 1, "maximum": 4},
                "summary": {"type": "string", "maxLength": 500},
            },
            "required": ["customer_id", "category", "summary"],
        },
    },
]


def prose(size, rng):
    """`size` characters of seeded sentences, none needing a JSON escape."""
    block, length = [], 0
    while length < MIB:
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 24))]
        sentence = " ".join(words).capitalize() + f" (ref {rng.randint(1000, 99999)}). "
        block.append(sentence)
        length += len(sentence)
    block = "".join(block)
    return (block * (size // len(block) + 1))[:size]


def body(size, rng):
    """A Messages request of exactly `size` bytes of JSON."""
    request = {
        "model": CHAIN[0],
        "max_tokens": 1024,
        "system": "You are a support analyst. Use the tools when an order or a ticket is named.",
        "tools": TOOLS,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ""},
                    {"type": "text", "text": "Summarise the correspondence above in ten lines."},
                ],
            }
        ],
    }
    skeleton = len(json.dumps(request).encode())
    request["messages"][0]["content"][0]["text"] = prose(size - skeleton, rng)
    data = json.dumps(request).encode()
    assert len(data) == size, (len(data), size)
    return data


def start(args, log, env=None):
    """Starts a server that prints `listening on URL` (its output going to the file `log`);
    returns the process and the URL."""
    with open(log, "w") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://[0-9.:]+)", log.read_text())
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    sys.exit(f"error: {args[1]} did not start; its output:\n{log.read_text()}")


def ready(url):
    """Polls the gateway's /healthz until it answers ok."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(url, "GET", "/healthz", None)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"error: the gateway at {url} does not answer /healthz")


def request(url, method, path, data):
    """One request on a new connection: status, x-breakwater-model, x-breakwater-attempts."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return (
        response.status,
        response.getheader("x-breakwater-model"),
        response.getheader("x-breakwater-attempts"),
    )


def memory(pid):
    """VmHWM and VmRSS of `pid`, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmHWM"], fields["VmRSS"]


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def burst(url, data, count):
    """Sends `count` requests of `data` at once; returns the seconds taken and the answers."""
    answers = [None] * count
    barrier = threading.Barrier(count)

    def send(i):
        barrier.wait()
        try:
            answers[i] = request(url, "POST", "/v1/messages", data)
        except OSError as error:
            answers[i] = (str(error), None, None)

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, answers


def run(case, data, count, work):
    """One burst of `count` concurrent requests of `data` through a fresh gateway."""
    scenario = "chain-down" if case == "a" else "instant"
    processes = []
    try:
        mock, upstream = start(
            [str(BIN), "mock", "--listen", "127.0.0.1:0", "--scenario", scenario],
            work / f"mock-{case}.log",
        )
        processes.append(mock)
        serve = [str(BIN), "serve", "--listen", "127.0.0.1:0", "--upstream", upstream]
        serve += ["--grace", "1s"]
        if case == "a":
            config = work / "chain.toml"
            config.write_text(CHAIN_CONFIG)
            serve += ["--config", str(config)]
        else:
            serve += ["--chain", ",".join(CHAIN[:2])]
        env = {**os.environ, "ANTHROPIC_API_KEY": "bench"}
        gateway, url = start(serve, work / f"serve-{case}.log", env)
        processes.append(gateway)
        ready(url)
        _, before = memory(gateway.pid)
        took, answers = burst(url, data, count)
        peak, after = memory(gateway.pid)
        time.sleep(2)
        _, settled = memory(gateway.pid)
    finally:
        for process in reversed(processes):
            stop(process)
    return {"before": before, "peak": peak, "after": after, "settled": settled,
            "took": took, "answers": answers}


def header():
    """Prints the date, the machine and the build."""
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    total = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    version = subprocess.run([str(BIN), "--version"], capture_output=True, text=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    print(f"date:     {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine:  {os.cpu_count()} CPUs ({cpu.group(1) if cpu else '?'}), "
          f"{total / MIB:.1f} GiB memory, load {Path('/proc/loadavg').read_text()[:14]}")
    print(f"build:    {version.stdout.strip()}, commit {commit.stdout.strip() or '?'}, release")
    print("figures in MB (10^6 bytes); 'after' is right after the last answer, 'settled' 2 s later")
    print()


def report(summary):
    """Prints per case the median (min to max) of each figure over its runs."""
    print("| case | requests | answered 200 (by model after attempts) "
          "| RSS before | peak RSS (VmHWM) | RSS after | RSS settled |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case, label, count, runs in summary:
        def cell(key):
            values = sorted(r[key] / 1e6 for r in runs)
            return f"{statistics.median(values):.1f} ({values[0]:.1f} to {values[-1]:.1f})"

        by = Counter(f"{a[1]} after {a[2]}" for r in runs for a in r["answers"] if a[0] == 200)
        answered = ", ".join(f"{n} by {k}" for k, n in sorted(by.items())) or "none"
        figures = " | ".join(cell(key) for key in ("before", "peak", "after", "settled"))
        print(f"| ({case}) {label} | {count} x {len(runs)} | {answered} | {figures} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="runs of each case (default 3)")
    parser.add_argument("--no-build", action="store_true",
                        help="use target/release/breakwater as it is")
    args = parser.parse_args()
    if args.reps < 1:
        sys.exit("error: --reps must be at least 1")
    if not args.no_build:
        print("==> cargo build --release", flush=True)
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if not BIN.exists():
        sys.exit(f"error: {BIN} is missing: run cargo build --release")
    header()
    rng = random.Random(13)
    # case, what it is, body, concurrent requests, the answers expected:
    # (status, x-breakwater-model, x-breakwater-attempts)
    cases = [
        ("a", "1 x 30 MiB, chain of 3, first two always 529", body(30 * MIB, rng), 1,
         {(200, CHAIN[2], "7")}),
        # The 32 start on the first model, or spill over to the second while the first's
        # adaptive limit (16 at a cold start) is full.
        ("b", "32 x 31 MiB at once, instant upstream", body(31 * MIB, rng), 32,
         {(200, CHAIN[0], "1"), (200, CHAIN[1], "1")}),
    ]
    failed = False
    summary = []
    with tempfile.TemporaryDirectory() as work:
        for case, label, data, count, expected in cases:
            runs = []
            for rep in range(1, args.reps + 1):
                result = run(case, data, count, Path(work))
                wrong = [a for a in result["answers"] if a not in expected]
                failed |= bool(wrong)
                runs.append(result)
                note = f"  UNEXPECTED: {wrong[:3]}" if wrong else ""
                print(f"  ({case}) run {rep}: before {result['before'] / 1e6:7.1f}  "
                      f"peak {result['peak'] / 1e6:7.1f}  after {result['after'] / 1e6:7.1f}  "
                      f"settled {result['settled'] / 1e6:7.1f}  in {result['took']:.1f} s{note}",
                      flush=True)
            summary.append((case, label, count, runs))
    print()
    report(summary)
    if failed:
        sys.exit("error: some requests were not answered as expected (see UNEXPECTED above)")


if __name__ == "__main__":
    main()
