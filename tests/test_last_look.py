"""The last look (tops 3.5.0): a third p(top), learned from real tops against checked not-tops, heard only in a
photo where nothing counts after the rescue gate, and only where the rescue gate agrees enough. Built into the
judge as a fifth output, kept by a rebuild, and read per photo, never across photos of one batch."""

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
LAST_LOOK = {"column": 4, "sure": 0.95, "guard": 0.8}
FLOORED = {**LAST_LOOK, "min_score": 0.05}


def _classifier(tmp_path: Path, last_look: dict | None = LAST_LOOK) -> Classifier:
    """The bundled model without its second looks or photo calibration (rows pass as given), its rescue gate at
    0.95 in column 3 and ``last_look`` as its last look."""
    copy = bundled_model_with(
        tmp_path / "model",
        {
            "second_look": None,
            "photo_calibration": None,
            "rescue": {"column": 3, "sure": 0.95},
            "last_look": last_look,
        },
    )
    return Classifier.load(copy, engine="litert")


def _row(p_top: float, p_open: float, rescue: float, last: float) -> np.ndarray:
    return np.array([p_top * (1 - p_open), p_top * p_open, 1 - p_top, rescue, last])


@pytest.mark.parametrize(
    ("last", "rescue", "counted_at"),
    [
        (0.97, 0.85, 0.97),  # nothing counts, both sure enough: counts at the last look's p(top)
        (0.95, 0.80, 0.95),  # at both bars: at least means at least
        (0.94, 0.90, None),  # the last look not sure enough
        (0.99, 0.79, None),  # the rescue gate's guard not met: close-ups stay unknown
    ],
)
def test_in_a_photo_where_nothing_counts_a_candidate_counts_when_the_last_look_and_the_guard_agree(
    tmp_path, last, rescue, counted_at
):
    assert_counted(one_candidate_answer(_classifier(tmp_path), _row(0.2, 0.3, rescue, last)), counted_at, 0.3)


def test_the_last_look_never_adds_a_top_to_a_photo_where_something_counts(tmp_path):
    """A photo the first gate or the rescue gate answers is answered as before: the last look cannot make it open."""
    classifier = _classifier(tmp_path)
    photo = classifier.preprocess(str(EXAMPLE))
    placed = [(100.0, 100.0, 30.0, 0.9), (160.0, 100.0, 30.0, 0.8)]
    for counted in (_row(0.7, 0.1, 0.1, 0.1), _row(0.2, 0.1, 0.97, 0.1)):  # by the first gate; by the rescue gate
        rows = classifier.look_again([photo], [placed], [counted, _row(0.2, 0.9, 0.9, 0.99)])
        answer = classifier.answer_with(photo, placed, rows)
        assert answer["status"] == "closed"
        (top,) = answer["tops"]
        assert top["p_open"] == pytest.approx(0.1)


def test_each_photo_of_a_batch_gets_its_own_last_look(tmp_path):
    """Rows come photo after photo: the photo with a counted top keeps its turned-down candidate out, the next
    photo (nothing counted) gets its last look, and a photo with no candidate in between shifts nothing."""
    classifier = _classifier(tmp_path)
    photo = classifier.preprocess(str(EXAMPLE))
    first = [(100.0, 100.0, 30.0, 0.9), (160.0, 100.0, 30.0, 0.8)]
    empty: list = []
    second = [(120.0, 120.0, 30.0, 0.7)]
    rows = classifier.look_again(
        [photo, photo, photo],
        [first, empty, second],
        [_row(0.7, 0.1, 0.1, 0.1), _row(0.2, 0.9, 0.9, 0.99), _row(0.2, 0.9, 0.9, 0.99)],
    )
    judged = iter(rows)
    placements = (first, empty, second)
    answers = [classifier.answer_with(photo, placed, [next(judged) for _ in placed]) for placed in placements]
    assert [a["status"] for a in answers] == ["closed", "unknown", "open"]
    assert len(answers[0]["tops"]) == 1 and answers[2]["tops"][0]["p_top"] == pytest.approx(0.99)


def test_a_model_without_a_last_look_ignores_a_fifth_column(tmp_path):
    assert_counted(one_candidate_answer(_classifier(tmp_path, None), _row(0.2, 0.9, 0.9, 0.99)), None, 0.9)


def test_the_bundled_model_reads_its_last_look_from_the_judges_fifth_output():
    stage = json.loads((MODEL / "metadata.json").read_text())["stages"]["judge"]
    assert {k: stage["last_look"][k] for k in LAST_LOOK} == LAST_LOOK
    assert stage["rescue"]["column"] == 3
    classifier = Classifier.load(MODEL, engine="litert")
    photo = classifier.preprocess(str(EXAMPLE))
    (row,) = classifier.judge_crops([classifier.crop(photo, 100.0, 100.0, 30.0)])
    assert row.shape == (5,) and 0.0 <= row[4] <= 1.0


@needs_tensorflow
def test_the_last_look_is_a_fifth_output_beside_the_rescue_gate_and_a_rebuild_keeps_both(tmp_path):
    """Columns 0-3 pass through; column 4 is sigmoid(gate) on the pooled 1x1 head; the TFLite export answers the
    same; a cap refit on top (``bottlecheck train``) keeps both gates; without a rescue gate there is no guard."""
    from bottlecheck.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from bottlecheck.training.judge import judge_features_model, judge_head
    from bottlecheck.training.model import export_tflite
    from bottlecheck.training.tops_model import build_gated_judge, build_judge, with_last_look, with_rescue_gate

    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    judge = build_gated_judge(build_judge(judge_head(), 0.8), LinearCap(rng.normal(0, 0.05, 320), 0.3), 1.7)
    with pytest.raises(ValueError, match="rescue gate"):
        with_last_look(judge, LinearCap(np.zeros(1280), 0.0))
    rescued = with_rescue_gate(judge, LinearCap(rng.normal(0, 0.05, 1280), -0.2))
    gate = LinearCap(rng.normal(0, 0.05, 1280), 0.4)
    looked = with_last_look(rescued, gate)
    crops = rng.integers(0, 256, size=(6, 128, 128, 3)).astype(np.float32)

    out = looked.predict(crops, verbose=0)
    assert out.shape == (6, 5)
    np.testing.assert_allclose(out[:, :4], rescued.predict(crops, verbose=0), atol=1e-5)
    expected = 1 / (1 + np.exp(-gate.logits(judge_features_model().predict(crops, verbose=0))))
    np.testing.assert_allclose(out[:, 4], expected, atol=1e-4)
    assert np.ptp(out[:, 4]) > 0.01

    export_tflite(looked, tmp_path / "judge.tflite")
    np.testing.assert_allclose(run_tflite(tmp_path / "judge.tflite", crops), out, atol=1e-4)

    refit = build_gated_judge(looked, LinearCap(rng.normal(0, 0.05, 320), -0.4), 1.0).predict(crops, verbose=0)
    np.testing.assert_allclose(refit[:, 3:], out[:, 3:], atol=1e-5)  # both gates kept, in their columns
    assert np.abs(refit[:, 1] - out[:, 1]).max() > 1e-3  # the cap is the new one


def test_the_shipped_last_look_lets_no_group_or_kind_fall_below_the_rescue_gate_alone_on_either_draw():
    """3.5.0's shipping rule, held to its recorded table: each group left out, on each draw of the views, the
    last look is at or above the rescue gate alone (3.4.0) on every group and kind, and the mean rises."""
    tables = json.loads((MODEL / "metadata.json").read_text())["metrics"]["groups_and_kinds"]["left_out"]["tables"]
    draws = [name.rsplit(" ", 1)[-1] for name in tables if name.startswith("last look, views seed")]
    assert len(draws) >= 2
    for seed in draws:
        rescue, last = tables[f"rescue gate, views seed {seed}"], tables[f"last look, views seed {seed}"]
        for part in ("groups", "kinds"):
            for name, cell in last[part].items():
                assert cell["balanced_accuracy"] >= rescue[part][name]["balanced_accuracy"], (seed, name)
                assert cell["unknown"] <= rescue[part][name]["unknown"], (seed, name)
        assert last["mean_over_groups"] > rescue["mean_over_groups"], seed


def test_the_recorded_last_look_rows_are_3_4_0_and_the_last_look_at_the_models_own_bars():
    from recipe.record_tables import last_look_rows

    report = {
        "3.4.0 (seed 0)": {"n": 0},
        "3.4.0's rescue gate at 0.8 where nothing counts (seed 0)": {"n": 1},
        "last look 0.95, guard 0.5 (seed 0)": {"n": 2},
        "last look 0.95, guard 0.8 (seed 0)": {"n": 3},
        "3.4.0 (seed 1)": {"n": 4},
        "last look 0.95, guard 0.8 (seed 1)": {"n": 5},
    }
    assert last_look_rows(report, LAST_LOOK) == {
        "rescue gate, views seed 0": {"n": 0},
        "rescue gate, views seed 1": {"n": 4},
        "last look, views seed 0": {"n": 3},
        "last look, views seed 1": {"n": 5},
    }
    with pytest.raises(SystemExit):
        last_look_rows(report, {**LAST_LOOK, "guard": 0.9})
    # With a floor (3.6.0) its rows are the last look's and the rule at the finder's own floor sits beside them.
    floored = {**report, "last look 0.95, guard 0.8, floor 0.05 (seed 0)": {"n": 6}}
    floored["last look 0.95, guard 0.8, floor 0.05, 2 tops (seed 0)"] = {"n": 7}
    assert last_look_rows(floored, {**FLOORED, "max_tops": 2})["last look, views seed 0"] == {"n": 7}
    assert last_look_rows(floored, FLOORED) == {
        "rescue gate, views seed 0": {"n": 0},
        "rescue gate, views seed 1": {"n": 4},
        "last look at the finder's floor, views seed 0": {"n": 3},
        "last look at the finder's floor, views seed 1": {"n": 5},
        "last look, views seed 0": {"n": 6},
    }
    with pytest.raises(SystemExit, match="--floor"):
        last_look_rows(report, FLOORED)


def test_info_says_when_the_last_look_is_heard_and_how_sure_both_gates_must_be():
    from click.testing import CliRunner

    from bottlecheck.cli.main import main

    result = CliRunner().invoke(main, ["info"], catch_exceptions=False)
    assert result.exit_code == 0
    expected = (
        "then, in a photo where still nothing counts, a candidate counts when the last look (output 4) gives p_top "
        "at least 0.95 and the rescue gate at least 0.8, the finder's candidates down to score 0.05 among them "
        "(the strongest 2 a photo)"
    )
    assert expected in result.output


def _below_floor_answer(classifier: Classifier, scores: list[float], row: np.ndarray, monkeypatch) -> dict:
    """The answer to the example photo whose finder map holds peaks of ``scores`` (and nothing else) and whose judge
    reads every crop as ``row``: the candidates the finder's floor keeps first, then the look below the floor."""
    photo = classifier.preprocess(str(EXAMPLE))
    heat = classifier.finder_maps([photo])[0].copy()
    heat[..., 0], heat[..., 1], heat[..., 2:] = 0.0, np.log(24.0), 0.0
    for k, score in enumerate(scores):
        heat[2 + 4 * k, 4, 0] = score  # cells far enough apart that no box hides another
    monkeypatch.setattr(classifier, "judge_crops", lambda crops: [row.copy() for _ in crops])
    found = [classifier.tops_in(photo, heat)]
    rows = classifier.look_again([photo], found, classifier.judge_crops([np.zeros(1)] * len(found[0])))
    found, rows = classifier.look_below_floor([photo], [heat], found, rows)
    return classifier.answer_with(photo, found[0], rows)


@pytest.mark.parametrize(
    ("score", "last", "rescue", "counted_at"),
    [
        (0.10, 0.97, 0.85, 0.97),  # under the finder's floor (0.2), over the look's (0.05): counts as a last look
        (0.05, 0.95, 0.80, 0.95),  # at each bar: at least means at least
        (0.04, 0.99, 0.99, None),  # under the look's floor: never cut
        (0.10, 0.94, 0.99, None),  # the last look not sure enough
        (0.10, 0.99, 0.79, None),  # the guard not met
    ],
)
def test_where_nothing_counts_the_last_look_also_reads_the_finders_candidates_under_its_floor(
    tmp_path, monkeypatch, score, last, rescue, counted_at
):
    classifier = _classifier(tmp_path, FLOORED)
    answer = _below_floor_answer(classifier, [score], _row(0.9, 0.3, rescue, last), monkeypatch)
    # The first gate's p(top) 0.9 counts for nothing below the floor: only the last look can count such a top.
    assert_counted(answer, counted_at, 0.3)
    if counted_at is None:
        assert answer["confidence"] == 1.0  # an unknown answer's confidence sees no candidate it never counted


def test_the_look_below_the_floor_leaves_a_photo_where_something_counts_and_a_model_without_it_alone(
    tmp_path, monkeypatch
):
    """One candidate over the finder's floor counts: the weak one is not looked at, however sure the gates. A model
    whose last look has no floor (3.5.0) never reads under the finder's floor."""
    classifier = _classifier(tmp_path, FLOORED)
    answer = _below_floor_answer(classifier, [0.5, 0.1], _row(0.9, 0.3, 0.99, 0.99), monkeypatch)
    assert len(answer["tops"]) == 1 and answer["tops"][0]["score"] == pytest.approx(0.5)
    # At most max_tops of them a photo, the strongest: each is a judge pass, and a photo with no bottle has many.
    two = _classifier(tmp_path / "two", {**FLOORED, "max_tops": 2})
    answer = _below_floor_answer(two, [0.08, 0.15, 0.1], _row(0.9, 0.3, 0.99, 0.99), monkeypatch)
    assert sorted(top["score"] for top in answer["tops"]) == pytest.approx([0.1, 0.15])
    plain = _classifier(tmp_path / "plain", LAST_LOOK)
    assert plain.last_look_floor is None
    assert_counted(_below_floor_answer(plain, [0.1], _row(0.9, 0.3, 0.99, 0.99), monkeypatch), None, 0.3)


def test_the_shipped_floor_lets_no_group_or_kind_fall_below_the_last_look_at_the_finders_floor_on_either_draw():
    """3.6.0's shipping rule, held to its recorded table: each group left out, on each draw of the views, the last
    look down to the shipped floor is at or above 3.5.0's rule on every group and kind, and the mean rises."""
    stage = json.loads((MODEL / "metadata.json").read_text())["stages"]["judge"]
    assert stage["last_look"]["min_score"] == FLOORED["min_score"] and stage["last_look"]["max_tops"] == 2
    tables = json.loads((MODEL / "metadata.json").read_text())["metrics"]["groups_and_kinds"]["left_out"]["tables"]
    draws = [name.rsplit(" ", 1)[-1] for name in tables if name.startswith("last look at the finder's floor, views")]
    assert len(draws) >= 2
    for seed in draws:
        before = tables[f"last look at the finder's floor, views seed {seed}"]
        after = tables[f"last look, views seed {seed}"]
        for part in ("groups", "kinds"):
            for name, cell in after[part].items():
                assert cell["balanced_accuracy"] >= before[part][name]["balanced_accuracy"], (seed, name)
                assert cell["unknown"] <= before[part][name]["unknown"], (seed, name)
        assert after["mean_over_groups"] > before["mean_over_groups"], seed


SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "real-sources").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize(
    ("photo", "status"),
    [
        ("real/open/glass94.jpg", "open"),  # a lip seen end on: the finder scores it 0.10
        ("real-sources/beer-checkins/closed/heineken-0.0__w640.jpg", "closed"),  # a crown cut by the frame: 0.08
    ],
)
def test_the_bundled_model_answers_a_real_top_the_finder_scores_under_its_floor(photo, status):
    """Two real photos 3.5.0 left unknown (session 24's sheets of them): the top is plain, the finder scores it
    under 0.2, and the last look down to 0.05 counts it and reads it right. Without the floor: unknown."""
    classifier = Classifier.load(MODEL, engine="litert")
    (answer,) = classifier.analyse([classifier.preprocess(str(SHARED / photo))])
    assert answer["status"] == status
    assert all(top["score"] < classifier.min_score for top in answer["tops"]) and answer["tops"]
    classifier.last_look_floor = None  # 3.5.0's rule
    (before,) = classifier.analyse([classifier.preprocess(str(SHARED / photo))])
    assert before["status"] == "unknown"


def test_the_probes_bench_is_cached_under_the_finders_floor_and_size_as_well_as_the_weights(tmp_path):
    """``last_look --floor`` benches a copy of 3.2.0 with a lower finder floor: same weights, other candidates. Keyed
    by the weights alone it read the first bench back; each setting of the finder must name its own."""
    import shutil

    from recipe.probe_model4 import bench_key

    def copy_with(name: str, **finder) -> Classifier:
        shutil.copytree(MODEL, tmp_path / name)
        metadata = json.loads((tmp_path / name / "metadata.json").read_text())
        metadata["stages"]["finder"].update(finder)
        (tmp_path / name / "metadata.json").write_text(json.dumps(metadata))
        return Classifier.load(tmp_path / name, engine="litert")

    from recipe.real_photos import Photo

    photos = [Photo(Path(name), "folder", "group", "open") for name in ("a.jpg", "b.jpg")]
    same = bench_key(copy_with("same"), photos)
    assert bench_key(Classifier.load(MODEL, engine="litert"), photos) == same
    assert bench_key(copy_with("lower", min_score=0.05), photos) != same
    assert bench_key(copy_with("fewer", max_tops=4), photos) != same
    assert bench_key(copy_with("same again"), photos[:1]) != same
