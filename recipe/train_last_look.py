"""Give a model with a rescue gate a last look: a third p(top), heard only where nothing else counts.

    python -m recipe.train_last_look --base R/model-3.4.0 --cache R/m4 --out R/model --version 3.5.0

The rescue gate (3.3.0) learns real tops against every marked not-top, 2,085 of which were
made by rule and never looked at: candidates 3.2.0's render-trained gate turned down. They
teach it to refuse what that gate refused, and 172 of the 1,182 labelled real photos with a
top stay ``unknown``. A gate learned from the same tops against the not-tops someone looked at
knows real tops better, but alone it answers close-ups with no top and reads white and silver
crowns open (``model/HISTORY.md``, session 23). So it is heard last and least: in a photo
where no candidate counts after the first gate, its second looks and the rescue gate, a
candidate counts when this gate is at least ``--sure`` of a top and the rescue gate at least
``--guard``. Every photo the base answers is answered as before.

Chosen with each repository group left out on two draws of the views
(``recipe/experiments/last_look.py``: at 0.95 with a guard of 0.8 no kind and no group falls on
either draw; a guard of 0.5 answers a close-up on one draw). The base's finder, gates, cap,
second looks and photo calibration are kept; the judge gets a fifth output
(``bottlecheck.training.tops_model.with_last_look``). About a minute on 2 cores with the views'
features cached in ``--cache`` (shared with the probe and the rescue gate).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bottlecheck.artifact import write_metadata
from bottlecheck.tfquiet import import_tensorflow

from .experiments.last_look import rule_made
from .train_rescue_gate import VIEWS, fit_rescue_gate, gate_crops, gate_features, gate_record, write_with_gate

#: The last look's bar and the rescue gate's guard (chosen on groups left out: the module's docstring).
SURE, GUARD = 0.95, 0.8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="a model whose judge has a rescue gate (3.4.0)")
    parser.add_argument("--cache", type=Path, required=True, help="the views' features are kept here")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--version", required=True)
    parser.add_argument("--sure", type=float, default=SURE)
    parser.add_argument("--guard", type=float, default=GUARD)
    args = parser.parse_args(argv)
    started = time.time()
    import_tensorflow()
    from bottlecheck.training.tops_model import with_last_look

    crops = gate_crops()
    unchecked, _, _ = rule_made(crops)
    x, is_top = gate_features(crops, args.cache)
    gate = fit_rescue_gate(crops, x, is_top, ~np.repeat(unchecked, VIEWS))
    kept = [c for c, rule in zip(crops, unchecked, strict=True) if not rule]
    if "rescue" not in json.loads((args.base / "metadata.json").read_text())["stages"]["judge"]:
        raise SystemExit(f"{args.base} has no rescue gate: the last look's guard is the rescue gate")
    meta, out = write_with_gate(args.base, args.out, with_last_look, gate, args.version)
    stage = out["stages"]["judge"]
    stage["output"] = (
        "(N, 5): the probabilities of closed, open, none as before (p(top) (1 - p(open | top)), "
        "p(top) p(open | top), p(none)), then the rescue gate's p(top), then the last look's p(top)"
    )
    stage["last_look"] = {
        "column": 4,
        "sure": args.sure,
        "guard": args.guard,
        "gate": "a linear layer on the pooled 1x1 head, learned from the real photos' marked tops against the "
        "not-tops someone looked at (the rule-made 'gate turned down' nones left out), every repository group",
        "rule": "in a photo where no candidate counts after the rescue gate, a candidate counts when the last look's "
        "p(top) at crop_span is at least sure and the rescue gate's at least guard; its p(top) is then the last look's",
    }
    out["training"]["last_look"] = {
        **gate_record("recipe/train_last_look.py", meta, kept, started),
        "chosen_by": "python -m recipe.experiments.last_look --cache WORK/m4 --model WORK/m320",
        "left_out_rule_made_nones": int(unchecked.sum()),
    }
    write_metadata(args.out, out)
    print(f"wrote {args.out} ({args.version}): last look at {args.sure}, guard {args.guard}, on {len(kept)} crops")


if __name__ == "__main__":
    main()
