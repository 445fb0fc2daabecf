"""Start a real ``bottlecheck serve`` (gunicorn) on a free loopback port for tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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
                if requests.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            # Not listening yet, or too busy to answer in time on a loaded machine: ask again until
            # the deadline (a ReadTimeout here failed the web page test once under a render).
            except (requests.ConnectionError, requests.Timeout):
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


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


@contextlib.contextmanager
def nginx_in_front(upstreams: list[str]):
    """A real nginx (Debian's) on a free port, round robin over ``upstreams`` (``http://host:port``).

    A POST that meets a dead replica is retried on the next (``non_idempotent``), as in
    deploy/compose/nginx.conf; the client's address goes on in ``X-Forwarded-For``. Yields its URL.
    """
    if NGINX is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    work = tempfile.mkdtemp(prefix="bottlecheck-nginx-")
    port = free_port()
    servers = "\n".join(f"    server {url[7:]} max_fails=1 fail_timeout=5s;" for url in upstreams)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as stream:
        stream.write(
            f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log;
user root;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_max_body_size 25m;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  upstream bottlecheck {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://bottlecheck;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout http_502 non_idempotent;
      proxy_next_upstream_tries 2;
    }}
  }}
}}
"""
        )
    proc = subprocess.Popen([NGINX, "-c", conf, "-p", work], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/healthz", timeout=5)
            break
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
