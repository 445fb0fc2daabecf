"""Result cache keyed by the SHA-256 of the image bytes and the model's checksum.

A repeated image (a client retrying, a camera sending the same frame) skips
decoding and inference. In memory (LRU) by default; Redis when a URL is given, so
that all workers and replicas share it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict


def cache_key(data: bytes, model_checksum: str) -> str:
    return f"bottlecheck:{model_checksum[:16]}:{hashlib.sha256(data).hexdigest()}"


class LRUCache:
    def __init__(self, max_items: int = 4096):
        self.max_items = max_items
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> float | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def set(self, key: str, value: float) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


class RedisCache:
    def __init__(self, url: str, ttl_seconds: int = 86400):
        import redis  # optional: pip install 'bottlecheck[redis]'

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.ttl = ttl_seconds

    def get(self, key: str) -> float | None:
        try:
            value = self._client.get(key)
        except Exception:  # a cache outage must not fail requests
            return None
        return None if value is None else float(value)

    def set(self, key: str, value: float) -> None:
        try:
            self._client.set(key, repr(value), ex=self.ttl)
        except Exception:
            pass


def make_cache(url: str | None, max_items: int):
    if url:
        return RedisCache(url)
    return LRUCache(max_items)
