"""The photo calibration (tops 3.4.0): one temperature on each counted top's p(open | top), after the looks.

It must move the confidence and nothing else: the statuses at 0.5, which tops get a second look and
which top speaks for the photo stay the judge's own. And the temperature it ships with must be the
one its recipe fits: an overconfident answer set gives a temperature above 1 that undoes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bottlecheck import Classifier
from recipe.fit_photo_calibration import fit_temperature, tempered
from tests.helpers import MODEL, bundled_model_with

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rendered_open_1.jpg"


def _classifier(tmp_path: Path, temperature: float | None, band: float = 0.0) -> Classifier:
    """The bundled model with ``temperature`` as its photo calibration (none: without one); no rescue gate, and a
    second look only when ``band`` is given, so that rows pass as given."""
    judge = {
        "rescue": None,
        "photo_calibration": None if temperature is None else {"temperature": temperature},
        "second_look": {"spans": [1.6, 4.0], "band": band, "min_top": 0.6} if band else {},
    }
    copy = bundled_model_with(tmp_path / f"model-{temperature}-{band}", judge)
    return Classifier.load(copy, engine="litert")


def _row(p_top: float, p_open: float) -> np.ndarray:
    return np.array([p_top * (1 - p_open), p_top * p_open, 1 - p_top, 0.0])


def _sigmoid_of_logit_over(p: float, temperature: float) -> float:
    return 1 / (1 + math.exp(-math.log(p / (1 - p)) / temperature))


def test_the_shipped_model_carries_a_photo_calibration_that_softens_its_answers():
    calibration = json.loads((MODEL / "metadata.json").read_text())["stages"]["judge"]["photo_calibration"]
    assert calibration["temperature"] > 1.0  # the cap is too sure on sources it never saw: a temperature softens
    ece = calibration["ece_answered_photos"]
    assert ece["unseen_groups_each_left_out"] < ece["unseen_groups_before"]
    assert Classifier.load(MODEL, engine="litert").open_temperature == calibration["temperature"]


@pytest.mark.parametrize("p_opens", [(0.9, 0.2), (0.3, 0.45), (0.51, 0.97), (0.49,)])
def test_the_temperature_moves_each_tops_p_open_and_the_confidence_but_no_status_and_no_choice(tmp_path, p_opens):
    plain, tempered_model = _classifier(tmp_path, None), _classifier(tmp_path, 2.5)
    photo = plain.preprocess(str(EXAMPLE))
    placed = [(100.0 + 60 * i, 100.0, 30.0, 0.9) for i in range(len(p_opens))]
    rows = [_row(0.9, p) for p in p_opens]
    before = plain.answer_with(photo, placed, rows)
    after = tempered_model.answer_with(photo, placed, rows)

    assert after["status"] == before["status"]
    assert [t["status"] for t in after["tops"]] == [t["status"] for t in before["tops"]]
    for top_before, top_after in zip(before["tops"], after["tops"], strict=True):
        assert top_before["p_open"] == pytest.approx(_sigmoid_of_logit_over(top_after["p_open"], 1 / 2.5), abs=1e-9)
        assert top_after["p_open"] == pytest.approx(_sigmoid_of_logit_over(top_before["p_open"], 2.5))
        assert top_after["p_top"] == top_before["p_top"]  # the gate's answer is not the cap's to soften
    # The same top speaks for the photo (the most open, or the least sure closed one), at its softened p_open.
    speaker = [t["p_open"] for t in before["tops"]].index(before["p_open"])
    assert after["p_open"] == pytest.approx(after["tops"][speaker]["p_open"])
    assert abs(after["p_open"] - 0.5) < abs(before["p_open"] - 0.5)  # softer: nearer the middle
    assert after["confidence"] == pytest.approx(max(after["p_open"], 1 - after["p_open"]))


def test_the_second_look_is_decided_on_the_judges_own_p_open_not_the_softened_one(tmp_path, monkeypatch):
    """Raw p_open 0.7 is outside the band 0.15; at temperature 3 it reads 0.57, inside it. No second look."""
    classifier = _classifier(tmp_path, 3.0, band=0.15)
    asked: list[int] = []
    monkeypatch.setattr(classifier, "judge_crops", lambda crops: asked.append(len(crops)) or [])
    photo = classifier.preprocess(str(EXAMPLE))
    placed = [(100.0, 100.0, 30.0, 0.9)]
    rows = classifier.look_again([photo], [placed], [_row(0.9, 0.7)])
    assert asked == [0]  # looked for unsure tops, found none
    answer = classifier.answer_with(photo, placed, rows)
    assert answer["status"] == "open" and answer["p_open"] == pytest.approx(_sigmoid_of_logit_over(0.7, 3.0))


def test_tempered_is_the_classifiers_map_and_the_fit_undoes_a_known_overconfidence():
    p = np.array([0.02, 0.3, 0.5, 0.8, 0.999])
    np.testing.assert_allclose(tempered(p, 1.0), p, atol=1e-9)
    np.testing.assert_allclose(tempered(p, 2.0), [_sigmoid_of_logit_over(v, 2.0) for v in p], atol=1e-9)
    rng = np.random.default_rng(3)
    honest = rng.uniform(0.02, 0.98, 4000)
    is_open = (rng.uniform(size=honest.size) < honest).astype(int)
    too_sure = tempered(honest, 1 / 2.2)  # logits 2.2 times too large
    assert fit_temperature(is_open, too_sure) == pytest.approx(2.2, rel=0.1)
    assert fit_temperature(is_open, honest) == pytest.approx(1.0, rel=0.1)


def test_info_says_what_temperature_every_reported_p_open_carries_and_what_it_did():
    from click.testing import CliRunner

    from bottlecheck.cli.main import main

    calibration = json.loads((MODEL / "metadata.json").read_text())["stages"]["judge"]["photo_calibration"]
    text = CliRunner().invoke(main, ["info"]).output
    judge_line = next(line for line in text.splitlines() if line.startswith("stage judge:"))
    assert f"reported at temperature {calibration['temperature']:g} after the looks" in judge_line
    ece = calibration["ece_answered_photos"]
    assert f"{ece['unseen_groups_before']:g} -> {ece['unseen_groups_each_left_out']:g}" in judge_line
    shown = json.loads(CliRunner().invoke(main, ["info", "--json"]).output)["stages"]["judge"]["photo_calibration"]
    assert shown["temperature"] == calibration["temperature"]
