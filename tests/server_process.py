"""Start a real ``bottlecheck serve`` (gunicorn) on a free loopback port for tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bottlecheck_script() -> str:
    script = shutil.which("bottlecheck", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    assert script, "bottlecheck console script is not installed"
    return script


@contextlib.contextmanager
def running_server(*args: str, env: dict[str, str] | None = None, threads: int = 8):
    """Yield ``(url, process)``; the server is stopped (SIGTERM) afterwards."""
    port = free_port()
    # The log goes to a file: an undrained pipe fills up (one line per request) and blocks the server.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [bottlecheck_script(), "serve", "--port", str(port), "--threads", str(threads), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    try:
        while True:
            try:
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError("server did not become ready:\n" + log.read())
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
