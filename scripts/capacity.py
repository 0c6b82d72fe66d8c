#!/usr/bin/env python3
"""Capacity bench (issue #17): does breakwater use the capacity and quota a model still has?

Five cases, each run in real time over HTTP: `breakwater mock` plays a scenario from
scenarios/mock/, and `breakwater load` sends it open-loop Poisson traffic through the runtime
(chain claude-sonnet-5-5 -> claude-haiku-5-5; the fallback is healthy in every case).

  a  brownout-residual            20 req/s; the primary keeps 2 of its 40 slots (~300 ms each)
                                  for 20 s: use of residual = what it served in the window /
                                  what 2 slots could have served (2 / 0.3 s x 20 s ~ 133)
  b  utilisation-60               24 req/s at a primary with 20 slots and exponential 500 ms
                                  service: 60% busy on average; counts breaker opens
  c  rate-limited-12              20 req/s at a primary allowing 720/min (12/s), announced in
                                  anthropic-ratelimit-* headers and retry-after
  d  rate-limited-12-no-headers   the same quota, with no rate-limit headers and no retry-after
  e  the same with retry-after    d's scenario with `retry-after = true`: no quota headers, but
                                  429s say when to retry

Per run it prints the primary's share of answers, the case's own figure (use of residual;
served rate against the quota; breaker opens), the share of attempts that met a 429, the
success rate and attempts per request; then, per case, min / median / max over the runs and
PASS or MISS for each target (a target holds when it holds in every run). Run i uses seed
SEED + i for both the arrivals (`load --seed`) and the mock's service times (the scenario's
`seed`, in a temporary copy).

Usage: scripts/capacity.py [--runs N] [--cases a,b,c,d,e] [--quick] [--seed S] [--no-build]
                           [--bin PATH] [--json FILE] [--strict]
  --quick   short runs (brownout 5 s - 15 s, 15-20 s of load per case) to check the setup
Default: 35 s of load per case and run, about 9 minutes for all five cases with --runs 3.
  --strict  exit 1 when a target is missed (default: exit 0 whatever the figures)
Standard library only.
"""

import argparse
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIMARY, FALLBACK = "claude-sonnet-5-5", "claude-haiku-5-5"


class Case:
    def __init__(self, key, scenario, rps, duration, quick_duration, targets, quick_brownout=None,
                 edits=(), label=None):
        self.key = key
        self.scenario = scenario
        self.label = label or scenario
        self.edits = edits  # (regex, replacement) applied to the scenario copy
        self.rps = rps
        self.duration = duration
        self.quick_duration = quick_duration
        self.targets = targets  # (metric, op, bound, label)
        self.quick_brownout = quick_brownout


COMMON = [
    ("success_rate", ">=", 0.999, "success >= 99.9%"),
    ("attempts_per_request", "<=", 1.05, "attempts/request <= 1.05"),
]

CASES = [
    Case(
        "a",
        "brownout-residual",
        rps=20,
        duration=35,
        quick_duration=20,
        quick_brownout=(5, 15),
        targets=[("use_of_residual", ">=", 0.80, "use of residual >= 80%")] + COMMON,
    ),
    Case(
        "b",
        "utilisation-60",
        rps=24,
        duration=35,
        quick_duration=15,
        targets=[("breaker_opens", "<=", 0, "breaker opens = 0")] + COMMON,
    ),
    Case(
        "c",
        "rate-limited-12",
        rps=20,
        duration=35,
        quick_duration=15,
        targets=[
            ("served_share", ">=", 0.90, "served >= 90% of quota"),
            ("share_429", "<", 0.01, "429 share < 1%"),
        ]
        + COMMON,
    ),
    Case(
        "d",
        "rate-limited-12-no-headers",
        rps=20,
        duration=35,
        quick_duration=15,
        targets=[
            ("served_share", ">=", 0.80, "served >= 80% of quota"),
            ("share_429", "<", 0.03, "429 share < 3%"),
        ]
        + COMMON,
    ),
    Case(
        "e",
        "rate-limited-12-no-headers",
        label="rate-limited-12-no-headers+retry-after",
        edits=[(r"(?m)^retry-after = false$", "retry-after = true")],
        rps=20,
        duration=35,
        quick_duration=15,
        targets=[
            ("served_share", ">=", 0.80, "served >= 80% of quota"),
            ("share_429", "<", 0.03, "429 share < 3%"),
        ]
        + COMMON,
    ),
]

# How each metric is shown: (column header, format).
SHOW = {
    "primary_share": ("primary share", lambda v: f"{v * 100:.1f}%"),
    "use_of_residual": ("use of residual", lambda v: f"{v * 100:.1f}%"),
    "served_share": ("served/quota", lambda v: f"{v * 100:.1f}%"),
    "served_rate": ("served/s", lambda v: f"{v:.2f}"),
    "breaker_opens": ("breaker opens", lambda v: f"{v:.0f}"),
    "share_429": ("429 share", lambda v: f"{v * 100:.2f}%"),
    "share_529": ("529 share", lambda v: f"{v * 100:.2f}%"),
    "success_rate": ("success", lambda v: f"{v * 100:.2f}%"),
    "attempts_per_request": ("attempts/req", lambda v: f"{v:.3f}"),
}


def parse_duration(text):
    """Seconds in a humantime duration as the scenarios write them: "300ms", "10s", "2m"."""
    total = 0.0
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for number, unit in re.findall(r"([0-9.]+)\s*(ms|s|m|h)", text):
        total += float(number) * units[unit]
    return total


# ---------------------------------------------------------------------------------------------
# Scenario copies: the seed set, and the brownout moved for --quick.


def scenario_copy(case, seed, quick, tmpdir):
    path = os.path.join(ROOT, "scenarios", "mock", case.scenario + ".toml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r"(?m)^seed = \d+$", f"seed = {seed}", text)
    if n != 1:
        sys.exit(f"{path}: no top-level `seed = N` line to set")
    if quick and case.quick_brownout:
        start, end = case.quick_brownout
        text, n = re.subn(
            r'start = "[^"]*", end = "[^"]*"', f'start = "{start}s", end = "{end}s"', text
        )
        if n != 1:
            sys.exit(f"{path}: no brownout window to shorten")
    for pattern, replacement in case.edits:
        text, n = re.subn(pattern, replacement, text)
        if n != 1:
            sys.exit(f"{path}: no line matching {pattern} to edit")
    out = os.path.join(tmpdir, f"{case.key}-{case.scenario}-{seed}.toml")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return out, tomllib.loads(text)


def residual_capacity(scenario):
    """What the primary's brownout leaves it: (slots kept, mean service s, window s, answers)."""
    model = scenario["models"][PRIMARY]
    slots = model.get("slots", 8)
    mean = parse_duration(model.get("service-time", "200ms"))
    brownout = model["brownouts"][0]
    kept = math.ceil(slots * brownout["fraction"])
    window = parse_duration(brownout["end"]) - parse_duration(brownout.get("start", "0s"))
    return kept, mean, window, kept / mean * window


def quota_per_second(scenario):
    model = scenario["models"][PRIMARY]
    if "rpm" in model:
        return model["rpm"] / 60.0
    return float(model["rps"])


# ---------------------------------------------------------------------------------------------
# One run: a mock, a load against it, the two reports.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def start_mock(binary, scenario_path, log):
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [binary, "mock", "--listen", f"127.0.0.1:{port}", "--scenario", scenario_path],
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                get_json(base + "/stats", timeout=0.5)
                return proc, base
            except OSError:
                time.sleep(0.05)
        stop(proc)
    sys.exit(f"cannot start the mock (see {log.name})")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(binary, case, seed, quick, tmpdir):
    scenario_path, scenario = scenario_copy(case, seed, quick, tmpdir)
    duration = case.quick_duration if quick else case.duration
    log_path = os.path.join(tmpdir, f"{case.key}-{case.scenario}-{seed}.log")
    with open(log_path, "w", encoding="utf-8") as log:
        mock, base = start_mock(binary, scenario_path, log)
        try:
            load = subprocess.run(
                [binary, "load", "--base-url", base, "--chain", f"{PRIMARY},{FALLBACK}",
                 "--rps", str(case.rps), "--duration", f"{duration}s", "--seed", str(seed),
                 "--json"],
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "ANTHROPIC_API_KEY": "capacity-bench"},
                text=True,
                check=False,
            )
            stats = get_json(base + "/stats")
        finally:
            stop(mock)
    if load.returncode != 0:
        sys.exit(f"breakwater load failed ({load.returncode}); see {log_path}")
    report = json.loads(load.stdout)
    return measure(case, scenario, duration, report, stats)


def measure(case, scenario, duration, report, stats):
    """The figures of one run, from the load report (client side) and GET /stats (mock)."""
    attempts = report["attempts"]
    outcomes = {}
    for by_outcome in report["attempts_by_model"].values():
        for outcome, n in by_outcome.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    primary = stats["models"].get(PRIMARY, {})
    opens = [t for t in report["breaker_transitions"] if t["to"] == "open"]
    m = {
        "requests": report["requests"],
        "primary_answers": report["answered_by"].get(PRIMARY, 0),
        "primary_share": ratio(report["answered_by"].get(PRIMARY, 0), report["succeeded"]),
        "breaker_opens": len(opens),
        "breaker_opens_primary": sum(1 for t in opens if t["model"] == PRIMARY),
        "breaker_transitions": [
            f"{t['at_ms'] / 1000:.1f}s {t['model']} {t['from']}->{t['to']}"
            for t in report["breaker_transitions"]
        ],
        "share_429": ratio(outcomes.get("429", 0), attempts),
        "share_529": ratio(outcomes.get("529", 0), attempts),
        "success_rate": report["success_rate"],
        "attempts_per_request": report["attempts_per_request"],
        "errors": report["errors"],
        "client_429": outcomes.get("429", 0),
        "client_attempts": attempts,
        "mock_429": sum(s["by_status"].get("429", 0) for s in stats["models"].values()),
        "mock_requests": sum(s["requests"] for s in stats["models"].values()),
    }
    if case.key == "a":
        kept, mean, window, could = residual_capacity(scenario)
        m["residual_answers"] = primary.get("admitted_in_brownout", 0)
        m["residual_could"] = could
        m["use_of_residual"] = m["residual_answers"] / could
    if case.key in ("c", "d", "e"):
        quota = quota_per_second(scenario)
        m["served_rate"] = m["primary_answers"] / duration
        m["served_share"] = m["served_rate"] / quota
    return m


def ratio(part, whole):
    return part / whole if whole else 0.0


# ---------------------------------------------------------------------------------------------
# Printing.


def metrics_of(case):
    names = ["primary_share"]
    names += {"a": ["use_of_residual"], "b": []}.get(case.key, ["served_rate", "served_share"])
    names += ["breaker_opens", "share_429", "share_529", "success_rate", "attempts_per_request"]
    return names


def run_line(case, seed, m):
    parts = [f"  seed {seed:>3}"]
    for name in metrics_of(case):
        parts.append(f"{SHOW[name][0]} {SHOW[name][1](m[name])}")
    line = " | ".join(parts)
    if case.key == "a":
        line += f"  ({m['residual_answers']} of {m['residual_could']:.0f} in the window)"
    if m["errors"]:
        line += f"  errors {m['errors']}"
    if m["breaker_transitions"]:
        line += "\n             breaker: " + ", ".join(m["breaker_transitions"])
    if (m["mock_429"], m["mock_requests"]) != (m["client_429"], m["client_attempts"]):
        line += (f"  (the mock saw {m['mock_429']} 429s in {m['mock_requests']} attempts, "
                 f"the client {m['client_429']} in {m['client_attempts']})")
    return line


def holds(value, op, bound):
    return {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]


def summary(results, cases):
    rows, verdicts = [], []
    for case in cases:
        runs = results[case.key]
        for name in metrics_of(case):
            values = [m[name] for m in runs]
            show = SHOW[name][1]
            target = next((t for t in case.targets if t[0] == name), None)
            verdict = ""
            if target:
                ok = all(holds(v, target[1], target[2]) for v in values)
                verdict = f"{'PASS' if ok else 'MISS'} ({target[3]})"
                verdicts.append((case.key, target[3], ok))
            rows.append((f"{case.key} {case.label}", SHOW[name][0], show(min(values)),
                         show(statistics.median(values)), show(max(values)), verdict))
    header = ("case", "metric", "min", "median", "max", "target")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    last = None
    for r in rows:
        shown = r if r[0] != last else ("",) + r[1:]
        last = r[0]
        print(line(shown))
    return verdicts


def describe(cases, quick):
    print("Formulas:")
    keys = {case.key for case in cases}
    if keys & {"c", "d", "e"}:
        print("  c, d, e  served rate = primary answers / load duration; served/quota "
              "= served rate / (rpm / 60); the bucket starts full, which can add up to one "
              "second's worth over the run")
    for case in cases:
        if case.key == "a":
            print("  a  use of residual = requests the mock admitted to the primary while its "
                  "brownout was active (GET /stats admitted_in_brownout)")
            print("                      / (slots kept / mean service time x window), "
                  "slots kept = ceil(slots x fraction)")
    print("  429 share = attempts answered 429 / all attempts (both models; the load report's "
          "attempts_by_model)")
    print("  primary share = answers by the primary / answered requests; breaker opens = "
          "transitions to open, any model (times from the start of the load)")
    if quick:
        print("  (--quick: shorter runs, brownout 5 s - 15 s; not the figures to quote)")


# ---------------------------------------------------------------------------------------------


def load_average():
    """The 1, 5 and 15 minute load averages: real-time figures depend on what else runs."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(no_build):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "breakwater")
    if not no_build:
        print("building: cargo build --release --bin breakwater", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "--bin", "breakwater"], cwd=ROOT,
                       check=True)
    if not os.path.exists(binary):
        sys.exit(f"no binary at {binary}: build it, or give --bin")
    return binary


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default="a,b,c,d,e")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first run (default 1)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bin", help="the breakwater binary (default: target/release/breakwater)")
    ap.add_argument("--json", help="also write every run's figures to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    keys = [k.strip() for k in args.cases.split(",") if k.strip()]
    cases = [c for c in CASES if c.key in keys]
    if not cases or args.runs < 1:
        ap.error("give --runs >= 1 and --cases from a,b,c,d,e")
    binary = args.bin or build(args.no_build)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    print(f"capacity bench: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, commit {commit or '?'}, "
          f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"load average {load_average()}")
    print(f"runs {args.runs}, seeds {args.seed}..{args.seed + args.runs - 1}"
          f"{', quick' if args.quick else ''}; chain {PRIMARY} -> {FALLBACK}")
    results = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmpdir:
        for case in cases:
            duration = case.quick_duration if args.quick else case.duration
            print(f"\n{case.key} {case.label}: {case.rps} req/s for {duration} s")
            results[case.key] = []
            for i in range(args.runs):
                seed = args.seed + i
                m = one_run(binary, case, seed, args.quick, tmpdir)
                m["seed"] = seed
                results[case.key].append(m)
                print(run_line(case, seed, m), flush=True)
    print(f"\nsummary ({args.runs} runs per case, {time.monotonic() - started:.0f} s in all, "
          f"load average now {load_average()})\n")
    verdicts = summary(results, cases)
    print()
    describe(cases, args.quick)
    missed = [v for v in verdicts if not v[2]]
    print(f"\ntargets: {len(verdicts) - len(missed)} of {len(verdicts)} hold in every run")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"runs": args.runs, "quick": args.quick, "results": results}, f, indent=1)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
