"""Would another decision rule serve the shipped model better on real photos nobody trained it on?

    python -m recipe.experiments.decision_rules --out rules.json

Model 2's photo answer is a rule over its tops: a candidate counts when the judge thinks it is a
top (``1 - p(none) >= min_top_probability``); the photo is open when any counted top is open. On
check-in photos a lamp or a glass's rim passes the gate, is judged open and flips a closed photo
(model card, "What goes wrong on beer-checkins"). This script computes the shipped finder's
candidates and the shipped judge's probabilities once for every labelled real photo, then answers
each photo under a grid of rules:

* ``min_top``: the gate on ``1 - p(none)``;
* ``min_score``: a floor on the finder's score for a candidate to count;
* ``relative_side``: a counted top smaller than this share of the photo's largest counted top is
  dropped (the bottle in front decides, not a lamp behind it);
* ``vote``: ``any`` open top makes the photo open (the shipped rule), or the ``prominent`` top
  (largest score times chance of a top) decides alone.

The shipped judge never trained on the three ``real-sources`` folders, so a rule chosen on two of
them and measured on the third is a held-out figure: the table this writes is that
leave-one-source-out, beside the shipped rule's own figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.labels import CLOSED, OPEN, UNKNOWN

from ..photo_bench import photo_sets

SOURCES = ("beer-office", "beer-checkins", "street-restaurants")
#: Photos with no top in the frame (the finder's logos): a guard, never chosen on. The shipped
#: model trained on them, so its figure there is optimistic; a rule may not lower it.
NO_TOP_SET = "real/other (no top)"
GRID = {
    "min_top": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    "min_score": (0.2, 0.3, 0.4, 0.5, 0.6),
    "relative_side": (0.0, 0.4, 0.6, 0.8),
    "vote": ("any", "prominent"),
}
SHIPPED = {"min_top": 0.5, "min_score": 0.2, "relative_side": 0.0, "vote": "any"}


def labelled_photos() -> dict[str, list[tuple[str, str]]]:
    """(path, truth) per real source (train_judge.py's sets), and the brewery logos of ``real/other``
    (truth ``none``: no top in the frame, ``unknown`` is right)."""
    sets = photo_sets()
    return {NO_TOP_SET: [item for item in sets["product-poster"] if item[1] == "none"]} | {s: sets[s] for s in SOURCES}


def candidates(classifier, path: str) -> list[dict]:
    """The finder's candidates in ``path`` with the judge's view of each: side, score, p_top, p_open."""
    photo = classifier.preprocess(path)
    placed = classifier.find_tops(photo)
    if not placed:
        return []
    probabilities = classifier.judge_crops([classifier.crop(photo, x, y, side) for x, y, side, _ in placed])
    closed_i, open_i, none_i = (classifier.judge_labels.index(label) for label in (CLOSED, OPEN, "none"))
    found = []
    for (_x, _y, side, score), p in zip(placed, probabilities, strict=True):
        pair = max(float(p[open_i] + p[closed_i]), 1e-9)
        found.append({"side": side, "score": score, "p_top": 1.0 - float(p[none_i]), "p_open": float(p[open_i]) / pair})
    return found


def answer(tops: list[dict], rule: dict, threshold: float) -> str:
    """The photo's status under ``rule``."""
    counted = [t for t in tops if t["p_top"] >= rule["min_top"] and t["score"] >= rule["min_score"]]
    if counted and rule["relative_side"] > 0:
        largest = max(t["side"] for t in counted)
        counted = [t for t in counted if t["side"] >= rule["relative_side"] * largest]
    if not counted:
        return UNKNOWN
    if rule["vote"] == "prominent":
        best = max(counted, key=lambda t: t["score"] * t["p_top"])
        return OPEN if best["p_open"] >= threshold else CLOSED
    return OPEN if any(t["p_open"] >= threshold for t in counted) else CLOSED


def balanced(answers: list[tuple[str, str]]) -> float:
    """Mean recall over the labels present, ``unknown`` counted wrong (right for ``none``)."""
    recalls = []
    for label in (OPEN, CLOSED, "none"):
        mine = [status for truth, status in answers if truth == label]
        if mine:
            recalls.append(sum(status == (UNKNOWN if label == "none" else label) for status in mine) / len(mine))
    return float(np.mean(recalls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    classifier = Classifier.load(engine="litert")
    threshold = classifier.threshold
    photos = {
        source: [(truth, candidates(classifier, path)) for path, truth in items]
        for source, items in labelled_photos().items()
    }
    rules = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]

    def score(rule: dict, source: str) -> float:
        return balanced([(truth, answer(tops, rule, threshold)) for truth, tops in photos[source]])

    table = {source: {rule_key(rule): score(rule, source) for rule in rules} for source in (*SOURCES, NO_TOP_SET)}
    shipped = {source: round(table[source][rule_key(SHIPPED)], 3) for source in (*SOURCES, NO_TOP_SET)}
    guarded = [r for r in rules if table[NO_TOP_SET][rule_key(r)] >= table[NO_TOP_SET][rule_key(SHIPPED)]]
    left_out = {}
    for held in SOURCES:
        others = [s for s in SOURCES if s != held]
        chosen = max(guarded, key=lambda r: (np.mean([table[s][rule_key(r)] for s in others]), r == SHIPPED))
        left_out[held] = {
            "rule_chosen_on_the_others": chosen,
            "others_mean": round(float(np.mean([table[s][rule_key(chosen)] for s in others])), 3),
            "held_out": round(table[held][rule_key(chosen)], 3),
            "shipped_rule": shipped[held],
            "no_top_unknown": round(table[NO_TOP_SET][rule_key(chosen)], 3),
        }
    result = {
        "model": classifier.artifact.version,
        "photos": {source: len(items) for source, items in photos.items()},
        "shipped_rule": {
            "rule": SHIPPED,
            **shipped,
            "mean": round(float(np.mean([shipped[source] for source in SOURCES])), 3),
        },
        "leave_one_source_out": left_out,
        "held_out_mean": round(float(np.mean([v["held_out"] for v in left_out.values()])), 3),
        "rules_kept_by_the_guard": f"{len(guarded)} of {len(rules)}",
        "each_rule": {
            rule_key(rule): {source: round(table[source][rule_key(rule)], 3) for source in (*SOURCES, NO_TOP_SET)}
            for rule in rules
        },
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "each_rule"}, indent=1))


def rule_key(rule: dict) -> str:
    return json.dumps(rule, sort_keys=True)


if __name__ == "__main__":
    main()
