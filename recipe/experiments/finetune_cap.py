"""Does fine-tuning the backbone carry the cap to unseen sources better than a linear layer? (issue 24)

    python -m recipe.experiments.finetune_cap --caps R/caps --caps-eval R/caps-eval --cache R/ft \
        --report R/finetune.json --leave-out beer-checkins --leave-out beer-office \
        --leave-out street-restaurants --train-from 0 --epochs 3 --lr 1e-4

Model 3's cap is a linear layer on the pooled last block of a frozen ImageNet
EfficientNet-Lite0 (``train_cap_judge.py``). The issue asks for a judge whose backbone is
fine-tuned, not only its head, with augmentation that removes the shortcuts. Sessions 6 and 7
fine-tuned block 15 and the 1x1 head from a random head and lost to the linear layer on real
sources they never saw. This measures the other known way to fine-tune for data unlike the
training data, linear probing then fine-tuning (LP-FT, Kumar et al. 2022): the cap starts as
the linear layer the recipe fits (so the first steps do not wreck the features with a random
head's gradients), then every convolution from block ``--train-from`` on learns at a small
rate, batch normalisation kept at ImageNet's statistics, on hard views (the recipe's span,
position, turn, grey, blur, noise and JPEG, plus low-resolution and hue views, which a network
that learns can learn to see through and a linear layer could not).

For each ``--leave-out`` source both judges train without it and are scored on its tops'
plain views (2.5 times the top): balanced open vs closed, a one-class source its recall. The
linear figure is the baseline on the same views; the fine-tuned one must beat it by more than
the spread between draws of the views (up to 0.07 on the mean, ``probe_backbones.py``) to count.
Crop-level, like the probe: a winner still has to hold on photos, with a gate.

``--all-groups`` (session 21) trains on every group's marked real tops (``recipe/annotations``:
eleven repository groups, 1,076 tops) and the renders instead of the five older sources, so a
``--leave-out`` may be any group of ``recipe.real_photos.GROUPS``; each fold also reports the
ROC AUC of its left-out tops, since the linear cap's trouble on the newer groups is ranking
(model/HISTORY.md, session 20). ``--not-tops`` also trains on the marks a person called not a
top (bowls, routers, glasses, soju caps beside the lager; the rule-made ones are left out) as
*not open*: in the product a photo is open when any counted top reads open, so a false top the
gate lets through does no harm if the cap reads it closed. Each fold then also reports how many
of its left-out group's not-tops read open.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import time
from pathlib import Path

import numpy as np

from bottlecheck.evaluation.metrics import roc_auc
from bottlecheck.imaging import decode_image
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import Crop, cap_features_model, fit_linear_cap, judge_view

from ..boxes_table import UNCHECKED
from ..crops import ANNOTATIONS, RECIPE, cap_render_crops, group_of, marked, photo_key
from ..train_cap_judge import each_source_and_class_alike, top_crops


def views(crops: list[Crop], count: int, seed: int, hard: bool, cache: Path) -> np.ndarray:
    """``count`` views of each crop as uint8 (crop-major), cached: plain (``count`` 1, no seed) or training."""
    kind = "plain" if count == 0 else ("hard" if hard else "recipe")
    path = cache / f"views-{kind}-s{seed}-v{count}-n{len(crops)}.npy"
    if path.exists():
        return np.load(path)
    view = functools.partial(judge_view, low_res_share=0.45 if hard else 0.0, hue_share=0.3 if hard else 0.0)
    rng = random.Random(seed)
    out, image, last = [], None, None
    for crop in crops:
        if crop.path != last:
            image, last = decode_image(crop.path), crop.path
        for _ in range(max(count, 1)):
            out.append(view(image, crop, rng, count > 0))
    array = np.stack(out)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return array


def checked_not_tops() -> list[Crop]:
    """Every mark a person called not a top, by eye (``gate turned down`` marks were made by rule)."""
    crops = []
    for name, folder in ANNOTATIONS:
        for rel, marks in sorted(json.loads((RECIPE / "annotations" / name).read_text())["images"].items()):
            for mark in marks if isinstance(marks, list) else marks["tops"]:
                if mark["label"] == "none" and mark.get("how") != UNCHECKED:
                    where = (mark["x"], mark["y"], mark["side"])
                    crops.append(Crop(str(folder / rel), *where, "none", photo_key(rel), group_of(name, rel)))
    return crops


def cap_network(train_from: int):
    """Lite0 to the cap's block, pooled, and one logit; blocks before ``train_from`` and batch norms frozen."""
    import keras

    features = cap_features_model()
    logit = keras.layers.Dense(1, name="cap_logit")(features.output)
    model = keras.Model(features.input, logit)
    for layer in model.layers:
        frozen = isinstance(layer, keras.layers.BatchNormalization)
        if layer.name.startswith("blocks_"):
            frozen = frozen or int(layer.name.split("_")[1]) < train_from
        elif layer.name in ("conv_stem", "bn0", "scale"):
            frozen = frozen or train_from > 0
        layer.trainable = not frozen
    return model, features


def balanced(logits: np.ndarray, is_open: np.ndarray) -> float:
    said = logits >= 0
    return float(np.mean([(said[is_open == c] == c).mean() for c in (False, True) if (is_open == c).any()]))


def auc(logits: np.ndarray, is_open: np.ndarray) -> float | None:
    value = roc_auc(is_open, logits)
    return None if value is None else round(value, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caps", type=Path, required=True)
    parser.add_argument("--caps-eval", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="folder for the views (uint8, minutes each)")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--leave-out", action="append", required=True, help="a real source (repeat)")
    parser.add_argument("--views", type=int, default=8, help="training views of each top")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-from", type=int, default=0, help="first block that learns (0: all of it)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--l2", type=float, default=1e-2, help="the linear probe's, as the recipe's")
    parser.add_argument("--every", type=int, default=1, help="keep every Nth top only (a quick trial run)")
    parser.add_argument("--all-groups", action="store_true", help="every group's marked tops, not the older five")
    parser.add_argument("--not-tops", action="store_true", help="with --all-groups: by-eye not-tops as not open")
    parser.add_argument("--save", type=Path, help="keep each fold's fine-tuned network here (SOURCE.weights.h5)")
    args = parser.parse_args()
    tf = import_tensorflow()
    import keras

    unseen = [c for c in cap_render_crops([args.caps_eval], group="caps-unseen") if c.label in ("open", "closed")]
    if args.all_groups:
        trained = marked(("open", "closed")) + [
            c for c in cap_render_crops([args.caps]) if c.label in ("open", "closed")
        ]
        trained += checked_not_tops() if args.not_tops else []
    else:
        trained = top_crops([args.caps])
    crops = (trained + unseen)[:: args.every]
    group = np.array([c.group for c in crops])
    label = np.array([c.label for c in crops])
    is_open = label == "open"
    started = time.time()
    plain = views(crops, 0, 0, False, args.cache)
    recipe_views = views(crops, args.views, args.seed, False, args.cache)
    hard_views = views(crops, args.views, args.seed, True, args.cache)
    print(f"{len(crops)} tops, views in {time.time() - started:.0f} s", flush=True)
    of_view = np.repeat(np.arange(len(crops)), args.views)

    _, frozen = cap_network(args.train_from)
    started = time.time()
    frozen_file = args.cache / f"frozen-s{args.seed}-v{args.views}-n{len(crops)}-from{args.train_from}.npz"
    if not frozen_file.exists():
        np.savez(
            frozen_file,
            plain=frozen.predict(plain.astype(np.float32), batch_size=64, verbose=0),
            train=frozen.predict(recipe_views.astype(np.float32), batch_size=64, verbose=0),
        )
    frozen_plain, frozen_train = np.load(frozen_file)["plain"], np.load(frozen_file)["train"]
    print(f"frozen features in {time.time() - started:.0f} s", flush=True)

    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "folds": {}}
    for source in args.leave_out:
        keep = (group[of_view] != source) & (group[of_view] != "caps-unseen")
        kept = of_view[keep]
        weights = each_source_and_class_alike(crops, kept)
        probe = fit_linear_cap(frozen_train[keep], is_open[kept].astype(int), weights, args.l2)
        scored = (group == source) & (label != "none")
        not_tops = (group == source) & (label == "none")
        row = {"linear": round(balanced(probe.logits(frozen_plain[scored]), is_open[scored]), 3)}
        row["linear AUC"] = auc(probe.logits(frozen_plain[scored]), is_open[scored])
        if not_tops.any():
            row["linear, not-tops read open"] = (
                f"{int((probe.logits(frozen_plain[not_tops]) >= 0).sum())}/{not_tops.sum()}"
            )

        keras.utils.set_random_seed(args.seed)
        model, _ = cap_network(args.train_from)
        model.get_layer("cap_logit").set_weights(
            [probe.kernel.reshape(-1, 1).astype(np.float32), np.array([probe.bias], np.float32)]
        )
        check = model.predict(plain[scored][:16].astype(np.float32), verbose=0)[:, 0]
        assert np.allclose(check, probe.logits(frozen_plain[scored][:16]), atol=1e-2), "the probe did not carry over"
        model.compile(
            optimizer=keras.optimizers.Adam(args.lr),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        order = np.random.default_rng(args.seed).permutation(len(kept))
        x = hard_views[keep][order].astype(np.float32)
        y = is_open[kept][order].astype(np.float32)
        started = time.time()
        for epoch in range(args.epochs):
            model.fit(
                x,
                y,
                sample_weight=weights[order],
                batch_size=args.batch,
                epochs=epoch + 1,
                initial_epoch=epoch,
                verbose=0,
                shuffle=True,
            )
            logits = model.predict(plain.astype(np.float32), batch_size=64, verbose=0)[:, 0]
            row[f"fine-tuned, epoch {epoch + 1}"] = round(balanced(logits[scored], is_open[scored]), 3)
            row[f"fine-tuned, epoch {epoch + 1}, AUC"] = auc(logits[scored], is_open[scored])
            if not_tops.any():
                row[f"epoch {epoch + 1}, not-tops read open"] = f"{int((logits[not_tops] >= 0).sum())}/{not_tops.sum()}"
            others = {
                g: round(balanced(logits[group == g], is_open[group == g]), 3)
                for g in sorted(set(group))
                if g != source
            }
            row[f"epoch {epoch + 1}, the others (trained on but caps-unseen)"] = others
            print(source, epoch + 1, f"{time.time() - started:.0f} s", json.dumps(row), flush=True)
        row["seconds"] = round(time.time() - started)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            model.save_weights(args.save / f"{source}.weights.h5")
        report["folds"][source] = row
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    del tf


if __name__ == "__main__":
    main()
