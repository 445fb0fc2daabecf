"""Train model 3's judge, measured first by leaving whole sources and families out.

    python recipe/train_judge.py --caps R/caps --caps-eval R/caps-eval --out m3 --version 3.0.0 \
        --leave-one-out R/loo.json

Model 2's judge was a linear layer on frozen ImageNet features, trained on renders and one real
source per class: it learned the sources' look, not the cap (the model-3 issue). This judge
fine-tunes the back of the backbone (``bottlecheck/training/judge.py``: the blocks after
``TRUNK_LAST_BLOCK``, the 1x1 head, the linear layer) on views that remove the shortcuts (span
1.5-4 times the top, any turn, grey and hue), from renders of the caps that failed
(``recipe/render/render_caps.py``) and every real source with marked tops:

=====================  ==========================================================================
source                 tops
=====================  ==========================================================================
caps-render            rendered close-ups: crown caps of six styles, twist, PET screw and sports
                       caps, foil; bare lips, torn foil, bare PET threads; tumblers, wine glasses,
                       jars, cups, loose caps (``none``)
product-poster         ``real/``: web product shots (closed) and poster-board empties (open),
                       tops in ``annotations/real-tops.json``; the brewery logos (``real/other``)
                       give ``none`` where the finder is fooled
trashnet               ``annotations/trashnet-tops.json``: the finder's candidates, marked by eye
beer-office            ``annotations/real-sources-tops.json``, and the ones below
beer-checkins
street-restaurants
=====================  ==========================================================================

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
import csv
import json
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier, __version__
from bottlecheck.evaluation.metrics import expected_calibration_error
from bottlecheck.imaging import decode_photo
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training import judge as J

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
REAL_SOURCES = ("beer-office", "beer-checkins", "street-restaurants")
#: Rendered families held out one at a time: (name, test on a crop's family).
FAMILIES: dict[str, Callable[[str], bool]] = {
    "white and silver crown caps": lambda family: family in ("crown:white", "crown:silver"),
    "foil necks": lambda family: family.startswith("foil"),
    "PET necks": lambda family: family.startswith("pet"),
    "glassware (not a top)": lambda family: family in ("tumbler", "wine_glass", "jar", "cup"),
}


# ---------------------------------------------------------------- crops
def cap_render_crops(directories: Iterable[Path], group: str = "caps-render") -> list[J.Crop]:
    """One crop per image of ``render_caps.py``: the top's (or rim's) box, its label and its family."""
    crops = []
    for directory in directories:
        for log in sorted(Path(directory).glob("labels-*.jsonl")):
            for line in log.read_text().splitlines():
                meta = json.loads(line)
                x0, y0, x1, y1 = meta["box"]
                family = meta["kind"] + (f":{meta['cap_style']}" if "cap_style" in meta else "")
                path = str(Path(directory) / meta["path"])
                crops.append(
                    J.Crop(
                        path,
                        (x0 + x1) / 2,
                        (y0 + y1) / 2,
                        max(x1 - x0, y1 - y0),
                        meta["label"],
                        meta["index"],
                        group,
                        family,
                    )
                )
    return crops


def marked_crops(annotation: Path, folder: Path, group_of: Callable[[str], str]) -> list[J.Crop]:
    """Tops marked in an annotation file (``{"images": {relative path: [{x, y, side, label}]}}``)."""
    document = json.loads(annotation.read_text())
    crops = []
    for rel, tops in sorted(document["images"].items()):
        for top in tops if isinstance(tops, list) else tops["tops"]:
            crops.append(
                J.Crop(str(folder / rel), top["x"], top["y"], top["side"], top["label"], _photo_key(rel), group_of(rel))
            )
    return crops


def random_none_crops(crops: list[J.Crop], per_photo: int, seed: int) -> list[J.Crop]:
    """``none`` crops away from every marked top of each photo: tables, labels, hands, glass."""
    rng = random.Random(seed)
    by_photo: dict[str, list[J.Crop]] = {}
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
                    extra.append(J.Crop(path, x, y, side, "none", tops[0].index, tops[0].group))
                    break
    return extra


def logo_negatives(finder: Classifier, folder: Path) -> list[J.Crop]:
    """Where the finder sees a top in a brewery logo (``real/other``, no top at all): ``none``."""
    crops = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        photo = finder.preprocess(str(path))
        to_full = photo.size[0] / photo.image.width
        for x, y, side, _score in finder.find_tops(photo, 0.15, 6):  # type: ignore[attr-defined]
            crops.append(
                J.Crop(
                    str(path),
                    x * to_full,
                    y * to_full,
                    side * to_full,
                    "none",
                    _photo_key(path.name),
                    "product-poster",
                    "logo",
                )
            )
    return crops


def finder_negatives(finder: Classifier, crops: list[J.Crop], min_score: float = 0.2) -> list[J.Crop]:
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
                negatives.append(J.Crop(crop.path, x, y, side, "none", crop.index, crop.group, "finder-miss"))
    return negatives


def _views_digest() -> str:
    """A short digest of how views are made, so cached features of other views are never reused."""
    import inspect

    return f"{zlib.crc32(inspect.getsource(J.judge_view).encode()):08x}"


def _photo_key(name: str) -> int:
    return zlib.crc32(name.encode())


def is_calibration(crop: J.Crop) -> bool:
    """A fifth of each real source's photos, and every tenth render, fit the temperature and train nothing."""
    return crop.index % (10 if crop.group == "caps-render" else 5) == 0


# ---------------------------------------------------------------- photos, as the product answers them
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
                        np.asarray(cut_square(photo.image, x, y, max(side * span, 4.0), J.JUDGE_SIZE), dtype=np.uint8)
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
    closed, opened, none = (J.JUDGE_LABELS.index(label) for label in ("closed", "open", "none"))
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


# ---------------------------------------------------------------- training
def class_and_group_weights(crops: list[J.Crop], views: np.ndarray) -> np.ndarray:
    """Each source weighs the same, and within it each label: no source or class wins by its count."""
    keys = [(crops[v].group, crops[v].label) for v in views]
    counts = Counter(keys)
    groups = Counter(group for group, _ in counts)
    weights = np.array([1.0 / (counts[key] * groups[key[0]]) for key in keys])
    return weights * len(weights) / weights.sum()


def train_tail(features, labels, weights, epochs: int, seed: int, cut: int, log):
    import keras

    keras.utils.set_random_seed(seed)
    tail = J.judge_tail(cut=cut)
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
    tops = labels != J.JUDGE_LABELS.index("none")
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
    parser.add_argument("--finder-from", type=Path, default=HERE.parent / "model", help="the two-stage model kept")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--version", default=None)
    parser.add_argument("--leave-one-out", type=Path, help="first train without each source and family; write here")
    parser.add_argument("--only-leave-one-out", action="store_true")
    parser.add_argument("--leave-out", action="append", help="with --leave-one-out: only these sources or families")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/bc-judge-cache"))
    parser.add_argument("--render-views", type=int, default=3)
    parser.add_argument("--real-views", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cut", type=int, default=J.TRUNK_LAST_BLOCK, help="last frozen block")
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
    ann = HERE / "annotations"
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
    trunk = J.judge_trunk_model(cut=args.cut)
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = f"cut{args.cut}-v{args.render_views}-{args.real_views}-n{len(crops)}-s{args.seed}"
    cache = args.cache / f"{_views_digest()}-{settings}.npz"
    if cache.exists():
        stored = np.load(cache)
        train_x, train_y, train_of = stored["x"], stored["y"], stored["of"]
        plain_x, plain_y = stored["px"], stored["py"]
        log(f"features from {cache}")
    else:
        parts_x, parts_y, parts_of = [], [], []
        for rendered, views in ((True, args.render_views), (False, args.real_views)):
            chosen = [k for k, c in enumerate(crops) if (c.group == "caps-render") == rendered]
            x, y = J.compute_judge_features([crops[k] for k in chosen], views, args.seed + rendered, True, log, trunk)
            parts_x.append(x.astype(np.float16))
            parts_y.append(y)
            parts_of.append(np.repeat(chosen, views))
        train_x, train_y, train_of = np.concatenate(parts_x), np.concatenate(parts_y), np.concatenate(parts_of)
        plain_x, plain_y = J.compute_judge_features(crops, 1, args.seed, False, lambda _l: None, trunk)
        plain_x = plain_x.astype(np.float16)
        np.savez(cache, x=train_x, y=train_y, of=train_of, px=plain_x, py=plain_y)
    eval_x, eval_y = (
        J.compute_judge_features(eval_crops, 1, 1, False, lambda _l: None, trunk) if eval_crops else (None, None)
    )
    bench = PhotoBench(finder, photo_sets(), trunk, spans=(J.CROP_SPAN, *args.also_spans))
    log(f"photo bench: {sum(len(v) for v in bench.photos.values())} photos, {len(bench.features)} candidates")
    calibration = np.array([is_calibration(c) for c in crops])

    def fit(excluded: Callable[[J.Crop], bool], seed: int):
        keep = np.array([not excluded(c) for c in crops]) & ~calibration
        views = np.flatnonzero(keep[train_of])
        weights = class_and_group_weights(crops, train_of[views])
        tail = train_tail(train_x[views], train_y[views], weights, args.epochs, seed, args.cut, log)
        fit_on = np.flatnonzero(calibration & np.array([not excluded(c) and c.group != "caps-render" for c in crops]))
        logits = tail.predict(plain_x[fit_on], verbose=0)
        temperature = J.fit_temperature_multiclass(logits, plain_y[fit_on])
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
            [np.stack(finder.judge_crops([c])) for c in _candidate_crops(bench)]  # type: ignore[attr-defined]
        )
        if len(bench.features)
        else np.zeros((0, 3))
    )
    baseline = {source: photo_metrics(bench.answers(baseline_probs, source)) for source in bench.photos}
    log(f"shipped {finder.artifact.version}: {json.dumps(baseline)}")

    if args.leave_one_out:
        table: dict = {"shipped": {"version": finder.artifact.version, "photos": baseline}, "left_out": {}}
        held: list[tuple[str, Callable[[J.Crop], bool]]] = [
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
            "recipe": "recipe/train_judge.py (the judge); the finder from " + f"{base['name']} {base['version']}",
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


def _candidate_crops(bench: PhotoBench, span: float | None = None) -> list[np.ndarray]:
    """Every candidate of the bench cut as the product cuts it: at the model's span, or at ``span``."""
    crops = []
    for entries in bench.photos.values():
        for _path, _truth, photo, placed, _start in entries:
            crops += [bench.finder.crop(photo, x, y, side, span) for x, y, side, _ in placed]  # type: ignore[attr-defined]
    return crops


if __name__ == "__main__":
    main()
