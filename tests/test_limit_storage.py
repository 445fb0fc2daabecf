"""The server's in-memory rate-limit counters: limits' own behaviour, without a new thread every 10 ms."""

from __future__ import annotations

import io
import threading
import time

import pytest
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from bottlecheck.server import create_app
from bottlecheck.server.limit_storage import SweptMemoryStorage
from tests.helpers import bottle_photo


@pytest.fixture
def thread_starts(monkeypatch) -> list[threading.Thread]:
    """Every thread started from now on (a spy: each still starts)."""
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    return started


def _hits_a_little_apart(storage, started: list, count: int = 6) -> None:
    limiter = FixedWindowRateLimiter(storage)
    started.clear()  # limits' storage starts one timer when made (ours cancels it): only the hits' count
    for _ in range(count):
        assert limiter.hit(parse("1000/minute"), "ip:127.0.0.1")
        time.sleep(0.02)  # longer than limits' 10 ms timer: each hit finds it finished


def test_limits_own_memory_storage_starts_a_thread_for_hits_that_the_swept_one_does_not(thread_starts):
    """The reason for the class: if limits stops calling the hook, this fails and the class can go."""
    _hits_a_little_apart(MemoryStorage(), thread_starts)
    own = len(thread_starts)
    _hits_a_little_apart(SweptMemoryStorage(), thread_starts)
    assert own >= 5 and thread_starts == []


def test_the_sweep_clears_expired_counters_inside_a_later_hit():
    storage = SweptMemoryStorage()
    storage.incr("gone", expiry=0.01)
    storage.incr("kept", expiry=60)
    time.sleep(0.02)
    storage.incr("other", expiry=60)
    assert "gone" in storage.storage and storage.sweeps == 0  # not yet due: nothing swept
    storage._next_sweep = 0.0  # due now (SWEEP_SECONDS after the last)
    storage.incr("other", expiry=60)
    assert storage.sweeps == 1
    assert "gone" not in storage.storage and "gone" not in storage.expirations
    assert storage.get("kept") == 1 and storage.get("other") == 2


@pytest.mark.parametrize("strategy", [FixedWindowRateLimiter, MovingWindowRateLimiter])
def test_a_swept_storage_limits_as_limits_own_does(strategy):
    limit = parse("3/second")
    for storage in (MemoryStorage(), SweptMemoryStorage()):
        limiter = strategy(storage)
        assert [limiter.hit(limit, "k") for _ in range(5)] == [True, True, True, False, False]
        time.sleep(1.05)
        assert limiter.hit(limit, "k")  # the window has passed: counted afresh, no sweep needed


def test_the_app_counts_memory_limits_in_the_swept_storage(classifier, thread_starts):
    app = create_app({"RATE_LIMIT": "2/minute", "CACHE_SIZE": 0}, classifier=classifier)
    limiter = app.extensions["bottlecheck.limiter"]
    assert isinstance(limiter._storage, SweptMemoryStorage)
    client = app.test_client()
    photo = bottle_photo(True, seed=5)
    thread_starts.clear()  # what making the app started (Flask-Limiter's fallback storage has its timer)
    statuses = []
    for _ in range(3):
        data = {"file": (io.BytesIO(photo), "a.jpg")}
        statuses.append(client.post("/classify", data=data, content_type="multipart/form-data").status_code)
        time.sleep(0.02)
    assert statuses == [200, 200, 429]
    assert not any(isinstance(thread, threading.Timer) for thread in thread_starts)
