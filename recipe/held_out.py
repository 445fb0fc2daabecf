"""What a model never trained on, and how it scores there: held-out renders and real photos.

Held out means what ``recipe/train_tops.py`` holds out: renders whose index is a multiple of 10,
every fifth annotated real photo (by sorted name), and every other photo without a top
(``real/other``, brewery logos; even positions by sorted name). The truth of a render is its scene label
(``none`` when no top is in the frame); of a real photo, its folder (``none`` when its annotation
lists no top). Balanced accuracy counts ``unknown`` as wrong on open and closed photos; photos with
no visible top count as right only when answered ``unknown``. ``recipe/quantize_tops.py`` holds int8
to the bar on these sets; ``compare_models.py`` sets two models side by side on them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier, Prediction
from bottlecheck.evaluation.metrics import expected_calibration_error
from bottlecheck.training.finder import render_records


def held_out(
    renders: list[Path], real: Path, annotations: Path, no_tops: Path | None = None
) -> dict[str, list[tuple[str, str, str]]]:
    """``{set name: [(path, truth, group)]}``"""
    scenes = rendered(renders, lambda index: index % 10 == 0)
    marked = json.loads(annotations.read_text())["images"]
    photos = [
        (str(real / rel), rel.split("/")[0] if marked[rel]["tops"] else "none", rel.split("/")[0])
        for rel in sorted(marked)[::5]
    ]
    held = {"held-out renders": scenes, "held-out real photos": photos}
    if no_tops is not None and no_tops.is_dir():  # even positions by sorted name: what train_tops.py holds out
        logos = sorted(p for p in no_tops.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        held["held-out real photos without a top"] = [(str(p), "none", no_tops.name) for p in logos[::2]]
    return held


def rendered(directories: list[Path], keep: Callable[[int], bool] = lambda index: True) -> list[tuple[str, str, str]]:
    """``(path, truth, group)`` of the renders in ``directories`` whose index ``keep`` accepts; group: scene kind."""
    scenes = []
    for directory, meta in render_records(directories):
        if keep(meta["index"]) and (directory / meta["path"]).is_file():
            group = meta["scene"] + ("-lying" if meta.get("lying") else "") + ("-cutoff" if meta["cutoff"] else "")
            scenes.append((str(directory / meta["path"]), meta["label"], group))
    return scenes


def unseen_renders(directories: list[Path]) -> list[tuple[str, str, str]]:
    """Every render in ``directories``: rendered apart from the training renders (another seed, other backgrounds)."""
    return rendered(directories)


def predict(classifier: Classifier, items: list[tuple[str, str, str]]) -> list[Prediction]:
    return list(classifier.classify_paths([path for path, _, _ in items]))


def score(classifier: Classifier, items: list[tuple[str, str, str]]) -> dict:
    return score_predictions(items, predict(classifier, items))


def score_predictions(items: list[tuple[str, str, str]], predictions: list[Prediction]) -> dict:
    """Balanced accuracy (unknown wrong), accuracy and ECE of the answers, no-top photos answered unknown, by group."""
    answered = [
        (t == "open", p.p_open)
        for (_, t, _), p in zip(items, predictions, strict=True)
        if t in ("open", "closed") and p.p_open is not None
    ]
    recalls = []
    for label in ("open", "closed"):
        truth = [p for (_, t, _), p in zip(items, predictions, strict=True) if t == label]
        if truth:
            recalls.append(sum(p.status == label for p in truth) / len(truth))
    no_top = [p for (_, t, _), p in zip(items, predictions, strict=True) if t == "none"]
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # right, unknown, photos
    for (_, truth, group), prediction in zip(items, predictions, strict=True):
        right = prediction.status == (truth if truth != "none" else "unknown")
        groups[group][0] += right
        groups[group][1] += prediction.status == "unknown"
        groups[group][2] += 1
    return {
        "photos": len(items),
        "balanced_accuracy_unknown_as_wrong": round(sum(recalls) / len(recalls), 3) if recalls else None,
        "no_top_answered_unknown": f"{sum(p.status == 'unknown' for p in no_top)} of {len(no_top)}",
        "no_top_unknown_rate": round(sum(p.status == "unknown" for p in no_top) / len(no_top), 3) if no_top else None,
        "answered_accuracy": round(sum((p >= 0.5) == o for o, p in answered) / len(answered), 3) if answered else None,
        "answered_ece": round(
            expected_calibration_error(np.array([o for o, _ in answered]), np.array([p for _, p in answered])), 3
        )
        if answered
        else None,
        "by_group": {g: f"{r} right, {u} unknown of {n}" for g, (r, u, n) in sorted(groups.items())},
    }
