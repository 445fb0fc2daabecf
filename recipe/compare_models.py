"""Compare two models photo by photo on what neither trained on: held-out renders and held-out real photos.

    python recipe/compare_models.py --renders /var/tmp/tops --candidate runs/m2 [--baseline DIR]

Held out means what ``recipe/train_tops.py`` holds out: renders whose index is a multiple of 10,
every fifth annotated real photo (by sorted name), and every other photo without a top
(``real/other``, brewery logos; even positions by sorted name). The truth of a render is its scene label
(``none`` when no top is in the frame); of a real photo, its folder (``none`` when its annotation
lists no top). Balanced accuracy counts ``unknown`` as wrong on open and closed photos; photos with
no visible top count as right only when answered ``unknown``. The baseline defaults to the bundled
model (which trained on most of the real photos, so it has the advantage there).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier, Prediction
from bottlecheck.evaluation.metrics import expected_calibration_error
from bottlecheck.training.finder import render_records

HERE = Path(__file__).resolve().parent


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", action="append", required=True, type=Path)
    parser.add_argument("--candidate", required=True, type=Path)
    parser.add_argument("--baseline", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--real", type=Path, default=HERE.parent.parent / "shared" / "data" / "real")
    parser.add_argument("--annotations", type=Path, default=HERE / "annotations" / "real-tops.json")
    parser.add_argument("--no-tops", type=Path, default=None, help="default: REAL/other (brewery logos)")
    parser.add_argument(
        "--unseen-renders",
        action="append",
        type=Path,
        default=[],
        help="renders made apart from the training ones (another seed and backgrounds): all count",
    )
    args = parser.parse_args()
    models = {
        "baseline": Classifier.load(args.baseline, engine="litert"),
        "candidate": Classifier.load(args.candidate, engine="litert"),
    }
    report = {}
    no_tops = args.no_tops or args.real / "other"
    sets = held_out(args.renders, args.real, args.annotations, no_tops)
    if args.unseen_renders:
        sets["unseen renders"] = unseen_renders(args.unseen_renders)
    for name, items in sets.items():
        report[name] = {
            f"{role} {model.artifact.name} {model.artifact.version}": score(model, items)
            for role, model in models.items()
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
