"""Scaling out on one 2-core machine: what Ray and a second replica cost, and what they change.

Two measurements, both with the bundled model:

* **Ray**: ``bottlecheck classify`` on the same photos, locally and with ``--ray local``
  (wall time of the whole command, Ray's start-up included, and of a one-photo run, which is
  mostly start-up). On one machine Ray shares the same two cores; the point is the cost.
* **Replicas**: requests/s and latency at 8 and 32 clients (wrk, distinct phone-sized JPEGs,
  cache off) against one replica directly, one replica behind nginx, and two replicas behind
  nginx (nginx from Debian, round robin, a dead replica's requests retried on the other).
  The replicas share the machine's two cores, so two cannot be twice one; the shape is the point.

    python benchmarks/bench_scaleout.py [--quick] --out benchmarks/results/scaleout.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_serving import start, wrk  # noqa: E402
from benchmarks.common import machine, make_photos  # noqa: E402
from tests.server_process import free_port  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def timed_classify(paths: list[str], extra: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bottlecheck", "classify", *paths, "-f", "jsonl", "-q", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def bench_ray(count: int) -> dict:
    folder = Path(tempfile.gettempdir()) / "bottlecheck-bench" / "ray"
    photos = [str(p) for p in make_photos(folder, count, (480, 640), seed=5)]
    local = timed_classify(photos, [])
    ray = timed_classify(photos, ["--ray", "local"])
    local_one = timed_classify(photos[:1], [])
    ray_one = timed_classify(photos[:1], ["--ray", "local"])
    return {
        "photos": count,
        "image": "640x480 JPEG",
        "local_s": round(local, 2),
        "ray_local_s": round(ray, 2),
        "local_images_per_s": round(count / local, 1),
        "ray_local_images_per_s": round(count / ray, 1),
        "one_photo_local_s": round(local_one, 2),
        "one_photo_ray_local_s": round(ray_one, 2),
    }


@contextmanager
def nginx_in_front(upstreams: list[str]):
    """A real nginx on a free port, round robin over ``upstreams`` (``http://host:port``)."""
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = free_port()
    servers = "\n".join(f"    server {url[7:]} max_fails=1 fail_timeout=5s;" for url in upstreams)
    (work / "nginx.conf").write_text(
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
      proxy_next_upstream error timeout http_502 non_idempotent;
      proxy_next_upstream_tries 2;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen([NGINX, "-c", str(work / "nginx.conf"), "-p", str(work)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def bench_replicas(levels: list[int], duration: int) -> dict:
    photos = make_photos(Path(tempfile.gettempdir()) / "bottlecheck-bench" / "serving", 64, (1080, 1920), seed=3)
    files = Path(tempfile.mkstemp(suffix=".txt")[1])
    files.write_text("\n".join(map(str, photos)) + "\n")
    env = {
        "BOTTLECHECK_CACHE_SIZE": "0",
        "BOTTLECHECK_RATE_LIMIT": "100000000/minute",
        "BOTTLECHECK_TRUSTED_PROXIES": "1",
    }
    serve = [sys.executable, "-m", "bottlecheck", "serve", "--port", "{port}", "--workers", "1", "--threads", "8"]
    results: dict[str, dict] = {}
    for name, replicas, balanced in (
        ("one replica, direct", 1, False),
        ("one replica behind nginx", 1, True),
        ("two replicas behind nginx", 2, True),
    ):
        with ExitStack() as stack:
            started = [start(serve, env) for _ in range(replicas)]
            for proc, _ in started:
                stack.callback(lambda p=proc: (p.terminate(), p.wait(timeout=60)))
            url = stack.enter_context(nginx_in_front([u for _, u in started])) if balanced else started[0][1]
            wrk(url, 2, 3, files)  # warm-up: not reported
            results[name] = {}
            for connections in levels:
                results[name][str(connections)] = wrk(url, connections, duration, files)
                print(f"{name} c={connections}: {results[name][str(connections)]}", file=sys.stderr)
    return {"image": "1080x1920 JPEG, 64 distinct, cache off", "duration_s": duration, "setups": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {"machine": machine()}
    try:
        import ray.data  # noqa: F401

        results["ray"] = bench_ray(100 if args.quick else 400)
    except ImportError:
        results["ray"] = {"skipped": "pip install 'bottlecheck[ray]'"}
    if os.path.exists(NGINX) and shutil.which("wrk"):
        results["replicas"] = bench_replicas([8] if args.quick else [8, 32], 4 if args.quick else 15)
    else:
        results["replicas"] = {"skipped": "needs Debian's nginx and wrk"}
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
