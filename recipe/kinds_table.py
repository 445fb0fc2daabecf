"""Score a model's answers on the shared real photos per group and per kind, the held-out set's way.

    bottlecheck classify ../shared/data/real-sources ../shared/data/real -f jsonl -o A.jsonl
    python -m recipe.kinds_table A.jsonl [--left-out GROUP=FOLD.jsonl ...] [--json OUT.json]

Each photo's answer is read from the JSONL rows ``bottlecheck classify`` writes (matched on the
resolved path). With ``--left-out GROUP=FILE`` the photos of GROUP are scored from FILE instead:
the answers of a model trained without that group, so that every figure is one the model never
trained on. A photo with a top counts ``unknown`` as wrong; a photo with no top counts only
``unknown`` as right. Balanced accuracy is the mean of the open and closed recalls (one of
them where a group holds one class); ECE is over the answered photos' p_open.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bottlecheck.evaluation.metrics import expected_calibration_error

from .real_photos import GROUPS, KINDS, Photo, labelled_photos


def read_answers(path: Path) -> dict[str, dict]:
    """``bottlecheck classify -f jsonl`` rows by resolved path."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[str(Path(row["path"]).resolve())] = row
    return rows


def key(photo: Photo) -> str:
    """How a photo's answer is found: its resolved path, as :func:`read_answers` keys the rows."""
    return str(photo.path.resolve())


def right(photo: Photo, answer: dict) -> bool:
    return answer["status"] == ("unknown" if photo.truth == "none" else photo.truth)


def score(photos: list[Photo], answers: dict[str, dict]) -> dict:
    """Balanced accuracy, recalls, unknowns and ECE of ``photos`` (missing answers are an error)."""
    mine = [(p, answers[key(p)]) for p in photos]
    recall = {}
    for truth in ("open", "closed", "none"):
        of_truth = [(p, a) for p, a in mine if p.truth == truth]
        if of_truth:
            recall[truth] = round(sum(right(p, a) for p, a in of_truth) / len(of_truth), 3)
    topped = [v for k, v in recall.items() if k != "none"]
    answered = [
        (p.truth == "open", a["p_open"])
        for p, a in mine
        if p.truth != "none" and a["status"] in ("open", "closed") and a["p_open"] is not None
    ]
    out: dict = {
        "photos": len(photos),
        "balanced_accuracy": round(float(np.mean(topped)), 3) if topped else recall.get("none"),
        "recall": recall,
        "unknown": sum(a["status"] == "unknown" for p, a in mine if p.truth != "none"),
    }
    if answered:
        is_open = np.array([t for t, _ in answered], dtype=int)
        out["ece"] = round(expected_calibration_error(is_open, np.array([p for _, p in answered], dtype=float)), 3)
    return out


def table(photos: list[Photo], answers: dict[str, dict]) -> dict:
    """Per group, per kind, glass and PET balanced, and the mean over groups."""
    by_group = {g: score([p for p in photos if p.group == g], answers) for g in GROUPS}
    by_kind = {k: score([p for p in photos if k in p.kinds], answers) for k in KINDS}
    by_kind = {k: v for k, v in by_kind.items() if v["photos"]}
    pet = [p for p in photos if p.kinds and any(k in ("bare PET necks", "PET caps") for k in p.kinds)]
    glass = [p for p in photos if p.truth != "none" and p not in pet]
    topped = [p for p in photos if p.truth != "none"]
    return {
        "groups": by_group,
        "kinds": by_kind,
        "glass": score(glass, answers),
        "pet": score(pet, answers),
        "all_answered_ece": score(topped, answers).get("ece"),
        "mean_over_groups": round(float(np.mean([v["balanced_accuracy"] for v in by_group.values()])), 3),
    }


def markdown(result: dict) -> str:
    lines = [
        "| group or kind | photos | balanced | open | closed | unknown | ECE |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [
        *result["groups"].items(),
        ("**glass**", result["glass"]),
        ("**PET**", result["pet"]),
        *result["kinds"].items(),
    ]
    for name, s in rows:
        r = s["recall"]
        closed = r.get("closed", r.get("none", ""))  # a kind without a top: how many were unknown
        lines.append(
            f"| {name} | {s['photos']} | {s['balanced_accuracy']} | {r.get('open', '')} | {closed} "
            f"| {s['unknown']} | {s.get('ece', '')} |"
        )
    lines.append(
        f"\nmean over groups {result['mean_over_groups']}; ECE over answered photos {result['all_answered_ece']}"
    )
    return "\n".join(lines)


def left_out_folds(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, dict[str, dict]]:
    """``--left-out GROUP=FILE`` options as each group's answers from its fold (an unknown group is a usage error)."""
    folds = {}
    for item in items:
        group, _, file = item.partition("=")
        if group not in GROUPS:
            parser.error(f"unknown group {group!r}; groups: {', '.join(GROUPS)}")
        folds[group] = read_answers(Path(file))
    return folds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("answers", type=Path, help="bottlecheck classify -f jsonl output covering every photo")
    parser.add_argument("--left-out", action="append", default=[], metavar="GROUP=FILE")
    parser.add_argument("--json", type=Path, help="write the table here too")
    args = parser.parse_args(argv)
    photos = labelled_photos()
    answers = read_answers(args.answers)
    for group, fold in left_out_folds(parser, args.left_out).items():
        for p in photos:
            if p.group == group:
                answers[key(p)] = fold[key(p)]
    missing = [p for p in photos if key(p) not in answers]
    if missing:
        sys.exit(f"{len(missing)} photos have no answer, e.g. {missing[0].path}")
    result = table(photos, answers)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
