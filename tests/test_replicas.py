"""Two real `bottlecheck serve` replicas behind a real nginx, sharing a real redis-server: one rate
limit and one cache across replicas, a replica killed under load loses no request nginx can retry,
and Redis going away degrades without a 5xx."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import Counter

import pytest
import requests

from tests.helpers import bottle_photo
from tests.server_process import NGINX, free_port, nginx_in_front, running_server

pytestmark = pytest.mark.server
REDIS = shutil.which("redis-server")


def _require(tool: str | None, package: str) -> None:
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"Debian's {package} is required in CI (apt-get install {package})")
        pytest.skip(f"{package} is not installed")


@pytest.fixture
def cluster(tmp_path, request):
    _require(NGINX, "nginx")
    _require(REDIS, "redis-server")
    redis_port = free_port()
    redis = subprocess.Popen(
        [REDIS, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    time.sleep(0.3)
    env = {
        "BOTTLECHECK_CACHE_URL": f"redis://127.0.0.1:{redis_port}/0",
        "BOTTLECHECK_RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:{redis_port}",
        "BOTTLECHECK_RATE_LIMIT": getattr(request, "param", "10/minute"),
        "BOTTLECHECK_TRUSTED_PROXIES": "1",
    }
    with (
        running_server(env=env, threads=4) as (first, first_proc),
        running_server(env=env, threads=4) as (second, second_proc),
    ):
        with nginx_in_front([first, second]) as url:
            yield {"url": url, "replicas": [(first, first_proc), (second, second_proc)], "redis": redis}
    if redis.poll() is None:
        redis.terminate()
        redis.wait(timeout=10)


def _post(url: str, seed: int, client: str = "198.51.100.1") -> requests.Response:
    photo = bottle_photo(seed % 2 == 0, seed=seed)
    return requests.post(
        url + "/classify", files={"file": ("b.jpg", photo)}, headers={"X-Forwarded-For": client}, timeout=30
    )


def _metric(url: str, name: str) -> float:
    total = 0.0
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_replicas_share_one_rate_limit_and_one_cache(cluster):
    statuses = Counter(_post(cluster["url"], seed).status_code for seed in range(14))
    assert statuses == Counter({200: 10, 429: 4})  # 10 per minute in total, not 10 per replica
    (first, _), (second, _) = cluster["replicas"]
    photo = bottle_photo(True, seed=500)
    answer = requests.post(
        first + "/classify", files={"file": ("p.jpg", photo)}, headers={"X-Forwarded-For": "203.0.113.5"}, timeout=30
    )
    hits = _metric(second, "bottlecheck_cache_hits_total")
    again = requests.post(
        second + "/classify", files={"file": ("p.jpg", photo)}, headers={"X-Forwarded-For": "203.0.113.6"}, timeout=30
    )
    assert again.json() == answer.json() and _metric(second, "bottlecheck_cache_hits_total") == hits + 1


@pytest.mark.parametrize("cluster", ["100000/minute"], indirect=True)
def test_a_replica_killed_under_load_and_redis_lost_cost_no_request(cluster):
    url = cluster["url"]
    outcomes: Counter = Counter()
    stop = threading.Event()

    def load(worker: int) -> None:
        seed = worker * 1000
        while not stop.is_set():
            seed += 1
            try:
                outcomes[_post(url, seed).status_code] += 1
            except requests.RequestException as exc:
                outcomes[type(exc).__name__] += 1

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    time.sleep(1.5)
    cluster["replicas"][0][1].kill()  # SIGKILL: no graceful exit
    time.sleep(1.5)
    cluster["redis"].terminate()  # the shared cache and limits go away
    time.sleep(2.0)
    stop.set()
    [t.join() for t in threads]
    print("outcomes under load:", dict(outcomes))
    assert outcomes[200] >= 10, outcomes
    assert set(outcomes) == {200}, outcomes  # no 5xx, no connection error: nginx retried the dead one
