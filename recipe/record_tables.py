"""Write the per-group, per-kind tables into a model's metadata, with the commands that made them.

    python -m recipe.record_tables MODEL --left-out PROBE.json --as-shipped KINDS.json

``--left-out`` is ``recipe/probe_model4.py --variants``'s report: each repository group
answered by a model that never saw it. The rows recorded are the base as shipped and the rescue
gate at the model's own ``sure`` on each draw of its views (what a new draw of the training moves).
A model with a last look (3.5.0 on) needs ``--last-look``, ``recipe/experiments/last_look.py``'s
report: its rows of the rescue gate as 3.4.0 ships it and of the last look at the model's own
``sure`` and ``guard``, on each draw, replace the probe's rescue rows.
``--as-shipped`` is ``recipe/kinds_table.py --json`` on ``bottlecheck classify``'s answers with the
model itself: in-distribution wherever it was trained. ``bottlecheck info`` and the model card read
them from ``metrics.groups_and_kinds``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from bottlecheck.artifact import write_metadata

PROBE = (
    "python -m recipe.probe_model4 --caps WORK/caps --cache WORK/m4 --model WORK/m320 --report WORK/m4.json --variants"
)
LAST_LOOK = "python -m recipe.experiments.last_look --cache WORK/m4 --model WORK/m320 --report WORK/last-look.json"
#: With the last look's floor (3.6.0 on): the same command with --floor.
FLOOR = " --floor {floor:g}"
FLOOR_TOPS = " --floor-tops {tops}"
AS_SHIPPED = (
    "bottlecheck classify ../shared/data/real-sources ../shared/data/real --model WORK/model -f jsonl "
    "-o WORK/real.jsonl; python -m recipe.kinds_table WORK/real.jsonl --json WORK/kinds.json"
)


def left_out_rows(report: dict, sure: float, base: str) -> dict[str, dict]:
    """The base's row and the rescue gate's rows at ``sure``, one per draw of its views, named for info."""
    rows = {f"{base} as shipped": next(table for name, table in report.items() if name.startswith(f"{base} as"))}
    pattern = re.compile(rf"rescued where the real gate is sure \({sure:g}, views seed (\d+)\)")
    for name, table in report.items():
        found = pattern.search(name)
        if found:
            rows[f"rescue gate, views seed {found.group(1)}"] = table
    if len(rows) < 2:
        raise SystemExit(f"the report has no rescue rows at {sure:g}: run the probe with --variants")
    return rows


def last_look_rows(report: dict, last_look: dict) -> dict[str, dict]:
    """The rescue gate's rows as 3.4.0 ships it and the last look's at its ``sure`` and ``guard``, on each draw.

    A last look with a ``min_score`` (3.6.0 on: it also reads the finder's candidates down to it) is recorded
    from the report's rows at that floor (``last_look --floor``), beside the last look at the finder's own
    floor (3.5.0's rule) as "last look at the finder's floor".
    """
    rows = {}
    for name, table in report.items():
        found = re.fullmatch(r"3\.4\.0 \(seed (\d+)\)", name)
        if found:
            rows[f"rescue gate, views seed {found.group(1)}"] = table
    setting = f"last look {last_look['sure']:g}, guard {last_look['guard']:g}"
    floor = last_look.get("min_score")
    for name, table in report.items():
        found = re.fullmatch(rf"{setting} \(seed (\d+)\)", name)
        if found:
            shipped_as = "last look at the finder's floor" if floor is not None else "last look"
            rows[f"{shipped_as}, views seed {found.group(1)}"] = table
        tops = f", {last_look['max_tops']} tops" if "max_tops" in last_look else ""
        found = floor is not None and re.fullmatch(rf"{setting}, floor {floor:g}{tops} \(seed (\d+)\)", name)
        if found:
            rows[f"last look, views seed {found.group(1)}"] = table
    if not any(name.startswith("last look,") for name in rows):
        at = f"{setting}" + (f", floor {floor:g}" if floor is not None else "")
        raise SystemExit(f"the last look's report has no rows at {at} (last_look --floor for a floor)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--left-out", type=Path, required=True, help="probe_model4 --variants --report output")
    parser.add_argument("--as-shipped", type=Path, required=True, help="kinds_table --json output for this model")
    parser.add_argument("--last-look", type=Path, help="recipe.experiments.last_look --report output (3.5.0 on)")
    args = parser.parse_args(argv)
    meta = json.loads((args.model / "metadata.json").read_text())
    sure = float(meta["stages"]["judge"]["rescue"]["sure"])
    base = meta["training"]["rescue_gate"]["base"].split()[-1]
    tables = left_out_rows(json.loads(args.left_out.read_text()), sure, base)
    command, answered_by = PROBE, "a rescue gate"
    last_look = meta["stages"]["judge"].get("last_look")
    if last_look:
        if not args.last_look:
            raise SystemExit("this model has a last look: its rows come from --last-look")
        tables = {
            f"{base} as shipped": tables[f"{base} as shipped"],
            **last_look_rows(json.loads(args.last_look.read_text()), last_look),
        }
        floor = last_look.get("min_score")
        command = f"{PROBE}; {LAST_LOOK}" + (FLOOR.format(floor=floor) if floor is not None else "")
        command += FLOOR_TOPS.format(tops=last_look["max_tops"]) if "max_tops" in last_look else ""
        answered_by = "a rescue gate and a last look"
    meta["metrics"]["groups_and_kinds"] = {
        "measure": "balanced accuracy of the photos' answers (unknown counts wrong where a top is in frame, "
        "right where none is), per repository group and per held-out kind, on every labelled real photo",
        "left_out": {
            "command": command,
            "note": f"each group answered by {answered_by} fitted without it; the finder, first gate and cap are "
            f"{base}'s (trained on five older groups), so the base's row is in-distribution there; ECE is the "
            "cap's own, before any photo calibration (stages.judge.photo_calibration)",
            "tables": tables,
        },
        "as_shipped": {
            "command": AS_SHIPPED,
            "note": "this model on every photo: the rescue gate"
            + (" and the last look were" if last_look else " was")
            + " trained on every group (in-distribution)",
            "table": json.loads(args.as_shipped.read_text()),
        },
    }
    write_metadata(args.model, meta)
    print(f"recorded the tables in {args.model / 'metadata.json'}")


if __name__ == "__main__":
    main()
