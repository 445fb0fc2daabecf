"""Can the linear cap be kept from reading the source? Project out the directions that tell sources apart (issue 24).

    python -m recipe.experiments.source_free_cap --caps R/caps --caps-eval R/caps-eval --cache R/ft \
        --report R/source-free.json --drop 0 --drop 2 --drop 4 --drop 8

The cap is a linear layer on the pooled last block of a frozen EfficientNet-Lite0. Left out,
it learns which source a crop comes from as well as its cap: within one class (open, say), the
crops of each training source sit apart in feature space, and a layer that can separate open
from closed along those same directions will. This removes them before the fit: in the
standardised features of the training views, the mean of each (source, class) pair less its
class's mean spans the "which source" directions; the ``--drop`` strongest of them (by SVD) are
projected out, and the linear cap is fitted on what is left. A projection folds into the linear
layer, so a winner would cost nothing at run time.

Scored the way ``finetune_cap.py`` and ``probe_backbones.py`` score: each real source left out,
balanced open vs closed on its tops' plain views (a one-class source: its recall), against the
same fit with nothing dropped on the same views.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import cap_features_model, fit_linear_cap

from ..crops import cap_render_crops
from ..train_cap_judge import SOURCES, each_source_and_class_alike, top_crops
from .finetune_cap import balanced, views


def source_directions(z: np.ndarray, groups: np.ndarray, is_open: np.ndarray) -> np.ndarray:
    """Unit directions, strongest first, along which the (source, class) means differ from their class's mean."""
    rows = []
    for cls in (False, True):
        in_class = is_open == cls
        class_mean = z[in_class].mean(axis=0)
        for group in np.unique(groups[in_class]):
            rows.append(z[in_class & (groups == group)].mean(axis=0) - class_mean)
    _, _, vt = np.linalg.svd(np.stack(rows), full_matrices=False)
    return vt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caps", type=Path, required=True)
    parser.add_argument("--caps-eval", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="finetune_cap.py's views, and the features")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drop", type=int, action="append", help="how many source directions to remove (repeat)")
    parser.add_argument("--l2", type=float, default=1e-2)
    args = parser.parse_args()
    unseen = [c for c in cap_render_crops([args.caps_eval], group="caps-unseen") if c.label in ("open", "closed")]
    crops = top_crops([args.caps]) + unseen
    group = np.array([c.group for c in crops])
    is_open = np.array([c.label == "open" for c in crops])
    features_path = args.cache / f"frozen-s{args.seed}-v{args.views}-n{len(crops)}.npz"
    if features_path.exists():
        cached = np.load(features_path)
        plain, train = cached["plain"], cached["train"]
    else:
        import_tensorflow()
        model = cap_features_model()
        plain = model.predict(views(crops, 0, 0, False, args.cache).astype(np.float32), batch_size=64, verbose=0)
        train = model.predict(
            views(crops, args.views, args.seed, False, args.cache).astype(np.float32), batch_size=64, verbose=0
        )
        np.savez(features_path, plain=plain, train=train)
    of_view = np.repeat(np.arange(len(crops)), args.views)
    report: dict = {}
    for drop in args.drop or [0, 2, 4, 8]:
        row = {}
        for source in SOURCES:
            keep = (group[of_view] != source) & (group[of_view] != "caps-unseen")
            kept = of_view[keep]
            x = train[keep]
            mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
            z = (x - mean) / scale
            projection = np.eye(z.shape[1])
            if drop:
                directions = source_directions(z, group[kept], is_open[kept])[:drop]
                projection -= directions.T @ directions
            weights = each_source_and_class_alike(crops, kept)
            cap = fit_linear_cap(z @ projection, is_open[kept].astype(int), weights, args.l2)
            scored = group == source
            logits = cap.logits(((plain[scored] - mean) / scale) @ projection)
            row[source] = round(balanced(logits, is_open[scored]), 3)
        row["mean"] = round(float(np.mean([row[s] for s in SOURCES])), 3)
        report[str(drop)] = row
        print(drop, json.dumps(row), flush=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
