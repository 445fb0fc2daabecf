"""The rescue gate (tops 3.3.0): a second p(top) learned from real tops, that only counts candidates the
first gate turned down, and only when it is sure. Built into the judge, kept by a rebuild (``bottlecheck
train``), read by the decision rule at the right moment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bottlecheck import Classifier
from bottlecheck.training.judge import LinearCap
from tests.helpers import assert_counted, bundled_model_with, needs_tensorflow, one_candidate_answer, run_tflite

MODEL = Path(__file__).resolve().parent.parent / "model"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rendered_open_1.jpg"


@needs_tensorflow
def test_the_rescue_gate_is_a_fourth_output_beside_the_judges_three_and_a_rebuild_keeps_it(tmp_path):
    """Columns 0-2 are the judge's as they were; column 3 is sigmoid(gate) on the pooled 1x1 head; the TFLite
    export answers the same; a cap refit on top of it (``bottlecheck train``) keeps the rescue gate."""
    from bottlecheck.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from bottlecheck.training.judge import judge_features_model, judge_head
    from bottlecheck.training.model import export_tflite
    from bottlecheck.training.tops_model import build_gated_judge, build_judge, with_rescue_gate

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    judge = build_gated_judge(build_judge(judge_head(), 0.8), LinearCap(rng.normal(0, 0.05, 320), 0.3), 1.7)
    gate = LinearCap(rng.normal(0, 0.05, 1280), -0.2)
    rescued = with_rescue_gate(judge, gate)
    crops = rng.integers(0, 256, size=(6, 128, 128, 3)).astype(np.float32)

    out = rescued.predict(crops, verbose=0)
    assert out.shape == (6, 4)
    np.testing.assert_allclose(out[:, :3], judge.predict(crops, verbose=0), atol=1e-5)
    expected = 1 / (1 + np.exp(-gate.logits(judge_features_model().predict(crops, verbose=0))))
    np.testing.assert_allclose(out[:, 3], expected, atol=1e-4)
    assert np.ptp(out[:, 3]) > 0.01  # the gate tells these crops apart: a constant column would not pass

    export_tflite(rescued, tmp_path / "judge.tflite")
    np.testing.assert_allclose(run_tflite(tmp_path / "judge.tflite", crops), out, atol=1e-4)

    other_cap = LinearCap(rng.normal(0, 0.05, 320), -0.4)
    refit = build_gated_judge(rescued, other_cap, 1.0).predict(crops, verbose=0)
    np.testing.assert_allclose(refit[:, 3], out[:, 3], atol=1e-5)  # the rescue gate kept as it was
    np.testing.assert_allclose(refit[:, 2], out[:, 2], atol=1e-5)  # and the first gate
    assert np.abs(refit[:, 1] - out[:, 1]).max() > 1e-3  # the cap is the new one


def _classifier(tmp_path: Path, rescue: dict | None) -> Classifier:
    """The bundled model without its second look (so that rows pass as given), with ``rescue`` as its rescue."""
    # p_open as the rows give it: no photo calibration either
    copy = bundled_model_with(
        tmp_path / "model", {"second_look": None, "rescue": rescue, "last_look": None, "photo_calibration": None}
    )
    return Classifier.load(copy, engine="litert")


def _row(p_top: float, p_open: float, rescue: float) -> np.ndarray:
    return np.array([p_top * (1 - p_open), p_top * p_open, 1 - p_top, rescue])


@pytest.mark.parametrize(
    ("p_top", "rescue", "counted_at"),
    [
        (0.30, 0.97, 0.97),  # turned down, the rescue gate sure: counts, at the rescue gate's p(top)
        (0.30, 0.94, None),  # turned down, the rescue gate not sure enough: still not counted
        (0.49, 0.95, 0.95),  # at the line: sure means at least
        (0.70, 0.10, 0.70),  # counted by the first gate: the rescue gate never turns a top down
        (0.60, 0.99, 0.60),  # nor raises a counted top's p(top)
    ],
)
def test_a_turned_down_candidate_counts_only_when_the_rescue_gate_is_sure(tmp_path, p_top, rescue, counted_at):
    classifier = _classifier(tmp_path, {"column": 3, "sure": 0.95})
    assert_counted(one_candidate_answer(classifier, _row(p_top, 0.8, rescue)), counted_at, 0.8)


def test_a_model_without_a_rescue_gate_ignores_a_fourth_column(tmp_path):
    classifier = _classifier(tmp_path, None)
    photo = classifier.preprocess(str(EXAMPLE))
    placed = [(100.0, 100.0, 30.0, 0.9)]
    rows = classifier.look_again([photo], [placed], [_row(0.3, 0.8, 0.99)])
    assert classifier.answer_with(photo, placed, rows)["status"] == "unknown"


def test_the_rescue_comes_after_the_gates_second_look_and_before_the_caps(tmp_path, monkeypatch):
    """Order matters: the gate's doubt is looked at first (a candidate its looks count is not rescued, and
    its p(top) is their mean); a rescued top whose cap is unsure gets the cap's second look like any other."""
    look = {"spans": [1.6, 4.0], "band": 0.15, "min_top": 0.6, "top_floor": 0.35}
    copy = bundled_model_with(
        tmp_path / "model", {"second_look": look, "rescue": {"column": 3, "sure": 0.95}, "last_look": None}
    )
    classifier = Classifier.load(copy, engine="litert")
    photo = classifier.preprocess(str(EXAMPLE))
    placed = [(100.0, 100.0, 30.0, 0.9), (150.0, 100.0, 30.0, 0.9)]
    looks = iter(
        [
            _row(0.9, 0.55, 0.0),  # the first candidate's two looks (the gate's doubt): p(top) mean (0.4+0.9+0.9)/3
            _row(0.9, 0.55, 0.0),
            _row(0.5, 0.9, 0.0),  # the second candidate's two looks (the cap's doubt, after its rescue)
            _row(0.5, 0.9, 0.0),
        ]
    )
    monkeypatch.setattr(classifier, "judge_crops", lambda crops: [next(looks) for _ in crops])
    first = _row(0.40, 0.10, 0.99)  # in the gate's doubt band, and the rescue gate sure
    second = _row(0.20, 0.45, 0.97)  # under the band: only the rescue counts it, and its cap is unsure
    rows = classifier.look_again([photo], [placed], [first, second])
    assert 1 - rows[0][2] == pytest.approx((0.4 + 0.9 + 0.9) / 3)  # counted by its looks, not rescued to 0.99
    assert 1 - rows[1][2] == pytest.approx(0.97)
    assert rows[1][1] / (rows[1][0] + rows[1][1]) == pytest.approx((0.45 + 0.9 + 0.9) / 3)
    with pytest.raises(StopIteration):
        next(looks)  # every look was asked for, none twice


def test_the_shipped_model_describes_its_rescue_gate_and_its_judge_gives_it():
    """The metadata says which column and how sure; the judge's LiteRT file has that column."""
    classifier = Classifier.load(engine="litert")
    rescue = classifier.artifact.stage("judge")["rescue"]
    assert rescue["column"] == 3 and 0.5 < rescue["sure"] < 1.0
    assert (classifier.rescue_column, classifier.rescue_sure) == (3, rescue["sure"])
    photo = classifier.preprocess(str(EXAMPLE))
    rows = classifier.judge_crops([classifier.crop(photo, x, y, side) for x, y, side, _ in classifier.find_tops(photo)])
    # four columns and the last look's fifth (tops 3.5.0 on: tests/test_last_look.py)
    assert rows and all(row.shape == (5,) and 0.0 <= row[3] <= 1.0 for row in rows)
    np.testing.assert_allclose([row[:3].sum() for row in rows], 1.0, atol=1e-5)


def _table(balanced: dict[str, float], mean: float) -> dict:
    def cell(value: float) -> dict:
        return {"photos": 10, "balanced_accuracy": value, "recall": {}, "unknown": 1}

    return {
        "groups": {"beer-office": cell(balanced["beer-office"])},
        "kinds": {"foil necks": cell(balanced["foil necks"])},
        "glass": cell(balanced["glass"]),
        "pet": cell(balanced["pet"]),
        "mean_over_groups": mean,
        "all_answered_ece": 0.07,
    }


def test_info_puts_each_group_and_kind_left_out_side_by_side_under_held_out():
    from bottlecheck.writers.model_card import HELD_OUT, TRAINED_ON, metric_lines, metric_sections

    base = _table({"beer-office": 0.78, "foil necks": 0.484, "glass": 0.714, "pet": 0.457}, 0.625)
    rescued = _table({"beer-office": 0.829, "foil necks": 0.5, "glass": 0.735, "pet": 0.479}, 0.652)
    record = {
        "left_out": {"command": "python -m recipe.probe_model4 ...", "tables": {"A": base, "B": rescued}},
        "as_shipped": {"command": "bottlecheck classify ...", "table": rescued},
    }
    sections = metric_sections(metric_lines({"groups_and_kinds": record}, {}))
    held_out = sections[HELD_OUT]
    assert "leave_one_group_out.beer-office: 0.78 | 0.829 (10 photos; unknown 1 | 1)" in held_out
    assert "leave_one_group_out.foil necks: 0.484 | 0.5 (10 photos; unknown 1 | 1)" in held_out
    assert "leave_one_group_out.PET: 0.457 | 0.479 (10 photos; unknown 1 | 1)" in held_out
    means = "mean over groups 0.625 | 0.652; ECE over answered photos 0.07 | 0.07"
    assert any(line.endswith(means) for line in held_out)
    assert any("made by python -m recipe.probe_model4" in line for line in held_out)
    (shipped,) = sections[TRAINED_ON]
    assert shipped.startswith("groups_and_kinds (trained on): mean over groups 0.652, glass 0.735, PET 0.479")


def test_the_shipped_model_lets_no_kind_fall_below_its_base_on_groups_it_never_saw():
    """The shipping rule, held to the recorded table: on every draw of the rescue gate's views, left out by
    group, no kind nor glass nor PET is below the base's figure, and the mean over groups rises."""
    metadata = json.loads((MODEL / "metadata.json").read_text())
    tables = metadata["metrics"]["groups_and_kinds"]["left_out"]["tables"]
    base_name, *draws = tables
    base = tables[base_name]
    assert base_name.startswith(metadata["training"]["rescue_gate"]["base"].split()[-1]) and len(draws) >= 2
    for draw in draws:
        for kind, cell in tables[draw]["kinds"].items():
            assert cell["balanced_accuracy"] >= base["kinds"][kind]["balanced_accuracy"], (draw, kind)
        for part in ("glass", "pet"):
            assert tables[draw][part]["balanced_accuracy"] >= base[part]["balanced_accuracy"], (draw, part)
        assert tables[draw]["mean_over_groups"] > base["mean_over_groups"], draw


def test_the_recorded_rows_are_the_base_and_each_draw_at_the_models_own_sure():
    from recipe.record_tables import left_out_rows

    report = {
        "3.2.0 as shipped (in-distribution on the five older sources)": {"n": 0},
        "gate: 3.2.0's, rescued where the real gate is sure (0.9, views seed 0); 3.2.0's cap": {"n": 1},
        "gate: 3.2.0's, rescued where the real gate is sure (0.95, views seed 0); 3.2.0's cap": {"n": 2},
        "gate: 3.2.0's, rescued where the real gate is sure (0.95, views seed 1); 3.2.0's cap": {"n": 3},
    }
    rows = left_out_rows(report, 0.95, "3.2.0")
    assert rows == {
        "3.2.0 as shipped": {"n": 0},
        "rescue gate, views seed 0": {"n": 2},
        "rescue gate, views seed 1": {"n": 3},
    }
    with pytest.raises(SystemExit):
        left_out_rows(report, 0.8, "3.2.0")


def test_the_gates_cached_features_are_keyed_by_place_and_its_labels_come_from_the_marks(tmp_path):
    """A by-eye review relabels marks without moving them: their features may be reused, but a
    label read back from the cache would train the gate on what the review corrected."""
    from dataclasses import replace

    from bottlecheck.training.judge import Crop
    from recipe.crops import places_digest
    from recipe.train_rescue_gate import VIEWS, gate_features

    before = [Crop("a.jpg", 10.0, 20.0, 30.0, "none", 1, "g"), Crop("a.jpg", 50.0, 60.0, 30.0, "open", 1, "g")]
    after = [replace(before[0], label="closed"), before[1]]
    moved = [replace(before[0], x=11.0), before[1]]
    assert places_digest(before) == places_digest(after) != places_digest(moved)

    features = np.arange(2 * VIEWS * 3, dtype=np.float32).reshape(2 * VIEWS, 3)
    np.savez(tmp_path / f"gate-v{VIEWS}-{places_digest(before)}-n2.npz", x=features)

    x, is_top = gate_features(after, tmp_path)  # found in the cache: nothing is computed

    np.testing.assert_array_equal(x, features)
    assert is_top.tolist() == [1] * VIEWS + [1] * VIEWS
    assert gate_features(before, tmp_path)[1].tolist() == [0] * VIEWS + [1] * VIEWS
