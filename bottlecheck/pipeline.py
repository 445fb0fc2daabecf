"""The batch pipeline: many inputs in, one answer each out, in input order, for any kind of model.

The CLI, evaluation, ``watch`` and Ray's workers all classify through :func:`classify_paths`.
It needs of a classifier only what every kind has (:class:`~bottlecheck.classifier.Classifier`):
``preprocess`` (decode one input, on a worker thread), ``answer_batch`` (run the model once on a
batch), ``single_threaded_copies`` and ``preferred_batch``; a new kind of model needs no edit here.

Worker threads each decode a batch and run their own single-threaded copy of the model on it
(Pillow and LiteRT both release the GIL while they work), so every core does useful work and
none waits on a thread another core is busy with.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, cast

from PIL import Image

from bottlecheck.engines import usable_cpus
from bottlecheck.imaging import ImageError
from bottlecheck.labels import ERROR
from bottlecheck.prediction import Prediction

if TYPE_CHECKING:
    from bottlecheck.classifier import Classifier


class DeferredInput(Protocol):
    """An input that a worker thread of :func:`classify_paths` decodes: a video frame.

    ``name`` is its row's ``path``; ``image(max_side)`` gives the decoded RGB picture or raises
    :class:`ImageError` (an error row), shrunk to ``max_side`` on its long side where the
    classifier would shrink it (:attr:`Classifier.frame_side`); ``row_fields()`` adds to the row
    (``frame``, ``time_s``).
    """

    @property
    def name(self) -> str: ...

    def image(self, max_side: int | None = None) -> Image.Image: ...

    def row_fields(self) -> dict[str, Any]: ...


#: What :func:`classify_paths` takes: a path, or an input decoded on a worker thread.
Input = str | DeferredInput


def classify_paths(
    classifier: Classifier,
    paths: Iterable[Input],
    batch_size: int | None = None,
    workers: int | None = None,
    prefetch_batches: int = 2,
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per path, in input order, errors included.

    An input may also be a :class:`DeferredInput` (a video frame, already demuxed and decoded by
    the caller's thread): a worker converts it to RGB and it joins the batch like a photo, so
    the model's batches stay full across frames, clips and photos.

    ``batch_size`` defaults to the classifier's preferred batch (4 for LiteRT, 32 for
    TensorFlow), ``workers`` to one per CPU this process may use.

    Where the classifier can make single-threaded copies of itself (LiteRT) and there are two
    workers or more, each worker thread takes a whole batch, decodes it and runs its own copy
    on it: no core waits for another, and none is shared between a decoder and an inference
    thread (on 2 cores, 1080x1920 photos: about 155 photos/s against 131 for decoding threads
    feeding one two-threaded interpreter). Otherwise (TensorFlow, which spreads one batch over
    every core itself, or one worker) worker threads decode a few batches ahead while this
    thread runs the model.
    """
    batch_size = max(1, batch_size or classifier.preferred_batch)
    workers = max(1, workers or usable_cpus())
    lanes = classifier.single_threaded_copies(workers) if workers > 1 else []
    if lanes:
        yield from _classify_in_lanes(paths, batch_size, lanes, prefetch_batches)
    else:
        yield from _classify_decoding_ahead(classifier, paths, batch_size, workers, prefetch_batches)


def _prepare(classifier: Classifier, path: Input) -> Any:
    """The model input for ``path``, or the :class:`ImageError` that says why there is none."""
    try:
        return classifier.preprocess(path.image(classifier.frame_side) if _deferred(path) else cast(str, path))
    except ImageError as exc:
        return exc
    except Exception as exc:  # a row, never a crash: keep the other 9,999 results
        return ImageError(f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0])


def _rows(classifier: Classifier, decoded: list[tuple[Input, Any]]) -> list[Prediction]:
    """One prediction per decoded path, in order: the model runs once on those that decoded."""
    good = [(path, value) for path, value in decoded if not isinstance(value, ImageError)]
    answers = iter(classifier.answer_batch([_name(p) for p, _ in good], [v for _, v in good]) if good else [])
    rows = []
    for path, value in decoded:
        row = Prediction(_name(path), ERROR, error=str(value)) if isinstance(value, ImageError) else next(answers)
        rows.append(replace(row, **path.row_fields()) if _deferred(path) else row)
    return rows


def _classify_in_lanes(
    paths: Iterable[Input], batch_size: int, lanes: list[Classifier], prefetch_batches: int
) -> Iterator[Prediction]:
    free: queue.SimpleQueue[Classifier] = queue.SimpleQueue()
    for lane in lanes:
        free.put(lane)
    local = threading.local()
    workers = len(lanes)

    def classify_batch(batch: list[Input]) -> list[Prediction]:
        if not hasattr(local, "classifier"):  # this thread's first batch: a copy of its own
            local.classifier = free.get_nowait()
        lane = local.classifier
        return _rows(lane, [(path, _prepare(lane, path)) for path in batch])

    iterator = iter(paths)
    pending: collections.deque[Future] = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="classify") as pool:
        try:
            while True:
                while len(pending) < workers * max(1, prefetch_batches):
                    batch = list(itertools.islice(iterator, batch_size))
                    if not batch:
                        break
                    pending.append(pool.submit(classify_batch, batch))
                if not pending:
                    return
                yield from pending.popleft().result()
        finally:
            for future in pending:  # the caller stopped early: start nothing more
                future.cancel()


def _classify_decoding_ahead(
    classifier: Classifier, paths: Iterable[Input], batch_size: int, workers: int, prefetch_batches: int
) -> Iterator[Prediction]:
    # Decode well ahead: with small batches a window of a few batches runs dry whenever
    # one large photo is slow to decode (measured: 83% of the bound on 1080x1920 frames).
    window = max(batch_size * (prefetch_batches + 1), 32)
    pending: collections.deque[tuple[Input, Future]] = collections.deque()
    iterator = iter(paths)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:

        def fill() -> None:
            while len(pending) < window:
                try:
                    path = next(iterator)
                except StopIteration:
                    return
                pending.append((path, pool.submit(_prepare, classifier, path)))

        fill()
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            fill()  # keep the decoders busy while the model runs
            yield from _rows(classifier, [(path, future.result()) for path, future in batch])


def _deferred(path: Any) -> TypeGuard[DeferredInput]:
    """A :class:`DeferredInput`, not a path (a ``str`` or, from library callers, a ``Path``)."""
    return hasattr(path, "row_fields")


def _name(path: Input) -> str:
    return path.name if _deferred(path) else cast(str, path)
