#!/usr/bin/env bash
# The batch runner on a large input: 100,000 lines (about 34 MB) against `breakwater mock`
# with two fast models, --concurrency 64, timed by /usr/bin/time -v (wall time and peak RSS).
#     cargo build --release && scripts/batch-100k.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/target/release/breakwater"
lines="${1:-100000}"
work="$(mktemp -d)"
trap 'kill "${mock:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$lines" > "$work/in.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    params = {"model": "a", "max_tokens": 32,
              "messages": [{"role": "user", "content": f"prompt number {i} " + "x" * 200}]}
    print(json.dumps({"custom_id": f"item-{i}", "params": params}))
PY
cat > "$work/fast.toml" <<'TOML'
[models.a]
slots = 256
service-time = "2ms"
[models.b]
slots = 256
service-time = "2ms"
TOML
"$bin" mock --listen 127.0.0.1:0 --scenario "$work/fast.toml" > "$work/mock.log" 2>&1 &
mock=$!
for _ in $(seq 100); do grep -q "listening on" "$work/mock.log" && break; sleep 0.05; done
url="$(grep -o 'http://[0-9.:]*' "$work/mock.log" | head -1)"
echo "$(wc -c < "$work/in.jsonl") bytes, $lines lines; mock at $url"
ANTHROPIC_API_KEY=bench /usr/bin/time -v "$bin" batch run "$work/in.jsonl" --out "$work/out.jsonl" \
    --base-url "$url" --chain a,b --concurrency 64 2> "$work/time.log" || { cat "$work/time.log"; exit 1; }
tr '\r' '\n' < "$work/time.log" | grep -E "done:|Elapsed|Maximum resident"
echo "output lines: $(wc -l < "$work/out.jsonl")"
