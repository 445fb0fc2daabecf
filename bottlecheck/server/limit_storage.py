"""Rate-limit counters in this worker's memory, swept inline instead of by a new thread every 10 ms.

``limits``' own ``memory://`` storage clears expired keys on a :class:`threading.Timer` of 10 ms
that it starts again on the next hit once the last one has fired: under steady load that is a
new thread about every 10 ms, and starting it (the caller waits until it runs) was 2.5% of a
serving worker's samples at 32 clients, most of what a limit no one reaches costs
(``benchmarks/NOTES.md``). Nothing needs the sweep to be prompt: a key's count is already
dropped when it is next read after its window ends; the sweep only frees the memory of clients
gone quiet. Here it runs inside a hit, at most once every :data:`SWEEP_SECONDS`.

Selected by ``RATE_LIMIT_STORAGE_URI=memory://`` (the default), which the app maps to
:data:`SCHEME`; Redis and the other storages are ``limits``' own.
"""

from __future__ import annotations

import threading
import time

from limits.storage import MemoryStorage

SCHEME = "bottlecheck-memory"
#: How often a hit also clears every expired key (seconds).
SWEEP_SECONDS = 10.0


class SweptMemoryStorage(MemoryStorage):
    """``limits``' :class:`~limits.storage.MemoryStorage` (every strategy it supports) without its timer threads."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()  # the one timer the parent starts: nothing starts another
        self._sweep_lock = threading.Lock()
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        self.sweeps = 0

    # MemoryStorage calls this (name-mangled: a private hook) on every hit to start its timer.
    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
            self.sweeps += 1
        finally:
            self._sweep_lock.release()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        del state["_sweep_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.timer.cancel()
        self._sweep_lock = threading.Lock()
