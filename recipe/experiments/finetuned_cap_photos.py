"""Does a cap whose backbone was fine-tuned on every other group answer the left-out group's photos better?

    python -m recipe.experiments.finetune_cap --all-groups --save W/nets --leave-out G ... (one fold a group)
    python -m recipe.experiments.finetuned_cap_photos --cache R/m4 --model M320 --nets W/nets [--caps R/caps]

``finetune_cap --all-groups`` scores each fold on its left-out group's marked tops, crop by crop.
A photo's answer also depends on which candidates count and on the cap's second look, so this
answers the photos themselves: every candidate of a left-out group's photos is cut at the three
spans and read by that group's fine-tuned network, in the product's rule as ``recipe.probe_model4``
replays it (3.2.0's gate with its look, the rescue gate left out as in 3.3.0's draw 1, the cap's
second look, a photo temperature fitted on the left-out answers). Beside it, the same photos with
3.2.0's cap (3.4.0's answers less its calibration), which trained on the five older groups, and
with ``--caps`` the fair figure for those: 3.2.0's recipe (a linear cap on the renders and the
older groups' tops) refitted without the group it answers, as ``probe_model4``'s second row. Only
the groups with a saved network are scored; their kinds are the kinds of those groups' photos.

``--blend W`` (session 22) adds the recipe's and the fine-tuned cap's logits weighed (1 - W) and W,
and the surer of the two (the larger logit in size): the fine-tuned cap where it is surer, the
recipe's open glass kept where it is not.

The gate is read from the frozen backbone as shipped: a fine-tuned backbone for the cap alone is
a second backbone in the judge, which this measures but does not build.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.tfquiet import import_tensorflow

from .. import kinds_table
from ..probe_model4 import (
    SPANS,
    Bench,
    best_temperature,
    cap_looked_again,
    cap_of,
    cap_views,
    gate_looked_again,
    left_out_caps,
    left_out_logits,
    left_out_real_gate,
    rescued,
    sigmoid,
)
from ..real_photos import GROUPS, KINDS, OLDER_GROUPS
from .finetune_cap import cap_network


def candidate_crops(base: Classifier, bench: Bench, group: str):
    """Each of ``group``'s photos with candidates: their crops at each span (float32), in the bench's order."""
    for photo, count in zip(bench.photos, bench.counts, strict=True):
        if photo.group != group or not count:
            continue
        prepared = base.preprocess(str(photo.path))
        placed = base.find_tops(prepared)  # type: ignore[attr-defined]
        assert len(placed) == count, f"{photo.path}: the finder's candidates differ from the bench's"
        yield [
            np.stack([base.crop(prepared, x, y, s, span) for x, y, s, _ in placed]).astype(np.float32)  # type: ignore[attr-defined]
            for span in SPANS
        ]


def summary(photos: list, groups: list[str], given: dict, temperature: float) -> dict:
    """``given``'s scores on ``groups``' photos: per group and kind, their mean over groups and ECE."""
    mine = [p for p in photos if p.group in groups]
    by_group = {g: kinds_table.score([p for p in mine if p.group == g], given) for g in groups}
    by_kind = {k: kinds_table.score([p for p in mine if k in p.kinds], given) for k in KINDS}
    return {
        "temperature": round(temperature, 2),
        "groups": by_group,
        "kinds": {k: v for k, v in by_kind.items() if v["photos"]},
        "mean_over_groups": round(float(np.mean([v["balanced_accuracy"] for v in by_group.values()])), 3),
        "all_answered_ece": kinds_table.score([p for p in mine if p.truth != "none"], given).get("ece"),
    }


def fold_logits(base: Classifier, bench: Bench, group: str, weights: Path, cache: Path) -> np.ndarray:
    """The fine-tuned cap's logit of each of ``group``'s candidates at each span (rows as the bench's), cached."""
    file = cache / f"{weights.name}.logits.npy"
    if file.exists() and file.stat().st_mtime > weights.stat().st_mtime:
        return np.load(file)
    model, _ = cap_network(0)
    model.load_weights(weights)
    out = [
        np.stack([model.predict(c, verbose=0)[:, 0] for c in crops], axis=1)
        for crops in candidate_crops(base, bench, group)
    ]
    logits = np.concatenate(out)
    np.save(file, logits)
    return logits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="recipe.probe_model4's cache")
    parser.add_argument("--model", type=Path, required=True, help="model 3.2.0 (the finder, gate and cap 3.4.0 keeps)")
    parser.add_argument("--nets", type=Path, required=True, help="finetune_cap --save's folder")
    parser.add_argument("--caps", type=Path, action="append", help="render_caps.py output: adds 3.2.0's recipe")
    parser.add_argument(
        "--blend", type=float, action="append", help="with --caps: the logits (1 - W) recipe's + W fine-tuned"
    )
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    import_tensorflow()

    base = Classifier.load(args.model, engine="litert")
    bench = Bench(base, args.cache)
    photos = bench.photos
    truth = {kinds_table.key(p): p.truth for p in photos}
    done = [g for g in GROUPS if (args.nets / f"{g}.weights.h5").exists()]
    print("groups with a fine-tuned fold:", ", ".join(done), flush=True)

    shipped = cap_of(args.model)
    logits = {s: shipped.logits(bench.arrays[f"cap{s}"]) for s in SPANS}
    tuned = {s: np.full(len(bench.group), np.nan) for s in SPANS}
    for g in done:
        rows = bench.group == g
        by_span = fold_logits(base, bench, g, args.nets / f"{g}.weights.h5", args.nets)
        for i, s in enumerate(SPANS):
            tuned[s][rows] = by_span[:, i]

    p_top = rescued(gate_looked_again(bench.p_top_shipped), left_out_real_gate(bench, args.cache), 0.95)

    def answers(cap_logits: dict, t: float) -> dict:
        by_span = {s: sigmoid(cap_logits[s] / t) for s in SPANS}
        return bench.answers(p_top, cap_looked_again(by_span, p_top), done)

    columns = [("3.2.0's cap (shipped)", logits)]
    if args.caps:  # probe_model4's cached views of the marked tops and renders (12 a top)
        recipe = left_out_logits(bench, left_out_caps(cap_views(args.caps, args.cache)[1:], OLDER_GROUPS, done))
        columns.append(("3.2.0's recipe, its group left out", recipe))
    columns.append(("fine-tuned cap, its group left out", tuned))
    if args.caps and args.blend:
        for w in args.blend:
            columns.append((f"blend {w}", {s: (1 - w) * recipe[s] + w * tuned[s] for s in SPANS}))
        surer = {s: np.where(np.abs(tuned[s]) > np.abs(recipe[s]), tuned[s], recipe[s]) for s in SPANS}
        columns.append(("surer of the two", surer))

    results = {}
    for name, cap_logits in columns:
        t = best_temperature(lambda t, c=cap_logits: answers(c, t), truth)
        results[name] = summary(photos, done, answers(cap_logits, t), t)
    names = list(results)
    print(f"\n| left out, balanced | {' | '.join(names)} |\n| --- |{' ---: |' * len(names)}")
    for label, pick in [
        *((g, lambda r, g=g: r["groups"][g]["balanced_accuracy"]) for g in done),
        *((k, lambda r, k=k: r["kinds"][k]["balanced_accuracy"]) for k in results[names[0]]["kinds"]),
        ("mean over these groups", lambda r: r["mean_over_groups"]),
        ("ECE, answered photos", lambda r: r["all_answered_ece"]),
        ("photo temperature", lambda r: r["temperature"]),
    ]:
        print(f"| {label} | {' | '.join(str(pick(results[n])) for n in names)} |")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
