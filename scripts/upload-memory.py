#!/usr/bin/env python3
"""Streams a large Files upload (200 MB by default) through `breakwater serve --mock`, then
downloads it back, and reports the gateway process's peak RSS (VmHWM from /proc/PID/status)
before and after: forwarded bodies stream through, so the peak must stay flat.

The in-process mock keeps uploads past 4 MiB on disk, so what the process holds is the
gateway's (and the mock's parsing) alone. Python standard library only; Linux only (/proc).

    cargo build --release
    scripts/upload-memory.py                 # 200 MB
    scripts/upload-memory.py --size-mb 500 --bin target/release/breakwater
"""

import argparse
import hashlib
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

CHUNK = 1 << 20
BOUNDARY = "breakwater-upload-memory"


def start(binary):
    process = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--mock"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    found = {}

    def read():
        for line in process.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                found["url"] = match.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 30
    while "url" not in found:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit("the gateway did not start")
        time.sleep(0.02)
    return process, urlparse(found["url"])


def peak_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    sys.exit("no VmHWM in /proc: this script needs Linux")


def content(size):
    """The upload's bytes, generated chunk by chunk: never held whole here either."""
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < size:
        part = block[: min(CHUNK, size - sent)]
        sent += len(part)
        yield part


def upload(url, size):
    head = (
        f"--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; "
        f"filename=\"big.bin\"\r\ncontent-type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    digest = hashlib.sha256()

    def body():
        yield head
        for part in content(size):
            digest.update(part)
            yield part
        yield tail

    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    connection.request(
        "POST", "/v1/files", body=body(),
        headers={
            "content-type": f"multipart/form-data; boundary={BOUNDARY}",
            "content-length": str(len(head) + size + len(tail)),
            "anthropic-beta": "files-api-2025-04-14",
        },
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200 or answer.get("size_bytes") != size:
        sys.exit(f"upload failed: {response.status} {answer}")
    return answer["id"], digest.hexdigest()


def download(url, file_id):
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    connection.request("GET", f"/v1/files/{file_id}/content")
    response = connection.getresponse()
    digest = hashlib.sha256()
    received = 0
    while chunk := response.read(CHUNK):
        digest.update(chunk)
        received += len(chunk)
    if response.status != 200:
        sys.exit(f"download failed: {response.status}")
    return received, digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--bin", default="target/release/breakwater")
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    process, url = start(args.bin)
    try:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        connection.request("GET", "/v1/models")
        connection.getresponse().read()
        before = peak_mb(process.pid)
        started = time.monotonic()
        file_id, sent = upload(url, size)
        took = time.monotonic() - started
        after_upload = peak_mb(process.pid)
        received, got = download(url, file_id)
        after_download = peak_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    if received != size or got != sent:
        sys.exit(f"the download differs: {received} bytes, sha256 {got} (sent {sent})")
    print(f"upload: {args.size_mb} MB in {took:.1f} s ({args.size_mb / took:.0f} MB/s), downloaded back identical")
    print(f"gateway peak RSS (VmHWM): {before:.1f} MB before, {after_upload:.1f} MB after the upload, "
          f"{after_download:.1f} MB after the download")


if __name__ == "__main__":
    main()
