"""The classifier: what every kind of model offers its callers, and the one-stage kind (``whole-photo``).

:class:`Classifier` is the small base every kind of model is (:mod:`bottlecheck.kinds` says
which kind a model directory is): it decodes an input (``preprocess``), runs the model on a batch
(``infer``), turns each raw result into a :class:`~bottlecheck.prediction.Prediction`
(``prediction_from``), and declares the columns of its rows. ``classify`` answers one input and
``classify_paths`` many, through the batch pipeline (:mod:`bottlecheck.pipeline`), which knows
no kind. :class:`WholePhotoClassifier` is the ``whole-photo`` kind: one network on the letterboxed
photo, and a threshold on its ``p_open``; the ``tops`` kind (find the tops, judge each) is its
sibling in :mod:`bottlecheck.tops_classifier`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bottlecheck.artifact import WHOLE_PHOTO, ModelArtifact
from bottlecheck.engines import Engine, load_engine
from bottlecheck.imaging import DEFAULT_MAX_PIXELS, ImageError, ImageSource, load_image
from bottlecheck.labels import CLOSED, ERROR, OPEN
from bottlecheck.pipeline import DeferredInput, Input, classify_paths
from bottlecheck.prediction import FIELDS, BottleTop, Prediction

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+

    from bottlecheck.kinds import KindLoader

__all__ = [
    "CLOSED",
    "ERROR",
    "OPEN",
    "BottleTop",
    "Classifier",
    "DeferredInput",
    "Prediction",
    "WholePhotoClassifier",
]


class Classifier:
    """Load once, classify many: the base of every kind of model. Thread-safe: engines serialise their own calls.

    A kind implements :meth:`from_artifact`, :meth:`preprocess`, :meth:`infer`,
    :meth:`prediction_from`, :meth:`replica`, :attr:`engine_name` and :attr:`preferred_batch`,
    and declares :attr:`columns` (and :attr:`nested_columns`, carried only by JSON rows).
    """

    #: The row's columns, in order (CSV header, table columns, JSON keys).
    columns: ClassVar[tuple[str, ...]] = FIELDS
    #: Row fields that a CSV cell cannot hold, written by JSON and JSONL after :attr:`columns`.
    nested_columns: ClassVar[tuple[str, ...]] = ()
    #: The statuses its answers may have, besides ``error`` (a run's summary counts each).
    statuses: ClassVar[tuple[str, ...]] = (OPEN, CLOSED)
    #: The long side a picture more than twice as large is shrunk to before the model sees it
    #: (None: never). A video frame is converted to RGB at that size at once (bottlecheck.sources.video).
    frame_side: int | None = None

    def __init__(self, artifact: ModelArtifact, threshold: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.artifact = artifact
        self.threshold = artifact.threshold if threshold is None else float(threshold)
        self.max_pixels = max_pixels

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        engine: str = "auto",
        threshold: float | None = None,
        threads: int | None = None,
    ) -> Classifier:
        """The classifier for ``model`` (None: the bundled one), of the kind its metadata says."""
        from bottlecheck.kinds import load_classifier  # the registry imports the kinds, not the reverse

        return load_classifier(model, engine, threshold, threads)

    @classmethod
    def from_artifact(
        cls, artifact: ModelArtifact, engine: str = "auto", threshold: float | None = None, threads: int | None = None
    ) -> Classifier:
        """This kind's classifier for ``artifact``, its networks loaded on ``engine``."""
        raise NotImplementedError

    @property
    def engine_name(self) -> str:
        """The runtime that runs the model (``litert``, ``tensorflow``), as ``info`` and ``/health`` say."""
        raise NotImplementedError

    @property
    def preferred_batch(self) -> int:
        """The batch the pipeline and the server's batcher fill by default."""
        raise NotImplementedError

    def answer_settings(self) -> dict[str, Any]:
        """What, besides the image and the weights, decides this classifier's answer (its result cache key).

        The threshold (the model's, or the one given), the runtime, and the rules a kind reads
        from the model's metadata.
        """
        return {"engine": self.engine_name, "threshold": self.threshold}

    def answer_identity(self) -> str:
        """A digest of the weights, the metadata that describes how to use them and :meth:`answer_settings`.

        Two classifiers that may answer one image differently (another threshold, a copied model
        directory with another finder score) have different identities: a result cache shared by
        replicas keys on it, so that none serves another's decisions.
        """
        described = {k: v for k, v in self.artifact.metadata.items() if k != "metrics"}  # evaluations only
        text = json.dumps([self.artifact.checksum, described, self.answer_settings()], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def preprocess(self, source: ImageSource) -> Any:
        """Decode one input (a path or bytes) into what :meth:`infer` takes; raises :class:`ImageError`."""
        raise NotImplementedError

    def infer(self, prepared: list[Any]) -> list[Any]:
        """Run the model once on a batch of preprocessed inputs: one raw result each, in order.

        A raw result is plain data (numbers, lists, dicts: a cache stores it as JSON) that
        :meth:`prediction_from` turns into an answer. The server's micro-batcher calls this with
        its requests' photos.
        """
        raise NotImplementedError

    def prediction_from(self, name: str, result: Any) -> Prediction:
        """The answer for one raw result of :meth:`infer`."""
        raise NotImplementedError

    def decide(self, p_open: float) -> tuple[str, float]:
        """Status and its probability for one ``p_open``: the threshold rule every kind shares."""
        p_open = float(p_open)
        if p_open >= self.threshold:
            return OPEN, p_open
        return CLOSED, 1.0 - p_open

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

    def answer_batch(self, names: list[str], prepared: list[Any]) -> list[Prediction]:
        """Run the model once on a batch of preprocessed inputs; one prediction each, in order."""
        return [self.prediction_from(name, result) for name, result in zip(names, self.infer(prepared), strict=True)]

    def replica(self) -> Self | None:
        """This classifier with its own single-threaded engines, for one more thread of :meth:`classify_paths`.

        ``None`` where the runtime keeps its own thread pool (TensorFlow).
        """
        raise NotImplementedError

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
        """One :class:`Prediction` per input, in order, errors included: see :mod:`bottlecheck.pipeline`."""
        return classify_paths(self, paths, batch_size, workers, prefetch_batches)


class WholePhotoClassifier(Classifier):
    """The ``whole-photo`` kind: one network on the whole letterboxed photo says ``p_open``; the threshold decides."""

    columns = FIELDS

    def __init__(
        self,
        artifact: ModelArtifact,
        engine: Engine,
        threshold: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        super().__init__(artifact, threshold, max_pixels)
        self.engine = engine
        self.input_size = artifact.input_size

    @classmethod
    def from_artifact(
        cls, artifact: ModelArtifact, engine: str = "auto", threshold: float | None = None, threads: int | None = None
    ) -> WholePhotoClassifier:
        return cls(artifact, load_engine(artifact, engine, threads), threshold)

    @property
    def engine_name(self) -> str:
        return self.engine.name

    @property
    def preferred_batch(self) -> int:
        return self.engine.preferred_batch

    def answer_settings(self) -> dict[str, Any]:
        return {**super().answer_settings(), "input_size": self.input_size, "pad_value": self.artifact.pad_value}

    def preprocess(self, source: ImageSource) -> np.ndarray:
        return load_image(source, self.input_size, self.max_pixels, pad_value=self.artifact.pad_value)

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """``p_open`` for each of a batch of preprocessed images."""
        return self.engine.predict(images)

    def infer(self, prepared: list[Any]) -> list[float]:
        return [float(score) for score in self.predict_arrays(np.stack(prepared))]

    def prediction_from(self, name: str, result: Any) -> Prediction:
        status, confidence = self.decide(result)
        return Prediction(name, status, confidence, float(result))  # outputs round (4 decimals)

    def replica(self) -> Self | None:
        engine = self.engine.replica()
        if engine is None:
            return None
        twin = copy.copy(self)
        twin.engine = engine
        return twin


def register_kinds(register: Callable[[str, KindLoader], None]) -> None:
    """The hook :mod:`bottlecheck.kinds` calls: this module's kind of model."""
    register(WHOLE_PHOTO, WholePhotoClassifier.from_artifact)
