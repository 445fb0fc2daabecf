"""The rows of a classify run, read back, and the order a person should see them in.

A person has minutes, not hours: the photos whose answer is most likely wrong come first.
``unknown`` answers (the model saw no top it trusts), then the rest by confidence, least
first, up to the confident line (:func:`confident_line`); then a sample of the confident ones
(a model can be sure and wrong, and only a sample shows it); then the other confident ones;
error rows last (nothing to look at but the reason). Rows whose photo is no longer on disk keep their place and are
marked ``missing``: the page says so instead of failing.

Rows are read with :func:`bottlecheck.writers.rows.read_existing`, the same reader ``--resume``
uses; a clip's frame rows are left out (review is of photos: a frame has no file to label).
"""

from __future__ import annotations

import csv
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bottlecheck.prediction import read_cells
from bottlecheck.writers.rows import format_for_path, read_existing

#: Answers at least this confident are "confident": only a sample of them comes early.
CONFIDENT = 0.9
#: When fewer answers than this share reach :data:`CONFIDENT`, the most confident this share are "confident".
CONFIDENT_SHARE = 0.2
#: The share of confident answers shown right after the doubtful ones.
SAMPLE = 0.1


@dataclass
class Item:
    """One photo to review: its row's answer and boxes, where its file is, and why it is where it is."""

    path: str  # as the row says: the key of its label
    file: str | None  # where it is on disk now; None when it is gone
    status: str
    confidence: float | None
    tops: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "confident"  # unknown, doubtful, sample, confident, error
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "missing": self.file is None,
            "status": self.status,
            "confidence": self.confidence,
            "tops": self.tops,
            "kind": self.kind,
            "error": self.error,
        }


def read_rows(results: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``results`` (.jsonl, .json or .csv, as classify writes them); ValueError when it holds none.

    A CSV's header says which columns the model that wrote it has (with or without tops, with
    or without frames); they are read from it, so any kind of model's rows can be reviewed.
    """
    fmt = format_for_path(results)
    if fmt not in ("jsonl", "json", "csv"):
        raise ValueError(f"{os.fspath(results)}: review reads the .jsonl, .json or .csv rows of bottlecheck classify")
    if not Path(results).is_file():
        raise ValueError(f"{os.fspath(results)}: no such file")
    if fmt != "csv":
        rows, _ = read_existing(results, fmt)
        return rows
    with open(results, encoding="utf-8", newline="") as stream:
        header = next(csv.reader(stream), [])
    if "path" not in header or "status" not in header:
        raise ValueError(f"{os.fspath(results)}: not the CSV rows of bottlecheck classify (no path, status columns)")
    rows, _ = read_existing(results, "csv", tuple(header))
    return rows


def locate(path: str, results: str | os.PathLike) -> str | None:
    """Where the row's photo is: as written (absolute, or from here), else beside the results; None if gone."""
    candidates = [Path(path)]
    if not os.path.isabs(path):
        candidates.append(Path(results).resolve().parent / path)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def items_from_rows(rows: list[dict[str, Any]], results: str | os.PathLike) -> list[Item]:
    """One :class:`Item` per photo (the last row of a path wins, as a resumed file's does), frames left out."""
    found: dict[str, Item] = {}
    for row in rows:
        path = str(row["path"])
        try:
            cells = read_cells(row)  # the rule Prediction.from_row reads rows by: a CSV's text cells typed
        except ValueError as exc:  # a cell edited by hand: the photo is still shown, with why
            cells = {"status": "error", "error": f"unreadable row: {exc}"}
        if cells.get("frame") is not None:
            continue
        tops = [
            {"box": [float(v) for v in top["box"]], "status": top.get("status"), "confidence": top.get("confidence")}
            for top in cells.get("tops") or []
            if isinstance(top.get("box"), (list, tuple)) and len(top["box"]) == 4
        ]
        found[path] = Item(
            path=path,
            file=locate(path, results),
            status=cells.get("status") or "error",
            confidence=cells.get("confidence"),
            tops=tops,
            error=cells.get("error"),
        )
    return list(found.values())


def confident_line(confidences: list[float]) -> float:
    """The confidence from which an answer is "confident": :data:`CONFIDENT`, or lower when few reach it.

    A model calibrated for places it never saw (tops 3.4.0 on) is rarely 0.9 sure: with a fixed
    line every answer would be "doubtful" and its most confident mistakes would come last. The
    most confident :data:`CONFIDENT_SHARE` of the answers are then the confident ones.
    """
    if not confidences:
        return CONFIDENT
    ranked = sorted(confidences, reverse=True)
    return min(CONFIDENT, ranked[max(0, math.ceil(len(ranked) * CONFIDENT_SHARE) - 1)])


def order(items: list[Item], sample: float = SAMPLE, seed: int = 0) -> list[Item]:
    """``items`` in the order to review them, each with its ``kind`` set (see the module's docstring).

    The sample is drawn with a fixed seed, so reopening the page shows the same order.
    """
    unknown = [i for i in items if i.status == "unknown"]
    errors = [i for i in items if i.status not in ("open", "closed", "unknown")]
    answered = [i for i in items if i.status in ("open", "closed")]
    line = confident_line([i.confidence or 0.0 for i in answered])
    doubtful = sorted(
        (i for i in answered if (i.confidence or 0.0) < line), key=lambda i: (i.confidence or 0.0, i.path)
    )
    confident = sorted((i for i in answered if (i.confidence or 0.0) >= line), key=lambda i: i.path)
    count = min(len(confident), round(len(confident) * sample)) if sample > 0 else 0
    if confident and sample > 0:
        count = max(count, 1)
    chosen = set(random.Random(seed).sample(range(len(confident)), count))
    sampled = [c for k, c in enumerate(confident) if k in chosen]
    rest = [c for k, c in enumerate(confident) if k not in chosen]
    for kind, group in (
        ("unknown", unknown),
        ("doubtful", doubtful),
        ("sample", sampled),
        ("confident", rest),
        ("error", errors),
    ):
        for item in group:
            item.kind = kind
    return unknown + doubtful + sampled + rest + errors


def review_items(results: str | os.PathLike, sample: float = SAMPLE) -> list[Item]:
    """The photos of ``results`` in review order."""
    return order(items_from_rows(read_rows(results), results), sample)
