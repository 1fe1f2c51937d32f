"""Helpers shared by the Python suites (tests/<suite>/test_*.py): the simulator, loopback ports,
waiting for a server, and an HTTP receiver that records what it is sent.

tests/pytest.ini puts tests/lib on the path of every suite: `import testkit`.
"""

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "target" / "release" / "sigsci-kit"


def free_port():
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(probe, what, timeout=30.0):
    """Calls probe() until it returns true; a requests error counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_http(url, timeout=30.0):
    """Waits until a GET of url succeeds (2xx)."""
    wait_until(lambda: requests.get(url, timeout=2).ok, url, timeout)


@contextlib.contextmanager
def simulator(*args, kit=KIT):
    """`sigsci-kit sim ARGS` on a free loopback port; yields its base URL and stops it on exit."""
    assert Path(kit).exists(), f"{kit} is missing: the suite's run.sh (or tests/run.sh SUITE) builds it"
    # Port 0 and the URL it prints first: no window for another process to take a port picked here.
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([str(kit), "sim", "--listen", "127.0.0.1:0", *args],
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            url = process.stdout.readline().strip()
            if not url.startswith("http://127.0.0.1:"):
                stderr.seek(0)
                raise AssertionError(f"the simulator did not start ({url!r}): {stderr.read().decode(errors='replace')}")
            yield url
        finally:
            status = process.poll()
            if status is None:
                process.terminate()
                process.wait(10)
            process.stdout.close()
            # A simulator that died mid-test shows up as refused connections; say what ended it.
            if status is not None:
                stderr.seek(0)
                raise AssertionError(f"the simulator exited during the test (status {status}): "
                                     f"{stderr.read().decode(errors='replace')}")


def sim_env(sim_url, **extra):
    """os.environ plus the simulator's URL, corp and credentials, as a CLI run against it needs."""
    return dict(os.environ, SIGSCI_API_URL=sim_url, SIGSCI_CORP="testcorp", SIGSCI_EMAIL="sim@example.com",
                SIGSCI_API_TOKEN="sim-token", **extra)


@contextlib.contextmanager
def serving(command, ready_url, **popen):
    """Runs command (a server) in the background until ready_url answers 2xx; stops it on exit."""
    process = subprocess.Popen([str(part) for part in command], **popen)
    try:
        wait_http(ready_url)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.recorded.append(self.server.keep(self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _whole_request(path, headers, body):
    return {"path": path, "headers": headers, "body": body}


@contextlib.contextmanager
def http_receiver(keep=_whole_request):
    """A loopback HTTP server standing in for Slack or a webhook: answers every POST 200 and appends
    keep(path, headers, raw body) (by default a dict of the three) to its `recorded` list. Yields the
    server; `url` is its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.recorded = []
    server.keep = keep
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
