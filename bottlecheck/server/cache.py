"""Result cache keyed by the SHA-256 of the image bytes and of what decides the answer.

That is the model's weights, the metadata that says how to use them, and the server's own
settings that change an answer, the threshold above all: a two-stage model's cached result
holds statuses already decided, and replicas with different ``BOTTLECHECK_THRESHOLD`` sharing
one Redis must not serve each other's decisions (:meth:`Classifier.answer_identity`).

A repeated image (a client retrying, a camera sending the same frame) skips
decoding and inference. In memory (LRU) by default; Redis when a URL is given, so
that all workers and replicas share it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

log = logging.getLogger("bottlecheck.server")


def cache_key(data: bytes, answer_identity: str) -> str:
    """The key of one image's result: ``answer_identity`` is :meth:`Classifier.answer_identity`."""
    return f"bottlecheck:{answer_identity[:16]}:{hashlib.sha256(data).hexdigest()}"


class LRUCache:
    def __init__(self, max_items: int = 4096):
        self.max_items = max_items
        # Off (0 entries): no key is worth computing (SHA-256 of a 450 KB photo: 0.2 ms a request).
        self.enabled = max_items > 0
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def set(self, key: str, value: Any) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


class RedisCache:
    """The shared cache. An outage is a miss, never a failed request; after a failure Redis is
    left alone for ``retry_after`` seconds, so a Redis that times out does not add its timeout
    to every request meanwhile."""

    enabled = True

    def __init__(self, url: str, ttl_seconds: int = 86400, retry_after: float = 5.0):
        import redis  # optional: pip install 'bottlecheck[redis]'

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.ttl = ttl_seconds
        self.retry_after = retry_after
        self._down_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self) -> None:
        if self._available():
            log.warning("cache: Redis unavailable; answering without it for %.0f s", self.retry_after)
        self._down_until = time.monotonic() + self.retry_after

    def get(self, key: str) -> Any:
        if not self._available():
            return None
        try:
            value = self._client.get(key)
        except Exception:  # a cache outage must not fail requests
            self._failed()
            return None
        return None if value is None else json.loads(value)

    def set(self, key: str, value: Any) -> None:
        if not self._available():
            return
        try:
            self._client.set(key, json.dumps(value), ex=self.ttl)
        except Exception:
            self._failed()


def make_cache(url: str | None, max_items: int):
    if url:
        return RedisCache(url)
    return LRUCache(max_items)
