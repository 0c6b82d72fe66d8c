#!/usr/bin/env python3
"""Callers that leave: N requests sent to `breakwater serve --mock` and dropped before their
answer, then what the gateway still holds (outstanding requests, attempts in flight per model,
from /v1/breakwater/state) and whether a real request that follows is served.

Usage: scripts/abandon.py [--requests 1000] [--drop-after 0.8] [--reps 3] [--binary PATH]
Standard library only. Builds nothing: run `cargo build --release` first (the default binary is
target/release/breakwater). Prints one line per repetition and the spread.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SCENARIO = """
description = "slow answers, so that callers leave while their attempts run"
[models.claude-sonnet-5-5]
slots = 256
service-time = "3s"
[models.claude-haiku-5-5]
slots = 256
service-time = "3s"
"""

BODY = json.dumps(
    {
        "model": "claude-sonnet-5-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hello"}],
    }
).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def send_and_leave(port, leave_at):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-length: {len(BODY)}\r\n\r\n"
    ).encode()
    writer.write(head + BODY)
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(1), timeout=max(0.0, leave_at - time.monotonic()))
    except (asyncio.TimeoutError, OSError):
        pass
    writer.close()


def state(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/breakwater/state", timeout=5) as r:
        return json.load(r)


def in_flight(snapshot):
    """Attempts running or queued at the gateway's workers, over every model."""
    return sum(m["in_flight"] + m["queued"] for m in snapshot["models"])


def real_request(port):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/messages",
        data=BODY,
        headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def one_run(binary, requests, drop_after):
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(SCENARIO)
        scenario = f.name
    server = subprocess.Popen(
        [binary, "serve", "--mock", "--scenario", scenario, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                state(port)
                break
            except OSError:
                time.sleep(0.1)
        leave_at = time.monotonic() + drop_after

        async def all_of_them():
            async def look_while_waiting():
                await asyncio.sleep(max(0.0, leave_at - 0.2 - time.monotonic()))
                return await asyncio.get_running_loop().run_in_executor(None, state, port)

            looked = asyncio.ensure_future(look_while_waiting())
            await asyncio.gather(*(send_and_leave(port, leave_at) for _ in range(requests)))
            return await looked

        during = asyncio.run(all_of_them())
        time.sleep(0.5)
        after = state(port)
        started = time.monotonic()
        status = real_request(port)
        took = time.monotonic() - started
        return (during["outstanding"], in_flight(during)), (after["outstanding"], in_flight(after)), status, took
    finally:
        server.terminate()
        server.wait(timeout=40)
        os.unlink(scenario)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--drop-after", type=float, default=0.8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--binary", default="target/release/breakwater")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"error: {args.binary} not found: run `cargo build --release` first")
    rows = []
    for rep in range(1, args.reps + 1):
        during, (outstanding, attempts), status, took = one_run(
            args.binary, args.requests, args.drop_after
        )
        rows.append((outstanding, attempts, status, took))
        print(
            f"run {rep}: {args.requests} requests; while held: outstanding {during[0]}, "
            f"attempts {during[1]}; dropped after {args.drop_after}s, 0.5s later: outstanding "
            f"{outstanding}, attempts {attempts}; next real request: {status} in {took:.2f}s",
            flush=True,
        )
    outs = [r[0] for r in rows]
    flights = [r[1] for r in rows]
    print(
        f"outstanding after: min {min(outs)} max {max(outs)}; attempts in flight after: "
        f"min {min(flights)} max {max(flights)}; next request statuses: {[r[2] for r in rows]}"
    )


if __name__ == "__main__":
    main()
