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
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_serving import start, wrk  # noqa: E402
from benchmarks.common import machine, make_photos, write_results  # noqa: E402
from tests.server_process import NGINX, nginx_in_front  # noqa: E402


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
    if NGINX and shutil.which("wrk"):
        results["replicas"] = bench_replicas([8] if args.quick else [8, 32], 4 if args.quick else 15)
    else:
        results["replicas"] = {"skipped": "needs Debian's nginx and wrk"}
    write_results(results, args.out)


if __name__ == "__main__":
    main()
