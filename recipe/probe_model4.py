"""Would the real photos' marked tops make a better cap or gate? Each repository group left out.

    python -m recipe.probe_model4 --caps R/caps --cache R/m4 [--model M320] [--report R/m4.json] [--variants]

The table 3.3.0 was chosen on (``--variants``' rescuing gate at 0.95, two draws of its views):
``recipe.sh`` runs it on the 3.2.0 model it builds, and ``record_tables.py`` writes its rows into
3.3.0's metadata. It builds nothing itself.

Issue 36 asks for model 4 learned from the 1,040 real photos. This measures the two stages the
shipped judge learns on frozen EfficientNet-Lite0 features, as the product answers photos:

* the **cap** (p(open | top), a linear layer on the pooled last block) trained the 3.2.0 way
  (renders and the five older sources: ``3.2.0 recipe``) and with every group's marked tops
  added (``model 4 recipe``), 12 views a top as 3.2.0's (no low-resolution or hue views), each
  (group, class) weighing alike; 3.2.0's gate kept;
* the **gate** (p(top), a linear layer on the pooled 1x1 head) trained on the real marked tops
  and nones (``annotations/``; the by-eye "not a top" among them) instead of 2.2.0's renders,
  alone or as the larger of the two p(top); 3.2.0's cap kept.

With ``--variants`` (sessions 16-17) it also measures a gate that only *rescues* (3.2.0's p(top)
kept unless it turns a candidate down and the real gate is sure, at 0.9 or 0.95, on two draws of
its views: what ``train_rescue_gate.py`` ships), and the cap trained with **counterfactual
tops**: each real marked top gets a top of the other class pasted over it (a
disc a little wider than the donor's box, from the same group where it holds that class, never
enlarged from a smaller top), so that a group's background comes with both labels. A fold
leaves out every composite whose target or donor is from the group it answers.

Every figure is a group's photos answered by a fold that never saw that group: the finder's
candidates, the gate's and the cap's second looks and the decision rule as ``TopsClassifier``
applies them (replayed on cached arrays: the first row replays 3.2.0 itself and equals
``recipe.kinds_table`` on ``bottlecheck classify``'s answers). Photo temperature cross-fitted.
Tables per group and per kind (``kinds_table``) go to ``--report``; the model card has them.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.evaluation.metrics import log_loss
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import (
    Crop,
    LinearCap,
    cap_features_model,
    compute_judge_features,
    fit_linear_cap,
    judge_features_model,
    judge_view,
)

from . import kinds_table
from .crops import alike, cap_render_crops, marked, marks_digest, places_digest
from .real_photos import GROUPS, OLDER_GROUPS, Photo, labelled_photos
from .train_rescue_gate import VIEWS, fit_rescue_gate, gate_crops, gate_features

RECIPE = Path(__file__).resolve().parent
SPANS = (2.5, 1.6, 4.0)


def bench_key(base: Classifier, photos: list) -> str:
    """The name of a bench's cache files: the model's weights, how its finder proposes candidates, the photos.

    Another model's candidates and judge rows, the same weights with another finder floor or size
    (``last_look --floor``'s copy of 3.2.0 read 3.2.0's bench back when only the weights counted),
    or a changed list of photos (a verdict in annotations/) are computed afresh.
    """
    finder = base.answer_settings()["finder"]
    key = "\n".join([base.artifact.checksum, json.dumps(finder), *(str(p.path) for p in photos)])
    return hashlib.sha256(key.encode()).hexdigest()[:10]


class Bench:
    """Each labelled photo's candidates with the cap's features at three spans, the head's at 2.5 and 3.2.0's rows."""

    def __init__(self, base: Classifier, cache: Path) -> None:

        self.photos = labelled_photos()
        self.digest = digest = bench_key(base, self.photos)
        arrays, meta = cache / f"bench-{digest}.npz", cache / f"bench-{digest}.json"
        if not arrays.exists():
            cap, head = cap_features_model(), judge_features_model()
            parts: dict[str, list] = {}
            rows = []
            for p in self.photos:
                photo = base.preprocess(str(p.path))
                placed = base.find_tops(photo)  # type: ignore[attr-defined]
                rows.append(len(placed))
                for span in SPANS if placed else ():
                    crops = np.stack([base.crop(photo, x, y, s, span) for x, y, s, _ in placed])  # type: ignore[attr-defined]
                    parts.setdefault(f"cap{span}", []).append(cap.predict(crops.astype(np.float32), verbose=0))
                    parts.setdefault(f"rows{span}", []).append(np.stack(base.judge_crops(list(crops))))  # type: ignore[attr-defined]
                    if span == SPANS[0]:
                        parts.setdefault("head", []).append(head.predict(crops.astype(np.float32), verbose=0))
            np.savez(arrays, **{k: np.concatenate(v) for k, v in parts.items()})
            meta.write_text(json.dumps(rows))
        self.arrays = np.load(arrays)
        self.counts = json.loads(meta.read_text())
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(int)
        self.group = np.concatenate([[p.group] * n for p, n in zip(self.photos, self.counts, strict=True)])
        rows = {s: self.arrays[f"rows{s}"] for s in SPANS}
        self.p_open_shipped = {s: rows[s][:, 1] / np.maximum(rows[s][:, 0] + rows[s][:, 1], 1e-9) for s in SPANS}
        self.p_top_shipped = {s: 1.0 - rows[s][:, 2] for s in SPANS}

    def answers(self, p_top: np.ndarray, p_open: np.ndarray, groups=None) -> dict[str, dict]:
        """The decision rule: a top counts at p(top) 0.5; open if any counted top is, unknown if none counts."""
        out = {}
        for p, start, n in zip(self.photos, self.starts, self.counts, strict=True):
            if groups is not None and p.group not in groups:
                continue
            counted = p_top[start : start + n] >= 0.5
            opened = p_open[start : start + n][counted]
            status = "unknown" if not counted.any() else "open" if (opened >= 0.5).any() else "closed"
            out[kinds_table.key(p)] = {"status": status, "p_open": float(opened.max()) if counted.any() else None}
        return out


def counterfactual_tops(tops: list, folder: Path, seed: int = 5) -> list[tuple]:
    """Each real top with a top of the other class pasted over it: (crop on the composite, donor group).

    The composite is the target's surroundings out to 3 sides (span 6) on the model's grey, so
    no view reaches an edge the real photo would not have; the donor's disc is scaled to the
    target's side with a soft edge.
    """
    from PIL import Image, ImageDraw, ImageFilter

    from bottlecheck.imaging import PAD_VALUE, decode_image

    rng = random.Random(seed)
    tops = [c for c in tops if c.side >= 12]
    by_class: dict[tuple[str, str], list] = {}
    for c in tops:
        by_class.setdefault((c.group, c.label), []).append(c)
    folder.mkdir(parents=True, exist_ok=True)
    decoded = functools.lru_cache(maxsize=64)(decode_image)
    out = []
    for number, target in enumerate(tops):
        other = "closed" if target.label == "open" else "open"
        anywhere = [c for c in tops if c.label == other]
        pool = by_class.get((target.group, other)) or anywhere
        donor = rng.choice(
            [c for c in pool if c.side >= 0.8 * target.side]
            or [c for c in anywhere if c.side >= 0.8 * target.side]
            or pool
        )
        path = folder / f"{number:05d}.jpg"
        half = 3.0 * target.side
        box = tuple(round(v) for v in (target.x - half, target.y - half, target.x + half, target.y + half))
        if not path.exists():
            reach = 0.62 * donor.side
            patch = decoded(donor.path).crop(
                tuple(round(v) for v in (donor.x - reach, donor.y - reach, donor.x + reach, donor.y + reach))
            )
            size = max(4, round(2 * reach * target.side / donor.side))
            patch = patch.resize((size, size), Image.Resampling.BILINEAR)
            mask = Image.new("L", (size, size), 0)
            ImageDraw.Draw(mask).ellipse((size * 0.1, size * 0.1, size * 0.9, size * 0.9), fill=255)
            region = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), (PAD_VALUE,) * 3)
            region.paste(decoded(target.path), (-box[0], -box[1]))
            at = (round(target.x - size / 2) - box[0], round(target.y - size / 2) - box[1])
            region.paste(patch, at, mask.filter(ImageFilter.GaussianBlur(size * 0.03)))
            region.save(path, quality=95)
        crop = Crop(str(path), target.x - box[0], target.y - box[1], target.side, other, 0, target.group)
        out.append((crop, donor.group))
    return out


def gate_looked_again(by_span: dict[float, np.ndarray], floor: float = 0.35) -> np.ndarray:
    first = by_span[SPANS[0]]
    doubted = (first >= floor) & (first < 0.5)
    return np.where(doubted, np.mean([by_span[s] for s in SPANS], axis=0), first)


def cap_looked_again(by_span: dict[float, np.ndarray], p_top: np.ndarray) -> np.ndarray:
    first = by_span[SPANS[0]]
    unsure = (np.abs(first - 0.5) < 0.15) & (p_top >= 0.6)
    return np.where(unsure, np.mean([by_span[s] for s in SPANS], axis=0), first)


def rescued(p_top: np.ndarray, real_gate: np.ndarray, sure: float, count_line: float = 0.5) -> np.ndarray:
    """3.2.0's p(top) kept, except where it turns a candidate down and the real gate is ``sure`` of a top.

    What ``TopsClassifier`` does with a judge that carries a ``rescue`` gate (tops 3.3.0 on).
    """
    return np.where((p_top < count_line) & (real_gate >= sure), real_gate, p_top)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def cap_views(caps: list[Path], cache: Path) -> tuple[list[Crop], np.ndarray, np.ndarray, np.ndarray]:
    """Every marked real top and cap render with its cap features, 12 views a top (cached in ``cache``).

    Returns the tops, the views' features, whether each view is open (0/1) and each view's group.
    """
    tops = marked(("open", "closed")) + [c for c in cap_render_crops(caps) if c.label in ("open", "closed")]
    cap_file = cache / f"cap-v12-{places_digest(tops)}-n{len(tops)}.npz"
    if not cap_file.exists():
        view = functools.partial(judge_view, low_res_share=0.0, hue_share=0.0)
        x, _ = compute_judge_features(tops, 12, 0, True, print, cap_features_model(), view)
        np.savez(cap_file, x=x)
    is_open = np.repeat([c.label == "open" for c in tops], 12).astype(int)
    return tops, np.load(cap_file)["x"], is_open, np.repeat([c.group for c in tops], 12)


def cap_of(model: Path) -> LinearCap:
    """A model's cap, p(open | top), as a linear layer on the cap's features: its judge's ``cap`` layer."""
    judge = import_tensorflow().keras.models.load_model(model / "judge.keras", compile=False)
    kernel, bias = judge.get_layer("cap").get_weights()
    return LinearCap(kernel[:, 0].astype(np.float64), float(bias[0]))


def left_out_real_gate(bench: Bench, cache: Path, seed: int = 0) -> np.ndarray:
    """The rescue gate's p(top) of each bench candidate, by the fold that never saw its group (views: ``seed``)."""
    crops_of_gate = gate_crops()
    gate_group = np.repeat([c.group for c in crops_of_gate], VIEWS)
    gate_x, gate_top = gate_features(crops_of_gate, cache, seed)
    p_top = np.zeros(len(bench.group))
    for g in GROUPS:
        gate = fit_rescue_gate(crops_of_gate, gate_x, gate_top, gate_group != g)
        rows = bench.group == g
        p_top[rows] = sigmoid(gate.logits(bench.arrays["head"][rows]))
    return p_top


def left_out_caps(views: tuple, trained_on, groups, pairs: tuple | None = None) -> dict[str, LinearCap]:
    """A cap per group of ``groups``, fitted without it: ``trained_on``'s tops and the renders.

    ``views`` is :func:`cap_views`' features, labels and groups; ``pairs`` (features, labels,
    target groups, donor groups) adds the counterfactual tops whose target and donor are other groups.
    """
    cap_x, cap_open, cap_group = views
    folds = {}
    for g in groups:
        keep = np.flatnonzero(np.isin(cap_group, [*trained_on, "caps-render"]) & (cap_group != g))
        x, y, kept_groups = cap_x[keep], cap_open[keep], cap_group[keep]
        if pairs is not None:
            pair_x, pair_open, target, donor = pairs
            more = np.flatnonzero((target != g) & (donor != g))
            x, y = np.concatenate([x, pair_x[more]]), np.concatenate([y, pair_open[more]])
            kept_groups = np.concatenate([kept_groups, target[more]])
        folds[g] = fit_linear_cap(x, y, alike(kept_groups, y), 1e-2)
    return folds


def left_out_logits(bench: Bench, folds: dict[str, LinearCap]) -> dict[float, np.ndarray]:
    """Each candidate's cap logit at each span, by its group's fold (NaN where its group has none)."""
    out = {s: np.full(len(bench.group), np.nan) for s in SPANS}
    for g, fold in folds.items():
        rows = bench.group == g
        for s in SPANS:
            out[s][rows] = fold.logits(bench.arrays[f"cap{s}"][rows])
    return out


def best_temperature(answers_at: Callable[[float], dict], truth: dict[str, str]) -> float:
    """The photo temperature (0.5 to 6, a log grid) whose answers have the least log loss over the answered photos.

    ``answers_at(t)`` gives each photo's answer at temperature ``t``, keyed as ``truth``.
    """
    grid = np.exp(np.linspace(np.log(0.5), np.log(6.0), 30))
    losses = []
    for t in grid:
        answered = [(truth[k] == "open", a["p_open"]) for k, a in answers_at(t).items() if a["p_open"] is not None]
        losses.append(log_loss([is_open for is_open, _ in answered], [p for _, p in answered]))
    return float(grid[int(np.argmin(losses))])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, action="append", required=True, help="render_caps.py output (training)")
    parser.add_argument("--cache", type=Path, required=True, help="features are kept here (they cost minutes)")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--model", type=Path, default=RECIPE.parent / "model")
    parser.add_argument("--variants", action="store_true", help="also the rescuing gate and counterfactual tops")
    args = parser.parse_args(argv)
    import_tensorflow()

    args.cache.mkdir(parents=True, exist_ok=True)
    bench = Bench(Classifier.load(args.model, engine="litert"), args.cache)
    photos: list[Photo] = bench.photos
    truth = {kinds_table.key(p): p.truth for p in photos}

    tops, cap_x, cap_open, cap_group = cap_views(args.caps, args.cache)

    shipped_top = gate_looked_again(bench.p_top_shipped)

    def with_cap(folds: dict[str, LinearCap], p_top: np.ndarray, temperature: float, groups) -> dict:
        out = {}
        for g in groups:
            by_span = {s: sigmoid(folds[g].logits(bench.arrays[f"cap{s}"]) / temperature) for s in SPANS}
            out.update(bench.answers(p_top, cap_looked_again(by_span, p_top), [g]))
        return out

    def temperature_of(folds, p_top) -> float:
        """The photo temperature, cross-fitted: each group answered by the fold that never saw it."""
        return best_temperature(lambda t: with_cap(folds, p_top, t, GROUPS), truth)

    def cap_rows(title: str, trained_on, pairs: tuple | None = None) -> None:
        folds = left_out_caps((cap_x, cap_open, cap_group), trained_on, GROUPS, pairs)
        temperature = temperature_of(folds, shipped_top)
        results[title.format(T=f"{temperature:.2f}")] = kinds_table.table(
            photos, with_cap(folds, shipped_top, temperature, GROUPS)
        )

    def gate_row(title: str, p_top: np.ndarray) -> None:
        results[title] = kinds_table.table(photos, bench.answers(p_top, cap_looked_again(bench.p_open_shipped, p_top)))

    real_gate = left_out_real_gate(bench, args.cache, 0)

    results: dict[str, dict] = {}
    shipped_open = cap_looked_again(bench.p_open_shipped, shipped_top)
    results["3.2.0 as shipped (in-distribution on the five older sources)"] = kinds_table.table(
        photos, bench.answers(shipped_top, shipped_open)
    )
    cap_rows("cap: 3.2.0 recipe, each group left out (T {T})", OLDER_GROUPS)
    cap_rows("cap: model 4 recipe, each group left out (T {T})", GROUPS)
    gate_row("gate: real gate, each group left out; 3.2.0's cap", real_gate)
    gate_row(
        "gate: larger of the real gate and 3.2.0's, each group left out; 3.2.0's cap",
        np.maximum(real_gate, shipped_top),
    )
    if args.variants:  # session 16's rows: the rescuing gate, and the cap with counterfactual tops
        for seed, gate_draw in ((0, real_gate), (1, left_out_real_gate(bench, args.cache, 1))):
            for sure in (0.9, 0.95):
                gate_row(
                    f"gate: 3.2.0's, rescued where the real gate is sure ({sure}, views seed {seed}); 3.2.0's cap",
                    rescued(shipped_top, gate_draw, sure),
                )
        pairs = counterfactual_features(args.cache, tops)
        cap_rows("cap: 3.2.0 recipe + counterfactual tops of every group (T {T})", OLDER_GROUPS, pairs)
        cap_rows("cap: model 4 recipe + counterfactual tops of every group (T {T})", GROUPS, pairs)
    for name, table in results.items():
        print(f"\n### {name}\n\n{kinds_table.markdown(table)}")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")


def counterfactual_features(cache: Path, tops: list) -> tuple:
    """The counterfactual tops' cap features (6 views each, cached), labels, target and donor groups."""
    real = [c for c in tops if c.group != "caps-render"]
    pairs = counterfactual_tops(real, cache / "counterfactual")
    # The composites depend on the real tops' places and labels (who donates to whom): so does the key.
    pair_file = cache / f"counterfactual-v6-{marks_digest(real)}-n{len(pairs)}.npz"
    if not pair_file.exists():
        view = functools.partial(judge_view, low_res_share=0.0, hue_share=0.0)
        x, _ = compute_judge_features([c for c, _ in pairs], 6, 1, True, print, cap_features_model(), view)
        np.savez(pair_file, x=x)
    x = np.load(pair_file)["x"]
    views = len(x) // len(pairs)
    return (
        x,
        np.repeat([c.label == "open" for c, _ in pairs], views).astype(int),
        np.repeat([c.group for c, _ in pairs], views),
        np.repeat([d for _, d in pairs], views),
    )


if __name__ == "__main__":
    main()
