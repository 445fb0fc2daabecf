"""The model artefact: exported model, Keras model and the metadata that describes them.

A model directory holds ``metadata.json`` beside the exported models it names: a
``.tflite`` file (fast inference) and a ``.keras`` file (fine-tuning and the TensorFlow
engine) for a one-stage model (``files`` in the metadata), or one of each per stage for a
two-stage one (``stages``: the bundled model's ``finder`` and ``judge``, in
``finder.tflite``, ``judge.keras`` and so on); its ``kind`` says which classifier
answers with it (:mod:`bottlecheck.kinds`). What a caller needs to feed the model and
read its answer (input size, letterbox pad value, decision threshold, version) is read
from the metadata. The label names are the
package's (:mod:`bottlecheck.labels`): loading checks that the artefact's labels
are those, so a model with other classes is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bottlecheck.labels import LABELS

METADATA_FILE = "metadata.json"
#: The kinds of model the package ships (``kind`` in the metadata): one network on the whole
#: photo, and a finder of bottle tops with a judge of each.
WHOLE_PHOTO = "whole-photo"
TOPS = "tops"
DEFAULT_PAD_VALUE = 127


class ModelError(RuntimeError):
    """The model directory is missing, incomplete or unreadable."""


def default_model_dir() -> Path:
    """The model bundled with the package (``model/`` in the source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "model", here.parent / "model"):
        if (candidate / METADATA_FILE).is_file():
            return candidate
    raise ModelError("no bundled model found: reinstall bottlecheck or pass --model DIR")


@dataclass(frozen=True)
class ModelArtifact:
    directory: Path
    metadata: dict[str, Any] = field(repr=False)

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.directory.name))

    @property
    def labels(self) -> list[str]:
        return list(self.metadata.get("labels", ["closed", "open"]))

    @property
    def input_size(self) -> int:
        return int(self.metadata["input"]["size"])

    @property
    def pad_value(self) -> int:
        """Grey level of the letterbox bars the model was trained with."""
        return int(self.metadata["input"].get("pad_value", DEFAULT_PAD_VALUE))

    @property
    def threshold(self) -> float:
        return float(self.metadata.get("threshold", 0.5))

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        """The model's stages by name (the ``tops`` kind's: ``finder`` and ``judge``); empty for a one-stage model."""
        return dict(self.metadata.get("stages", {}))

    @property
    def kind(self) -> str:
        """Which kind of classifier answers with this model (:mod:`bottlecheck.kinds`): its metadata's ``kind``.

        Models made before the metadata said so are told by their stages: a ``finder`` and a
        ``judge`` make a :data:`TOPS` model, none a :data:`WHOLE_PHOTO` one.
        """
        declared = self.metadata.get("kind")
        if declared:
            return str(declared)
        return TOPS if {"finder", "judge"} <= set(self.stages) else WHOLE_PHOTO

    def stage(self, name: str) -> dict[str, Any]:
        try:
            return self.stages[name]
        except KeyError:
            raise ModelError(f"{self.directory}: metadata has no {name!r} stage") from None

    def file(self, kind: str, stage: str | None = None) -> Path:
        """Path of the ``tflite`` or ``keras`` file named in the metadata (of ``stage``, for a staged model)."""
        files = (self.stage(stage) if stage else self.metadata).get("files", {})
        name = files.get(kind)
        if not name:
            raise ModelError(f"{self.directory}: metadata names no {kind} model" + (f" for {stage}" if stage else ""))
        return self.directory / name

    @cached_property
    def checksum(self) -> str:
        """SHA-256 of the exported model (each stage's): identifies exactly which weights answered."""
        digest = hashlib.sha256()
        if self.stages:
            paths = [self.file("tflite", stage) for stage in sorted(self.stages)]
        elif self.metadata.get("files", {}).get("tflite"):
            paths = [self.file("tflite")]
        else:  # a kind with no exported network (a rule, a test's toy): its metadata is its weights
            paths = [self.directory / METADATA_FILE]
        for path in paths:
            with open(path, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.metadata.get("metrics", {}))


def load_artifact(path: str | Path | None = None) -> ModelArtifact:
    """Read a model directory (or its ``metadata.json``); ``None`` means the bundled model."""
    directory = default_model_dir() if path is None else Path(path)
    if directory.is_file():
        directory = directory.parent
    metadata_path = directory / METADATA_FILE
    if not metadata_path.is_file():
        raise ModelError(f"{directory}: no {METADATA_FILE} (is this a bottlecheck model directory?)")
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{metadata_path}: unreadable metadata ({exc})") from None
    if "input" not in metadata or "size" not in metadata["input"]:
        raise ModelError(f"{metadata_path}: metadata has no input size")
    labels = tuple(metadata.get("labels", LABELS))
    if labels != LABELS:
        raise ModelError(f"{metadata_path}: labels {list(labels)}, expected {list(LABELS)}")
    return ModelArtifact(directory=directory.resolve(), metadata=metadata)


def write_metadata(directory: str | Path, metadata: dict[str, Any]) -> Path:
    path = Path(directory) / METADATA_FILE
    path.write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    return path
