"""How a model's judge answers the kinds of top model 2 got wrong, and whether its answer moves with the crop.

    python -m recipe.experiments.check_judge_kinds --model model            # or any two-stage model directory

``judge-kinds/`` holds close-ups from ``render/render_caps.py``'s unseen renders (seed 43, indices
from 500000, the background plates of ``make_backgrounds.py --seed 99``: nothing any model here
trained on): for each kind the model-3 issue names, the first two renders of that kind by index,
not the ones a model gets right. ``cases.json`` gives each one's label and its top's box. It
prints each case's answer, then how many views of the open and closed cases flip against the
model's own answer at its span when the crop spans 1.5 to 4 times the top or turns by a right
angle (model 3 must not flip). Model 2.2.0: 9 of 18 right, 48 of 280 views flip; model 3's first
candidates: 12 and 13 of 18, 36 and 45 flips. Once a shipped model answers every kind, this
becomes a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bottlecheck import Classifier
from bottlecheck.tops import cut_square

KINDS = Path(__file__).resolve().parent / "judge-kinds"
LABELS = ("closed", "open", "none")
SPANS = (1.5, 2.0, 2.5, 3.2, 4.0)
TURNS = (0, 90, 180, 270)


def judged(classifier, case: dict, span: float | None = None, turn: int = 0) -> np.ndarray:
    """The judge's (closed, open, none) probabilities for the case's top cut at ``span`` times its side."""
    image = Image.open(KINDS / case["file"]).convert("RGB")
    x0, y0, x1, y1 = case["box"]
    side = max(x1 - x0, y1 - y0) * (span or classifier.crop_span)
    crop = cut_square(image, (x0 + x1) / 2, (y0 + y1) / 2, side, classifier.judge_size)
    if turn:
        crop = crop.rotate(turn)
    return classifier.judge_crops([np.asarray(crop, dtype=np.uint8)])[0][:3]  # a rescue gate (3.3) adds a fourth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a two-stage model directory (default: bundled)")
    args = parser.parse_args()
    classifier = Classifier.load(args.model, engine="litert")
    cases = json.loads((KINDS / "cases.json").read_text())["cases"]
    right = 0
    for case in cases:
        probabilities = judged(classifier, case)
        said = LABELS[int(np.argmax(probabilities))]
        right += said == case["label"]
        print(f"{case['file']}  {case['what']:<32} {case['label']:<7} said {said:<7} {probabilities.round(3).tolist()}")
    flips = views = 0
    for case in (c for c in cases if c["label"] != "none"):
        p_closed, p_open, _ = judged(classifier, case)
        own = p_open >= p_closed
        for span in SPANS:
            for turn in TURNS:
                p_closed, p_open, _ = judged(classifier, case, span, turn)
                flips += (p_open >= p_closed) != own
                views += 1
    print(
        f"{classifier.artifact.name} {classifier.artifact.version}: {right} of {len(cases)} right; "
        f"{flips} of {views} views flip with the span ({SPANS[0]}-{SPANS[-1]}) or a turn"
    )


if __name__ == "__main__":
    main()
