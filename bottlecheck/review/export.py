"""Reviewed photos as the folders ``bottlecheck train`` reads, with their corrected tops and a held-back part.

``DIR/open/``, ``DIR/closed/``, ``DIR/none/`` hold the labelled photos (skipped and unlabelled
ones are left out; ``none`` is a photo with no top visible, which training leaves out and
evaluation counts). They are symbolic links to the photos by default (nothing copied, the
originals stay where the line wrote them) or copies (``copy=True``: a folder that can be moved
to another machine). ``DIR/tops.json`` (:data:`bottlecheck.evaluation.datasets.CORRECTED_TOPS`) holds, for
each photo whose boxes the person corrected, every top it shows: the model's boxes less those
removed, plus those added; ``train`` on a two-stage base cuts its crops from them instead of
the finder's most confident top. A share of the labelled photos (``heldout``) is not written
to the folders but listed in ``DIR/heldout.json``: training never sees them, so the page can
show whether a retrained model got better on photos it did not learn from.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bottlecheck.evaluation.datasets import CORRECTED_TOPS
from bottlecheck.review.queue import Item
from bottlecheck.review.store import write_atomically

FOLDERS = ("open", "closed", "none")
HELDOUT = "heldout.json"


@dataclass
class Exported:
    """What an export wrote: photos per folder, held-back photos, corrected photos, those left out and why."""

    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FOLDERS, 0))
    heldout: list[dict[str, str]] = field(default_factory=list)
    corrected: int = 0
    missing: list[str] = field(default_factory=list)


def final_tops(item: Item, entry: dict[str, Any]) -> list[list[float]] | None:
    """The tops a corrected photo shows (the model's less ``removed``, plus ``added``); None when uncorrected."""
    added, removed = entry.get("added") or [], entry.get("removed") or []
    if not added and not removed:
        return None

    def near(a: list[float], b: list[float]) -> bool:  # rounding in the file: a box within a pixel is the same
        return all(abs(x - y) <= 1.0 for x, y in zip(a, b, strict=True))

    kept = [top["box"] for top in item.tops if not any(near(top["box"], r) for r in removed)]
    return [list(map(float, box)) for box in kept + list(added)]


def _held_back(labelled: list[tuple[Item, str]], fraction: float, seed: int) -> set[str]:
    """A ``fraction`` of each label's photos, drawn with ``seed`` (stratified: each label keeps its share)."""
    rng = random.Random(seed)
    chosen: set[str] = set()
    for label in FOLDERS:
        paths = sorted(item.path for item, got in labelled if got == label)
        count = int(round(len(paths) * fraction))
        chosen.update(rng.sample(paths, min(count, len(paths))))
    return chosen


def _place(source: str, target: Path, copy: bool) -> None:
    if target.is_symlink() or target.exists():
        target.unlink()
    if copy:
        shutil.copy2(source, target)
    else:
        os.symlink(os.path.abspath(source), target)


def export(
    items: list[Item],
    labels: dict[str, dict[str, Any]],
    out: str | os.PathLike,
    copy: bool = False,
    heldout: float = 0.2,
    seed: int = 0,
) -> Exported:
    """Write the labelled photos of ``items`` into ``out`` (see the module's docstring); returns what was written.

    File names keep the photo's name; two photos with one name (``a/x.jpg``, ``b/x.jpg``) get
    ``x.jpg`` and ``x-2.jpg``. Photos no longer on disk are left out and named in ``missing``.
    """
    out = Path(out)
    result = Exported()
    labelled = []
    for item in items:
        entry = labels.get(item.path)
        if not entry or entry.get("label") not in FOLDERS:
            continue
        if item.file is None:
            result.missing.append(item.path)
            continue
        labelled.append((item, str(entry["label"])))
    if (out / HELDOUT).is_file():  # an earlier export: its folders go, so a changed label leaves no stale photo
        for label in FOLDERS:
            if (out / label).is_dir():
                shutil.rmtree(out / label)
    held = _held_back(labelled, heldout, seed) if heldout > 0 else set()
    used: set[str] = set()
    tops: dict[str, list[list[float]]] = {}
    for item, label in labelled:
        if item.path in held:
            result.heldout.append({"path": item.path, "label": label})
            continue
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        name = Path(item.path).name
        stem, suffix = os.path.splitext(name)
        number = 1
        while f"{label}/{name}" in used:
            number += 1
            name = f"{stem}-{number}{suffix}"
        used.add(f"{label}/{name}")
        assert item.file is not None
        _place(item.file, folder / name, copy)
        result.written[label] += 1
        corrected = final_tops(item, labels[item.path])
        if corrected is not None and label != "none":
            tops[f"{label}/{name}"] = corrected
    result.corrected = len(tops)
    out.mkdir(parents=True, exist_ok=True)
    note = (
        "boxes [x0, y0, x1, y1] in each photo's own pixels (upright): every top it shows, as a person "
        "corrected them in bottlecheck review; bottlecheck train cuts its crops from these"
    )
    write_atomically(out / CORRECTED_TOPS, json.dumps({"note": note, "tops": tops}, indent=1) + "\n")
    heldout_note = f"{heldout:.0%} of the labelled photos, held back from the folders: training never saw them"
    write_atomically(
        out / HELDOUT,
        json.dumps({"note": heldout_note, "fraction": heldout, "photos": result.heldout}, indent=1) + "\n",
    )
    return result
