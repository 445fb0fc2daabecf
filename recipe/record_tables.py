"""Write the per-group, per-kind tables into a model's metadata, with the commands that made them.

    python -m recipe.record_tables MODEL --left-out PROBE.json --as-shipped KINDS.json

``--left-out`` is ``recipe/probe_model4.py --variants``'s report: each repository group
answered by a model that never saw it. The rows recorded are the base as shipped and the rescue
gate at the model's own ``sure`` on each draw of its views (what a new draw of the training moves).
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--left-out", type=Path, required=True, help="probe_model4 --variants --report output")
    parser.add_argument("--as-shipped", type=Path, required=True, help="kinds_table --json output for this model")
    args = parser.parse_args(argv)
    meta = json.loads((args.model / "metadata.json").read_text())
    sure = float(meta["stages"]["judge"]["rescue"]["sure"])
    base = meta["training"]["rescue_gate"]["base"].split()[-1]
    meta["metrics"]["groups_and_kinds"] = {
        "measure": "balanced accuracy of the photos' answers (unknown counts wrong where a top is in frame, "
        "right where none is), per repository group and per held-out kind, on every labelled real photo",
        "left_out": {
            "command": PROBE,
            "note": f"each group answered by a rescue gate fitted without it; the finder, first gate and cap are "
            f"{base}'s (trained on five older groups), so the base's row is in-distribution there; ECE is the "
            "cap's own, before any photo calibration (stages.judge.photo_calibration)",
            "tables": left_out_rows(json.loads(args.left_out.read_text()), sure, base),
        },
        "as_shipped": {
            "command": AS_SHIPPED,
            "note": "this model on every photo: the rescue gate was trained on every group (in-distribution)",
            "table": json.loads(args.as_shipped.read_text()),
        },
    }
    write_metadata(args.model, meta)
    print(f"recorded the tables in {args.model / 'metadata.json'}")


if __name__ == "__main__":
    main()
