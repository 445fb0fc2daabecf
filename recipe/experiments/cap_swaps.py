"""3.6.0's whole rule, each group left out, with its cap swapped for another reading of the same tops.

    python -m recipe.experiments.cap_swaps --caps R/caps --cache R/m4 --model M320 [--report W/cap-swaps.json]

3.6.0's left-out table refits its gates without each group but keeps 3.2.0's cap, which learned
the five older groups: on them its figures are in-distribution, on the six newer ones (all the
PET) they are fair. Sessions 15 and 21-22 measured other caps under 3.2.0's or 3.4.0's rule; this
measures them under the rule that ships (the rescue gate, the last look, the look under the
finder's floor: ``last_look --floor 0.05 --floor-tops 2``, gates on two draws of their views):

* ``shipped cap``: 3.2.0's, as 3.6.0 serves it (the recorded left-out rows);
* ``recipe cap, left out``: 3.2.0's recipe refitted without the group it answers (the fair
  baseline on the older groups: ``probe_model4``'s folds);
* ``every group, left out``: the same with every other group's marked tops added;
* blends of the two, and of the shipped cap with every group's (logits mixed);
* ``2.2.0's reading``: model 2.2.0's open-versus-closed from its linear layer on the 1x1 head,
  which 3.x's judge still carries for the gate, mixed into the first span's p(open | top). It
  costs nothing at run time, and 2.2.0 read the held-out PET better than 3.2.0 (issue 36): its
  renders-only reading is as fair as 3.2.0's on the newer groups.

A minute or two from the caches of ``probe_model4`` and ``last_look --floor 0.05``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bottlecheck.evaluation.metrics import logit
from bottlecheck.tfquiet import import_tensorflow

from .. import kinds_table
from ..probe_model4 import SPANS, cap_looked_again, cap_views, left_out_caps, left_out_logits, sigmoid
from ..real_photos import GROUPS, OLDER_GROUPS
from ..train_rescue_gate import VIEWS, gate_crops, gate_features
from .last_look import before_the_floor, floor_bench, rule_made

#: 2.2.0's judge temperature, which 3.x's gate keeps.
TEMPERATURE_2_2_0 = 0.8675
SHARES = (0.25, 0.5)


def readings(bench, cap_x, cap_open, cap_group, judge_head: tuple[np.ndarray, np.ndarray]) -> dict[str, dict]:
    """Each cap's p(open | top) at each span for every bench candidate, by name."""
    views = (cap_x, cap_open, cap_group)
    fair = left_out_logits(bench, left_out_caps(views, OLDER_GROUPS, GROUPS))
    every = left_out_logits(bench, left_out_caps(views, GROUPS, GROUPS))
    shipped = {s: logit(bench.p_open_shipped[s]) for s in SPANS}
    kernel, bias = judge_head
    z = bench.arrays["head"] @ kernel + bias  # closed, open, none
    old = (z[:, 1] - z[:, 0]) / TEMPERATURE_2_2_0
    out = {
        "shipped cap": shipped,
        "recipe cap, left out (fair)": fair,
        "every group, left out": every,
    }
    for w in SHARES:
        out[f"fair blend, every group's share {w}"] = {s: (1 - w) * fair[s] + w * every[s] for s in SPANS}
        out[f"shipped blend, every group's share {w}"] = {s: (1 - w) * shipped[s] + w * every[s] for s in SPANS}
    for w in (*SHARES, 1.0):
        out[f"2.2.0's reading, share {w}"] = {**shipped, SPANS[0]: (1 - w) * shipped[SPANS[0]] + w * old}
    return {name: {s: sigmoid(v) for s, v in by_span.items()} for name, by_span in out.items()}


def newer_only(photos: list, answers: dict) -> dict:
    """The six groups 3.2.0's cap never saw: their mean, glass, PET and kinds (every cap here is fair on them)."""
    newer = [p for p in photos if p.group not in OLDER_GROUPS]
    pet = [p for p in newer if any(k in ("bare PET necks", "PET caps") for k in p.kinds)]
    score = kinds_table.score
    groups = {g: score([p for p in newer if p.group == g], answers) for g in GROUPS if g not in OLDER_GROUPS}
    return {
        "mean_over_groups": round(float(np.mean([v["balanced_accuracy"] for v in groups.values()])), 3),
        "glass": score([p for p in newer if p.truth != "none" and p not in pet], answers),
        "pet": score(pet, answers),
        "kinds": {k: score(mine, answers) for k in kinds_table.KINDS if (mine := [p for p in newer if k in p.kinds])},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, action="append", required=True, help="render_caps.py output (training)")
    parser.add_argument("--cache", type=Path, required=True, help="recipe.probe_model4's cache")
    parser.add_argument("--model", type=Path, required=True, help="model 3.2.0 (its finder, gate and cap)")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    tf = import_tensorflow()

    below = floor_bench(args.model, args.cache, 0.05)
    bench = below[0]
    judge = tf.keras.models.load_model(args.model / "judge.keras", compile=False)
    _, cap_x, cap_open, cap_group = cap_views(args.caps, args.cache)
    caps = readings(bench, cap_x, cap_open, cap_group, tuple(judge.get_layer("judge_head").get_weights()))
    crops = gate_crops()
    unchecked, relabelled, added = rule_made(crops)
    group = np.repeat([c.group for c in crops], VIEWS)

    results: dict[str, dict] = {}
    for seed in (0, 1):
        x, is_top = gate_features(crops, args.cache, seed)
        as_trained = np.where(np.repeat(relabelled, VIEWS), 0, is_top)
        p350, still, last, rescue = before_the_floor(below, crops, group, x, is_top, as_trained, unchecked, added, 2)
        p_top = np.where(still & (last >= 0.95) & (rescue >= 0.8), last, p350)  # 3.6.0's bars
        for name, by_span in caps.items():
            answers = bench.answers(p_top, cap_looked_again(by_span, p_top))
            table = kinds_table.table(bench.photos, answers)
            results[f"{name} (seed {seed})"] = {**table, "newer": newer_only(bench.photos, answers)}

    kinds = list(kinds_table.KINDS)
    print("| cap | mean | glass | PET | newer: mean | newer: glass | " + " | ".join(GROUPS + tuple(kinds)) + " | ECE |")
    print("| --- |" + " ---: |" * (len(GROUPS) + len(kinds) + 6))
    for name, t in results.items():
        cells = [t["mean_over_groups"], t["glass"]["balanced_accuracy"], t["pet"]["balanced_accuracy"]]
        cells += [t["newer"]["mean_over_groups"], t["newer"]["glass"]["balanced_accuracy"]]
        cells += [t["groups"][g]["balanced_accuracy"] for g in GROUPS]
        cells += [t["kinds"][k]["balanced_accuracy"] if k in t["kinds"] else "" for k in kinds]
        print(f"| {name} | {' | '.join(str(c) for c in cells)} | {t['all_answered_ece']} |")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
