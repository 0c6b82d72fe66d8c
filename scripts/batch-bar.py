#!/usr/bin/env python3
"""The batch runner's bar, against a server that is not this project's: a small
Anthropic-compatible server written here in Python (standard library only) that browns out
every model (each keeps 2 concurrent slots; a request beyond them gets 529
overloaded_error), and logs every request it answers.

    cargo build --release
    python3 scripts/batch-bar.py [--items 300] [--kills 4]

It writes a job of ITEMS lines, runs `breakwater batch run` against the server and kills it
with SIGKILL KILLS times at random moments, reading the state file after each kill (the
set of items whose result was stored by then), then runs it to the end, and once more.
It checks: ITEMS unique custom_ids in the output, all succeeded, each answering its own
prompt; no request reached the server for an item after its result had been stored; the
third run sent nothing. Prints what it measured; exits non-zero on any failure.
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOTS = 2
SERVICE_TIME = 0.02


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address):
        super().__init__(address, Handler)
        self.lock = threading.Lock()
        self.busy = {}
        self.log = []  # (time, prompt, status)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length))
        model = body["model"]
        prompt = body["messages"][-1]["content"]
        server = self.server
        with server.lock:
            busy = server.busy.get(model, 0)
            admitted = busy < SLOTS
            if admitted:
                server.busy[model] = busy + 1
        if not admitted:
            self.answer(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            with server.lock:
                server.log.append((time.monotonic(), prompt, 529))
            return
        try:
            time.sleep(SERVICE_TIME * random.uniform(0.5, 1.5))
            message = {
                "id": f"msg_py_{random.getrandbits(48):x}", "type": "message", "role": "assistant",
                "model": model, "content": [{"type": "text", "text": f"python server: {prompt}"}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 5},
            }
            with server.lock:
                server.log.append((time.monotonic(), prompt, 200))
            self.answer(200, message)
        finally:
            with server.lock:
                server.busy[model] -= 1

    def answer(self, status, body):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def stored(state):
    """custom_ids whose result the state file holds now."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key FROM items WHERE state IN ('succeeded', 'errored')")
        return {row[0] for row in rows}
    except sqlite3.OperationalError:
        return set()
    finally:
        db.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary", default=str(ROOT / "target/release/breakwater"))
    options = parser.parse_args()
    random.seed(options.seed)
    server = Server(("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    work = Path(tempfile.mkdtemp(prefix="batch-bar-"))
    with open(work / "in.jsonl", "w") as f:
        for i in range(options.items):
            params = {"model": "claude-sonnet-5-5", "max_tokens": 32,
                      "messages": [{"role": "user", "content": f"item {i}"}]}
            f.write(json.dumps({"custom_id": f"item-{i}", "params": params}) + "\n")
    command = [options.binary, "batch", "run", "in.jsonl", "--out", "out.jsonl",
               "--state", "state.sqlite", "--base-url", url, "--concurrency", "8",
               "--chain", "claude-sonnet-5-5,claude-haiku-5-5",
               "--backoff", "100ms", "--max-backoff", "1s"]
    env = dict(os.environ, ANTHROPIC_API_KEY="bar-key")
    env.pop("ANTHROPIC_BASE_URL", None)
    failures = []
    stored_at = []  # (time, set of ids stored by then)
    for kill in range(options.kills):
        run = subprocess.Popen(command, cwd=work, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.4, 1.2))
        if run.poll() is not None:
            print(f"run {kill + 1} finished before its kill")
            break
        run.send_signal(signal.SIGKILL)
        run.wait()
        killed_at = time.monotonic()
        done = stored(work / "state.sqlite")
        stored_at.append((killed_at, done))
        if (work / "out.jsonl").exists():
            failures.append(f"an output file exists after kill {kill + 1}")
        print(f"kill {kill + 1}: {len(done)} results stored")
    final = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    if final.returncode != 0:
        failures.append(f"the last run failed: {final.stderr}")
    sent_before = len(server.log)
    again = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    if again.returncode != 0 or len(server.log) != sent_before:
        failures.append(f"the finished job sent {len(server.log) - sent_before} request(s) again")

    results = [json.loads(line) for line in open(work / "out.jsonl")]
    ids = [r["custom_id"] for r in results]
    succeeded = sum(r["result"]["type"] == "succeeded" for r in results)
    own = sum(r["result"].get("message", {}).get("content", [{}])[0].get("text") ==
              f"python server: item {r['custom_id'].split('-')[1]}" for r in results)
    if len(results) != options.items or len(set(ids)) != options.items:
        failures.append(f"{len(results)} lines, {len(set(ids))} unique custom_ids")
    if succeeded != options.items or own != options.items:
        failures.append(f"{succeeded} succeeded, {own} answering their own prompt")
    # No request for an item after its result was stored (as read right after each kill).
    late = 0
    for killed_at, done in stored_at:
        late += sum(1 for at, prompt, _ in server.log
                    if at > killed_at and f"item-{prompt.split()[1]}" in done)
    if late:
        failures.append(f"{late} request(s) reached the server for items already stored")
    answered = sum(1 for _, _, status in server.log if status == 200)
    overloaded = sum(1 for _, _, status in server.log if status == 529)
    print(f"{options.items} items, {len(stored_at)} SIGKILLs: {len(results)} lines, "
          f"{len(set(ids))} unique custom_ids, {succeeded} succeeded; the server answered "
          f"{answered} (200) and refused {overloaded} (529); requests after a stored result: "
          f"{late}; sent by the rerun of the finished job: {len(server.log) - sent_before}")
    if failures:
        sys.exit("FAILED:\n" + "\n".join(failures))
    print("ok")


if __name__ == "__main__":
    main()
