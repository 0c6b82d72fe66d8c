#!/usr/bin/env python3
"""Fleet: what an outage of the primary costs one `breakwater serve` replica, three replicas
sharing state through Redis, and three replicas deciding alone, at the same total traffic;
and how fast a replica hears of another's breaker transitions.

    scripts/fleet.py [--reps 3] [--replicas 3] [--rps 20] [--outage 20] [--duration 30]
                     [--json out.json] [--no-build]

Each repetition runs three setups in turn, each against a fresh `breakwater mock` whose
primary (claude-sonnet-5-5) is fully down (every request 529) from 3 s to 3 + --outage s
after traffic starts, its fallback (claude-haiku-5-5) healthy:
  one     one gateway
  shared  --replicas gateways joined through a fresh `redis-server` (`--redis`)
  apart   --replicas gateways, no Redis
Every gateway runs breakwater's defaults (breaker, retries, budgets) for the chain
claude-sonnet-5-5 -> claude-haiku-5-5. Traffic: open-loop arrivals at --rps in total for
--duration s, round-robin over the gateways, one connection per request.

Reported per setup, over the repetitions (median, min-max): the primary's 529s (the attempts
the outage wasted), the requests not answered 200, and for `shared` the ratio of its 529s to
`one`'s in the same repetition, and the propagation lag each replica measured (from another
replica's write of a shared breaker record to its arrival here: `fleet.lag_p50_ms` and
`lag_p99_ms` of /v1/breakwater/state, all replicas' samples pooled per repetition as the
largest p99 and the median p50).

Needs `redis-server` on PATH (Debian: apt-get install redis-server). Standard library only.
Builds the release binary unless --no-build (or --binary is given).
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, free_port, start, stop

PRIMARY, FALLBACK = "claude-sonnet-5-5", "claude-haiku-5-5"
OUTAGE_START = 3.0


def start_redis(workdir, log):
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("error: redis-server is not on PATH (Debian: apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", workdir],
        stdout=log, stderr=log,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("error: redis-server did not answer PING")


def scenario_file(workdir, outage):
    path = Path(workdir) / "outage.toml"
    path.write_text(
        f"""description = "{PRIMARY} down from {OUTAGE_START}s for {outage}s"
seed = 0
enforce-catalog = false

[models.{PRIMARY}]
slots = 64
service-time = "300ms"
distribution = "exponential"
brownouts = [{{ start = "{OUTAGE_START}s", end = "{OUTAGE_START + outage}s", fraction = 0.0 }}]

[models.{FALLBACK}]
slots = 64
service-time = "150ms"
distribution = "exponential"
"""
    )
    return path


# ---------------------------------------------------------------------------------------------
# HTTP, one connection per request.


async def fetch(port, method, path, body=None, timeout=60):
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n"
    head += "x-api-key: sk-fleet\r\nanthropic-version: 2023-06-01\r\n"
    data = (head + "\r\n").encode()
    if body is not None:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        data = head.encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    first = head.split(b"\r\n", 1)[0].split()
    status = int(first[1]) if len(first) > 1 else 0
    if b"transfer-encoding: chunked" in head.lower():
        out, i = bytearray(), 0
        while True:
            j = payload.find(b"\r\n", i)
            size = int(payload[i:j].split(b";")[0] or b"0", 16) if j >= 0 else 0
            if size == 0:
                break
            out += payload[j + 2 : j + 2 + size]
            i = j + 2 + size + 2
        payload = bytes(out)
    return status, payload


async def get_json(port, path):
    status, payload = await fetch(port, "GET", path, timeout=10)
    if status != 200:
        raise RuntimeError(f"GET {path} on {port}: {status}")
    return json.loads(payload)


def port_of(url):
    return int(url.rsplit(":", 1)[1].rstrip("/"))


async def joined(ports, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [await get_json(p, "/v1/breakwater/state") for p in ports]
        if all(
            s["fleet"] and s["fleet"]["mode"] == "shared"
            and s["fleet"]["live_replicas"] == len(ports)
            for s in states
        ):
            return
        await asyncio.sleep(0.1)
    sys.exit("error: the replicas did not form a fleet")


async def traffic(ports, rps, duration):
    body = json.dumps(
        {"model": PRIMARY, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    statuses, tasks = {}, []

    async def one(port):
        try:
            status, _ = await fetch(port, "POST", "/v1/messages", body)
        except (OSError, asyncio.TimeoutError):
            status = 0
        statuses[status] = statuses.get(status, 0) + 1

    began = time.monotonic()
    n = 0
    while True:
        at = began + n / rps
        if at - began >= duration:
            break
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(ports[n % len(ports)])))
        n += 1
    await asyncio.gather(*tasks)
    return statuses


# ---------------------------------------------------------------------------------------------
# One setup.


def run_setup(args, binary, workdir, log, replicas, redis_url):
    scenario = scenario_file(workdir, args.outage)
    mock_port = free_port()
    upstream = f"http://127.0.0.1:{mock_port}"
    config = Path(workdir) / "breakwater.toml"
    config.write_text(
        f'[models.{PRIMARY}]\n[models.{FALLBACK}]\n'
        f'[chains]\ndefault = ["{PRIMARY}", "{FALLBACK}"]\n[catalog]\nrefresh = false\n'
    )
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-fleet")
    env.pop("ANTHROPIC_BASE_URL", None)
    gateways = []
    try:
        for i in range(replicas):
            argv = [binary, "serve", "--listen", "127.0.0.1:0", "--base-url", upstream,
                    "--config", str(config)]
            if redis_url:
                argv += ["--redis", redis_url, "--replica", f"r{i}"]
            gateways.append(start(argv, r"listening on (http://\S+)", log, env))
        ports = [port_of(url) for _, url in gateways]
        if redis_url:
            asyncio.run(joined(ports))
        mock, mock_url = start(
            [binary, "mock", "--listen", f"127.0.0.1:{mock_port}", "--scenario", str(scenario)],
            r"(http://127\.0\.0\.1:\d+)", log,
        )
        try:
            statuses = asyncio.run(traffic(ports, args.rps, args.duration))
            stats = asyncio.run(get_json(mock_port, "/stats"))
            states = asyncio.run(gather_states(ports))
        finally:
            stop(mock)
    finally:
        for process, _ in gateways:
            stop(process)
    wasted = stats["models"].get(PRIMARY, {}).get("by_status", {}).get("529", 0)
    sent = sum(statuses.values())
    lags = [s["fleet"] for s in states if s.get("fleet")]
    return {
        "replicas": replicas,
        "shared": bool(redis_url),
        "wasted": wasted,
        "sent": sent,
        "not_ok": sent - statuses.get(200, 0),
        "lag_p50_ms": [f["lag_p50_ms"] for f in lags if f["lag_p50_ms"] is not None],
        "lag_p99_ms": [f["lag_p99_ms"] for f in lags if f["lag_p99_ms"] is not None],
        "lag_samples": sum(f["lag_samples"] for f in lags),
    }


async def gather_states(ports):
    return [await get_json(p, "/v1/breakwater/state") for p in ports]


def spread(values, fmt="{:.0f}"):
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--binary")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    for name in ("reps", "replicas"):
        if getattr(args, name) < 1:
            sys.exit(f"error: --{name} must be at least 1")
    if args.rps <= 0 or args.duration <= 0 or args.outage <= 0:
        sys.exit("error: --rps, --duration and --outage must be positive")
    if args.duration < OUTAGE_START + args.outage:
        sys.exit(f"error: --duration must cover the outage ({OUTAGE_START} s + --outage)")
    binary = args.binary or str(ROOT / "target/release/breakwater")
    if not args.binary and not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        log_path = Path(workdir) / "fleet.log"
        with open(log_path, "w") as log:
            for rep in range(args.reps):
                for setup in ("one", "shared", "apart"):
                    replicas = 1 if setup == "one" else args.replicas
                    redis = None
                    if setup == "shared":
                        redis, redis_url = start_redis(workdir, log)
                    try:
                        result = run_setup(
                            args, binary, workdir, log, replicas,
                            redis_url if redis else None,
                        )
                    finally:
                        if redis:
                            stop(redis)
                    result.update(rep=rep, setup=setup)
                    runs.append(result)
                    print(
                        f"rep {rep + 1}/{args.reps} {setup:6}: {result['wasted']} 529s, "
                        f"{result['not_ok']} of {result['sent']} not answered 200",
                        file=sys.stderr,
                    )

    def of(setup, key):
        return [r[key] for r in runs if r["setup"] == setup]

    ratios = [
        s["wasted"] / o["wasted"]
        for s, o in zip(
            [r for r in runs if r["setup"] == "shared"], [r for r in runs if r["setup"] == "one"]
        )
        if o["wasted"]
    ]
    shared = [r for r in runs if r["setup"] == "shared"]
    p99s = [max(r["lag_p99_ms"]) for r in shared if r["lag_p99_ms"]]
    p50s = [statistics.median(r["lag_p50_ms"]) for r in shared if r["lag_p50_ms"]]
    print(
        f"\n{args.replicas} replicas, {args.rps:g} rps in total, primary down {args.outage:g} s "
        f"of {args.duration:g} s, {args.reps} repetitions (median, min-max):\n"
    )
    print("| setup | 529s met (wasted attempts) | not answered 200 |")
    print("|---|---|---|")
    print(f"| one replica | {spread(of('one', 'wasted'))} | {spread(of('one', 'not_ok'))} |")
    print(
        f"| {args.replicas} sharing (Redis) | {spread(of('shared', 'wasted'))} | "
        f"{spread(of('shared', 'not_ok'))} |"
    )
    print(
        f"| {args.replicas} apart | {spread(of('apart', 'wasted'))} | "
        f"{spread(of('apart', 'not_ok'))} |"
    )
    print(f"\nshared / one: {spread(ratios, '{:.2f}')}")
    print(
        f"propagation lag: p50 {spread(p50s, '{:.2f}')} ms, p99 {spread(p99s, '{:.2f}')} ms "
        f"({sum(r['lag_samples'] for r in shared)} samples)"
    )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
