"""``bottlecheck train`` as a new user runs it: 10 open and 10 closed photos of one real folder, scored on the rest.

    python -m recipe.experiments.adaptation --work R/adapt [--folder algeria-pet-home ...] [--draws 2]

Issue 36 asks that adapting to a user's twenty photos never scores below the base model, nor
below a cap fitted on those photos alone, on the user's other photos. For each folder of
``../shared/data/real-sources`` with both classes, each draw picks 10 open and 10 closed photos
(seeded), adapts the shipped model on them three ways and answers the folder's other photos:

* ``chosen``: what ``bottlecheck train`` does (the cap's pull chosen by cross-validation);
* ``pull 10``: the fixed pull tops 3.0-3.3 shipped with;
* ``head only``: a cap fitted from zero on the twenty photos;

beside the base model itself. Balanced accuracy with ``unknown`` counted wrong, and ECE over the
answered photos; and how many of the shared photos with no top in frame (and ``examples/``'
close-up) each adapted model answers, which it must not. About a minute an adaptation on 2 cores
(10 s on a faster 2-core machine).

``--rescue-pulls`` and ``--last-look-pulls`` instead refit the base's rescue gate, or its last
look's gate (tops 3.5.0), at each pull given, beside the chosen cap (``kept``: as the base has it).

``--scene-split TRAIN=TEST`` (repeatable) is the issue's scene split instead: the twenty photos
from folder TRAIN, every photo of folder TEST scored (two folders of one repository group: the
same kind of bottle in another place, e.g. ``pet-darkbg-topdown=pet-rvm-chamber``). ``A+B=TEST``
trains on twenty photos of each of A and B, each its own data directory (so ``bottlecheck train``
folds by directory).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
from pathlib import Path

from bottlecheck import Classifier
from bottlecheck.evaluation.datasets import scan_image_folder
from bottlecheck.evaluation.evaluate import evaluate
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.train_config import TrainConfig
from bottlecheck.training import adapt_judge, cross_validation

from ..real_photos import DATA, labelled_photos

#: The close-up in ``examples/`` with no top in frame, beside the shared real photos that have none.
EXAMPLE_CLOSE_UP = Path(__file__).resolve().parents[2] / "examples" / "rendered_unknown_1.jpg"


def no_top_photos() -> list[str]:
    """Photos with no top in frame: an adapted model must still answer them ``unknown``."""
    return [str(p.path) for p in labelled_photos() if p.truth == "none"] + [str(EXAMPLE_CLOSE_UP)]


def answered(classifier: Classifier, paths: list[str]) -> int:
    """How many of ``paths`` ``classifier`` answers open or closed."""
    return sum(p.status in ("open", "closed") for p in classifier.classify_paths(paths))


FOLDERS = ("algeria-pet-home", "beercooler", "hk-glass-waste", "crushed-pet-topdown")
#: Each way: the cap's pulls cross-validation chooses among, and the rescue gate's and the last look's
#: pulls (None: the base's kept).
WAYS: dict[str, tuple[tuple[float, ...], float | None, float | None]] = {
    "chosen": (cross_validation.PULLS, adapt_judge.RESCUE_PULL, adapt_judge.LAST_LOOK_PULL),
    "pull 10": ((10.0,), adapt_judge.RESCUE_PULL, adapt_judge.LAST_LOOK_PULL),
    "head only": ((0.0,), adapt_judge.RESCUE_PULL, adapt_judge.LAST_LOOK_PULL),
}


def _pull(text: str) -> float | None:
    return None if text == "kept" else float(text)


def score(report: dict) -> dict:
    unknown = report.get("unknown", {})
    return {
        "balanced": unknown.get("balanced_accuracy_unknown_as_wrong", report.get("balanced_accuracy")),
        "ece": report.get("ece"),
        "unknown": sum(unknown.get("by_label", {}).get(k, 0) for k in ("open", "closed")),
        "photos": report.get("count"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--folder", action="append", help=f"default: {', '.join(FOLDERS)}")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--scene-split", action="append", default=[], metavar="TRAIN=TEST")
    parser.add_argument(
        "--rescue-pulls",
        nargs="*",
        metavar="PULL",
        help="instead of the three ways: the chosen cap with the rescue gate refit at each pull ('kept': the base's)",
    )
    parser.add_argument(
        "--last-look-pulls",
        nargs="*",
        metavar="PULL",
        help="instead of the three ways: the chosen cap and rescue gate with the last look's gate refit at each pull",
    )
    args = parser.parse_args(argv)
    ways = WAYS
    if args.rescue_pulls:
        ways = {
            f"rescue {r}": (cross_validation.PULLS, _pull(r), adapt_judge.LAST_LOOK_PULL) for r in args.rescue_pulls
        }
    if args.last_look_pulls:
        ways = {
            f"last look {r}": (cross_validation.PULLS, adapt_judge.RESCUE_PULL, _pull(r)) for r in args.last_look_pulls
        }
    import_tensorflow()
    base = Classifier.load(engine="litert")
    no_tops = no_top_photos()
    results: dict = {"no top in frame": {"photos": len(no_tops), "base answers": answered(base, no_tops)}}
    splits = [tuple(item.split("=", 1)) for item in args.scene_split] or [(f, f) for f in args.folder or FOLDERS]
    for folder, scored in splits:
        places = folder.split("+")  # A+B=TEST: twenty photos from each place, each its own data directory
        examples = {place: scan_image_folder(DATA / "real-sources" / place, source=place) for place in places}
        others = scan_image_folder(DATA / "real-sources" / scored, source=scored) if scored != folder else []
        name = f"{folder} -> {scored}" if others else folder
        for draw in range(args.draws):
            rng = random.Random(draw)
            train: dict[str, list] = {place: [] for place in places}
            rest = []
            for place in places:
                for label in ("open", "closed"):
                    of_label = sorted((e for e in examples[place] if e.label_name == label), key=lambda e: e.path)
                    rng.shuffle(of_label)
                    train[place] += of_label[: args.per_class]
                    rest += of_label[args.per_class :]
            if others:  # the scene split: every photo of the other folder, none of the trained ones'
                rest = others
            run = args.work / f"{name.replace(' -> ', '--')}-{draw}"
            data_dirs = []
            for place, chosen in train.items():
                data = run / "data" / place
                data_dirs.append(str(data))
                for example in chosen:
                    link = data / example.label_name / Path(example.path).name
                    link.parent.mkdir(parents=True, exist_ok=True)
                    if not link.exists():
                        link.symlink_to(Path(example.path).resolve())
            row = {"train": sum(map(len, train.values())), "rest": len(rest), "base": score(evaluate(base, rest)[0])}
            for way, (pulls, rescue_pull, last_look_pull) in ways.items():
                out = run / way.replace(" ", "-")
                original = adapt_judge.choose_pull, adapt_judge.RESCUE_PULL, adapt_judge.LAST_LOOK_PULL
                adapt_judge.choose_pull = functools.partial(cross_validation.choose_pull, pulls=pulls)  # type: ignore[assignment]
                adapt_judge.RESCUE_PULL, adapt_judge.LAST_LOOK_PULL = rescue_pull, last_look_pull
                try:
                    meta = adapt_judge.adapt_judge(
                        TrainConfig(data_dirs=data_dirs, out=str(out), seed=draw, version=way), lambda _line: None
                    )
                finally:
                    adapt_judge.choose_pull, adapt_judge.RESCUE_PULL, adapt_judge.LAST_LOOK_PULL = original  # type: ignore[assignment]
                adapted = Classifier.load(out, engine="litert")
                row[way] = score(evaluate(adapted, rest)[0])
                row[way]["chosen"] = meta["training"]["calibration"].get("cross_validation", {}).get("chosen")
                row[way]["no_top_answered"] = answered(adapted, no_tops)
            results[f"{name} draw {draw}"] = row
            print(name, draw, json.dumps(row), flush=True)
    (args.work / "adaptation.json").write_text(json.dumps(results, indent=1) + "\n")
    columns = ["base", *ways]
    print("\n| folder, draw | " + " | ".join(columns) + " | unknown (base, ways) | chosen pull |")
    print("| --- |" + " ---: |" * len(columns) + " --- | --- |")
    for name, row in results.items():
        if name == "no top in frame":
            continue
        cells = " | ".join(f"{row[w]['balanced']}" for w in columns)
        unknown = ", ".join(str(row[w]["unknown"]) for w in columns)
        print(f"| {name} ({row['rest']} photos) | {cells} | {unknown} | {row[next(iter(ways))]['chosen']} |")
    answered_by = {w: [row[w]["no_top_answered"] for n, row in results.items() if n != "no top in frame"] for w in ways}
    base_answers = results["no top in frame"]["base answers"]
    print(f"\nOf {len(no_tops)} photos with no top in frame the base answers {base_answers};")
    print("the adapted models, draw by draw: " + "; ".join(f"{w} {v}" for w, v in answered_by.items()))


if __name__ == "__main__":
    main()
