#!/usr/bin/env python3
"""Soak: `breakwater serve` in front of a separate `breakwater mock`, real-time traffic for
--duration seconds, and whether the gateway's resident memory, open descriptors and
outstanding requests stay flat.

    scripts/soak.py [--duration 600] [--rps 30] [--sample 5] [--csv soak.csv] [--no-build]

The gateway serves the chain claude-sonnet-5-5 -> claude-haiku-5-5. The mock's script (written
for the run) repeats a cycle of min(200 s, duration): a brownout (the primary keeps 5% of its
slots) from 30% of the cycle for min(30 s, 20% of it), then flapping (the primary fully
overloaded for 3 s, healthy for 3 s) from 60% of the cycle for min(60 s, 30% of it). On top:
1% of the primary's streams end in an `overloaded_error` event before any content.

Traffic, all over raw HTTP/1.1 from one asyncio loop: Poisson arrivals at --rps, half streamed,
each read to the end and checked (a whole message, or a stream with `message_stop`); and
abandoning clients at --abandon-rps, half closing the socket while they wait for the answer,
half after the first bytes of a stream.

Every --sample seconds: the gateway's VmRSS, its open fds, `outstanding` and the per-model
in-flight + queued sums from /v1/breakwater/state, and the client tallies. After the traffic
stops and the last client has its answer: how long until nothing is outstanding, and the fds
then (sockets to the mock counted apart: the upstream pool keeps idle connections).

Verdict, exit code 1 when any fails:
  rss          mean VmRSS of the second half of the run (after --warmup) at most --rss-tolerance
               (default 10%) above the first half's mean
  outstanding  0 outstanding and 0 attempts in flight or queued within --settle s (default 10)
  fds          after settling, the fds that are not sockets to the mock at most 2 above the
               count before traffic
`--duration 60` is a quick check of the outstanding and fds verdicts; its RSS verdict mostly
sees the allocator warming up (in 10-minute runs VmRSS rose for the first one to three minutes,
then fell back), so judge memory on a full run.
Standard library only. Builds the release binary unless --no-build (or --binary is given).
"""

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, start, stop

PRIMARY, FALLBACK = "claude-sonnet-5-5", "claude-haiku-5-5"
CLIENT_TIMEOUT = 90.0


def scenario(duration):
    """The mock's script: brownouts and flapping on the primary, repeated over the run."""
    cycle = min(200.0, duration)
    horizon = duration + 120.0
    brownouts, t = [], 0.0
    while t < horizon:
        start = t + 0.3 * cycle
        brownouts.append((start, start + min(30.0, 0.2 * cycle), 0.05))
        flap, flap_end = t + 0.6 * cycle, t + 0.6 * cycle + min(60.0, 0.3 * cycle)
        while flap < flap_end:
            brownouts.append((flap, min(flap + 3.0, flap_end), 0.0))
            flap += 6.0
        t += cycle
    windows = ", ".join(
        f'{{ start = "{int(s * 1000)}ms", end = "{int(e * 1000)}ms", fraction = {f} }}'
        for s, e, f in brownouts
    )
    text = f"""
description = "soak: the primary browns out and flaps on a {cycle:.0f}s cycle; the fallback is healthy"
seed = 16
[models.{PRIMARY}]
slots = 32
service-time = "300ms"
distribution = "exponential"
stream-pause = "30ms"
brownouts = [{windows}]
faults = [{{ kind = "stream-error", probability = 0.01, after-events = 2, error-type = "overloaded_error" }}]
[models.{FALLBACK}]
slots = 32
service-time = "150ms"
distribution = "exponential"
stream-pause = "30ms"
"""
    return text, cycle


# ---------------------------------------------------------------------------------------------
# The gateway seen from /proc.


def status_kib(pid, *names):
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name = line.split(":")[0]
            if name in names:
                found[name] = int(line.split()[1])
    return [found.get(name, 0) for name in names]


def rss_kib(pid):
    return status_kib(pid, "VmRSS")[0]


def socket_ports():
    """inode -> (local port, remote port), for every TCP socket on the machine."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local = int(cols[1].rsplit(":", 1)[1], 16)
                    remote = int(cols[2].rsplit(":", 1)[1], 16)
                    ports[cols[9]] = (local, remote)
        except FileNotFoundError:
            pass
    return ports


def fds(pid, mock_port):
    """(all open fds, sockets connected to the mock)."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    ports = socket_ports()
    upstream = 0
    for link in links:
        if link.startswith("socket:["):
            local_remote = ports.get(link[8:-1])
            if local_remote and local_remote[1] == mock_port:
                upstream += 1
    return len(links), upstream


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1.1 clients.


def request_bytes(port, path, body=None):
    method = "POST" if body is not None else "GET"
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n"
        f"anthropic-version: 2023-06-01\r\n"
    )
    if body is None:
        return (head + "\r\n").encode()
    head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def message_body(n, stream):
    return json.dumps(
        {
            "model": PRIMARY,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": f"soak request {n}: say something"}],
        }
    ).encode()


def dechunk(body):
    out, i = bytearray(), 0
    while True:
        j = body.find(b"\r\n", i)
        if j < 0:
            return bytes(out), False
        size = int(body[i:j].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out), True
        out += body[j + 2 : j + 2 + size]
        i = j + 2 + size + 2


def split_response(raw):
    """(status, headers text, body) of a whole response read to EOF."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = "\n".join(lines[1:]).lower()
    if "transfer-encoding: chunked" in headers:
        body, _ = dechunk(body)
    return status, body


async def fetch(port, data, timeout):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=timeout)
    finally:
        writer.close()


async def state(port):
    raw = await fetch(port, request_bytes(port, "/v1/breakwater/state"), 10)
    status, body = split_response(raw)
    if status != 200:
        raise OSError(f"state answered {status}")
    return json.loads(body)


class Tally:
    def __init__(self):
        self.counts = {}
        self.active = 0

    def add(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def get(self, key):
        return self.counts.get(key, 0)

    def answered(self):
        return self.get("answered whole") + self.get("answered stream")

    def failed(self):
        return sum(v for k, v in self.counts.items() if k.startswith("failed"))


async def client(port, n, stream, tally):
    tally.active += 1
    try:
        raw = await fetch(port, request_bytes(port, "/v1/messages", message_body(n, stream)),
                          CLIENT_TIMEOUT)
        status, body = split_response(raw)
        if status != 200:
            tally.add(f"failed {status}")
        elif stream:
            whole = b"event: message_stop" in body and b"event: error" not in body
            tally.add("answered stream" if whole else "failed stream cut")
        else:
            whole = b'"content"' in body and b'"type":"message"' in body.replace(b" ", b"")
            tally.add("answered whole" if whole else "failed malformed")
    except asyncio.TimeoutError:
        tally.add("failed client timeout")
    except OSError as error:
        tally.add(f"failed {type(error).__name__}")
    finally:
        tally.active -= 1


async def abandon(port, n, mid_stream, tally):
    """A caller that leaves: closes the socket while waiting, or after a stream's first bytes."""
    tally.active += 1
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes(port, "/v1/messages", message_body(n, mid_stream)))
        await writer.drain()
        if mid_stream:
            seen = b""
            while b"event: " not in seen.partition(b"\r\n\r\n")[2]:
                chunk = await asyncio.wait_for(reader.read(4096), timeout=CLIENT_TIMEOUT)
                if not chunk:
                    break
                seen += chunk
            tally.add("abandoned mid-stream")
        else:
            try:
                got = await asyncio.wait_for(reader.read(1), timeout=random.uniform(0.01, 0.25))
                tally.add("abandoned too late" if got else "abandoned mid-wait")
            except asyncio.TimeoutError:
                tally.add("abandoned mid-wait")
        writer.transport.abort()
    except (OSError, asyncio.TimeoutError):
        tally.add("abandoned (error)")
    finally:
        tally.active -= 1


async def arrivals(rate, until, spawn):
    n, tasks = 0, set()
    while time.monotonic() < until:
        await asyncio.sleep(random.expovariate(rate))
        n += 1
        task = asyncio.ensure_future(spawn(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)


# ---------------------------------------------------------------------------------------------
# The run.


async def sample_once(pid, port, mock_port, began, tally):
    snap = await state(port)
    total, upstream = fds(pid, mock_port)
    return {
        "t": round(time.monotonic() - began, 1),
        "rss_kib": rss_kib(pid),
        "fds": total,
        "upstream_fds": upstream,
        "outstanding": snap["outstanding"],
        "attempts": sum(m["in_flight"] + m["queued"] for m in snap["models"]),
        "clients": tally.active,
        "answered": tally.answered(),
        "failed": tally.failed(),
        "load1": float(open("/proc/loadavg").read().split()[0]),
    }


async def drive(args, pid, port, mock_port, tally):
    baseline = await sample_once(pid, port, mock_port, time.monotonic(), tally)
    began = time.monotonic()
    until = began + args.duration
    samples = []
    print("     t  rss MiB  fds (mock)  outstanding  attempts  clients  answered  failed",
          flush=True)

    async def sampler():
        while True:
            row = await sample_once(pid, port, mock_port, began, tally)
            samples.append(row)
            print(f"{row['t']:6.0f}  {row['rss_kib'] / 1024:7.1f}  {row['fds']:4d} "
                  f"({row['upstream_fds']:3d})  {row['outstanding']:11d}  {row['attempts']:8d}  "
                  f"{row['clients']:7d}  {row['answered']:8d}  {row['failed']:6d}", flush=True)
            await asyncio.sleep(args.sample)

    watching = asyncio.ensure_future(sampler())
    whole = arrivals(args.rps, until, lambda n: client(port, n, n % 2 == 0, tally))
    leaving = arrivals(args.abandon_rps, until, lambda n: abandon(port, n, n % 2 == 0, tally))
    await asyncio.gather(whole, leaving)
    drained = time.monotonic()
    watching.cancel()
    settled_after, last = None, None
    while time.monotonic() - drained < args.settle:
        last = await sample_once(pid, port, mock_port, began, tally)
        if last["outstanding"] == 0 and last["attempts"] == 0:
            settled_after = time.monotonic() - drained
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)
    end = await sample_once(pid, port, mock_port, began, tally)
    end["anon_file"] = status_kib(pid, "RssAnon", "RssFile")
    if args.linger > 0:
        await asyncio.sleep(args.linger)
        end["lingered"] = await sample_once(pid, port, mock_port, began, tally)
        end["lingered"]["anon_file"] = status_kib(pid, "RssAnon", "RssFile")
    return baseline, samples, drained - until, settled_after, last, end


def mean(values):
    return sum(values) / len(values) if values else 0.0


def slope_per_min(points):
    """Least-squares slope of (t, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    mt, mv = mean([p[0] for p in points]), mean([p[1] for p in points])
    den = sum((t - mt) ** 2 for t, _ in points)
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def report(args, baseline, samples, tail, settled_after, last, end, tally, log_path):
    warm = [s for s in samples if s["t"] >= args.warmup]
    half = len(warm) // 2
    first, second = warm[:half], warm[half:]
    rss_first, rss_second = mean([s["rss_kib"] for s in first]), mean([s["rss_kib"] for s in second])
    growth = (rss_second - rss_first) / rss_first if rss_first else 0.0
    slope = slope_per_min([(s["t"], s["rss_kib"] / 1024) for s in warm])
    mib = lambda kib: kib / 1024  # noqa: E731
    rss_all = [s["rss_kib"] for s in samples]
    fd_all = [s["fds"] for s in samples]
    answered, failed = tally.answered(), tally.failed()
    rate = 100.0 * answered / (answered + failed) if answered + failed else 0.0
    fd_other = end["fds"] - end["upstream_fds"]
    with open(log_path) as f:
        panics = sum("panic" in line for line in f)
    verdicts = {
        "rss": growth <= args.rss_tolerance,
        "outstanding": settled_after is not None,
        "fds": fd_other <= baseline["fds"] + 2,
    }
    print()
    print(f"duration {args.duration:.0f}s, {len(samples)} samples every {args.sample:.0f}s; "
          f"the last clients finished {tail:.1f}s after the traffic stopped")
    print(f"rss MiB: start {mib(baseline['rss_kib']):.1f}, first sample {mib(rss_all[0]):.1f}, "
          f"end {mib(end['rss_kib']):.1f}, max {mib(max(rss_all)):.1f}; mean after "
          f"{args.warmup:.0f}s warm-up: first half {mib(rss_first):.1f}, second half "
          f"{mib(rss_second):.1f} ({100 * growth:+.1f}%, tolerance "
          f"{100 * args.rss_tolerance:.0f}%); slope {slope:+.3f} MiB/min; at the end "
          f"{mib(end['anon_file'][0]):.1f} anonymous, {mib(end['anon_file'][1]):.1f} file-backed")
    print(f"fds: before traffic {baseline['fds']}, max {max(fd_all)}, after settling "
          f"{end['fds']} of which {end['upstream_fds']} sockets to the mock (idle pool)")
    if "lingered" in end:
        idle = end["lingered"]
        print(f"after {args.linger:.0f}s more without traffic: fds {idle['fds']} of which "
              f"{idle['upstream_fds']} to the mock, rss {mib(idle['rss_kib']):.1f} MiB "
              f"({mib(idle['anon_file'][0]):.1f} anonymous, "
              f"{mib(idle['anon_file'][1]):.1f} file-backed)")
    if settled_after is None:
        print(f"outstanding: NOT back to 0 within {args.settle:.0f}s: outstanding "
              f"{last['outstanding']}, attempts in flight or queued {last['attempts']}")
    else:
        print(f"outstanding: max {max(s['outstanding'] for s in samples)} during, "
              f"back to 0 (attempts too) {settled_after:.2f}s after the last client finished")
    print(f"requests: {answered + failed} checked, {answered} answered ({rate:.2f}%), "
          f"{failed} failed; abandoned {sum(v for k, v in tally.counts.items() if k.startswith('abandoned'))}")
    for key in sorted(tally.counts):
        print(f"  {key}: {tally.counts[key]}")
    loads = [s["load1"] for s in samples]
    print(f"machine load (1-min average, {os.cpu_count()} cpus): mean {mean(loads):.1f}, "
          f"max {max(loads):.1f}")
    print(f"gateway log lines naming a panic: {panics} ({log_path})")
    for name, ok in verdicts.items():
        print(f"verdict {name}: {'flat' if ok else 'NOT FLAT'}")
    return all(verdicts.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--rps", type=float, default=30, help="checked requests per second")
    parser.add_argument("--abandon-rps", type=float, default=4, help="abandoning callers per second")
    parser.add_argument("--sample", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds left out of the RSS halves (default min(60, duration/10))")
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--settle", type=float, default=10)
    parser.add_argument("--linger", type=float, default=0,
                        help="then wait this long idle and look at fds and rss once more "
                             "(the upstream pool drops idle connections after 90 s)")
    parser.add_argument("--csv", help="write the samples here")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--binary", help="default: target/release/breakwater, built first")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = min(60.0, args.duration / 10)
    random.seed(args.seed)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = args.binary
    if binary is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        binary = str(target / "release" / "breakwater")
        if not args.no_build:
            subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if not os.path.exists(binary):
        sys.exit(f"error: {binary} not found: run `cargo build --release` first")

    work = Path(tempfile.mkdtemp(prefix="breakwater-soak-"))
    text, cycle = scenario(args.duration)
    (work / "scenario.toml").write_text(text)
    mock_log = open(work / "mock.log", "w")
    gateway_log = open(work / "gateway.log", "w")
    mock, mock_url = start([binary, "mock", "--listen", "127.0.0.1:0", "--scenario",
                            str(work / "scenario.toml")], r"listening on (http://\S+)", mock_log)
    env = dict(os.environ, ANTHROPIC_API_KEY="soak", RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    gateway, url = start([binary, "serve", "--listen", "127.0.0.1:0", "--base-url", mock_url,
                          "--chain", f"{PRIMARY},{FALLBACK}", "--grace", "5s"],
                         r"listening on (http://\S+)", gateway_log, env)
    port, mock_port = int(url.rsplit(":", 1)[1]), int(mock_url.rsplit(":", 1)[1])
    print(f"gateway {url} (pid {gateway.pid}) -> mock {mock_url}; cycle {cycle:.0f}s; "
          f"{args.rps} rps checked, {args.abandon_rps} rps abandoning; files in {work}", flush=True)
    try:
        tally = Tally()
        baseline, samples, tail, settled_after, last, end = asyncio.run(
            drive(args, gateway.pid, port, mock_port, tally))
        if args.csv:
            with open(args.csv, "w") as f:
                f.write(",".join(samples[0]) + "\n")
                for row in samples:
                    f.write(",".join(str(v) for v in row.values()) + "\n")
        flat = report(args, baseline, samples, tail, settled_after, last, end, tally,
                      gateway_log.name)
    finally:
        code = stop(gateway)
        stop(mock)
    print(f"gateway exit code after SIGTERM: {code}")
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
