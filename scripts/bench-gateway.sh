#!/usr/bin/env bash
# The gateway's own cost: wrk POSTs a small Messages request to an instant upstream
# (`breakwater mock --scenario instant`, scenarios/mock/instant.toml: no service time, no
# capacity limit), straight at it ("direct") and through `breakwater serve` in front of it
# ("gateway"), at 4 and at 64 connections, alternating, several times. Prints the machine,
# then req/s and latency p50/p90/p99 per target and connections (median and range over the
# repetitions), then per repetition the gateway/direct throughput at 64 connections and the
# p50 the gateway adds at 4 connections, with their min / median / max.
#
#     scripts/bench-gateway.sh [--duration 8] [--reps 3] [--stream] [--reference]
#                              [--pin auto|none] [--no-build]
#
#   --duration S  seconds per wrk run (default 8); each target is warmed up for 2 s first
#   --reps N      repetitions of the whole set (default 3); the targets run in turn, each
#                 repetition starting one target later
#   --stream      also measure streamed requests ("stream": true: eight SSE events, sent by
#                 the mock without pauses), in rows and ratios of their own
#   --reference   also measure two proxies with no logic in front of the same upstream, as
#                 reference points for what any proxy costs on this machine: "hyper-proxy"
#                 (examples/bare_proxy.rs: the HTTP stack the gateway is built on, relaying
#                 and nothing else) and "nginx" (a keep-alive proxy_pass, one worker per CPU;
#                 installed with apt-get when missing, as root)
#   --pin auto    (default) wrk runs one thread pinned to the last CPU, so it never takes more
#                 than one core from the servers. With 4 CPUs or more the servers (mock and
#                 gateway) are pinned to the others; with fewer they may use every CPU, as
#                 pinning them to one core of two would halve what they can do
#   --pin none    nothing pinned, wrk with one thread
#   --no-build    use target/release/breakwater as it is (default: cargo build --release)
#
# Installs wrk with apt-get when it is missing (as root). Exits non-zero when a run saw
# errors (a non-2xx answer, a socket error): its figures would not measure the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian installs nginx in /usr/sbin, which a user's PATH often lacks.
PATH="$PATH:/usr/sbin:/sbin"

duration=8
reps=3
stream=false
reference=false
pin=auto
build=true
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="${2:?--duration needs seconds}"; shift 2 ;;
        --reps) reps="${2:?--reps needs a count}"; shift 2 ;;
        --stream) stream=true; shift ;;
        --reference) reference=true; shift ;;
        --pin) pin="${2:?--pin needs auto or none}"; shift 2 ;;
        --no-build) build=false; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || { echo "error: --duration must be whole seconds, got $duration" >&2; exit 2; }
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "error: --reps must be a positive count, got $reps" >&2; exit 2; }
[[ "$pin" = auto || "$pin" = none ]] || { echo "error: --pin must be auto or none, got $pin" >&2; exit 2; }

for tool in curl python3 taskset; do
    command -v "$tool" > /dev/null || { echo "error: $tool is missing" >&2; exit 2; }
done
. scripts/need.sh
need wrk wrk
if $reference; then need nginx-light nginx; fi
if $build; then
    echo "==> cargo build --release"
    cargo build --release --quiet
    if $reference; then cargo build --release --quiet --example bare_proxy; fi
fi
bin="$PWD/target/release/breakwater"
[ -x "$bin" ] || { echo "error: $bin is missing: run cargo build --release" >&2; exit 2; }
bare="$PWD/target/release/examples/bare_proxy"
if $reference && [ ! -x "$bare" ]; then
    echo "error: $bare is missing: run cargo build --release --example bare_proxy" >&2
    exit 2
fi

cpus="$(nproc)"
wrk_pin=()
server_pin=()
if [ "$pin" = auto ]; then
    wrk_pin=(taskset -c "$((cpus - 1))")
    if [ "$cpus" -ge 4 ]; then server_pin=(taskset -c "0-$((cpus - 2))"); fi
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a server (its command line after the name), waits for the address it prints (it
# listens on port 0: a free port) and sets $url to it.
start() {
    local name="$1" log="$work/$1.log"
    shift
    "$@" > "$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do
        if url="$(grep -o 'listening on http://[0-9.:]*' "$log" | grep -o 'http://.*')"; then
            return
        fi
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    echo "error: $name did not start; its output:" >&2
    cat "$log" >&2
    exit 1
}

# Polls until `curl ARGS...` succeeds (an HTTP 2xx), for at most 30 s.
ready() {
    local name="$1"
    shift
    for _ in $(seq 300); do
        curl -sf -o /dev/null --max-time 2 "$@" && return
        sleep 0.1
    done
    echo "error: $name does not answer: curl $*" >&2
    exit 1
}

body() {
    local stream="$1"
    cat << JSON
{"model": "claude-sonnet-5-5", "max_tokens": 1024, "stream": $stream,
 "system": "You are a concise assistant for a customer-support team. Answer in plain prose.",
 "messages": [{"role": "user", "content": "A customer writes: my order 4471 arrived with a cracked lid and I would like a replacement rather than a refund. Draft a two-sentence reply that apologises and confirms the replacement ships within three working days."}]}
JSON
}

# A wrk script POSTing the body in $1, whose done() prints one tab-separated line:
# requests, seconds, p50, p90, p99 (microseconds), non-2xx answers, socket errors.
lua() {
    local body
    body="$(body "$1" | tr -d '\n')"
    cat << LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = "bench"
wrk.body = [[$body]]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT\t%d\t%.3f\t%d\t%d\t%d\t%d\t%d\n", summary.requests,
    summary.duration / 1e6, math.floor(latency:percentile(50)),
    math.floor(latency:percentile(90)), math.floor(latency:percentile(99)), e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
}
lua false > "$work/json.lua"
lua true > "$work/stream.lua"

start mock "${server_pin[@]}" "$bin" mock --listen 127.0.0.1:0 --scenario instant
mock="$url"
ready mock -X POST "$mock/v1/messages" -H 'x-api-key: bench' -H 'content-type: application/json' \
    --data-binary "$(body false)"
start gateway env ANTHROPIC_API_KEY=bench "${server_pin[@]}" "$bin" serve \
    --listen 127.0.0.1:0 --upstream "$mock" --chain claude-sonnet-5-5,claude-haiku-5-5 --grace 1s
gateway="$url"
ready gateway "$gateway/healthz"
ready "gateway's upstream" -X POST "$gateway/v1/messages" -H 'content-type: application/json' \
    --data-binary "$(body false)"
declare -A urls=([direct]="$mock" [gateway]="$gateway")
targets=(direct gateway)
if $reference; then
    start hyper-proxy "${server_pin[@]}" "$bare" "$mock" 127.0.0.1:0
    urls[hyper-proxy]="$url"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    workers="$cpus"
    if [ ${#server_pin[@]} -gt 0 ]; then workers=$((cpus - 1)); fi
    cat > "$work/nginx.conf" << NGINX
worker_processes $workers;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-fastcgi;
  uwsgi_temp_path $work/nginx-uwsgi;
  scgi_temp_path $work/nginx-scgi;
  upstream mock { server ${mock#http://}; keepalive 256; }
  server {
    listen 127.0.0.1:$port;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
    # In the foreground (daemon off) as a child of this script, which stops it with the rest.
    "${server_pin[@]}" nginx -c "$work/nginx.conf" -e "$work/nginx.err" -g 'daemon off;' \
        > "$work/nginx.log" 2>&1 &
    pids+=("$!")
    sleep 0.5
    kill -0 "${pids[-1]}" 2> /dev/null || {
        echo "error: nginx did not start:" >&2
        cat "$work/nginx.log" "$work/nginx.err" >&2 2> /dev/null || true
        exit 1
    }
    urls[nginx]="http://127.0.0.1:$port"
    targets+=(hyper-proxy nginx)
    for target in hyper-proxy nginx; do
        ready "$target" -X POST "${urls[$target]}/v1/messages" -H 'x-api-key: bench' \
            -H 'content-type: application/json' --data-binary "$(body false)"
    done
fi

model="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' || true)"
memory="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
commit="$(git rev-parse --short HEAD 2> /dev/null || echo unknown)"
git diff --quiet HEAD 2> /dev/null || commit="$commit (with uncommitted changes)"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine:  $cpus CPUs ($model), $memory memory, $(uname -sr)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min load average before the runs)"
echo "build:    $("$bin" --version), commit $commit, release"
echo "wrk:      $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), 1 thread, ${duration}s per run, $reps repetitions"
if [ "$pin" = auto ]; then
    echo "pinning:  wrk on CPU $((cpus - 1)); servers on ${server_pin[2]:-every CPU}"
else
    echo "pinning:  none"
fi
echo "upstream: breakwater mock --scenario instant at $mock"
echo "gateway:  breakwater serve --chain claude-sonnet-5-5,claude-haiku-5-5 at $gateway"
if $reference; then
    echo "reference: hyper-proxy (examples/bare_proxy.rs) at ${urls[hyper-proxy]}; $(nginx -v 2>&1 | cut -d' ' -f3) at ${urls[nginx]}"
fi
echo

kinds=(json)
if $stream; then kinds+=(stream); fi
results="$work/results.tsv"
: > "$results"

# One wrk run: kind, target name, URL, connections, seconds; appends to results when $rep is set.
measure() {
    local kind="$1" target="$2" url="$3" connections="$4" seconds="$5" line out="$work/wrk.out"
    if ! "${wrk_pin[@]}" wrk -t1 -c"$connections" -d"${seconds}s" --timeout 5s \
        -s "$work/$kind.lua" "$url/v1/messages" > "$out" 2>&1; then
        echo "error: wrk failed against $url:" >&2
        cat "$out" >&2
        exit 1
    fi
    line="$(grep '^RESULT' "$out" | cut -f2-)" || { echo "error: wrk printed no result:" >&2; cat "$out" >&2; exit 1; }
    if [ -n "$rep" ]; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$kind" "$target" "$connections" "$line" >> "$results"
        awk -F'\t' -v k="$kind" -v t="$target" -v c="$connections" -v r="$rep" '{
            printf "  rep %s  %-6s %-11s %2s conn  %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %d\n",
                r, k, t, c, $1 / $2, $3 / 1000, $5 / 1000, $6 + $7 }' <<< "$line"
    fi
}

rep=""
echo "==> warming up (2 s per target)"
for kind in "${kinds[@]}"; do
    for target in "${targets[@]}"; do measure "$kind" "$target" "${urls[$target]}" 64 2; done
done
for rep in $(seq "$reps"); do
    echo "==> repetition $rep of $reps"
    # Each repetition starts one target later: every target takes every place in the order.
    shift_by=$(((rep - 1) % ${#targets[@]}))
    order=("${targets[@]:$shift_by}" "${targets[@]:0:$shift_by}")
    for kind in "${kinds[@]}"; do
        for connections in 4 64; do
            for target in "${order[@]}"; do
                measure "$kind" "$target" "${urls[$target]}" "$connections" "$duration"
            done
        done
    done
done
echo

python3 - "$results" << 'PY'
import statistics
import sys
from collections import defaultdict

runs = defaultdict(dict)  # (kind, target, connections) -> rep -> figures
for line in open(sys.argv[1]):
    rep, kind, target, conns, requests, seconds, p50, p90, p99, status, socket = line.split("\t")
    runs[(kind, target, int(conns))][int(rep)] = {
        "rps": int(requests) / float(seconds),
        "p50": int(p50) / 1000, "p90": int(p90) / 1000, "p99": int(p99) / 1000,
        "errors": int(status) + int(socket),
    }

def cell(values, fmt):
    values = sorted(values)
    return f"{fmt(statistics.median(values))} ({fmt(values[0])} to {fmt(values[-1])})"

count = lambda v: f"{v:,.0f}"
ms = lambda v: f"{v:.3f}"
print("median (min to max) over repetitions; latencies in ms")
print()
print("| request | target | connections | req/s | p50 | p90 | p99 | errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
order = {"direct": 0, "gateway": 1, "hyper-proxy": 2, "nginx": 3}
for (kind, target, conns), reps in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][2], order.get(kv[0][1], 9))):
    figures = list(reps.values())
    print(f"| {kind} | {target} | {conns} | {cell([f['rps'] for f in figures], count)} | "
          + " | ".join(cell([f[p] for f in figures], ms) for p in ("p50", "p90", "p99"))
          + f" | {sum(f['errors'] for f in figures)} |")
print()

def spread(name, values, fmt):
    listed = " ".join(fmt(v) for v in values)
    print(f"{name}: min {fmt(min(values))}, median {fmt(statistics.median(values))}, "
          f"max {fmt(max(values))}   (per repetition: {listed})")

for kind in sorted({k for k, _, _ in runs}):
    direct64, direct4 = runs[(kind, "direct", 64)], runs[(kind, "direct", 4)]
    for proxy in sorted({t for k, t, _ in runs if k == kind and t != "direct"}, key=order.get):
        proxy64, proxy4 = runs[(kind, proxy, 64)], runs[(kind, proxy, 4)]
        spread(f"{kind}: {proxy}/direct req/s at 64 connections",
               [proxy64[r]["rps"] / direct64[r]["rps"] for r in sorted(direct64)], lambda v: f"{v:.2f}")
        spread(f"{kind}: p50 added by {proxy} at 4 connections (ms)",
               [proxy4[r]["p50"] - direct4[r]["p50"] for r in sorted(direct4)], lambda v: f"{v:.3f}")
errors = sum(f["errors"] for reps in runs.values() for f in reps.values())
if errors:
    print(f"\nwarning: {errors} errors (non-2xx answers or socket errors): these figures are not a measure of the gateway")
    sys.exit(1)
PY
