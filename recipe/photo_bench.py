"""The labelled real photos as the product answers them, to measure a judge on whole photos.

``PhotoBench`` runs a model's finder once over every photo of ``photo_sets()`` and keeps each
candidate's features; any judge's probabilities of those candidates then give each photo's answer
(``TopsClassifier.answer_with``), scored by ``photo_metrics``. ``recipe/train_cap_judge.py``
chooses the shipped cap judge on it; the measure-only experiments measure with it.
"""

from __future__ import annotations

import csv

import numpy as np

from bottlecheck import Classifier
from bottlecheck.evaluation.metrics import expected_calibration_error
from bottlecheck.training.judge import JUDGE_LABELS, JUDGE_SIZE

from .crops import REAL_SOURCES
from .real_photos import DATA


def photo_sets() -> dict[str, list[tuple[str, str]]]:
    """Labelled photos per source: (path, truth) with truth open, closed or none (no top in the frame)."""
    sets: dict[str, list[tuple[str, str]]] = {}
    real = DATA / "real"
    sets["product-poster"] = [
        (str(p), truth)
        for folder, truth in (("open", "open"), ("closed", "closed"), ("other", "none"))
        for p in sorted((real / folder).iterdir())
        if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    ]
    for source in REAL_SOURCES:
        folder = DATA / "real-sources" / source
        with (folder / "labels.csv").open() as handle:
            sets[source] = [
                (str(folder / row["file"]), row["label"])
                for row in csv.DictReader(handle)
                if row["label"] in ("open", "closed")
            ]
    return sets


class PhotoBench:
    """Each photo's finder candidates and their crops, computed once; any judge then answers every photo.

    ``features[span]`` holds the trunk's outputs for every candidate cut at ``span`` times its
    side (the model's own span first), to measure whether judging at two spans pays.
    """

    def __init__(self, finder: Classifier, sets: dict[str, list[tuple[str, str]]], trunk, spans=(2.5,)) -> None:
        from bottlecheck.tops import cut_square

        self.finder, self.sets = finder, sets
        self.photos: dict[str, list] = {}
        parts: dict[float, list[np.ndarray]] = {span: [] for span in spans}
        count = 0
        for source, photos in sets.items():
            entries = []
            for path, truth in photos:
                photo = finder.preprocess(path)
                placed = finder.find_tops(photo)  # type: ignore[attr-defined]
                for span in spans:
                    crops = [
                        np.asarray(cut_square(photo.image, x, y, max(side * span, 4.0), JUDGE_SIZE), dtype=np.uint8)
                        for x, y, side, _ in placed
                    ]
                    if crops:
                        parts[span].append(trunk.predict(np.stack(crops).astype(np.float32), verbose=0))
                entries.append((path, truth, photo, placed, count))
                count += len(placed)
            self.photos[source] = entries
        self.spans = spans
        self.by_span = {span: np.concatenate(chunks) for span, chunks in parts.items()}
        self.features = self.by_span[spans[0]]

    def answers(self, probabilities: np.ndarray, source: str) -> list[tuple[str, dict]]:
        """(truth, answer) for each photo of ``source``, given the judge's probabilities of every candidate."""
        out = []
        for _path, truth, photo, placed, start in self.photos[source]:
            judged = probabilities[start : start + len(placed)]
            out.append((truth, self.finder.answer_with(photo, placed, judged)))  # type: ignore[attr-defined]
        return out


def gate_with(probabilities: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """``probabilities`` with the chance of ``none`` taken from ``gate`` (another judge's, same candidates).

    Open and closed keep their ratio, so the decision rule's ``p_top`` is the gate's and its
    ``p_open`` this judge's.
    """
    closed, opened, none = (JUDGE_LABELS.index(label) for label in ("closed", "open", "none"))
    out = np.array(probabilities, dtype=np.float64, copy=True)
    pair = out[:, closed] + out[:, opened]
    top = 1.0 - gate[:, none]
    out[:, closed] = top * out[:, closed] / np.maximum(pair, 1e-9)
    out[:, opened] = top * out[:, opened] / np.maximum(pair, 1e-9)
    out[:, none] = gate[:, none]
    return out


def photo_metrics(answers: list[tuple[str, dict]]) -> dict:
    """Balanced accuracy (unknown wrong on a photo with a top, right on one without), answers' accuracy and ECE."""
    recall = {}
    for truth in ("open", "closed", "none"):
        mine = [a for t, a in answers if t == truth]
        if mine:
            expected = "unknown" if truth == "none" else truth
            recall[truth] = round(sum(a["status"] == expected for a in mine) / len(mine), 3)
    answered = [(t, a) for t, a in answers if t != "none" and a["status"] != "unknown"]
    result = {
        "photos": len(answers),
        "balanced_accuracy": round(float(np.mean([v for k, v in recall.items() if k != "none"])), 3)
        if any(k != "none" for k in recall)
        else None,
        "recall": recall,
        "unknown": sum(a["status"] == "unknown" for t, a in answers if t != "none"),
    }
    if answered:
        labels = np.array([t == "open" for t, _ in answered], dtype=int)
        p_open = np.array([a["p_open"] for _, a in answered])
        result["answered_accuracy"] = round(float(((p_open >= 0.5) == labels).mean()), 3)
        result["ece"] = round(expected_calibration_error(labels, p_open), 3)
    return result


def candidate_crops(bench: PhotoBench, span: float | None = None) -> list[np.ndarray]:
    """Every candidate of the bench cut as the product cuts it: at the model's span, or at ``span``."""
    crops = []
    for entries in bench.photos.values():
        for _path, _truth, photo, placed, _start in entries:
            crops += [bench.finder.crop(photo, x, y, side, span) for x, y, side, _ in placed]  # type: ignore[attr-defined]
    return crops
