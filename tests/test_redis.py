"""A real redis-server behind the shared cache and rate limits: shared while it is up, degraded (never a 5xx)
while it is down, shared again when it comes back."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time

import pytest

from bottlecheck.server import create_app
from tests.helpers import bottle_photo
from tests.server_process import free_port

pytestmark = pytest.mark.server
REDIS = shutil.which("redis-server")


@pytest.fixture
def redis_server(tmp_path):
    if REDIS is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's redis-server is required in CI (apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    port = free_port()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    state = {"proc": start()}

    class Handle:
        url = f"redis://127.0.0.1:{port}"

        def stop(self) -> None:
            state["proc"].terminate()
            state["proc"].wait(timeout=10)

        def restart(self) -> None:
            state["proc"] = start()

    yield Handle()
    state["proc"].terminate()
    state["proc"].wait(timeout=10)


def _post(client, seed: int) -> int:
    data = {"file": (io.BytesIO(bottle_photo(seed % 2 == 0, seed=seed)), "b.jpg")}
    return client.post("/classify", data=data, content_type="multipart/form-data").status_code


def test_two_apps_share_limits_and_cache_and_survive_losing_redis(classifier, redis_server):
    config = {
        "RATE_LIMIT_STORAGE_URI": redis_server.url,
        "CACHE_URL": redis_server.url + "/0",
        "RATE_LIMIT": "4/minute",
    }
    first = create_app(config, classifier=classifier).test_client()
    second = create_app(config, classifier=classifier).test_client()
    # Shared limit: 4 per minute in total across both apps (replicas), not 4 each.
    statuses = [_post(first, 1), _post(second, 2), _post(first, 3), _post(second, 4), _post(first, 5), _post(second, 6)]
    assert statuses == [200, 200, 200, 200, 429, 429]

    roomy = {**config, "RATE_LIMIT": "1000/minute"}
    first = create_app(roomy, classifier=classifier).test_client()
    second = create_app(roomy, classifier=classifier).test_client()
    photo = bottle_photo(True, seed=77)
    answer = first.post("/classify", data={"file": (io.BytesIO(photo), "p.jpg")}, content_type="multipart/form-data")
    before = _metric(second, "bottlecheck_cache_hits_total")
    again = second.post("/classify", data={"file": (io.BytesIO(photo), "p.jpg")}, content_type="multipart/form-data")
    assert again.get_json() == answer.get_json()
    assert _metric(second, "bottlecheck_cache_hits_total") == before + 1  # shared cache: a hit on the other app

    redis_server.stop()
    assert [_post(first, seed) for seed in range(10, 16)] == [200] * 6  # degraded: no 5xx
    redis_server.restart()
    time.sleep(6)  # the cache's back-off, and the limiter's health check
    assert [_post(second, seed) for seed in range(20, 23)] == [200] * 3


def _metric(client, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_replicas_with_different_thresholds_sharing_redis_keep_their_own_decisions(classifier, redis_server):
    photo = bottle_photo(True, seed=5)
    p_open = classifier.classify(photo).p_open
    assert p_open is not None and p_open < 0.9999
    answers = []
    for threshold in (p_open / 2, 0.9999, p_open / 2):
        app = create_app({"CACHE_URL": redis_server.url + "/0", "THRESHOLD": threshold}, classifier=classifier)
        data = {"file": (io.BytesIO(photo), "p.jpg")}
        answers.append(app.test_client().post("/classify", data=data, content_type="multipart/form-data").get_json())
    assert [a["Bottle_Status"] for a in answers] == ["open", "closed", "open"]
