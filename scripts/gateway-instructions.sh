#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by valgrind's callgrind: a small
# non-streamed Messages request over one keep-alive connection, to an instant mock
# (`breakwater mock --scenario instant`), through `breakwater serve` (the default chain), and
# through examples/bare_proxy.rs (hyper's server and client relaying, no logic) for reference.
# Each is counted for N and for N + 2000 requests; the difference over 2000 is the cost of one
# request, start-up and shutdown cancelled out. Deterministic up to timers and scheduling
# (a few percent from run to run), unlike wall-clock figures.
#
#     scripts/gateway-instructions.sh [--requests 300] [--no-build]
#
# Installs valgrind with apt-get when it is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

requests=300
build=true
while [ $# -gt 0 ]; do
    case "$1" in
        --requests) requests="${2:?--requests needs a count}"; shift 2 ;;
        --no-build) build=false; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$requests" =~ ^[1-9][0-9]*$ ]] || { echo "error: --requests must be a positive count, got $requests" >&2; exit 2; }
. scripts/need.sh
need valgrind valgrind
if $build; then
    echo "==> cargo build --release (and examples/bare_proxy.rs)"
    cargo build --release --quiet
    cargo build --release --quiet --example bare_proxy
fi
bin="$PWD/target/release/breakwater"
bare="$PWD/target/release/examples/bare_proxy"
for file in "$bin" "$bare"; do
    [ -x "$file" ] || { echo "error: $file is missing: run without --no-build" >&2; exit 2; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2> /dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits for "listening on http://..." in log $1 and prints the URL.
listening() {
    for _ in $(seq 600); do
        if grep -o 'listening on http://[0-9.:]*' "$1" | grep -o 'http://.*'; then return; fi
        sleep 0.1
    done
    echo "error: nothing listening; its output:" >&2
    cat "$1" >&2
    exit 1
}

"$bin" mock --listen 127.0.0.1:0 --scenario instant > "$work/mock.log" 2>&1 &
pids+=("$!")
disown "$!"
mock="$(listening "$work/mock.log")"

# Total instructions of proxy $1 ("gateway" or "bare") serving $2 requests, into $total.
count() {
    local kind="$1" n="$2" out="$work/$1-$2" pid url
    if [ "$kind" = gateway ]; then
        ANTHROPIC_API_KEY=bench valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$bin" serve \
            --listen 127.0.0.1:0 --upstream "$mock" --chain claude-sonnet-5-5,claude-haiku-5-5 \
            > "$out.log" 2>&1 &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$bare" "$mock" 127.0.0.1:0 \
            > "$out.log" 2>&1 &
    fi
    pid=$!
    pids+=("$pid")
    disown "$pid"
    url="$(listening "$out.log")"
    python3 - "$url" "$n" << 'PY'
import http.client, sys, urllib.parse
url, n = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
body = (b'{"model": "claude-sonnet-5-5", "max_tokens": 1024, "stream": false, "system": "You are a'
        b' concise assistant.", "messages": [{"role": "user", "content": "A customer writes: my'
        b' order 4471 arrived with a cracked lid. Draft a two-sentence reply."}]}')
headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "bench"}
connection = http.client.HTTPConnection(url.hostname, url.port)
for _ in range(n):
    connection.request("POST", "/v1/messages", body, headers)
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        sys.exit(f"error: answer {response.status}: {answer[:300]!r}")
PY
    # A dump of the counts so far (the process is then killed: no shutdown in the figure).
    callgrind_control --dump "$pid" > "$out.dump" 2>&1 || {
        echo "error: callgrind_control --dump failed for $kind:" >&2
        cat "$out.dump" >&2
        exit 1
    }
    for _ in $(seq 100); do
        compgen -G "$out.cg.*" > /dev/null && break
        sleep 0.1
    done
    sleep 0.5
    kill -9 "$pid" 2> /dev/null || true
    compgen -G "$out.cg.*" > /dev/null || { echo "error: callgrind wrote no dump for $kind" >&2; exit 1; }
    total="$(awk '/^(summary|totals):/ { print $2; exit }' "$out".cg.*)"
    [ -n "$total" ] || { echo "error: callgrind wrote no totals for $kind" >&2; exit 1; }
}

echo "machine: $(nproc) CPUs, $(uname -sr); $("$bin" --version), commit $(git rev-parse --short HEAD 2> /dev/null || echo unknown)"
for kind in gateway bare; do
    count "$kind" "$requests"
    small="$total"
    count "$kind" "$((requests + 2000))"
    large="$total"
    name="$kind"
    if [ "$kind" = bare ]; then name="bare_proxy"; fi
    echo "$name: $(((large - small) / 2000)) instructions per request"
done
