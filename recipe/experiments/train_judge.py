"""Train model 3's judge, measured first by leaving whole sources and families out.

    python -m recipe.experiments.train_judge --caps R/caps --caps-eval R/caps-eval --out m3 --version 3.0.0 \
        --leave-one-out R/loo.json

Model 2's judge was a linear layer on frozen ImageNet features, trained on renders and one real
source per class: it learned the sources' look, not the cap (the model-3 issue). This judge
fine-tunes the back of the backbone (``bottlecheck/training/judge.py``: the blocks after
``TRUNK_LAST_BLOCK``, the 1x1 head, the linear layer) on views that remove the shortcuts (span
1.5-4 times the top, any turn, grey and hue), from renders of the caps that failed
(``recipe/render/render_caps.py``) and every real source with marked tops (the table in
``recipe/crops.py``).

The finder is model 2.2.0's, kept (it puts its boxes on the right tops; the judge is the weak
half). ``--leave-one-out`` first trains once per source without it and measures the photos of
that source as the product answers them (the finder's candidates, this judge, the decision
rule), and once per rendered family without it (white crown caps, silver caps, foil, PET),
measured on the unseen renders of that family: the table written there is the number chosen
on. Then the shipped judge trains on everything. A fifth of each real source's photos (and
every tenth render) is kept out of training to fit the temperature on.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier, __version__
from bottlecheck.evaluation.metrics import expected_calibration_error
from bottlecheck.imaging import decode_photo
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import (
    CROP_SPAN,
    JUDGE_LABELS,
    TRUNK_LAST_BLOCK,
    Crop,
    compute_judge_features,
    judge_tail,
    judge_temperature,
    judge_trunk_model,
)

from ..crops import FAMILIES, REAL_SOURCES, cap_render_crops, marked_crops, photo_key, views_digest
from ..photo_bench import PhotoBench, candidate_crops, gate_with, photo_metrics, photo_sets
from ..real_photos import DATA

RECIPE = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- crops
def random_none_crops(crops: list[Crop], per_photo: int, seed: int) -> list[Crop]:
    """``none`` crops away from every marked top of each photo: tables, labels, hands, glass."""
    rng = random.Random(seed)
    by_photo: dict[str, list[Crop]] = {}
    for crop in crops:
        by_photo.setdefault(crop.path, []).append(crop)
    extra = []
    for path, tops in by_photo.items():
        width, height = decode_photo(path, max_side=1)[1]
        sides = [t.side for t in tops]
        for _ in range(per_photo):
            side = rng.choice(sides) * rng.uniform(0.6, 1.6)
            for _attempt in range(30):
                x, y = rng.uniform(0, width), rng.uniform(0, height)
                if all(abs(x - t.x) > side * 1.5 or abs(y - t.y) > side * 1.5 for t in tops):
                    extra.append(Crop(path, x, y, side, "none", tops[0].index, tops[0].group))
                    break
    return extra


def logo_negatives(finder: Classifier, folder: Path) -> list[Crop]:
    """Where the finder sees a top in a brewery logo (``real/other``, no top at all): ``none``."""
    crops = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        photo = finder.preprocess(str(path))
        to_full = photo.size[0] / photo.image.width
        for x, y, side, _score in finder.find_tops(photo, 0.15, 6):  # type: ignore[attr-defined]
            crops.append(
                Crop(
                    str(path),
                    x * to_full,
                    y * to_full,
                    side * to_full,
                    "none",
                    photo_key(path.name),
                    "product-poster",
                    "logo",
                )
            )
    return crops


def finder_negatives(finder: Classifier, crops: list[Crop], min_score: float = 0.2) -> list[Crop]:
    """``none`` where the finder proposes a top in a render away from the one top there (a PET neck ring, a label).

    Model 2's judge learned these from whole rendered scenes; the close-up renders show them
    too, below a cap or beside a glass: the judge must overrule the finder there.
    """
    negatives = []
    for crop in crops:
        photo = finder.preprocess(crop.path)
        to_full = photo.size[0] / photo.image.width
        for x, y, side, _score in finder.find_tops(photo, min_score, 6):  # type: ignore[attr-defined]
            x, y, side = x * to_full, y * to_full, side * to_full
            if max(abs(x - crop.x), abs(y - crop.y)) > 0.6 * crop.side:
                negatives.append(Crop(crop.path, x, y, side, "none", crop.index, crop.group, "finder-miss"))
    return negatives


def is_calibration(crop: Crop) -> bool:
    """A fifth of each real source's photos, and every tenth render, fit the temperature and train nothing."""
    return crop.index % (10 if crop.group == "caps-render" else 5) == 0


# ---------------------------------------------------------------- training
def class_and_group_weights(crops: list[Crop], views: np.ndarray) -> np.ndarray:
    """Each source weighs the same, and within it each label: no source or class wins by its count."""
    keys = [(crops[v].group, crops[v].label) for v in views]
    counts = Counter(keys)
    groups = Counter(group for group, _ in counts)
    weights = np.array([1.0 / (counts[key] * groups[key[0]]) for key in keys])
    return weights * len(weights) / weights.sum()


def train_tail(features, labels, weights, epochs: int, seed: int, cut: int, log):
    import keras

    keras.utils.set_random_seed(seed)
    tail = judge_tail(cut=cut)
    steps = max(1, len(labels) // 64) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, steps, alpha=0.02)
    tail.compile(
        optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    for epoch in range(epochs):
        loss = tail.fit(features, labels, sample_weight=weights, batch_size=64, epochs=1, verbose=0, shuffle=True)
        log(f"  epoch {epoch + 1}/{epochs}: loss {loss.history['loss'][-1]:.4f}")
    return tail


def probabilities(tail, features: np.ndarray, temperature: float) -> np.ndarray:
    z = tail.predict(features, verbose=0, batch_size=256) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def crop_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    tops = labels != JUDGE_LABELS.index("none")
    p_open = probs[:, 1] / np.maximum(probs[:, 0] + probs[:, 1], 1e-9)
    result = {"crops": int(len(labels)), "accuracy": round(float((probs.argmax(1) == labels).mean()), 3)}
    if tops.any():
        truth = (labels[tops] == 1).astype(int)
        result["open_vs_closed"] = round(float(((p_open[tops] >= 0.5) == truth).mean()), 3)
        result["ece"] = round(expected_calibration_error(truth, p_open[tops]), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, action="append", required=True, help="render_caps.py output (training)")
    parser.add_argument("--caps-eval", type=Path, action="append", default=[], help="unseen render_caps.py output")
    parser.add_argument("--finder-from", type=Path, default=RECIPE.parent / "model", help="the two-stage model kept")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--version", default=None)
    parser.add_argument("--leave-one-out", type=Path, help="first train without each source and family; write here")
    parser.add_argument("--only-leave-one-out", action="store_true")
    parser.add_argument("--leave-out", action="append", help="with --leave-one-out: only these sources or families")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/bc-judge-cache"))
    parser.add_argument("--render-views", type=int, default=3)
    parser.add_argument("--real-views", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cut", type=int, default=TRUNK_LAST_BLOCK, help="last frozen block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--also-spans", type=float, nargs="*", default=[1.8, 3.2], help="measure judging at these spans, averaged"
    )
    args = parser.parse_args()
    import_tensorflow()
    started = time.time()

    def log(line: str) -> None:
        print(f"[{time.time() - started:6.0f}s] {line}", flush=True)

    finder = Classifier.load(args.finder_from, engine="litert")
    ann = RECIPE / "annotations"
    crops = cap_render_crops(args.caps)
    crops += finder_negatives(finder, crops)
    real = marked_crops(ann / "real-tops.json", DATA / "real", lambda rel: "product-poster")
    real += logo_negatives(finder, DATA / "real" / "other")
    trash = marked_crops(ann / "trashnet-tops.json", DATA / "unlabelled" / "trashnet-glass", lambda rel: "trashnet")
    sources = marked_crops(ann / "real-sources-tops.json", DATA / "real-sources", lambda rel: rel.split("/")[0])
    marked = [c for c in real + trash + sources if c.family != "logo"]
    real_all = real + trash + sources + random_none_crops(marked, 1, args.seed)
    crops += real_all
    eval_crops = cap_render_crops(args.caps_eval, group="caps-unseen")
    log(f"crops: {dict(Counter((c.group, c.label) for c in crops))}; unseen renders {len(eval_crops)}")

    # Trunk features: augmented views to train, one plain view to calibrate and measure.
    trunk = judge_trunk_model(cut=args.cut)
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = f"cut{args.cut}-v{args.render_views}-{args.real_views}-n{len(crops)}-s{args.seed}"
    cache = args.cache / f"{views_digest()}-{settings}.npz"
    if cache.exists():
        stored = np.load(cache)
        train_x, train_y, train_of = stored["x"], stored["y"], stored["of"]
        plain_x, plain_y = stored["px"], stored["py"]
        log(f"features from {cache}")
    else:
        parts_x, parts_y, parts_of = [], [], []
        for rendered, views in ((True, args.render_views), (False, args.real_views)):
            chosen = [k for k, c in enumerate(crops) if (c.group == "caps-render") == rendered]
            x, y = compute_judge_features([crops[k] for k in chosen], views, args.seed + rendered, True, log, trunk)
            parts_x.append(x.astype(np.float16))
            parts_y.append(y)
            parts_of.append(np.repeat(chosen, views))
        train_x, train_y, train_of = np.concatenate(parts_x), np.concatenate(parts_y), np.concatenate(parts_of)
        plain_x, plain_y = compute_judge_features(crops, 1, args.seed, False, lambda _l: None, trunk)
        plain_x = plain_x.astype(np.float16)
        np.savez(cache, x=train_x, y=train_y, of=train_of, px=plain_x, py=plain_y)
    eval_x, eval_y = (
        compute_judge_features(eval_crops, 1, 1, False, lambda _l: None, trunk) if eval_crops else (None, None)
    )
    bench = PhotoBench(finder, photo_sets(), trunk, spans=(CROP_SPAN, *args.also_spans))
    log(f"photo bench: {sum(len(v) for v in bench.photos.values())} photos, {len(bench.features)} candidates")
    calibration = np.array([is_calibration(c) for c in crops])

    def fit(excluded: Callable[[Crop], bool], seed: int):
        keep = np.array([not excluded(c) for c in crops]) & ~calibration
        views = np.flatnonzero(keep[train_of])
        weights = class_and_group_weights(crops, train_of[views])
        tail = train_tail(train_x[views], train_y[views], weights, args.epochs, seed, args.cut, log)
        fit_on = np.flatnonzero(calibration & np.array([not excluded(c) and c.group != "caps-render" for c in crops]))
        logits = tail.predict(plain_x[fit_on], verbose=0)
        temperature = judge_temperature(logits, plain_y[fit_on])
        return tail, temperature, int(len(views))

    def measure(tail, temperature: float) -> dict:
        report: dict = {"photos": {}, "crops": {}}
        probs = probabilities(tail, bench.features, temperature)
        for source in bench.photos:
            report["photos"][source] = photo_metrics(bench.answers(probs, source))
        # The shipped judge's "is it a top" with this judge's open-vs-closed: what a judge that
        # keeps 2.2.0's gate (its unknowns) and only changes the cap call would answer.
        gated = gate_with(probs, baseline_probs)
        report["photos_gated_by_shipped"] = {
            source: photo_metrics(bench.answers(gated, source)) for source in bench.photos
        }
        for group in sorted({c.group for c in crops}):
            rows = np.array([c.group == group for c in crops]) & calibration
            if rows.any():
                report["crops"][group] = crop_metrics(probabilities(tail, plain_x[rows], temperature), plain_y[rows])
        if eval_x is not None:
            report["crops"]["caps-unseen"] = crop_metrics(probabilities(tail, eval_x, temperature), eval_y)
            for name, test in FAMILIES.items():
                rows = np.array([test(c.family) for c in eval_crops])
                if rows.any():
                    report["crops"][f"caps-unseen: {name}"] = crop_metrics(
                        probabilities(tail, eval_x[rows], temperature), eval_y[rows]
                    )
        return report

    # The shipped model's own judge on the same photos, for the table's first column.
    baseline_probs = (
        np.concatenate(
            [np.stack(finder.judge_crops([c])) for c in candidate_crops(bench)]  # type: ignore[attr-defined]
        )
        if len(bench.features)
        else np.zeros((0, 3))
    )
    baseline = {source: photo_metrics(bench.answers(baseline_probs, source)) for source in bench.photos}
    log(f"shipped {finder.artifact.version}: {json.dumps(baseline)}")

    if args.leave_one_out:
        table: dict = {"shipped": {"version": finder.artifact.version, "photos": baseline}, "left_out": {}}
        held: list[tuple[str, Callable[[Crop], bool]]] = [
            (source, lambda c, s=source: c.group == s) for source in ("product-poster", "trashnet", *REAL_SOURCES)
        ]
        held += [(name, lambda c, t=test: c.group == "caps-render" and t(c.family)) for name, test in FAMILIES.items()]
        if args.leave_out:
            held = [(name, excluded) for name, excluded in held if name in args.leave_out]
        for number, (name, excluded) in enumerate(held):
            log(f"leave out {name}")
            tail, temperature, views = fit(excluded, args.seed + 100 + number)
            report = measure(tail, temperature)
            table["left_out"][name] = {"temperature": round(temperature, 3), "views": views, **report}
            log(f"left out {name}: {json.dumps(report)}")
            args.leave_one_out.write_text(json.dumps(table, indent=1) + "\n")
        if args.only_leave_one_out:
            return

    tail, temperature, views = fit(lambda c: False, args.seed)
    report = measure(tail, temperature)
    log(f"all sources: temperature {temperature:.3f}; {json.dumps(report)}")
    if args.also_spans:  # two spans averaged, against the one span the product judges at
        mean = np.mean([probabilities(tail, bench.by_span[span], temperature) for span in args.also_spans], axis=0)
        report["photos_at_spans_averaged"] = {
            "spans": args.also_spans,
            **{source: photo_metrics(bench.answers(mean, source)) for source in bench.photos},
        }
        log(f"spans {args.also_spans} averaged: {json.dumps(report['photos_at_spans_averaged'])}")
    if args.out is None:
        return
    from bottlecheck.training.model import artifact_identity
    from bottlecheck.training.tops_model import save_tops_artifact

    base = json.loads((args.finder_from / "metadata.json").read_text())
    metadata = {
        **artifact_identity("bottlecheck-tops", args.version),
        "training": {
            "bottlecheck": __version__,
            "recipe": "recipe/experiments/train_judge.py (the judge); the finder from "
            f"{base['name']} {base['version']}",
            "judge_data": {
                "crops": {
                    f"{g}/{label}": n for (g, label), n in sorted(Counter((c.group, c.label) for c in crops).items())
                },
                "train_views": views,
                "calibration": "a fifth of each real source's photos and every tenth render: temperature only",
                "annotations": [
                    "recipe/annotations/real-tops.json",
                    "recipe/annotations/trashnet-tops.json",
                    "recipe/annotations/real-sources-tops.json",
                ],
            },
            "finder_training": base.get("training"),
            "config": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
                if k not in ("caps", "caps_eval", "out", "cache", "leave_one_out")
            },
            "seconds": round(time.time() - started, 1),
        },
        "metrics": {
            "finder": base["metrics"]["finder"],
            "judge": report,
            **({"leave_one_out": json.loads(args.leave_one_out.read_text())} if args.leave_one_out else {}),
        },
    }
    save_tops_artifact(
        None,
        None,
        temperature,
        args.out,
        metadata,
        min_score=float(base["stages"]["finder"]["min_score"]),
        finder_from=args.finder_from,
        judge_tail=tail,
        judge_backbone=f"EfficientNet-Lite0 (ImageNet), blocks after {args.cut} and the 1x1 head fine-tuned "
        "(batch norm kept), pooled, linear",
    )
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
