"""What the measuring scripts share: starting breakwater's binaries (and waiting for the
address they print), stopping them, and a free loopback port. Standard library only."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(argv, pattern, log, env=None):
    """Starts a binary (its stderr to `log`, a file or subprocess.DEVNULL) and returns
    (process, url) once a line of its stdout matches `pattern`, whose group 1 is the url."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT
    )
    found = {}

    def read():
        for line in process.stdout:
            match = re.search(pattern, line)
            if match and "url" not in found:
                found["url"] = match.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while "url" not in found:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            where = f" (see {log.name})" if hasattr(log, "name") else ""
            sys.exit(f"error: {' '.join(str(a) for a in argv[:2])} did not start{where}")
        time.sleep(0.02)
    return process, found["url"]


def stop(process):
    """SIGTERM, then SIGKILL after 40 s; returns the exit code (None if it had to be killed)."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
