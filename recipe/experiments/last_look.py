"""A last look in the photos 3.4.0 leaves unknown, by a gate that never learned the unchecked not-tops.

    python -m recipe.experiments.last_look --cache R/m4 --model M320 [--report W/last-look.json]

Of the 3,771 marks the rescue gate learns from, 2,085 are nones made by rule and never looked
at: a candidate 3.2.0's gate turned down, on no source box (``recipe/mark_real_tops.py``). They
teach the rescue gate to refuse what 3.2.0's render-trained gate refused. Session 23 looked at
the 416 of them in the photos 3.4.0 answers ``unknown``: 38 were tops (bare PET necks, caps
seen side-on), now marked (``annotations/real-sources-nones-review.json``); the rest are
crumpled PET, labels and ground. A gate fitted on the real tops against the *checked*
not-tops only (the by-eye ones) knows real tops better, but alone answers close-ups with no
top in frame and white and silver crowns read open (``model/HISTORY.md``).

So it gets only the last word, where nothing else has spoken: in a photo where no candidate
counts after 3.4.0's rule (its gate, its second looks, its rescue gate), a candidate counts
when this gate is at least ``sure`` of a top and 3.4.0's rescue gate at least ``guard``. Every
photo 3.4.0 answers is answered as before, so no kind can fall except "no top in frame"
(an ``unknown`` that is right); the question is how many of the unknown photos it answers,
and how well.

The marks made after 3.4.0's rescue gate was learned (:data:`AFTER_3_4_0`: 22 tops on candidates
nobody had marked, in the photos the first version of this rule still left ``unknown``) teach
only the last look; 3.4.0's replay leaves them out. Both gates are fitted with each repository
group left out, on two draws of the views (seeds 0
and 1), and the photos answered as ``TopsClassifier`` would (the probe's replay; the 3.4.0 rows
equal ``probe_model4 --variants``' rescue rows at 0.95). Seconds, from the probe's cache.

``--floor F`` (3.6.0, session 24) also looks below the finder's floor: in a photo where nothing
counts after 3.5.0's rule, the finder's candidates scored from F up to its floor (0.2) get the
last look too, at each setting (``TopsClassifier.look_below_floor``); ``--floor-tops K`` only
the strongest K of them a photo (each costs a judge pass). Their candidates come from
a copy of the model whose finder keeps them (its own bench, in ``CACHE/floor-F``), 7 minutes on
2 cores the first time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.tfquiet import import_tensorflow

from .. import kinds_table
from ..boxes_table import UNCHECKED
from ..probe_model4 import Bench, cap_looked_again, gate_looked_again, rescued, sigmoid
from ..real_photos import DATA, GROUPS
from ..train_rescue_gate import SURE, VIEWS, fit_rescue_gate, gate_crops, gate_features

#: (sure, guard) pairs measured: the last-look gate's bar and 3.4.0's rescue gate's.
SETTINGS = ((0.9, 0.8), (0.95, 0.5), (0.95, 0.8), (0.95, 0.9), (0.98, 0.8))
#: 3.4.0's rescue gate alone, with a lower bar where nothing counts (no second gate).
LOWER_BARS = (0.8, 0.9)


#: Annotation files written after 3.4.0's rescue gate was learned: the replay of 3.4.0 leaves their marks out.
AFTER_3_4_0 = ("real-sources-unknown-tops.json",)


def rule_made(crops: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which gate crops are unchecked rule-made nones, which nones the review made tops, and which came after 3.4.0.

    3.4.0's rescue gate learned the second as nones and never saw the third (:data:`AFTER_3_4_0`).
    """
    folder = Path(__file__).resolve().parents[1] / "annotations"
    root = (DATA / "real-sources").resolve()
    unchecked, relabelled, added = set(), set(), set()
    for name in ("real-sources-more-tops.json", *AFTER_3_4_0):
        for rel, marks in json.loads((folder / name).read_text())["images"].items():
            for m in marks:
                place = (str((root / rel).resolve()), round(m["x"], 1), round(m["y"], 1))
                if name in AFTER_3_4_0:
                    added.add(place)
                elif m["label"] == "none" and m.get("how") == UNCHECKED:
                    unchecked.add(place)
                elif m["label"] != "none" and m.get("how", "").startswith(f"{UNCHECKED}; by eye: "):
                    relabelled.add(place)
    places = [(str(Path(c.path).resolve()), round(c.x, 1), round(c.y, 1)) for c in crops]
    return tuple(np.array([p in marked for p in places]) for marked in (unchecked, relabelled, added))  # type: ignore[return-value]


def left_out_gate(bench: Bench, crops, group, x, is_top, keep) -> np.ndarray:
    """Each bench candidate's p(top) from a gate fitted on the marked crops kept, its own group left out."""
    p_top = np.zeros(len(bench.group))
    for g in GROUPS:
        gate = fit_rescue_gate(crops, x, is_top, keep & (group != g))
        rows = bench.group == g
        p_top[rows] = sigmoid(gate.logits(bench.arrays["head"][rows]))
    return p_top


def floor_bench(model: Path, cache: Path, floor: float) -> tuple[Bench, np.ndarray, float, float]:
    """The probe's bench of ``model`` with its finder's floor lowered to ``floor``; each candidate's finder score.

    Returns the bench, the scores (in its candidates' order), the floor and the model's own floor.
    """
    folder = cache / f"floor-{floor:g}"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as copy:
        for item in model.iterdir():
            shutil.copy2(item, copy)
        meta = json.loads((Path(copy) / "metadata.json").read_text())
        own = float(meta["stages"]["finder"]["min_score"])
        meta["stages"]["finder"]["min_score"] = floor
        (Path(copy) / "metadata.json").write_text(json.dumps(meta))
        lowered = Classifier.load(copy, engine="litert")
        bench = Bench(lowered, folder)
        scores_file = folder / f"scores-{bench.digest}.npy"
        if not scores_file.exists():
            scores = [s for p in bench.photos for *_, s in lowered.find_tops(lowered.preprocess(str(p.path)))]  # type: ignore[attr-defined]
            np.save(scores_file, np.array(scores))
    scores = np.load(scores_file)
    if len(scores) != len(bench.group):
        raise SystemExit(f"{scores_file}: {len(scores)} scores for {len(bench.group)} candidates")
    return bench, scores, floor, own


def before_the_floor(
    below, crops, group, x, is_top, as_trained, unchecked, added, tops: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """3.5.0's rule on the lowered bench's candidates above the model's floor, gates fitted with each group left out.

    Returns each candidate's p(top) after it, which candidates under the floor the last look may
    still see (in a photo where nothing counts; with ``tops``, only the strongest so many a photo),
    and the last-look and rescue gates' p(top).
    """
    bench, scores, floor, own = below
    above = scores >= own
    photo_of = np.repeat(np.arange(len(bench.starts)), bench.counts)
    rank = np.zeros(len(scores), dtype=int)  # each candidate's place among its photo's under the floor
    for start, count in zip(bench.starts, bench.counts, strict=True):
        under = np.flatnonzero(~above[start : start + count]) + start
        rank[under] = np.arange(len(under))

    def nothing(p_top: np.ndarray) -> np.ndarray:
        return np.bincount(photo_of, weights=p_top >= 0.5, minlength=len(bench.starts))[photo_of] == 0

    rescue = left_out_gate(bench, crops, group, x, as_trained, ~np.repeat(added, VIEWS))
    last = left_out_gate(bench, crops, group, x, is_top, ~np.repeat(unchecked, VIEWS))
    shipped = np.where(above, rescued(gate_looked_again(bench.p_top_shipped), rescue, SURE), 0.0)
    p350 = np.where(nothing(shipped) & above & (last >= 0.95) & (rescue >= 0.8), last, shipped)
    still = nothing(p350) & ~above & (scores >= floor) & (rank < (tops or len(scores)))
    return p350, still, last, rescue


def floor_rows(
    below, crops, group, x, is_top, as_trained, unchecked, added, seed: int, tops: int | None = None
) -> dict[str, dict]:
    """3.5.0's rule on the lowered bench's candidates above the model's floor, then the last look below it.

    With ``tops``, only the strongest so many of a photo's candidates under the floor are looked at.
    """
    bench, _, floor, _ = below
    p350, still, last, rescue = before_the_floor(below, crops, group, x, is_top, as_trained, unchecked, added, tops)
    out = {}
    for sure, guard in SETTINGS:
        looked = still & (last >= sure) & (rescue >= guard)
        p_top = np.where(looked, last, p350)
        answers = bench.answers(p_top, cap_looked_again(bench.p_open_shipped, p_top))
        name = f"last look {sure}, guard {guard}, floor {floor:g}{f', {tops} tops' if tops else ''} (seed {seed})"
        out[name] = kinds_table.table(bench.photos, answers)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="recipe.probe_model4's cache")
    parser.add_argument("--model", type=Path, required=True, help="model 3.2.0 (its finder, gate and cap)")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--floor", type=float, help="also the last look at the finder's candidates down to this score")
    parser.add_argument("--floor-tops", type=int, help="at most this many of them a photo, the strongest (default all)")
    args = parser.parse_args(argv)
    import_tensorflow()

    model = Classifier.load(args.model, engine="litert")
    bench = Bench(model, args.cache)
    below = floor_bench(args.model, args.cache, args.floor) if args.floor is not None else None
    crops = gate_crops()
    unchecked, relabelled, added = rule_made(crops)
    group = np.repeat([c.group for c in crops], VIEWS)
    first_gate = gate_looked_again(bench.p_top_shipped)
    photo_of = np.repeat(np.arange(len(bench.starts)), bench.counts)

    def left_out(x: np.ndarray, is_top: np.ndarray, keep: np.ndarray) -> np.ndarray:
        return left_out_gate(bench, crops, group, x, is_top, keep)

    def table(p_top: np.ndarray) -> dict:
        return kinds_table.table(bench.photos, bench.answers(p_top, cap_looked_again(bench.p_open_shipped, p_top)))

    results: dict[str, dict] = {}
    for seed in (0, 1):
        x, is_top = gate_features(crops, args.cache, seed)
        # 3.4.0's rescue gate as it was learned: the reviewed tops as nones, the later marks unseen
        as_trained = np.where(np.repeat(relabelled, VIEWS), 0, is_top)
        rescue = left_out(x, as_trained, ~np.repeat(added, VIEWS))
        last = left_out(x, is_top, ~np.repeat(unchecked, VIEWS))
        shipped = rescued(first_gate, rescue, SURE)
        nothing_counts = np.bincount(photo_of, weights=shipped >= 0.5, minlength=len(bench.starts))[photo_of] == 0
        results[f"3.4.0 (seed {seed})"] = table(shipped)
        for bar in LOWER_BARS:
            looked = nothing_counts & (rescue >= bar)
            results[f"3.4.0's rescue gate at {bar} where nothing counts (seed {seed})"] = table(
                np.where(looked, rescue, shipped)
            )
        for sure, guard in SETTINGS:
            looked = nothing_counts & (last >= sure) & (rescue >= guard)
            results[f"last look {sure}, guard {guard} (seed {seed})"] = table(np.where(looked, last, shipped))
        if below is not None:
            rows = floor_rows(below, crops, group, x, is_top, as_trained, unchecked, added, seed, args.floor_tops)
            results.update(rows)

    print(
        f"{unchecked.sum()} unchecked rule-made nones of {len(crops)} marks; {relabelled.sum()} made tops by eye; "
        f"{added.sum()} marked after 3.4.0"
    )
    kinds = list(results["3.4.0 (seed 0)"]["kinds"])
    print(f"\n| rule | mean | glass | PET | {' | '.join(kinds)} | unknown | ECE | below 3.4.0 |")
    print(f"| --- |{' ---: |' * (len(kinds) + 5)} --- |")
    for name, t in results.items():
        base = results[f"3.4.0 (seed {name[-2]})"]
        below = [
            f"{k} {base[part][k]['balanced_accuracy']} -> {t[part][k]['balanced_accuracy']}"
            for part in ("kinds", "groups")
            for k in base[part]
            if t[part][k]["balanced_accuracy"] < base[part][k]["balanced_accuracy"]
        ]
        unknown = sum(row["unknown"] for row in t["groups"].values())
        cells = [t["mean_over_groups"], t["glass"]["balanced_accuracy"], t["pet"]["balanced_accuracy"]]
        cells += [t["kinds"][k]["balanced_accuracy"] for k in kinds] + [unknown, t["all_answered_ece"]]
        print(f"| {name} | {' | '.join(str(c) for c in cells)} | {'; '.join(below) or 'none'} |")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
