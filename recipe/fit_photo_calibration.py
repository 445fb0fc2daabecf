"""Fit the temperature that makes the photo's p_open honest on real sources, each group left out.

    bottlecheck classify ../shared/data/real-sources ../shared/data/real -f jsonl -o A.jsonl
    python -m recipe.fit_photo_calibration A.jsonl [--write MODEL_DIR] [--json OUT.json]

The cap's own temperature was fitted on crops of the five older real sources, and on them the
model is, if anything, too modest (3.3.0: 94% of the answered photos right at a mean confidence
of 0.83). On the six newer groups, which the cap never saw, it is right on 62% at a mean
confidence of 0.75: too sure, as on the held-out set (3.2.0's ECE 0.127 there). Pooling the two
hides both (ECE 0.072 over all answered photos). A user's photos are a source the cap never saw,
so the temperature is fitted on those groups (``--cap-trained-on`` names the others) and applied
to each counted top's p(open | top) after the looks. It is monotone and leaves 0.5 where it is:
every status, every second look and every top's order stay as they were, only the confidence
moves (``TopsClassifier``; metadata ``stages.judge.photo_calibration``).

The photo's p_open is its most open counted top's (open) or its least sure one's (closed), and a
monotone map commutes with both choices, so tempering the answers ``classify`` wrote is tempering
the tops: the fit needs no model run. The temperature minimises the log loss over the answered
photos with a top. How far it carries to a source nobody fitted it on: each unseen group is also
answered with a temperature fitted on the other unseen groups (``ece_left_out``, the figure the
model card quotes). What it costs where the cap was trained is reported too (``ece_trained_on``).
``--write`` records the temperature and those figures in ``MODEL_DIR/metadata.json``. Fit it on
the answers of a model without a photo calibration: ``--write`` refuses a model that has one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bottlecheck.artifact import METADATA_FILE, write_metadata
from bottlecheck.evaluation import metrics
from bottlecheck.evaluation.metrics import expected_calibration_error, log_loss, logit, tempered

from .kinds_table import key, read_answers
from .real_photos import GROUPS, OLDER_GROUPS, Photo, labelled_photos


def answered(photos: list[Photo], answers: dict[str, dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is open, p_open, group) of each photo with a top that was answered open or closed."""
    rows = [
        (p.truth == "open", answers[key(p)]["p_open"], p.group)
        for p in photos
        if p.truth != "none" and answers[key(p)]["status"] in ("open", "closed")
    ]
    return (
        np.array([r[0] for r in rows], dtype=int),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows]),
    )


def fit_temperature(is_open: np.ndarray, p_open: np.ndarray) -> float:
    """The one fitter (``bottlecheck.evaluation.metrics.fit_temperature``) on the answers' logits."""
    return metrics.fit_temperature(is_open, logit(p_open))


def calibration(photos: list[Photo], answers: dict[str, dict], cap_trained_on: tuple[str, ...]) -> dict:
    """The temperature fitted on the groups the cap never saw, each of them fitted without it, and the ECEs."""
    is_open, p_open, group = answered(photos, answers)
    unseen = ~np.isin(group, cap_trained_on)
    left_out = p_open.copy()
    per_group = {}
    for g in GROUPS:
        mine = group == g
        if not mine.any():
            continue
        row = {
            "photos": int(mine.sum()),
            "ece_before": round(expected_calibration_error(is_open[mine], p_open[mine]), 3),
        }
        if g not in cap_trained_on:
            fit = unseen & ~mine
            t = fit_temperature(is_open[fit], p_open[fit])
            left_out[mine] = tempered(p_open[mine], t)
            row["temperature_without_it"] = round(t, 3)
            row["ece_left_out"] = round(expected_calibration_error(is_open[mine], left_out[mine]), 3)
        per_group[g] = row
    temperature = fit_temperature(is_open[unseen], p_open[unseen])
    for g, row in per_group.items():
        if g in cap_trained_on:
            mine = group == g
            row["ece_after"] = round(expected_calibration_error(is_open[mine], tempered(p_open[mine], temperature)), 3)

    def ece(where: np.ndarray, p: np.ndarray) -> float:
        return round(expected_calibration_error(is_open[where], p[where]), 3)

    trained_on = ~unseen
    return {
        "temperature": round(temperature, 3),
        "fitted_on_groups": [g for g in GROUPS if g not in cap_trained_on],
        "answered_photos": int(unseen.sum()),
        "ece_before": ece(unseen, p_open),
        "ece_left_out": ece(unseen, left_out),
        "ece_fitted": ece(unseen, tempered(p_open, temperature)),
        "log_loss_before": round(log_loss(is_open[unseen], p_open[unseen]), 4),
        "log_loss_left_out": round(log_loss(is_open[unseen], left_out[unseen]), 4),
        "ece_trained_on": {
            "groups": list(cap_trained_on),
            "answered_photos": int(trained_on.sum()),
            "before": ece(trained_on, p_open),
            "after": ece(trained_on, tempered(p_open, temperature)),
        },
        "ece_all_groups": {
            "before": ece(unseen | trained_on, p_open),
            "after": ece(unseen | trained_on, tempered(p_open, temperature)),
        },
        "groups": per_group,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("answers", type=Path, help="bottlecheck classify -f jsonl output on the shared real photos")
    parser.add_argument(
        "--cap-trained-on",
        nargs="*",
        default=list(OLDER_GROUPS),
        metavar="GROUP",
        help="groups the model's cap was trained on (default: 3.x's five); the others fit the temperature",
    )
    parser.add_argument("--write", type=Path, metavar="MODEL_DIR", help="record the temperature in its metadata")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    result = calibration(labelled_photos(), read_answers(args.answers), tuple(args.cap_trained_on))
    inside = result["ece_trained_on"]
    print(
        f"temperature {result['temperature']}, fitted on {result['answered_photos']} answered photos of the groups "
        f"the cap never saw; their ECE {result['ece_before']} -> {result['ece_left_out']} (each group's temperature "
        f"fitted without it), {result['ece_fitted']} (fitted on all of them); the {inside['answered_photos']} "
        f"photos of the groups it was trained on {inside['before']} -> {inside['after']}"
    )
    for g, row in result["groups"].items():
        after = row.get("ece_left_out", row.get("ece_after"))
        how = f"T {row['temperature_without_it']} without it" if "temperature_without_it" in row else "trained on"
        print(f"  {g:<20} {row['photos']:>4} photos  ECE {row['ece_before']} -> {after}  ({how})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.write:
        path = args.write / METADATA_FILE
        metadata = json.loads(path.read_text())
        judge = metadata["stages"]["judge"]
        if "photo_calibration" in judge:
            sys.exit(f"{path} already has a photo calibration: fit on a model's untempered answers")
        judge["photo_calibration"] = {
            "temperature": result["temperature"],
            "rule": "each counted top's p(open | top), after the looks, becomes sigmoid(logit(p) / temperature): "
            "statuses, looks and order unchanged, only the confidence",
            "fitted_on": f"{result['answered_photos']} answered real photos with a top of the groups the cap never "
            f"saw ({', '.join(result['fitted_on_groups'])}); recipe/fit_photo_calibration.py on bottlecheck "
            "classify's answers",
            "ece_answered_photos": {
                "unseen_groups_before": result["ece_before"],
                "unseen_groups_each_left_out": result["ece_left_out"],
                "groups_the_cap_trained_on_before": inside["before"],
                "groups_the_cap_trained_on_after": inside["after"],
            },
        }
        write_metadata(args.write, metadata)
        print(f"wrote stages.judge.photo_calibration into {path}")


if __name__ == "__main__":
    main()
