"""What the Python tests share: a breakwater subprocess as a context manager (`Server`), a
watchdog over the whole run (`start_watchdog`), the environment a breakwater process is given
(`clean_env`), running every case and reporting each failure (`check`, `conclude`), and the
credentials bedrock_scenario.toml accepts.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

# bedrock_scenario.toml's credentials: an access key pair for SigV4, and a Bedrock API key.
BEDROCK_KEY_ID = "AKIDEXAMPLE"
BEDROCK_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
BEDROCK_API_KEY = "bedrock-api-key-for-tests"
# The Bedrock mock's x-amzn-requestid: a UUID made of its request number.
AMZN_REQUEST_ID = re.compile(r"^00000000-0000-4000-8000-[0-9a-f]{12}$")

START_TIMEOUT_S = 60  # for a server to print its address
STOP_TIMEOUT_S = 15  # for a server to exit after its stop signal


class Server:
    """A breakwater subprocess (`mock` or `serve`) listening on a port it chose itself. As a
    context manager it is stopped on every way out (its stop signal, then SIGKILL), and a
    server that exits non-zero fails the run."""

    def __init__(self, name, args, stop_signal, env=None):
        self.name, self.args, self.stop_signal, self.env = name, args, stop_signal, env
        self.process, self.url, self.output = None, None, []

    def __enter__(self):
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            self._wait_for_address()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind, error, traceback):
        code = self.stop()
        if kind is None and code != 0:
            raise AssertionError(f"{self.name} exited with {code}:\n{self.log()}")
        return False

    def _wait_for_address(self):
        found = threading.Event()

        def read(pipe):
            for line in pipe:
                self.output.append(line.rstrip("\n"))
                match = re.search(r"listening on (http://\S+)", line)
                if match and self.url is None:
                    self.url = match.group(1)
                    found.set()

        # Both pipes are drained for the whole run, so a chatty server never blocks on them.
        for pipe in (self.process.stdout, self.process.stderr):
            threading.Thread(target=read, args=(pipe,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not found.wait(0.05):
            if self.process.poll() is not None:
                time.sleep(0.1)  # let the readers take its last words
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before listening:\n"
                    f"{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start within {START_TIMEOUT_S} s")

    def stop(self):
        """Stops the server (if it still runs); its exit code, negative if it was killed."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.output.append(f"(killed: still running {STOP_TIMEOUT_S} s after its signal)")
        return self.process.returncode

    def log(self):
        return "\n".join(f"  {self.name}| {line}" for line in self.output[-40:])


class Watchdog(BaseException):
    """The run took too long: not an Exception, so no case's handler swallows it on its way
    out through the servers' cleanup."""


def start_watchdog(seconds):
    """Fails the run with `Watchdog` once it has taken `seconds`."""

    def expire(signum, frame):
        raise Watchdog(f"the run took over {seconds} s")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def stop_watchdog():
    signal.alarm(0)


def clean_env(**extra):
    """This process's environment without the variables that decide where a breakwater process
    sends requests and with what credentials (ANTHROPIC_*, AWS_*), plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "AWS_"))
    }
    env.update(extra)
    return env


def check(failures, label, run):
    """Runs `run()` and prints `label: ` with what it returns. A failure joins `failures`
    instead of ending the run: every case is tried, and every failure is reported."""
    try:
        print(f"{label}: {run()}", flush=True)
    except Exception as error:  # noqa: BLE001 - every failure is reported
        failures.append(f"{label}: {type(error).__name__}: {error}")


def conclude(failures, success):
    """Ends the run: non-zero naming every failure, else `ok: success`."""
    stop_watchdog()
    if failures:
        sys.exit("failed:\n" + "\n".join(failures))
    print(f"ok: {success}")
