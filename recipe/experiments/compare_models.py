"""Compare two models photo by photo on what neither trained on: held-out renders and held-out real photos.

    python -m recipe.experiments.compare_models --renders /var/tmp/tops --candidate runs/m2 [--baseline DIR]

Held out means what ``recipe/train_tops.py`` holds out (``recipe/held_out.py``
says which and how each is scored). The baseline defaults to the bundled model (which trained on
most of the real photos, so it has the advantage there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bottlecheck import Classifier

from ..held_out import held_out, score, unseen_renders
from ..real_photos import DATA

RECIPE = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", action="append", required=True, type=Path)
    parser.add_argument("--candidate", required=True, type=Path)
    parser.add_argument("--baseline", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--real", type=Path, default=DATA / "real")
    parser.add_argument("--annotations", type=Path, default=RECIPE / "annotations" / "real-tops.json")
    parser.add_argument("--no-tops", type=Path, default=None, help="default: REAL/other (brewery logos)")
    parser.add_argument(
        "--unseen-renders",
        action="append",
        type=Path,
        default=[],
        help="renders made apart from the training ones (another seed and backgrounds): all count",
    )
    args = parser.parse_args()
    models = {
        "baseline": Classifier.load(args.baseline, engine="litert"),
        "candidate": Classifier.load(args.candidate, engine="litert"),
    }
    report = {}
    no_tops = args.no_tops or args.real / "other"
    sets = held_out(args.renders, args.real, args.annotations, no_tops)
    if args.unseen_renders:
        sets["unseen renders"] = unseen_renders(args.unseen_renders)
    for name, items in sets.items():
        report[name] = {
            f"{role} {model.artifact.name} {model.artifact.version}": score(model, items)
            for role, model in models.items()
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
