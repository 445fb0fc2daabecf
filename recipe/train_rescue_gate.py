"""Give a model's judge a rescue gate: a second p(top), learned from the real photos' marked tops.

    python -m recipe.train_rescue_gate --base model --cache R/m4 --out R/model-3.3.0 [--sure 0.95]

The shipped gate (is this candidate a top at all?) was learned from renders and turns down real
caps: on the 1,182 labelled real photos it leaves 206 ``unknown``. A linear layer on the same
pooled 1x1 head, trained on the real marked tops and the by-eye not-tops (``annotations/``,
every repository group, each (group, label) weighing alike), knows real tops better but alone
loses what the render gate knew: it answers close-ups with no top in frame, and as the larger
of the two it turns white and silver crowns on clear glass (model/HISTORY.md, session 16).
So it only *rescues*: a candidate the shipped gate turns down counts when the rescue gate is at
least ``--sure`` of a top (``TopsClassifier.look_again``). Chosen on each group left out
(``recipe/probe_model4.py --variants``: at 0.95 every kind level or better on two
draws of the views, at 0.9 one draw lost white and silver crowns).

The base's finder, gate, cap and second looks are kept as they are: the new judge is the base's
with a fourth output (``bottlecheck.training.tops_model.with_rescue_gate``), and the metadata is
the base's with the rescue gate, its data and the new version. About 4 minutes on 2 cores, most
of it the views' features (cached in ``--cache``, shared with the probe).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bottlecheck import __version__
from bottlecheck.artifact import write_metadata
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import (
    Crop,
    LinearCap,
    compute_judge_features,
    fit_linear_cap,
    judge_features_model,
)

from .crops import ANNOTATIONS, alike, marked, places_digest

#: Views of each marked crop (jittered as the judge's training views), their draw, and the pull to zero.
VIEWS, SEED, L2 = 4, 0, 1e-2
#: How sure the rescue gate must be (chosen on groups left out; see the module's docstring).
SURE = 0.95


def gate_crops() -> list[Crop]:
    """Every marked top (open or closed) and not-top (``none``) of the real photos, with its group."""
    return marked(("open", "closed", "none"))


def gate_features(crops: list[Crop], cache: Path, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The pooled 1x1 head's features of :data:`VIEWS` views of each crop, and 1 where it is a top.

    The features are cached by the crops' places; whether each is a top comes from the crops
    themselves, so a mark relabelled by eye is never read with its old label.
    """
    name = f"gate-v{VIEWS}-{places_digest(crops)}-n{len(crops)}" + (f"-seed{seed}" if seed else "") + ".npz"
    path = cache / name
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        x, _ = compute_judge_features(crops, VIEWS, seed, True, print, judge_features_model())
        np.savez(path, x=x)
    is_top = np.repeat([c.label != "none" for c in crops], VIEWS).astype(int)
    return np.load(path)["x"], is_top


def fit_rescue_gate(crops: list[Crop], x: np.ndarray, is_top: np.ndarray, keep: np.ndarray | None = None) -> LinearCap:
    """The rescue gate fitted on the views in ``keep`` (all of them by default), each (group, label) alike."""
    groups = np.repeat([c.group for c in crops], len(is_top) // len(crops))
    keep = np.ones(len(is_top), dtype=bool) if keep is None else keep
    return fit_linear_cap(x[keep], is_top[keep], alike(groups[keep], is_top[keep]), L2)


def write_with_gate(base: Path, out_dir: Path, add, gate: LinearCap, version: str) -> tuple[dict, dict]:
    """``base``'s model written to ``out_dir``, its judge given one more gate column by ``add`` (``with_rescue_gate``,
    ``with_last_look``); returns the base's metadata and the new model's (named ``version``) for the caller to fill in.
    The finder's files are copied as they are."""
    import keras

    from bottlecheck.training.model import artifact_identity, export_tflite

    meta = json.loads((base / "metadata.json").read_text())
    judge = keras.models.load_model(base / meta["stages"]["judge"]["files"]["keras"], compile=False)
    judge = add(judge, gate)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("finder.keras", "finder.tflite"):
        shutil.copy2(base / name, out_dir / name)
    judge.save(out_dir / "judge.keras")
    export_tflite(judge, out_dir / "judge.tflite")
    out = copy.deepcopy(meta)
    out.update(artifact_identity(meta["name"], version))
    return meta, out


def gate_record(recipe: str, base_meta: dict, crops: list[Crop], started: float) -> dict:
    """How a gate column was learned, for the model's ``training`` metadata: its recipe, base, crops and fit."""
    return {
        "recipe": recipe,
        "base": f"{base_meta['name']} {base_meta['version']}",
        "crops": {f"{g}/{label}": n for (g, label), n in sorted(Counter((c.group, c.label) for c in crops).items())},
        "annotations": [f"recipe/annotations/{name}" for name, _ in ANNOTATIONS],
        "views": VIEWS,
        "seed": SEED,
        "l2": L2,
        "weighting": "each (group, top or not) alike",
        "seconds": round(time.time() - started, 1),
        "bottlecheck": __version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the model whose judge gets the rescue gate")
    parser.add_argument("--cache", type=Path, required=True, help="the views' features are kept here")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--version", required=True)
    parser.add_argument("--sure", type=float, default=SURE)
    args = parser.parse_args(argv)
    started = time.time()
    import_tensorflow()
    from bottlecheck.training.tops_model import with_rescue_gate

    crops = gate_crops()
    x, is_top = gate_features(crops, args.cache)
    gate = fit_rescue_gate(crops, x, is_top)
    meta, out = write_with_gate(args.base, args.out, with_rescue_gate, gate, args.version)
    stage = out["stages"]["judge"]
    stage["output"] = (
        "(N, 4): the probabilities of closed, open, none as before (p(top) (1 - p(open | top)), "
        "p(top) p(open | top), p(none)), then the rescue gate's p(top)"
    )
    stage["rescue"] = {
        "column": 3,
        "sure": args.sure,
        "gate": "a linear layer on the pooled 1x1 head (the gate's features), learned from the real photos' marked "
        "tops and by-eye not-tops of every repository group",
        "rule": "after the gate's second look, a candidate still under the decision's min_top_probability counts "
        "when the rescue gate's p(top) at crop_span is at least sure; its p(top) is then the rescue gate's",
    }
    out["training"]["rescue_gate"] = gate_record("recipe/train_rescue_gate.py", meta, crops, started)
    write_metadata(args.out, out)
    print(f"wrote {args.out} ({args.version}): rescue gate at {args.sure} on {len(crops)} marked crops")


if __name__ == "__main__":
    main()
