"""The classification service behind ``POST /classify``: bytes in, answers out.

It owns the cache, the decoding in the request thread (outside the model lock)
and the micro-batched model call. Flask does not appear here: the routes parse
the request and format the answer.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from bottlecheck.classifier import Classifier
from bottlecheck.engines import usable_cpus
from bottlecheck.imaging import ImageError
from bottlecheck.prediction import Prediction
from bottlecheck.server.batcher import MicroBatcher, Overloaded
from bottlecheck.server.cache import cache_key, make_cache
from bottlecheck.server.observability import ServerMetrics

BAD_IMAGE = "Unable to process image"
#: Sees each answer of a request before it is sent (the review queue keeps it with its photo).
OnAnswer = Callable[[Prediction], None]


def model_copies(classifier: Classifier, count: int | None = None) -> list[Classifier]:
    """The model copies the batching threads run: ``count`` single-threaded ones (default: one per CPU).

    One copy, or a runtime that keeps its own thread pool (TensorFlow): the classifier itself,
    with every thread its engine was given.
    """
    count = usable_cpus() if count is None else max(1, int(count))
    return (classifier.single_threaded_copies(count) if count > 1 else []) or [classifier]


class ClassificationService:
    """Bytes in, answers out: cache, decode, micro-batched model call."""

    def __init__(self, classifier: Classifier, config: Mapping[str, Any], metrics: ServerMetrics):
        self.classifier = classifier
        self.metrics = metrics
        self.timeout = float(config["REQUEST_TIMEOUT_S"])
        self.cache = make_cache(config.get("CACHE_URL"), int(config["CACHE_SIZE"]))
        self.answer_identity = classifier.answer_identity()  # the threshold is in it: see cache.py
        #: The model copies the batching threads run, one each.
        self.copies = model_copies(classifier, config.get("MODEL_COPIES"))
        self.batcher = MicroBatcher(
            [functools.partial(self._run_model, copy) for copy in self.copies],
            max_batch=int(config["BATCH_MAX_SIZE"] or classifier.preferred_batch),
            max_wait=float(config["BATCH_MAX_WAIT_MS"]) / 1000.0,
            max_queue=int(config["QUEUE_MAX"]),
            on_batch=metrics.batch_size.observe,
        )

    def _run_model(self, classifier: Classifier, prepared: list[Any]) -> Any:
        """A batching thread's model call: one raw result per photo (:meth:`Classifier.infer`)."""
        self.metrics.queue_depth.set(self.batcher.queue_depth)  # a batch just left the queue
        return classifier.infer(prepared)

    def answer(self, result: Any, name: str = "-", on_answer: OnAnswer | None = None) -> dict[str, Any]:
        """The API's answer for one raw model result (fresh or cached): the answer's own body.

        ``on_answer(prediction)`` sees the answer first (the review queue keeps it with the photo).
        """
        prediction = self.classifier.prediction_from(name, result)
        if on_answer is not None:
            on_answer(prediction)
        return prediction.api_body(self.classifier.artifact.version)

    def _abandon(self, pending: list) -> None:
        """Give back the slots of a request's images already queued (the request is refused)."""
        for _, _, future in pending:
            future.cancel()
            self.batcher.end()

    def classify_many(
        self, uploads: list[tuple[str, bytes]], on_answer: Callable[[int], OnAnswer] | None = None
    ) -> list[dict[str, Any]]:
        """One answer or ``{"error": ...}`` per upload, in order. Raises Overloaded.

        ``on_answer(index)``, if given, says what to do with the answer to upload ``index``
        before it is sent (see :meth:`answer`).
        """

        def answer(index: int, result: Any) -> dict[str, Any]:
            return self.answer(result, uploads[index][0], on_answer(index) if on_answer else None)

        results: list[dict[str, Any] | None] = [None] * len(uploads)
        pending: list[tuple[int, str | None, Future]] = []
        for index, (_name, data) in enumerate(uploads):
            key = cache_key(data, self.answer_identity) if self.cache.enabled else None
            cached = self.cache.get(key) if key else None
            if cached is not None:
                self.metrics.cache_hits.inc()
                results[index] = answer(index, cached)
                continue
            self.metrics.cache_misses.inc()
            try:
                self.batcher.begin()  # admission first: a refusal costs no decoding
            except Overloaded:
                self._abandon(pending)
                raise
            try:
                array = self.classifier.preprocess(data)
                pending.append((index, key, self.batcher.submit(array)))
                self.metrics.queue_depth.set(self.batcher.queue_depth)
            except ImageError as exc:
                self.batcher.end()
                results[index] = {"error": BAD_IMAGE, "detail": str(exc)}
            except Overloaded:
                self.batcher.end()
                self._abandon(pending)
                raise
        deadline = time.monotonic() + self.timeout
        try:
            for index, key, future in pending:
                result = future.result(timeout=max(0.0, deadline - time.monotonic()))
                if key:
                    self.cache.set(key, result)
                results[index] = answer(index, result)
        except FutureTimeout:
            raise Overloaded("timed out waiting for the model") from None
        finally:
            for _ in pending:
                self.batcher.end()
        answered = [result for result in results if result is not None]
        if len(answered) != len(uploads):  # checked under `python -O` too, where an assert is gone
            raise RuntimeError(f"{len(uploads) - len(answered)} of {len(uploads)} uploads left without an answer")
        for result in answered:
            self.metrics.images.labels(status=result.get("Bottle_Status", "error")).inc()
        return answered

    def close(self) -> None:
        """Stop the batching thread (the app is shutting down)."""
        self.batcher.close()
