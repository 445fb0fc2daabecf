"""The classifier: an engine plus the artefact's labels and threshold, and the batch pipeline.

``Classifier`` turns model outputs into answers (``open``/``closed`` and a
confidence). ``classify_paths`` is the batch pipeline used by the CLI, evaluation
and Ray: worker threads each decode a batch and run their own single-threaded copy
of the model on it (Pillow and LiteRT both release the GIL while they work), so every
core does useful work and none waits on a thread another core is busy with.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import itertools
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, cast

import numpy as np
from PIL import Image

from bottlecheck.artifact import ModelArtifact, load_artifact
from bottlecheck.engines import Engine, load_engine, usable_cpus
from bottlecheck.imaging import DEFAULT_MAX_PIXELS, ImageError, ImageSource, load_image
from bottlecheck.labels import CLOSED, ERROR, OPEN

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+

__all__ = ["CLOSED", "ERROR", "OPEN", "Classifier", "DeferredInput", "Prediction"]


@dataclass(frozen=True)
class Prediction:
    """One output row. ``confidence`` is the probability of ``status``.

    A two-stage model also says how many bottle tops it found and how many are open and
    closed, and gives each top's box (in the photo's own pixels, after EXIF orientation),
    status and confidence; ``status`` may then be ``unknown`` (no top it trusts).
    """

    path: str
    status: str
    confidence: float | None = None
    p_open: float | None = None
    error: str | None = None
    bottles: int | None = None
    open_tops: int | None = None
    closed_tops: int | None = None
    tops: tuple[dict, ...] | None = None
    # A video frame's row: its index in the clip (from 0, every decoded frame counted) and
    # its presentation time in seconds. None for a photo, and for a clip's error row.
    frame: int | None = None
    time_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class DeferredInput(Protocol):
    """An input that a worker thread of :meth:`Classifier.classify_paths` decodes: a video frame.

    ``name`` is its row's ``path``; ``image(max_side)`` gives the decoded RGB picture or raises
    :class:`ImageError` (an error row), shrunk to ``max_side`` on its long side where the
    classifier would shrink it (:attr:`Classifier.frame_side`); ``row_fields()`` adds to the row
    (``frame``, ``time_s``).
    """

    @property
    def name(self) -> str: ...

    def image(self, max_side: int | None = None) -> Image.Image: ...

    def row_fields(self) -> dict[str, Any]: ...


#: What :meth:`Classifier.classify_paths` takes: a path, or an input decoded on a worker thread.
Input = str | DeferredInput


_OTHER_KINDS: list[tuple[Callable[[ModelArtifact], bool], Callable[..., Classifier]]] = []


class Classifier:
    """Load once, classify many. Thread-safe: engines serialise their own calls."""

    #: The long side a picture more than twice as large is shrunk to before the model sees it
    #: (None: never). A video frame is converted to RGB at that size at once (bottlecheck.video).
    frame_side: int | None = None

    def __init__(
        self,
        artifact: ModelArtifact,
        engine: Engine,
        threshold: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.artifact = artifact
        self.engine = engine
        self.threshold = artifact.threshold if threshold is None else float(threshold)
        self.input_size = artifact.input_size
        self.max_pixels = max_pixels

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        engine: str = "auto",
        threshold: float | None = None,
        threads: int | None = None,
    ) -> Classifier:
        artifact = load_artifact(model)
        for accepts, load in _OTHER_KINDS:
            if accepts(artifact):
                return load(artifact, engine, threshold, threads)
        return cls(artifact, load_engine(artifact, engine, threads), threshold)

    @staticmethod
    def register_kind(
        accepts: Callable[[ModelArtifact], bool],
        load: Callable[[ModelArtifact, str, float | None, int | None], Classifier],
    ) -> None:
        """Let another kind of model (model 2's two stages) load through :meth:`load`.

        The two-stage classifier registers itself when the package is imported, so this module
        never imports it back (a subclass importing its base is the only direction).
        """
        _OTHER_KINDS.append((accepts, load))

    def answer_settings(self) -> dict[str, Any]:
        """What, besides the image and the weights, decides this classifier's answer (its result cache key).

        The threshold (the model's, or the one given), the runtime, and the rules read from the
        model's metadata; a two-stage model adds those of its stages.
        """
        return {
            "engine": self.engine.name,
            "threshold": self.threshold,
            "input_size": self.input_size,
            "pad_value": self.artifact.pad_value,
        }

    def answer_identity(self) -> str:
        """A digest of the weights, the metadata that describes how to use them and :meth:`answer_settings`.

        Two classifiers that may answer one image differently (another threshold, a copied model
        directory with another finder score) have different identities: a result cache shared by
        replicas keys on it, so that none serves another's decisions.
        """
        described = {k: v for k, v in self.artifact.metadata.items() if k != "metrics"}  # evaluations only
        text = json.dumps([self.artifact.checksum, described, self.answer_settings()], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def preprocess(self, source: ImageSource) -> np.ndarray:
        return load_image(source, self.input_size, self.max_pixels, pad_value=self.artifact.pad_value)

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        return self.engine.predict(images)

    def decide(self, p_open: float) -> tuple[str, float]:
        """Status and its probability for one ``p_open``."""
        p_open = float(p_open)
        if p_open >= self.threshold:
            return OPEN, p_open
        return CLOSED, 1.0 - p_open

    def prediction(self, path: str, p_open: float) -> Prediction:
        status, confidence = self.decide(p_open)
        return Prediction(path, status, confidence, float(p_open))  # outputs round (4 decimals)

    def classify(self, source: ImageSource, name: str | None = None) -> Prediction:
        """Classify one image (path or bytes); errors become an ``error`` row.

        The row's ``path`` is ``name``, else the path given, else ``-`` (bytes have no name).
        """
        if name is None:
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "-"
        try:
            prepared = self.preprocess(source)
        except ImageError as exc:
            return Prediction(name, ERROR, error=str(exc))
        return self.answer_batch([name], [prepared])[0]

    def infer(self, prepared: list) -> list[Any]:
        """Run the model once on a batch of preprocessed inputs: one raw result each, in order.

        The raw result is what a cache keeps and :meth:`prediction_from` turns into an answer:
        ``p_open`` for a one-stage model, the tops and the photo's answer for a two-stage one.
        The server's micro-batcher calls this with its requests' photos.
        """
        return [float(score) for score in self.predict_arrays(np.stack(prepared))]

    def prediction_from(self, name: str, result: Any) -> Prediction:
        """The answer for one raw result of :meth:`infer`."""
        return self.prediction(name, result)

    def answer_batch(self, names: list[str], prepared: list) -> list[Prediction]:
        """Run the model once on a batch of preprocessed inputs; one prediction each, in order."""
        return [self.prediction_from(name, result) for name, result in zip(names, self.infer(prepared), strict=True)]

    def replica(self) -> Self | None:
        """This classifier with its own single-threaded engines, for one more thread of :meth:`classify_paths`.

        ``None`` where the runtime keeps its own thread pool (TensorFlow). A two-stage model
        copies both stages.
        """
        engine = self.engine.replica()
        if engine is None:
            return None
        twin = copy.copy(self)
        twin.engine = engine
        return twin

    def single_threaded_copies(self, count: int) -> list[Self]:
        """``count`` :meth:`replica` copies; none where the runtime keeps its own thread pool.

        Cheap to make: a copy allocates its tensors at its first run, so copies that never run
        cost a few MB each. The pipeline threads of :meth:`classify_paths` and the server's
        batching threads each run one.
        """
        copies = [self.replica() for _ in range(count)]
        return [twin for twin in copies if twin is not None]

    def classify_paths(
        self,
        paths: Iterable[Input],
        batch_size: int | None = None,
        workers: int | None = None,
        prefetch_batches: int = 2,
    ) -> Iterator[Prediction]:
        """Yield one :class:`Prediction` per path, in input order, errors included.

        An input may also be a :class:`DeferredInput` (a video frame, already demuxed and
        decoded by the caller's thread): a worker converts it to RGB and it joins the batch like
        a photo, so the model's batches stay full across frames, clips and photos.

        ``batch_size`` defaults to the engine's preferred batch (4 for LiteRT, 32 for TensorFlow),
        ``workers`` to one per CPU this process may use.

        With LiteRT and two workers or more, each worker thread takes a whole batch, decodes it
        and runs its own single-threaded copy of the model on it: no core waits for another,
        and none is shared between a decoder and an inference thread (on 2 cores, 1080x1920
        photos: about 155 photos/s against 131 for decoding threads feeding one two-threaded
        interpreter). Otherwise (TensorFlow, which spreads one batch over every core itself, or
        one worker) worker threads decode a few batches ahead while this thread runs the model.
        """
        batch_size = max(1, batch_size or self.engine.preferred_batch)
        workers = max(1, workers or usable_cpus())
        lanes = self.single_threaded_copies(workers) if workers > 1 else []
        if lanes:
            yield from self._classify_in_lanes(paths, batch_size, lanes, prefetch_batches)
        else:
            yield from self._classify_decoding_ahead(paths, batch_size, workers, prefetch_batches)

    def _prepare(self, path: Input) -> Any:
        """The model input for ``path``, or the :class:`ImageError` that says why there is none."""
        try:
            return self.preprocess(path.image(self.frame_side) if _deferred(path) else cast(str, path))
        except ImageError as exc:
            return exc
        except Exception as exc:  # a row, never a crash: keep the other 9,999 results
            return ImageError(f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0])

    def _rows(self, decoded: list[tuple[Input, Any]]) -> list[Prediction]:
        """One prediction per decoded path, in order: the model runs once on those that decoded."""
        good = [(path, value) for path, value in decoded if not isinstance(value, ImageError)]
        answers = iter(self.answer_batch([_name(p) for p, _ in good], [v for _, v in good]) if good else [])
        rows = []
        for path, value in decoded:
            row = Prediction(_name(path), ERROR, error=str(value)) if isinstance(value, ImageError) else next(answers)
            rows.append(replace(row, **path.row_fields()) if _deferred(path) else row)
        return rows

    def _classify_in_lanes(
        self, paths: Iterable[Input], batch_size: int, lanes: list[Self], prefetch_batches: int
    ) -> Iterator[Prediction]:
        free: queue.SimpleQueue[Self] = queue.SimpleQueue()
        for lane in lanes:
            free.put(lane)
        local = threading.local()
        workers = len(lanes)

        def classify_batch(batch: list[Input]) -> list[Prediction]:
            if not hasattr(local, "classifier"):  # this thread's first batch: a copy of its own
                local.classifier = free.get_nowait()
            lane = local.classifier
            return lane._rows([(path, lane._prepare(path)) for path in batch])

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
        self, paths: Iterable[Input], batch_size: int, workers: int, prefetch_batches: int
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
                    pending.append((path, pool.submit(self._prepare, path)))

            fill()
            while pending:
                batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                fill()  # keep the decoders busy while the model runs
                yield from self._rows([(path, future.result()) for path, future in batch])


def _deferred(path: Any) -> TypeGuard[DeferredInput]:
    """A :class:`DeferredInput`, not a path (a ``str`` or, from library callers, a ``Path``)."""
    return hasattr(path, "row_fields")


def _name(path: Input) -> str:
    return path.name if _deferred(path) else cast(str, path)
