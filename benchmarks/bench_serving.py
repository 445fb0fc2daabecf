"""Serving: requests/s and p50/p95/p99 latency of ``bottlecheck serve`` at 1, 8, 32 and 64
concurrent clients (wrk, on loopback, bounded in time), beside a plain Flask app doing one
``model.predict`` per request under the same gunicorn settings. Unique photo-sized JPEGs; the
result cache is off so every request decodes and runs the model. Also the serving worker's RSS
before and after the load.

    python benchmarks/bench_serving.py [--quick] [--duration 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, cpu_seconds, machine, make_photos, rss_kb, worker_pids, write_results  # noqa: E402
from tests.server_process import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent


def start(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:  # not listening yet, or still loading the model
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{command[0]} did not start")


def wrk(url: str, connections: int, duration: int, files: Path, script: str = "wrk_multipart.lua", **env: str) -> dict:
    """One wrk run of ``script`` (photos from the paths listed in ``files``; ``env`` more BENCH_* settings)."""
    threads = min(connections, 4)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--timeout",
            "30s",
            "-s",
            str(HERE / script),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_FILES": str(files), **env},
        check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["requests_per_second"] = round(result["requests"] / result["duration_s"], 1)
    return result


def measure(name: str, command: list[str], env: dict, levels: list[int], duration: int, files: Path) -> dict:
    proc, url = start(command, env)
    try:
        worker = worker_pids(proc.pid)[0]
        rss_start = rss_kb(worker)[0]
        wrk(url, 2, 3, files)  # warm-up (first calls trace graphs, fill allocators): not reported
        results = {}
        for connections in levels:
            used = cpu_seconds([proc.pid, *worker_pids(proc.pid)])
            results[str(connections)] = wrk(url, connections, duration, files)
            # The server's own cores (its processes' CPU time over the load): wrk shares the machine.
            used = cpu_seconds([proc.pid, *worker_pids(proc.pid)]) - used
            results[str(connections)]["server_cores"] = round(used / results[str(connections)]["duration_s"], 3)
            print(f"{name} c={connections}: {results[str(connections)]}", file=sys.stderr)
        rss_end, rss_peak = rss_kb(worker)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "levels": results,
        "worker_rss_mb": {
            "start": round(rss_start / 1024, 1),
            "end": round(rss_end / 1024, 1),
            "peak": round(rss_peak / 1024, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    duration = args.duration or (4 if args.quick else 15)
    levels = [1, 8, 32] if args.quick else [1, 8, 32, 64]
    photos = make_photos(Path(tempfile.gettempdir()) / "bottlecheck-bench" / "serving", 64, (1080, 1920), seed=3)
    files = Path(tempfile.mkstemp(suffix=".txt")[1])
    files.write_text("\n".join(map(str, photos)) + "\n")
    env = {"BOTTLECHECK_CACHE_SIZE": "0", "BOTTLECHECK_RATE_LIMIT": "100000000/minute", "TF_CPP_MIN_LOG_LEVEL": "3"}
    bottlecheck = [sys.executable, "-m", "bottlecheck", "serve", "--port", "{port}", "--workers", "1", "--threads", "8"]
    gunicorn = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-w",
        "1",
        "-b",
        "127.0.0.1:{port}",
        "--timeout",
        "120",
        "benchmarks.baseline_flask_app:create_app()",
    ]
    results = {
        "machine": machine(),
        "duration_s": duration,
        "image": "1080x1920 JPEG, 64 distinct, cache off",
        "bottlecheck": measure("bottlecheck", bottlecheck, env, levels, duration, files),
        "baseline_flask_predict": measure("baseline", gunicorn, env, levels, duration, files),
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
