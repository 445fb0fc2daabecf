"""Train model 3's cap judge, choosing by what it does on sources and families it never saw.

    python -m recipe.train_cap_judge --caps R/caps --caps-eval R/caps-eval --report R/cap-loo.json \
        --out m3 --version 3.2.0 --second-look 0.15 --top-floor 0.35 --finder-from M220

Model 2's judge answered two questions with one linear layer on the 1x1 head's ImageNet
features: is this a top, and is it open. The first it answers well (every close-up without a
top in the held-out set was ``unknown``); the second it learned from the look of its training
sources. Every other judge tried here (``recipe/experiments/train_judge.py``: the back of the backbone
fine-tuned on renders and real crops) learned the training sources again: left out, a source
scored no better than model 2 did.

So model 3 keeps model 2's finder and its "is it a top" as they are, and adds one thing: a
cap judge, a linear layer on the pooled output of the backbone's last block
(:data:`bottlecheck.training.judge.CAP_LAYER`), which carried open-vs-closed to unseen sources
best of the layers measured. It reads the same backbone pass as the gate (one judge call a
top, as before). It trains on the judge's training views (span 1.5-4 times the top, any turn,
grey, hue, blur, noise, JPEG) of every marked top: the rendered close-ups of the kinds that
failed (``render/render_caps.py``) and the five real sources (``crops.py``'s table). Each
source weighs the same, and in it each class.

The table it writes is the number chosen on. For each real source, a cap judge trained
without it answers that source's photos as the product would (the finder's candidates,
model 2's gate, the decision rule); for each rendered family (white and silver crowns, foil,
PET), one trained without it answers the unseen renders of that family. The temperature is
cross-fitted: fitted on every real source's photo answers as given by the fold that never saw
that source, so a confidence means what it says on a bottle nobody trained on.

With ``--second-look BAND`` the product judges a top again at ``--also-spans`` when its
p(open | top) lies within BAND of the threshold (and the gate's p(top) reaches
``--second-look-min-top``); the table, the temperature and the model's metadata then all follow
that rule (3.1.0: 0.15 and 0.6). With ``--top-floor P`` a candidate whose p(top) lies from P up to
0.5 is judged again at those spans too, its p(none) the mean of its looks (3.2.0: 0.35). M220 is
model 2.2.0's directory, whose finder and gate are kept. ``--cap-backbone 1`` (or 2) reads the
cap's features off EfficientNet-Lite1's (Lite2's) last block instead, to measure only: the
shipped judge's one pass of Lite0 serves the gate and the cap (session 12: worse on photos).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier, __version__
from bottlecheck.evaluation.metrics import expected_calibration_error, log_loss
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import (
    CAP_LAYER,
    CAP_POOLINGS,
    CROP_SPAN,
    JUDGE_LABELS,
    Crop,
    LinearCap,
    cap_features_model,
    compute_judge_features,
    fit_linear_cap,
    judge_temperature,
    judge_view,
)

from .crops import FAMILIES, REAL_SOURCES, cap_render_crops, marked_crops, marks_digest, views_digest
from .photo_bench import PhotoBench, candidate_crops, gate_with, photo_metrics, photo_sets
from .real_photos import DATA

HERE = Path(__file__).resolve().parent
SOURCES = ("product-poster", "trashnet", *REAL_SOURCES)
CAP_FAMILIES = {name: test for name, test in FAMILIES.items() if name != "glassware (not a top)"}
OPEN = JUDGE_LABELS.index("open")


def top_crops(caps: list[Path]) -> list[Crop]:
    """Every marked open or closed top: the rendered close-ups and the five real sources."""
    ann = HERE / "annotations"
    crops = cap_render_crops(caps)
    crops += marked_crops(ann / "real-tops.json", DATA / "real", lambda rel: "product-poster")
    crops += marked_crops(ann / "trashnet-tops.json", DATA / "unlabelled" / "trashnet-glass", lambda _: "trashnet")
    crops += marked_crops(ann / "real-sources-tops.json", DATA / "real-sources", lambda rel: rel.split("/")[0])
    return [c for c in crops if c.label in ("open", "closed")]


def each_source_and_class_alike(crops: list[Crop], views: np.ndarray) -> np.ndarray:
    """Weights under which every (source, class) pair weighs the same, whatever its count.

    A source of one class (the office tables' closed bottles, the street tables' open ones)
    then counts as much for that class as a source of both does.
    """
    keys = [(crops[v].group, crops[v].label) for v in views]
    counts = Counter(keys)
    weights = np.array([1.0 / counts[key] for key in keys])
    return weights * len(weights) / weights.sum()


def cap_metrics(logits: np.ndarray, is_open: np.ndarray, temperature: float) -> dict:
    """Open-vs-closed on crops: balanced accuracy, each class's recall, calibration error."""
    p_open = 1.0 / (1.0 + np.exp(-logits / temperature))
    recall = {
        name: round(float(((p_open[is_open == value] >= 0.5) == value).mean()), 3)
        for name, value in (("closed", 0), ("open", 1))
        if (is_open == value).any()
    }
    return {
        "crops": int(len(is_open)),
        "balanced_accuracy": round(float(np.mean(list(recall.values()))), 3),
        "recall": recall,
        "ece": round(expected_calibration_error(is_open, p_open), 3),
    }


def gated(gate: np.ndarray, p_open: np.ndarray) -> np.ndarray:
    """(closed, open, none) rows: model 2's p(none) for each candidate (``gate``), this cap's p(open | top)."""
    return gate_with(np.stack([1.0 - p_open, p_open, np.zeros_like(p_open)], axis=1), gate)


def second_look(p_open_by_span: dict[float, np.ndarray], band: float, sure_top: np.ndarray) -> np.ndarray:
    """p(open | top) of each candidate as the product gives it with a second look (``TopsClassifier.look_again``).

    The first span's answer, except where it lies within ``band`` of 0.5 on a candidate the gate
    is sure enough of (``sure_top``): there the mean over every span. ``band`` 0 is the judge at
    one span.
    """
    spans = list(p_open_by_span)
    first = p_open_by_span[spans[0]]
    if band <= 0 or len(spans) == 1:
        return first
    averaged = np.mean([p_open_by_span[s] for s in spans], axis=0)
    return np.where((np.abs(first - 0.5) < band) & sure_top, averaged, first)


def gate_looked_again(gate_by_span: dict[float, np.ndarray], floor: float | None, min_top: float = 0.5) -> np.ndarray:
    """The gate's rows with each doubtful candidate's p(none) the mean over every span (``TopsClassifier.look_again``).

    ``gate_by_span`` holds the gate's (closed, open, none) rows of every candidate at each span, the
    model's first. A candidate whose p(top) there lies from ``floor`` up to ``min_top`` takes the mean
    of its p(none) at all spans; ``floor`` None is the gate at one span.
    """
    spans = list(gate_by_span)
    first = gate_by_span[spans[0]]
    if floor is None:
        return first
    p_top = 1.0 - first[:, 2]
    doubted = (p_top >= floor) & (p_top < min_top)
    out = np.array(first, dtype=np.float64, copy=True)
    out[:, 2] = np.where(doubted, np.mean([gate_by_span[s][:, 2] for s in spans], axis=0), first[:, 2])
    return out


def photo_temperature(
    bench: PhotoBench,
    gate: np.ndarray,
    folds: dict[str, LinearCap],
    judge: Callable[[LinearCap, float], np.ndarray],
) -> float:
    """The cap temperature under which the photos' answers are best calibrated, each source judged by its fold.

    The confidence a user reads is the photo's (its most open top's, or its least sure closed
    top's), not a crop's: the log loss of the answered photos' p_open, pooled over the real
    sources, each answered by the cap judge that never saw it, is minimised over a log grid.
    ``judge(cap, temperature)`` gives each candidate's p(open | top) as the product would.
    """
    grid = np.exp(np.linspace(np.log(0.5), np.log(6.0), 40))
    losses = []
    for temperature in grid:
        truth, p_open = [], []
        for source in bench.photos:
            probs = gated(gate, judge(folds[source], temperature))
            for label, answer in bench.answers(probs, source):
                if label in ("open", "closed") and answer["status"] != "unknown":
                    truth.append(label == "open")
                    p_open.append(answer["p_open"])
        losses.append(log_loss(truth, p_open))
    return float(grid[int(np.argmin(losses))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, action="append", required=True, help="render_caps.py output (training)")
    parser.add_argument("--caps-eval", type=Path, action="append", required=True, help="unseen render_caps.py output")
    parser.add_argument("--finder-from", type=Path, default=HERE.parent / "model", help="model 2: finder and gate")
    parser.add_argument("--report", type=Path, required=True, help="the leave-one-out table (JSON)")
    parser.add_argument("--out", type=Path, help="write the model here")
    parser.add_argument(
        "--fold-models", type=Path, help="also write each left-out source's fold here (DIR/without-SOURCE)"
    )
    parser.add_argument("--version", default=None)
    parser.add_argument("--views", type=int, default=12, help="training views of each top")
    parser.add_argument("--l2", type=float, default=1e-2)
    parser.add_argument("--low-res-share", type=float, default=0.0, help="views that lose their detail")
    parser.add_argument("--hue-share", type=float, default=0.0, help="views whose hue is turned")
    parser.add_argument(
        "--seed",
        type=int,
        action="append",
        dest="seeds",
        help="the training views' seed; given more than once, the views of every seed are pooled, or with "
        "--average-seeds a cap fitted on each (default: 0)",
    )
    parser.add_argument(
        "--average-seeds",
        action="store_true",
        help="with several --seed: fit one cap on each seed's views and average them (one linear layer), "
        "instead of one cap on the pooled views",
    )
    parser.add_argument("--pooling", choices=CAP_POOLINGS, default="mean", help="how the cap block's map is pooled")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        help="train the written model without this source (a scene split's base)",
    )
    parser.add_argument(
        "--cap-backbone",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="read the cap's features off EfficientNet-Lite0 (shipped), Lite1 or Lite2's last block; "
        "1 and 2 only measure (no --out or --fold-models: the shipped judge shares Lite0's pass with the gate)",
    )
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/bc-cap-cache"))
    parser.add_argument(
        "--also-spans", type=float, nargs="*", default=[1.6, 4.0], help="the second look's spans (and measure all)"
    )
    parser.add_argument(
        "--second-look",
        type=float,
        default=0.0,
        metavar="BAND",
        help="judge a top again at --also-spans when its p(open | top) lies within BAND of 0.5 (0: never)",
    )
    parser.add_argument(
        "--second-look-min-top",
        type=float,
        default=0.6,
        help="and only when the gate's p(top) is at least this (left-out mean: 0.5 and 0.6 alike, 0.8 lower)",
    )
    parser.add_argument(
        "--top-floor",
        type=float,
        default=None,
        help="also judge a candidate again at --also-spans when the gate's p(top) lies from this up to 0.5, "
        "its p(none) then the mean of its looks (3.2.0: 0.35; default: never)",
    )
    args = parser.parse_args()
    if args.cap_backbone and (args.out or args.fold_models):
        parser.error("--cap-backbone 1 or 2 measures only: a model's judge holds Lite0, shared with the gate")
    import_tensorflow()
    started = time.time()

    def log(line: str) -> None:
        print(f"[{time.time() - started:6.0f}s] {line}", flush=True)

    base = Classifier.load(args.finder_from, engine="litert")
    crops = top_crops(args.caps)
    unseen = [c for c in cap_render_crops(args.caps_eval, group="caps-unseen") if c.label in ("open", "closed")]
    log(f"tops: {dict(Counter((c.group, c.label) for c in crops))}; unseen renders {len(unseen)}")

    extractor = cap_features_model(pooling=args.pooling, variant=args.cap_backbone)
    view = functools.partial(judge_view, low_res_share=args.low_res_share, hue_share=args.hue_share)
    args.cache.mkdir(parents=True, exist_ok=True)
    seeds = args.seeds or [0]

    def features_of(seed: int) -> list[np.ndarray]:
        """One seed's training views and the plain crops' features, cached (they cost minutes)."""
        cache = args.cache / (
            f"{views_digest()}-{marks_digest(crops)}-v{args.views}-lr{args.low_res_share}-h{args.hue_share}-n{len(crops)}"
            f"-u{len(unseen)}-s{seed}{'' if args.pooling == 'mean' else '-' + args.pooling.replace('+', '_')}"
            f"{f'-lite{args.cap_backbone}' if args.cap_backbone else ''}.npz"
        )
        if cache.exists():
            log(f"features from {cache}")
            stored = np.load(cache)
            return [stored[k] for k in ("x", "y", "px", "py", "ux", "uy")]
        train_x, train_y = compute_judge_features(crops, args.views, seed, True, log, extractor, view)
        plain_x, plain_y = compute_judge_features(crops, 1, seed, False, lambda _: None, extractor)
        unseen_x, unseen_y = compute_judge_features(unseen, 1, seed, False, lambda _: None, extractor)
        np.savez(cache, x=train_x, y=train_y, px=plain_x, py=plain_y, ux=unseen_x, uy=unseen_y)
        return [train_x, train_y, plain_x, plain_y, unseen_x, unseen_y]

    # Several seeds pool their views: the fit then depends less on which views were drawn (the
    # left-out mean moved by 0.08 from one seed to the next: the model card).
    per_seed = [features_of(seed) for seed in seeds]
    train_x = np.concatenate([f[0] for f in per_seed])
    train_y = np.concatenate([f[1] for f in per_seed])
    plain_x, plain_y, unseen_x, unseen_y = per_seed[0][2:]
    train_of = np.tile(np.repeat(np.arange(len(crops)), args.views), len(seeds))
    train_open, plain_open, unseen_open = (train_y == OPEN).astype(int), (plain_y == OPEN).astype(int), unseen_y == OPEN
    unseen_open = unseen_open.astype(int)
    group = np.array([c.group for c in crops])

    spans = (CROP_SPAN, *args.also_spans)
    bench = PhotoBench(base, photo_sets(), extractor, spans=spans)
    gate_by_span = {
        span: np.stack(base.judge_crops(candidate_crops(bench, span)))  # type: ignore[attr-defined]
        for span in (spans if args.top_floor is not None else spans[:1])
    }
    gate_once = gate_by_span[CROP_SPAN]
    gate = gate_looked_again(gate_by_span, args.top_floor)
    log(
        f"photo bench: {sum(len(v) for v in bench.photos.values())} photos, {len(gate)} candidates, "
        f"{int((gate[:, 2] != gate_once[:, 2]).sum())} of them judged again by the gate"
    )

    def fit(excluded) -> LinearCap:
        if args.average_seeds and len(seeds) > 1:
            # A cap on each draw of the views, averaged: still one linear layer (the judge costs the
            # same), and its answers depend less on one draw (the model card: four draws' left-out
            # means 0.646-0.707 one by one, 0.697 averaged; pairs 0.662-0.716, mean 0.685).
            caps = []
            one_of = train_of[: len(crops) * args.views]  # each seed's views, top by top
            keep = np.flatnonzero(~excluded[one_of])
            weights = each_source_and_class_alike(crops, one_of[keep])
            for features in per_seed:
                caps.append(
                    fit_linear_cap(features[0][keep], (features[1][keep] == OPEN).astype(int), weights, args.l2)
                )
            return LinearCap(np.mean([c.kernel for c in caps], axis=0), float(np.mean([c.bias for c in caps])))
        keep = np.flatnonzero(~excluded[train_of])
        weights = each_source_and_class_alike(crops, train_of[keep])
        return fit_linear_cap(train_x[keep], train_open[keep], weights, args.l2)

    def judge(
        cap: LinearCap,
        temperature: float,
        band: float = args.second_look,
        min_top: float = args.second_look_min_top,
        gate: np.ndarray = gate,
    ) -> np.ndarray:
        """Each candidate's p(open | top) as the product gives it: at the crop's span, a second look within ``band``."""
        by_span = {s: 1 / (1 + np.exp(-cap.logits(bench.by_span[s]) / temperature)) for s in spans}
        return second_look(by_span, band, 1.0 - gate[:, 2] >= min_top)

    def photos(
        cap: LinearCap,
        temperature: float,
        band: float = args.second_look,
        min_top: float | None = None,
        gate: np.ndarray = gate,
    ) -> dict:
        min_top = args.second_look_min_top if min_top is None else min_top
        probs = gated(gate, judge(cap, temperature, band, min_top, gate))
        return {source: photo_metrics(bench.answers(probs, source)) for source in bench.photos}

    # Leave each real source out, then each rendered family.
    folds: dict[str, LinearCap] = {}
    held_logits, held_truth = [], []
    for source in SOURCES:
        folds[source] = fit(group == source)
        held_logits.append(folds[source].logits(plain_x[group == source]))
        held_truth.append(plain_open[group == source])
        log(f"left out {source}")
    crop_temperature = judge_temperature(np.concatenate(held_logits), np.concatenate(held_truth))
    temperature = photo_temperature(bench, gate, folds, judge)
    log(
        f"cross-fitted temperature: {crop_temperature:.3f} on {sum(len(t) for t in held_truth)} real tops' crops, "
        f"{temperature:.3f} on the photos' answers (kept: the confidence a user reads is the photo's)"
    )

    table: dict = {
        "chosen_on": "each real source's photos, answered by a cap judge trained without that source (model 2's "
        "finder and gate, this judge's p(open | top), the decision rule); each rendered family's unseen renders, "
        "by one trained without that family",
        "temperature": round(temperature, 4),
        "temperature_on_crops": round(crop_temperature, 4),
        "shipped": {"version": base.artifact.version, "photos": {}},
        "left_out": {},
    }
    table["shipped"]["photos"] = {source: photo_metrics(bench.answers(gate_once, source)) for source in bench.photos}
    for source in SOURCES:
        cap = folds[source]
        rows = group == source
        entry = {"crops": cap_metrics(cap.logits(plain_x[rows]), plain_open[rows], temperature)}
        if source in bench.photos:
            entry["photos"] = photos(cap, temperature)[source]
            if args.second_look > 0 or args.top_floor is not None:
                entry["photos_one_look"] = photos(cap, temperature, 0.0, gate=gate_once)[source]
            if args.top_floor is not None:
                entry["photos_gate_once"] = photos(cap, temperature, gate=gate_once)[source]
            entry["photos_spans_averaged"] = {"spans": list(spans), **photos(cap, temperature, 1.0, 0.0)[source]}
        table["left_out"][source] = entry
        log(f"left out {source}: {json.dumps(entry)}")
    for name, test in CAP_FAMILIES.items():
        in_family = np.array([c.group == "caps-render" and test(c.family) for c in crops])
        cap = fit(in_family)
        rows = np.array([test(c.family) for c in unseen])
        entry = {"unseen_renders": cap_metrics(cap.logits(unseen_x[rows]), unseen_open[rows], temperature)}
        table["left_out"][name] = entry
        log(f"left out {name}: {json.dumps(entry)}")
    held = [table["left_out"][s]["photos"]["balanced_accuracy"] for s in REAL_SOURCES]
    table["mean_left_out_real_sources"] = round(float(np.mean(held)), 3)
    table["mean_shipped_real_sources"] = round(
        float(np.mean([table["shipped"]["photos"][s]["balanced_accuracy"] for s in REAL_SOURCES])), 3
    )

    cap = fit(np.isin(group, args.without))
    table["trained_on_all"] = {
        "note": "in-distribution: every source here was trained on; not a measure of generalisation",
        "without": args.without,
        "photos": photos(cap, temperature),
        "unseen_renders": cap_metrics(cap.logits(unseen_x), unseen_open, temperature),
        "unseen_renders_by_family": {
            name: cap_metrics(cap.logits(unseen_x[rows]), unseen_open[rows], temperature)
            for name, test in CAP_FAMILIES.items()
            if (rows := np.array([test(c.family) for c in unseen])).any()
        },
    }
    args.report.write_text(json.dumps(table, indent=1) + "\n")
    log(
        f"held out, real sources: mean {table['mean_left_out_real_sources']} "
        f"(shipped {table['mean_shipped_real_sources']})"
    )
    if args.out is None and args.fold_models is None:
        return

    import keras

    from bottlecheck.training.model import artifact_identity
    from bottlecheck.training.tops_model import build_gated_judge, save_tops_artifact

    base_meta = json.loads((args.finder_from / "metadata.json").read_text())
    base_judge = keras.models.load_model(base.artifact.file("keras", "judge"), compile=False)

    def write_model(directory: Path, cap: LinearCap, version: str | None, metrics: dict, without: list[str]) -> None:
        """A model directory: 2.2.0's finder and gate, ``cap`` at the cross-fitted temperature."""
        metadata = {
            **artifact_identity("bottlecheck-tops", version),
            "training": {
                "bottlecheck": __version__,
                "recipe": "recipe/train_cap_judge.py (the cap judge); the finder and the gate from "
                f"{base_meta['name']} {base_meta['version']}",
                "cap_data": {
                    "tops": {
                        f"{g}/{label}": n
                        for (g, label), n in sorted(Counter((c.group, c.label) for c in crops).items())
                        if g not in without
                    },
                    "without": without,
                    "train_views": int(np.isin(group[train_of], without, invert=True).sum()),
                    "annotations": [
                        "recipe/annotations/real-tops.json",
                        "recipe/annotations/trashnet-tops.json",
                        "recipe/annotations/real-sources-tops.json",
                    ],
                    "renders": "recipe/render/render_caps.py (training seeds; the unseen renders only measure)",
                },
                "finder_training": base_meta.get("training", {}).get("finder_training") or base_meta.get("training"),
                "config": {
                    "views": args.views,
                    "l2": args.l2,
                    "low_res_share": args.low_res_share,
                    "hue_share": args.hue_share,
                    "seed": seeds[0] if len(seeds) == 1 else seeds,
                    "seeds_combined": "averaged caps" if args.average_seeds and len(seeds) > 1 else "pooled views",
                    "cap_layer": CAP_LAYER,
                    "pooling": args.pooling,
                    "second_look": args.second_look,
                    "second_look_min_top": args.second_look_min_top,
                    "top_floor": args.top_floor,
                },
                "seconds": round(time.time() - started, 1),
            },
            "metrics": {"finder": base_meta["metrics"]["finder"], **metrics},
        }
        save_tops_artifact(
            None,
            None,
            temperature,
            directory,
            metadata,
            min_score=float(base_meta["stages"]["finder"]["min_score"]),
            finder_from=args.finder_from,
            judge=build_gated_judge(base_judge, cap, temperature, args.pooling),
            judge_backbone="EfficientNet-Lite0 (ImageNet), frozen; gate: model 2's linear layer on the pooled 1x1 "
            f"head; cap: a linear layer on the pooled {CAP_LAYER}",
            judge_stage={
                # A base that is itself a model 3 carries its gate on: say whose gate it is, not the base's.
                "gate": base_meta["stages"]["judge"].get("gate")
                or f"p(none) from {base_meta['name']} {base_meta['version']}'s judge, its temperature "
                f"{base_meta['stages']['judge']['temperature']}",
                "cap": f"p(open | top) = sigmoid(linear(block 15, pooled: {args.pooling}) / temperature); the "
                "temperature cross-fitted on real tops judged by folds that never saw their source",
                "output": "(N, 3) probabilities of closed, open, none: p(top) (1 - p(open | top)), "
                "p(top) p(open | top), p(none)",
                **(
                    {
                        "second_look": {
                            "spans": list(args.also_spans),
                            "band": args.second_look,
                            "min_top": args.second_look_min_top,
                            **({"top_floor": args.top_floor} if args.top_floor is not None else {}),
                            "rule": "a counted top whose p(top) is at least min_top and whose p(open | top) lies "
                            "within band of the threshold is judged again at each span (times the top's side); its "
                            "p(open | top) is the mean over its crop_span and these, its p(none) the one at crop_span"
                            + (
                                "; first, a candidate whose p(top) lies from top_floor up to the decision's "
                                "min_top_probability is judged again at each span, its p(none) the mean of its looks"
                                if args.top_floor is not None
                                else ""
                            ),
                        }
                    }
                    if args.second_look > 0
                    else {}
                ),
            },
        )
        log(f"wrote {directory}")

    if args.out is not None:
        metrics = {"judge": table["trained_on_all"], "leave_one_out": table}
        write_model(args.out, cap, args.version, metrics, args.without)
    if args.fold_models is not None:  # each left-out source's fold, for `bottlecheck evaluate` on that source
        for source in SOURCES:
            write_model(
                args.fold_models / f"without-{source}",
                folds[source],
                f"{args.version or 'fold'}-without-{source}",
                {"leave_one_out_fold": table["left_out"][source]},
                [source],
            )


if __name__ == "__main__":
    main()
