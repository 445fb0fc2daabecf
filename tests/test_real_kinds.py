"""The shipped model on real crops of each kind the held-out photos score, and on two real cluttered tables.

The crops (``real_kinds.json``) were chosen by a rule before their answers were looked at: for each kind, the labelled
photos of that kind in ``../shared/data`` ordered by the SHA-1 of their path, the first two not
already chosen, and in each the largest marked top whose label is the photo's (a photo's largest
top is its subject). Two of the fourteen were then dropped by eye because the marked box is not
on a top (the middle of a PET bottle's label, and a bottle's body at the frame's edge).

Where 3.3.0 answered wrong (3.4.0 answers as it does), the case is a strict expected failure: it
documents the failing kind, and the test fails as soon as a model answers it right, so the list is kept true. The
cluttered tables are the two street-restaurant photos with the most marked tops: their tops are
8-20 px in a 640 px photo, 3-8 px in the finder's 256 px view. Needs the shared photos (skipped
without them).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from bottlecheck import Classifier

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
needs_shared_photos = pytest.mark.skipif(not (DATA / "real-sources").is_dir(), reason="needs ../shared/data")
WRONG_IN_3_3_0 = "3.3.0 answers this kind wrong (model/README.md, what it does not fix)"


def _cases() -> list:
    """``real_kinds.json``'s cases, those 3.3.0 (and so 3.4.0) answers wrong as strict expected failures."""
    cases = json.loads((Path(__file__).resolve().parent / "real_kinds.json").read_text())["cases"]
    return [
        pytest.param(
            c["kind"],
            c["photo"],
            tuple(c["top"]),
            c["label"],
            marks=[pytest.mark.xfail(strict=True, reason=WRONG_IN_3_3_0)] if c["wrong_in_3_3_0"] else [],
            id=f"{c['kind']}: {Path(c['photo']).name[:24]}",
        )
        for c in cases
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load(engine="litert")


@needs_shared_photos
@pytest.mark.parametrize(("kind", "photo", "top", "label"), CASES)
def test_the_shipped_model_answers_a_real_top_of_each_kind(classifier, kind, photo, top, label):
    """The marked top alone, as the product judges a candidate there: looks, rescue and decision included."""
    prepared = classifier.preprocess(str(DATA / photo))
    scale = prepared.image.width / prepared.size[0]  # the marks are in the photo's own pixels
    x, y, side = (v * scale for v in top)
    placed = [(x, y, side, 1.0)]
    rows = classifier.look_again([prepared], [placed], classifier.judge_crops([classifier.crop(prepared, x, y, side)]))
    answer = classifier.answer_with(prepared, placed, rows)
    assert answer["status"] == label, (kind, answer)


def _marked_tops(name: str) -> tuple[Path, list]:
    from recipe.crops import marked

    by_photo = defaultdict(list)
    for crop in marked(("open", "closed")):
        by_photo[Path(crop.path).resolve()].append(crop)
    path = next(p for p in by_photo if name in p.name)
    return path, by_photo[path]


@needs_shared_photos
@pytest.mark.xfail(strict=True, reason="the shipped finder (2.2.0's), learned on renders at 256 px, misses small tops")
@pytest.mark.parametrize("name", ["422097796_1629655851106781", "429667038_1655269365212096"])
def test_the_finder_finds_most_bottle_tops_on_a_cluttered_real_table(classifier, name):
    """Its candidates (before the judge) hit at least half the tops a person marked on the table."""
    path, tops = _marked_tops(name)
    prepared = classifier.preprocess(str(path))
    to_photo = prepared.size[0] / prepared.image.width
    candidates = [(x * to_photo, y * to_photo) for x, y, _, _ in classifier.find_tops(prepared)]
    found = [t for t in tops if any(abs(x - t.x) <= t.side and abs(y - t.y) <= t.side for x, y in candidates)]
    assert len(found) * 2 >= len(tops), f"{len(found)} of {len(tops)} marked tops among {len(candidates)} candidates"
