"""Micro-batching: gather concurrent requests in a worker into one model call.

Request threads decode their image (outside any lock, in parallel), then hand
what the classifier prepared from it (a letterboxed array, or a decoded photo for a
two-stage model) to ``MicroBatcher.submit``. A batching thread takes the first
waiting input and, while other requests are still on their way (decoding or
queued), waits up to ``max_wait`` for more, up to ``max_batch``; then it runs the
model once and hands each request its answer. The idea of TensorFlow Serving's
and Triton's dynamic batching, sized for a CPU worker.

Given several model functions (each a single-threaded copy of the model), one batching
thread runs each, all taking from the one queue: a core is never left waiting on a
two-threaded model call that the other core's decoding holds up.

The queue is bounded: when it is full, ``submit`` raises :class:`Overloaded` at
once, and the server answers 503 instead of letting latency grow without limit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

import numpy as np

Predict = Callable[[list[Any]], Sequence[Any] | np.ndarray]


class Overloaded(RuntimeError):
    """The batching queue is full."""


class MicroBatcher:
    def __init__(
        self,
        predict: Predict | Sequence[Predict],
        max_batch: int = 16,
        max_wait: float = 0.005,
        max_queue: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._predicts = list(predict) if isinstance(predict, Sequence) else [predict]
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait)
        self._queue: queue.Queue[tuple[np.ndarray, Future]] = queue.Queue(maxsize=max(1, max_queue))
        self._on_batch = on_batch
        self._inflight = 0  # requests between begin() and their answer: decoding or queued
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(function,), name=f"micro-batcher-{i}", daemon=True)
            for i, function in enumerate(self._predicts)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def lanes(self) -> int:
        """Batching threads, each with its own model function."""
        return len(self._threads)

    @property
    def capacity(self) -> int:
        """Images admitted at once: a full queue plus a batch inside each model copy."""
        return self._queue.maxsize + self.max_batch * len(self._predicts)

    def begin(self) -> None:
        """Admit an image before it is decoded (and let the batcher wait for it).

        Raises :class:`Overloaded` when as many images as the queue and one batch hold are
        already admitted, so a refusal costs no decoding and comes back at once.
        """
        with self._lock:
            if self._inflight >= self.capacity:
                raise Overloaded("model queue is full")
            self._inflight += 1

    def end(self) -> None:
        with self._lock:
            self._inflight -= 1

    def submit(self, image: np.ndarray) -> Future:
        """Queue one prepared input; the future resolves to what the model function answered for it
        (``p_open`` from a one-stage model, the photo's answer from a two-stage one)."""
        future: Future = Future()
        try:
            self._queue.put_nowait((image, future))
        except queue.Full:
            raise Overloaded("model queue is full") from None
        return future

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _more_coming(self, batch_size: int) -> bool:
        with self._lock:
            return self._inflight > batch_size

    def _run(self, predict: Predict) -> None:
        while not self._stopped.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if first is None:  # closed
                self._pass_on_the_stop()
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except queue.Empty:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._more_coming(len(batch)):
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            closing = any(item is None for item in batch)  # the sentinel came in with a batch
            batch = [item for item in batch if item is not None]
            if batch:
                self._run_batch(predict, batch)
            if closing:
                self._pass_on_the_stop()
                break

    def _pass_on_the_stop(self) -> None:
        """Put the stop sentinel in the queue: each batching thread that takes it puts it back for the next."""
        try:
            self._queue.put_nowait(None)  # type: ignore[arg-type]
        except queue.Full:
            pass  # busy: it will see the stop flag after its batch

    def _run_batch(self, predict: Predict, batch: list[tuple[np.ndarray, Future]]) -> None:
        try:
            scores = predict([image for image, _ in batch])
        except Exception as exc:  # every waiting request gets the failure, none hangs
            for _, future in batch:
                if not future.cancelled():
                    future.set_exception(exc)
            return
        if self._on_batch:
            self._on_batch(len(batch))
        for (_, future), score in zip(batch, scores, strict=True):
            try:
                future.set_result(score)
            except InvalidStateError:  # cancelled: its request was refused meanwhile
                pass

    def close(self) -> None:
        """Stop the batching threads; a sentinel wakes them at once rather than at their next 0.2 s poll
        (at exit, a process that built many apps, like the test suite, waited 0.2 s for each)."""
        self._stopped.set()
        self._pass_on_the_stop()
        for thread in self._threads:
            thread.join(timeout=2)
