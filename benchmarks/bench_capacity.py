"""What 1,000 requests a second would take: one replica's rate at a p99 target, by cache hit rate.

    python benchmarks/bench_capacity.py [--quick] [--p99-ms 300] --out benchmarks/results/capacity.json

The seed promises 1,000 requests a second behind a load balancer. This measures, on phone-sized
JPEGs (1080x1920, as section 3), with a real Redis as the shared answer cache:

* **one replica** (``bottlecheck serve``, one worker, its model copies on the machine's cores),
  requests/s and latency at rising numbers of clients, with the cache answering 0%, 50% and 90%
  of requests (``wrk_cache_mix.lua``: a hit repeats a photo warmed into the cache, a miss sends
  the same pixels with a unique tail, so the work is the same and only the cache decides). The
  hit rate is checked on the server's own Prometheus counters, not assumed;
* **one and two replicas behind nginx** (Debian's, round robin), the cache cold, to see how the
  aggregate grows (here both share one machine's cores: see the report);
* what each request costs **Redis** and **nginx** in CPU (from /proc, their processes alone) and
  the network (the mean upload), so the plan can say which would run out first.

A replica's rate at the target is the best rate whose p99 stays within ``--p99-ms``. Numbers are
medians of one run per level (load levels are long enough to settle; the whole run is repeated by
``benchmarks/run``); the machine is named in the results.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_serving import start, wrk  # noqa: E402
from benchmarks.common import cpu_seconds, machine, make_photos, rss_kb, worker_pids, write_results  # noqa: E402
from tests.server_process import NGINX, free_port, nginx_in_front  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET_RPS = 1000
HEADROOM = 0.7  # plan replicas to run at 70% of their measured rate: room for spikes and the autoscaler's lag


def pids_named(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@contextmanager
def redis_server():
    """A real Redis on a free port, nothing saved to disk; yields (url, pid, port)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if (
                subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
                == "PONG"
            ):
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0", proc.pid, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def counter(url: str, name: str) -> float:
    """The sum of a Prometheus counter's samples on the server's /metrics."""
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def wrk_mix(url: str, connections: int, duration: int, files: Path, hit_rate: float, hot: int) -> dict:
    """A wrk run where ``hit_rate`` of the requests repeat one of the first ``hot`` photos (``wrk_cache_mix.lua``)."""
    return wrk(url, connections, duration, files, "wrk_cache_mix.lua", BENCH_HIT_RATE=str(hit_rate), BENCH_HOT=str(hot))


def best_at(levels: dict[str, dict], p99_ms: float) -> dict | None:
    """The level with the most requests/s whose p99 is within the target (and no errors)."""
    fine = [
        {"clients": int(c), **r} for c, r in levels.items() if r["p99_ms"] <= p99_ms and not any(r["errors"].values())
    ]
    return max(fine, key=lambda r: r["requests_per_second"]) if fine else None


def plan(
    rate: float, rss_mb: float, cores_per_replica: int, upload_bytes: float, redis_cpu_ms: float, nginx_cpu_ms: float
) -> dict:
    """Replicas, cores and memory for TARGET_RPS at one replica's rate, and what the other parts would need."""
    replicas = math.ceil(TARGET_RPS / (rate * HEADROOM))
    return {
        "replicas": replicas,
        "cores": replicas * cores_per_replica,
        "memory_gb": round(replicas * rss_mb / 1024, 1),
        "upload_mb_per_s": round(TARGET_RPS * upload_bytes / 1e6, 1),
        "upload_gbit_per_s": round(TARGET_RPS * upload_bytes * 8 / 1e9, 2),
        "redis_cores": round(TARGET_RPS * redis_cpu_ms / 1000, 2),
        "nginx_cores": round(TARGET_RPS * nginx_cpu_ms / 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--p99-ms", type=float, default=300.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (NGINX and shutil.which("wrk") and shutil.which("redis-server")):
        raise SystemExit("needs Debian's nginx, wrk and redis-server")
    duration = args.duration or (4 if args.quick else 12)
    levels = [4, 16, 32] if args.quick else [4, 8, 16, 32, 48]
    hit_rates = [0.0, 0.5, 0.9]
    hot = 8
    photos = make_photos(Path(tempfile.gettempdir()) / "bottlecheck-bench" / "serving", 64, (1080, 1920), seed=3)
    files = Path(tempfile.mkstemp(suffix=".txt")[1])
    files.write_text("\n".join(map(str, photos)) + "\n")
    upload = sum(p.stat().st_size for p in photos) / len(photos)
    serve = [sys.executable, "-m", "bottlecheck", "serve", "--port", "{port}", "--workers", "1", "--threads", "8"]
    results: dict = {
        "machine": machine(),
        "duration_s": duration,
        "image": f"1080x1920 JPEG, 64 distinct, mean {upload / 1000:.0f} KB",
        "p99_target_ms": args.p99_ms,
        "target_rps": TARGET_RPS,
        "headroom": HEADROOM,
        "cores_per_replica": os.cpu_count(),
        "mean_upload_bytes": round(upload),
    }
    with redis_server() as (redis_url, redis_pid, redis_port):
        env = {
            "BOTTLECHECK_CACHE_URL": redis_url,
            "BOTTLECHECK_RATE_LIMIT": "100000000/minute",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        # One replica, by hit rate.
        proc, url = start(serve, env)
        try:
            one: dict = {}
            redis_ms = []
            for hit_rate in hit_rates:
                subprocess.run(["redis-cli", "-p", str(redis_port), "flushall"], capture_output=True, check=True)
                for path in photos[:hot]:  # the hot photos, cached before the run
                    requests.post(url + "/classify", files={"file": path.read_bytes()}, timeout=60)
                wrk_mix(url, 2, 2, files, hit_rate, hot)  # warm-up: not reported
                by_level = {}
                for connections in levels:
                    hits0 = counter(url, "bottlecheck_cache_hits_total")
                    misses0 = counter(url, "bottlecheck_cache_misses_total")
                    redis0 = cpu_seconds([redis_pid])
                    server0 = cpu_seconds([proc.pid, *worker_pids(proc.pid)])
                    result = wrk_mix(url, connections, duration, files, hit_rate, hot)
                    hits = counter(url, "bottlecheck_cache_hits_total") - hits0
                    misses = counter(url, "bottlecheck_cache_misses_total") - misses0
                    served = max(1.0, hits + misses)
                    result["measured_hit_rate"] = round(hits / served, 3)
                    result["redis_cpu_ms_per_request"] = round(1000 * (cpu_seconds([redis_pid]) - redis0) / served, 3)
                    result["server_cpu_utilisation"] = round(
                        (cpu_seconds([proc.pid, *worker_pids(proc.pid)]) - server0)
                        / result["duration_s"]
                        / os.cpu_count(),
                        3,
                    )
                    redis_ms.append(result["redis_cpu_ms_per_request"])
                    by_level[str(connections)] = result
                one[f"{hit_rate:.0%}"] = {"levels": by_level, "at_target": best_at(by_level, args.p99_ms)}
            rss = sum(rss_kb(pid)[0] for pid in [proc.pid, *worker_pids(proc.pid)]) / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        results["one_replica"] = one
        results["replica_rss_mb"] = round(rss, 1)
        results["redis_cpu_ms_per_request"] = round(max(redis_ms), 3)

        # One and two replicas behind nginx, the cache cold (every request a miss).
        balanced: dict = {}
        nginx_ms = []
        for count in (1, 2):
            with ExitStack() as stack:
                started = [start(serve, env) for _ in range(count)]
                for p, _ in started:
                    stack.callback(p.wait, 30)
                    stack.callback(p.terminate)
                front = stack.enter_context(nginx_in_front([u for _, u in started]))
                wrk_mix(front, 2, 2, files, 0.0, hot)
                by_level = {}
                for connections in (16, 32):
                    nginx0 = cpu_seconds(pids_named("nginx"))
                    result = wrk_mix(front, connections, duration, files, 0.0, hot)
                    result["nginx_cpu_ms_per_request"] = round(
                        1000 * (cpu_seconds(pids_named("nginx")) - nginx0) / max(1, result["requests"]), 3
                    )
                    nginx_ms.append(result["nginx_cpu_ms_per_request"])
                    by_level[str(connections)] = result
                balanced[str(count)] = by_level
        results["behind_nginx"] = balanced
        results["nginx_cpu_ms_per_request"] = round(max(nginx_ms), 3)

    results["plan"] = {
        rate_name: plan(
            entry["at_target"]["requests_per_second"],
            results["replica_rss_mb"],
            results["cores_per_replica"],
            upload,
            results["redis_cpu_ms_per_request"],
            results["nginx_cpu_ms_per_request"],
        )
        for rate_name, entry in results["one_replica"].items()
        if entry["at_target"]
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
