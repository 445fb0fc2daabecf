"""Soak: steady load on ``bottlecheck serve`` for a while; memory must stay flat and nothing may fail.

    python benchmarks/soak.py --seconds 600 --clients 4 --rate 5

Samples the worker's RSS every 10 s; prints a JSON summary (RSS first/last/max, requests by
status, latency percentiles). The cache is disabled so every request decodes and runs the model.
The photos mix three shapes (640x480, 480x640, 1080x1920).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import make_photos, rss_kb, worker_pids  # noqa: E402
from tests.server_process import running_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rate", type=float, default=0, help="requests per second per client (0: as fast as possible)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    # Three shapes, interleaved: landscape and portrait camera frames and phone photos. The finder
    # takes each photo at its own shape, so the worker keeps resizing its input: memory must not grow.
    folder = Path(tempfile.gettempdir()) / "bottlecheck-bench"
    shapes = [((640, 480), 7), ((480, 640), 8), ((1080, 1920), 9)]
    made = [make_photos(folder, -(-args.images // 3), size, seed=seed) for size, seed in shapes]
    photos = [path.read_bytes() for trio in zip(*made, strict=True) for path in trio][: args.images]
    env = {"BOTTLECHECK_CACHE_SIZE": "0", "BOTTLECHECK_RATE_LIMIT": "1000000/minute"}
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    samples: list[tuple[float, int]] = []
    lock = threading.Lock()
    with running_server(env=env, threads=8) as (url, proc):
        worker = worker_pids(proc.pid)[0]
        stop = time.time() + args.seconds
        start = time.time()

        def client(index: int) -> None:
            session = requests.Session()
            i = index
            interval = 1.0 / args.rate if args.rate else 0.0
            next_at = time.time()
            while time.time() < stop:
                if interval:
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.time()))
                photo = photos[i % len(photos)]
                i += args.clients
                began = time.perf_counter()
                try:
                    status = session.post(
                        url + "/classify", files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=30
                    ).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    statuses[status] += 1
                    latencies.append(time.perf_counter() - began)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        while time.time() < stop:
            samples.append((round(time.time() - start, 1), rss_kb(worker)[0]))
            time.sleep(10)
        for t in threads:
            t.join()
        samples.append((round(time.time() - start, 1), rss_kb(worker)[0]))
    rss = [kb for _, kb in samples]
    lat = np.array(latencies) * 1000
    result = {
        "seconds": args.seconds,
        "clients": args.clients,
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "requests_per_second": round(sum(statuses.values()) / args.seconds, 1),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p99": round(float(np.percentile(lat, 99)), 1)},
        "worker_rss_mb": {
            "first": round(rss[0] / 1024, 1),
            "after_1min": round(rss[min(6, len(rss) - 1)] / 1024, 1),
            "last": round(rss[-1] / 1024, 1),
            "max": round(max(rss) / 1024, 1),
        },
        "rss_samples_kb": samples,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if set(statuses) != {200}:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
