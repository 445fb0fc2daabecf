"""Let a model's last look also read the finder's candidates under its floor: tops 3.6.0 from 3.5.0.

    python -m recipe.lower_last_look_floor --base R/model-3.5.0 --out R/model --version 3.6.0 [--floor 0.05]

3.5.0's last look counts a candidate in a photo where nothing else counts, when its third gate
is at least 0.95 sure of a top and the rescue gate at least 0.8. It only sees the candidates
the finder scored at 0.2 or more, and of the photos 3.5.0 leaves ``unknown`` many hold a plain
top the finder scored under that: a lip seen end on, a crown cut by the frame's edge, a PET cap
in a collection box (``model/HISTORY.md``, session 24). With ``min_score`` in
``stages.judge.last_look`` the product reads such a photo's finder map again down to it and
gives those candidates the same last look, with the same bars (``TopsClassifier.look_below_floor``).
Chosen with each repository group left out on two draws of the views
(``python -m recipe.experiments.last_look --floor 0.05 --floor-tops 2``: 0.05 gains most on both
draws of 0.05, 0.1 and 0.15, and no group or kind falls below 3.5.0 on either; the close-ups with
no top in frame stay ``unknown``). Only the strongest two such candidates of a photo are judged:
all of them gain a little more (left out 0.689 and 0.654 against 0.687 and 0.652) for 2.6 times
the judging, and a photo with no bottle (most of the throughput benchmark's) has many.
The weights are the base's: only the metadata changes. Seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bottlecheck.artifact import write_metadata
from bottlecheck.training.model import artifact_identity

#: The finder's score the last look reads down to, and how many of those candidates a photo at most (the
#: strongest; chosen on groups left out: the module's docstring).
FLOOR, TOPS = 0.05, 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="a model with a last look (3.5.0)")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--version", required=True)
    parser.add_argument("--floor", type=float, default=FLOOR)
    parser.add_argument("--tops", type=int, default=TOPS)
    args = parser.parse_args(argv)
    meta = json.loads((args.base / "metadata.json").read_text())
    base = f"{meta['name']} {meta['version']}"
    stage = meta["stages"]["judge"]
    if "last_look" not in stage:
        raise SystemExit(f"{args.base} has no last look to lower")
    finder_floor = float(meta["stages"]["finder"]["min_score"])
    if not 0 < args.floor < finder_floor:
        raise SystemExit(f"--floor must lie between 0 and the finder's own floor ({finder_floor:g})")
    args.out.mkdir(parents=True, exist_ok=True)
    for item in args.base.iterdir():
        if item.is_file() and item.name != "metadata.json":
            shutil.copy2(item, args.out / item.name)
    stage["last_look"].update(min_score=args.floor, max_tops=args.tops)
    stage["last_look"]["rule"] += (
        f"; and there, the strongest max_tops of the finder's candidates scored from min_score up to its own floor "
        f"({finder_floor:g}) are judged too, and each that passes the same two bars counts at the last look's p(top)"
    )
    meta.update(artifact_identity(meta["name"], args.version))
    meta["training"]["last_look"]["floor"] = {
        "recipe": "recipe/lower_last_look_floor.py",
        "base": base,
        "min_score": args.floor,
        "max_tops": args.tops,
        "chosen_by": "python -m recipe.experiments.last_look --cache WORK/m4 --model WORK/m320 --floor 0.05 "
        "--floor-tops 2",
    }
    write_metadata(args.out, meta)
    print(f"wrote {args.out} ({args.version}): the last look reads the finder's candidates down to {args.floor:g}")


if __name__ == "__main__":
    main()
