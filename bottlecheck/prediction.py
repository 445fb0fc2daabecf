"""The answer to one input, whichever kind of model gave it: a row for the writers, a body for the API.

Every edge (the CLI's writers, the HTTP API, the annotated copies, Ray, the video rows) reads a
:class:`Prediction` and never asks which kind of model made it: a model that finds bottle tops
fills :attr:`Prediction.tops` with :class:`BottleTop` records, a whole-photo model leaves it
``None``, and each edge does what the answer it holds says. Ultralytics' ``Results`` is the
pattern: downstream code never asks which task produced it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from bottlecheck.labels import CLOSED, OPEN

# The columns of a row, in order, declared by the kind of model that answered (Classifier.columns):
# a whole-photo model's, and a tops model's, which also counts the bottle tops it found; its JSON
# and JSONL rows carry each top too (box in the photo's pixels, status, confidence: its nested
# column ``tops``), which a CSV cell cannot.
FIELDS = ("path", "status", "confidence", "p_open", "error")
TOPS_FIELDS = ("path", "status", "confidence", "p_open", "bottles", "open_tops", "closed_tops", "error")

# One rule for every output, CLI and HTTP API alike: probabilities to 4 decimals. The table and
# CSV write them as text with exactly 4 (0.8650); JSON, JSONL and the API carry numbers rounded to
# 4, which a JSON writer prints without trailing zeros (0.865 is the same number as 0.8650).
DECIMALS = 4


def rounded(value: Any) -> Any:
    """``value`` with every float in it (nested in dicts, lists and tuples too) to :data:`DECIMALS`.

    The one rounding of every output: the writers' rows, the API's numbers, events and watch's
    webhook. Tuples come back as lists (JSON writes both the same way); anything else as it is.
    """
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


# How a written row's cells are read back (read_cells): a CSV's are all text, a JSON row's typed.
_FLOAT_CELLS = frozenset({"confidence", "p_open", "time_s"})
_INT_CELLS = frozenset({"bottles", "open_tops", "closed_tops", "frame"})
_NONE_TEXT = frozenset({"", "None", "null"})


@dataclass(frozen=True)
class BottleTop:
    """One bottle top a model found and judged.

    ``box`` is (left, top, right, bottom) in the photo's own pixels (after EXIF orientation);
    ``status`` is ``open`` or ``closed`` and ``confidence`` its probability; ``p_open`` the
    judge's chance of open given a top; ``p_top`` its chance that this is a top at all;
    ``score`` the finder's.
    """

    box: tuple[float, float, float, float]
    status: str
    confidence: float
    p_open: float
    p_top: float
    score: float

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BottleTop:
        """A top from its row form (a dict read back from JSON, a cached result); unknown keys are ignored."""
        known = {field.name for field in fields(cls)}
        given = {key: value for key, value in values.items() if key in known}
        try:
            given["box"] = tuple(float(v) for v in given["box"])
            return cls(**given)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a bottle top: {dict(values)!r}") from exc


@dataclass(frozen=True)
class Prediction:
    """One input's answer. ``confidence`` is the probability of ``status``.

    A model that finds tops also says how many it found and how many are open and closed, and
    gives each one (:class:`BottleTop`); ``status`` may then be ``unknown`` (no top it trusts).
    An input that could not be read has ``status`` ``error`` and says why in ``error``.
    """

    path: str
    status: str
    confidence: float | None = None
    p_open: float | None = None
    error: str | None = None
    bottles: int | None = None
    open_tops: int | None = None
    closed_tops: int | None = None
    tops: tuple[BottleTop, ...] | None = None
    # A video frame's row: its index in the clip (from 0, every decoded frame counted) and
    # its presentation time in seconds. None for a photo, and for a clip's error row.
    frame: int | None = None
    time_s: float | None = None

    @classmethod
    def with_tops(
        cls, path: str, status: str, confidence: float | None, p_open: float | None, tops: Sequence[BottleTop]
    ) -> Prediction:
        """The answer of a model that finds tops: the counts are the tops' own, so they cannot disagree."""
        return cls(
            path,
            status,
            confidence,
            p_open,
            bottles=len(tops),
            open_tops=sum(top.status == OPEN for top in tops),
            closed_tops=sum(top.status == CLOSED for top in tops),
            tops=tuple(tops),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Prediction:
        """The answer again from a written row: the one reader of rows, for resume, video, review and Ray.

        ``row`` is :meth:`as_dict`'s (Ray's workers send it as JSON), a JSON or JSONL row read
        back, or a CSV's, whose cells are all text; :func:`read_cells` types them. Columns a
        Prediction has not are ignored; ValueError names a cell that is not what its column holds.
        """
        values = read_cells(row)
        if "path" not in values or "status" not in values:
            raise ValueError(f"a row needs a path and a status: {dict(row)!r}")
        if values.get("tops") is not None:
            values["tops"] = tuple(BottleTop.from_mapping(top) for top in values["tops"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The row the writers take: every field, each top as a dict (box, status, confidence, ...)."""
        return asdict(self)

    def api_body(self, model_version: str) -> dict[str, Any]:
        """The HTTP API's answer: the seed's two keys first; a model that finds tops adds each one and the counts."""
        body: dict[str, Any] = {
            "Bottle_Status": self.status,
            "Confidence": _api_number(self.confidence),
            "p_open": _api_number(self.p_open),
            "model_version": model_version,
        }
        if self.tops is not None:
            body["bottles"] = [
                {"box": list(top.box), "status": top.status, "confidence": _api_number(top.confidence)}
                for top in self.tops
            ]
            body["counts"] = {"bottles": self.bottles, "open": self.open_tops, "closed": self.closed_tops}
        return body


def _api_number(value: float | None) -> float | None:
    return None if value is None else rounded(float(value))  # as the writers round


def read_cells(row: Mapping[str, Any]) -> dict[str, Any]:
    """A written row's cells as a :class:`Prediction` holds them; columns it has not are left out.

    Text cells (a CSV's) are typed: an empty cell (or ``None``, ``null``) is None, a number's
    text a float or an int; ``tops`` may be JSON text. Cells already typed (a JSON row's) stay
    as they are. ValueError names a cell that is not what its column holds.
    """
    known = Prediction.__dataclass_fields__.keys()
    return {key: _cell(key, value) for key, value in row.items() if key in known}


def _cell(key: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and (value == "" or (value in _NONE_TEXT and key != "path"))):
        return None
    try:
        if key in _FLOAT_CELLS:
            return float(value)
        if key in _INT_CELLS:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or number != int(number):
                raise ValueError(value)
            return int(number)
        if key == "tops":
            tops = json.loads(value) if isinstance(value, str) else value
            if not isinstance(tops, (list, tuple)) or not all(isinstance(top, Mapping) for top in tops):
                raise ValueError(value)
            return list(tops)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"the row's {key} is not what that column holds: {value!r}") from exc
    return str(value)
