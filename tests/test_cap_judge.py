"""Model 3's cap judge: the linear layer and its temperature are fitted right, and the judge built from
them says what it is made of (model 2's p(none), the cap's p(open | top)) in Keras and in LiteRT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bottlecheck.training.judge import LinearCap, fit_linear_cap, judge_temperature
from tests.helpers import needs_tensorflow, run_tflite


def test_the_linear_cap_learns_features_of_any_scale_and_folds_their_standardisation():
    """One informative feature among noise, at a scale and offset far from 1 and 0: still learnt, and the
    folded kernel answers raw features exactly as the standardised fit would."""
    rng = np.random.default_rng(0)
    is_open = rng.integers(0, 2, 600)
    x = rng.normal(size=(600, 20))
    x[:, 7] += 2.5 * (2 * is_open - 1)
    x = x * 300.0 + 5000.0  # pooled activations are neither centred nor unit-scaled
    cap = fit_linear_cap(x, is_open, np.ones(600))
    assert ((cap.logits(x) >= 0) == is_open).mean() > 0.95
    assert np.argmax(np.abs(cap.kernel)) == 7
    again = fit_linear_cap(x, is_open, np.ones(600))
    np.testing.assert_array_equal(again.kernel, cap.kernel)  # deterministic: a fold refits the same way


def test_weights_decide_which_examples_count():
    """A class given no weight is not learnt: the weights are what balance sources and classes."""
    rng = np.random.default_rng(1)
    is_open = np.r_[np.ones(200, int), np.zeros(200, int)]
    x = rng.normal(size=(400, 5)) + is_open[:, None]
    unweighted = fit_linear_cap(x, is_open, np.ones(400))
    only_open = fit_linear_cap(x, is_open, np.r_[np.ones(200), np.full(200, 1e-6)])
    assert (unweighted.logits(x[200:]) < 0).mean() > 0.7
    assert (only_open.logits(x[200:]) >= 0).mean() > 0.9  # nothing told it closed exists


def test_the_binary_temperature_undoes_overconfidence():
    """Logits three times too sure give a temperature near 3; calibrated ones near 1."""
    rng = np.random.default_rng(2)
    z = rng.normal(scale=2.0, size=20000)
    is_open = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(int)
    assert 2.5 < judge_temperature(3 * z, is_open) < 3.6
    assert 0.85 < judge_temperature(z, is_open) < 1.2


def test_one_fitter_for_one_logit_and_for_several_and_a_judge_keeps_its_range():
    """The sigmoid's temperature is the softmax's on (0, z); a judge's stays in JUDGE_TEMPERATURE_RANGE."""
    from bottlecheck.evaluation.metrics import fit_temperature
    from bottlecheck.training.judge import JUDGE_TEMPERATURE_RANGE

    rng = np.random.default_rng(3)
    z = rng.normal(scale=2.0, size=5000)
    is_open = (rng.random(5000) < 1 / (1 + np.exp(-z))).astype(int)
    pairs = np.stack([np.zeros_like(z), 2 * z], axis=1)
    assert fit_temperature(is_open, 2 * z) == pytest.approx(fit_temperature(is_open, pairs), rel=1e-6)
    assert 1.8 < fit_temperature(is_open, pairs) < 2.2
    separable = np.r_[np.linspace(-5, -1, 50), np.linspace(1, 5, 50)]
    assert fit_temperature(separable > 0, separable) < JUDGE_TEMPERATURE_RANGE[0]  # the fit alone goes lower
    assert judge_temperature(separable, separable > 0) == JUDGE_TEMPERATURE_RANGE[0]
    assert judge_temperature(rng.normal(size=500) * 3, rng.integers(0, 2, 500)) == JUDGE_TEMPERATURE_RANGE[1]


@needs_tensorflow
@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "centre"])
def test_the_gated_judge_multiplies_the_base_gate_by_the_cap(tmp_path, pooling):
    """p(none) is the base judge's exactly; open / (open + closed) is sigmoid(cap / temperature) on the
    pooled block-15 features; rows sum to 1; the TFLite export answers the same."""
    from bottlecheck.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from bottlecheck.training.judge import cap_features_model, cap_pooling_of, judge_head
    from bottlecheck.training.model import export_tflite
    from bottlecheck.training.tops_model import build_gated_judge, build_judge

    keras.utils.set_random_seed(3)
    base = build_judge(judge_head(), 0.8)  # a random linear layer: what matters is that it is kept
    front = cap_features_model(pooling=pooling)  # what the cap reads, built as training builds it
    rng = np.random.default_rng(3)
    cap = LinearCap(rng.normal(scale=0.05, size=front.output_shape[-1]), 0.3)
    judge = build_gated_judge(base, cap, 1.7, pooling)
    assert cap_pooling_of(judge) == pooling
    crops = rng.integers(0, 256, size=(6, 128, 128, 3)).astype(np.float32)

    out = judge.predict(crops, verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[:, 2], base.predict(crops, verbose=0)[:, 2], atol=1e-5)
    features = front.predict(crops, verbose=0)
    expected = 1 / (1 + np.exp(-cap.logits(features) / 1.7))
    np.testing.assert_allclose(out[:, 1] / (out[:, 0] + out[:, 1]), expected, atol=1e-4)

    export_tflite(judge, tmp_path / "judge.tflite")
    np.testing.assert_allclose(run_tflite(tmp_path / "judge.tflite", crops), out, atol=1e-4)

    rebuilt = build_gated_judge(judge, cap, 1.7, pooling)  # model 3 is a base in its turn: same gate
    np.testing.assert_allclose(rebuilt.predict(crops, verbose=0), out, atol=1e-5)


def test_a_prior_cap_keeps_what_the_users_photos_cannot_tell_it():
    """Adapting (``bottlecheck train``): the base cap knew feature 0; a user's photos only show feature 1.
    Pulled towards the prior, the refit cap learns feature 1 and keeps feature 0; fitted from zero, it
    forgets feature 0."""
    rng = np.random.default_rng(4)
    is_open = rng.integers(0, 2, 80)
    x = rng.normal(size=(80, 6))
    x[:, 1] += 2.0 * (2 * is_open - 1)
    prior = LinearCap(np.array([3.0, 0, 0, 0, 0, 0]), 0.0)
    anchored = fit_linear_cap(x, is_open, np.ones(80), l2=0.05, prior=prior)
    scratch = fit_linear_cap(x, is_open, np.ones(80), l2=0.05)
    assert anchored.kernel[1] > 0.5 and scratch.kernel[1] > 0.5
    assert anchored.kernel[0] > 0.7 and abs(scratch.kernel[0]) < 0.3
    untouched = fit_linear_cap(x, is_open, np.ones(80), l2=1e6, prior=prior)  # all pull: the prior as it was
    np.testing.assert_allclose(untouched.logits(x), prior.logits(x), atol=1e-3)


def test_info_shows_the_leave_one_out_table_beside_the_model_it_replaces():
    """``bottlecheck info``: each left-out source's photos against the shipped model's, each family's renders,
    the mean chosen on; a trained-on figure is never shown as a left-out one."""
    from bottlecheck.writers.model_card import leave_one_out_lines

    photos = {"photos": 41, "balanced_accuracy": 0.732, "recall": {"closed": 0.732}, "unknown": 7, "ece": 0.2}
    table = {
        "shipped": {"version": "2.2.0", "photos": {"beer-office": {"balanced_accuracy": 0.537}}},
        "left_out": {
            "beer-office": {
                "crops": {"crops": 39, "balanced_accuracy": 0.949, "ece": 0.217},
                "photos": photos,
                "photos_one_look": {**photos, "balanced_accuracy": 0.707},
                "photos_gate_once": {**photos, "balanced_accuracy": 0.72},
            },
            "foil necks": {"unseen_renders": {"crops": 19, "balanced_accuracy": 0.443, "ece": 0.354}},
        },
        "mean_left_out_real_sources": 0.697,
        "mean_shipped_real_sources": 0.604,
        "trained_on_all": {"photos": {"beer-office": {"balanced_accuracy": 0.99}}},
        "view_draws": {
            "seeds": [0, 1, 2, 3],
            "means": [0.697, 0.618, 0.625, 0.623],
            "gate_once_means": [0.68, 0.6, 0.6, 0.59],
            "one_look_means": [0.69, 0.61, 0.62, 0.6],
        },
    }
    text = "\n".join(leave_one_out_lines(table))
    assert "leave_one_out.beer-office: balanced accuracy 0.732 on 41 photos, 7 unknown" in text
    # What the second look adds, source by source, and what its look at the gate's doubts adds (3.2.0).
    assert "(model 2.2.0: 0.537); judged once 0.707; candidates' p_top judged once 0.72" in text
    assert "leave_one_out.beer-office: open vs closed balanced 0.949 on 39 tops' crops" in text
    assert "leave_one_out.foil necks: open vs closed balanced 0.443 on 19 unseen renders" in text
    assert "mean over the real sources 0.697 (model 2.2.0: 0.604)" in text
    assert (
        "seeds [0, 1, 2, 3] gave 0.697, 0.618, 0.625, 0.623 (mean 0.641); candidates' p_top judged once, "
        "0.68, 0.6, 0.6, 0.59 (mean 0.617); judged once, 0.69, 0.61, 0.62, 0.6" in text
    )
    assert "0.99" not in text


def test_the_shipped_judge_calls_white_and_silver_crown_caps_closed(classifier):
    """The model-3 issue's first failure (2.2.0: 14 of 17 such closed bottles answered open, and in
    ``recipe/experiments/judge-kinds`` 2 of these 4 unseen renders): each is a top and closed at the product's
    span, and the whitest one stays closed whatever the crop's span (1.5 to 4 times the top) or turn."""
    from recipe.experiments.check_judge_kinds import KINDS, judged

    cases = json.loads((KINDS / "cases.json").read_text())["cases"]
    crowns = [c for c in cases if c["kind"] == "crown"]  # two white (clear and green glass), two silver (clear)
    assert len(crowns) == 4
    for case in crowns:
        closed, opened, none = judged(classifier, case, classifier.crop_span)
        assert closed > opened and none < 0.5, (case["file"], closed, opened, none)
    white = next(c for c in crowns if c["file"] == "500003.jpg")
    for span in (1.5, 2.0, 2.5, 3.2, 4.0):
        for turn in (0, 90, 180, 270):
            closed, opened, _none = judged(classifier, white, span, turn)
            assert closed > opened, (span, turn, closed, opened)


def test_the_shipped_judge_calls_bare_pet_necks_open_and_screw_caps_closed(classifier):
    """The model-3 issue's third failure (2.2.0: 25 of 55 open PET water bottles answered closed): the two
    unseen renders of a bare PET neck (threads and neck ring) in ``recipe/experiments/judge-kinds`` count as
    tops and are open at the product's span, and stay open over closed whatever the crop's span or turn; the
    two screw-capped PET necks count and are closed, one of them at every span and turn."""
    from recipe.experiments.check_judge_kinds import KINDS, judged

    cases = json.loads((KINDS / "cases.json").read_text())["cases"]
    bare = [c for c in cases if c["what"] == "bare PET threads"]
    capped = [c for c in cases if c["what"] == "PET screw cap"]
    assert len(bare) == len(capped) == 2
    for case in bare + capped:
        closed, opened, none = judged(classifier, case, classifier.crop_span)
        assert none < 0.5, (case["file"], none)
        assert (opened > closed) == (case["label"] == "open"), (case["file"], closed, opened)
    steady_cap = next(c for c in capped if c["file"] == "500023.jpg")
    for case in [*bare, steady_cap]:
        for span in (1.5, 2.0, 2.5, 3.2, 4.0):
            for turn in (0, 90, 180, 270):
                closed, opened, _none = judged(classifier, case, span, turn)
                assert (opened > closed) == (case["label"] == "open"), (case["file"], span, turn, closed, opened)


def test_the_recipe_looks_again_at_the_candidates_the_gate_doubts_as_the_product_does():
    """``gate_looked_again`` (how the recipe scores 3.2.0's rule): a candidate whose p(top) at the first span lies
    from the floor up to 0.5 takes the mean of its p(none) at every span; one below the floor, one that counts
    already, or any candidate without a floor keeps its first p(none). Its other columns are untouched."""
    from recipe.train_cap_judge import gate_looked_again

    def rows(p_none: list[float]) -> np.ndarray:
        return np.array([[0.3 * (1 - p), 0.7 * (1 - p), p] for p in p_none])

    by_span = {2.5: rows([0.9, 0.6, 0.7, 0.2]), 1.6: rows([0.1, 0.2, 0.1, 0.9]), 4.0: rows([0.2, 0.4, 0.4, 0.9])}
    looked = gate_looked_again(by_span, 0.35)
    # p(top) 0.1 (below the floor) and 0.8 (counts): as they were; 0.4 and 0.3: 0.35 <= 0.4 < 0.5 averaged, 0.3 not.
    np.testing.assert_allclose(looked[:, 2], [0.9, (0.6 + 0.2 + 0.4) / 3, 0.7, 0.2])
    np.testing.assert_allclose(looked[:, :2], by_span[2.5][:, :2])
    np.testing.assert_allclose(gate_looked_again(by_span, None), by_span[2.5])


@pytest.mark.parametrize("size", [128, 192])
def test_a_judge_view_is_cut_at_the_size_asked_for_and_keeps_the_tops_place(size):
    """recipe/experiments/probe_backbones.py measures larger crops with the recipe's own views."""
    import random

    from PIL import Image

    from bottlecheck.training.judge import Crop, judge_view

    photo = Image.new("RGB", (400, 400), (0, 0, 0))
    photo.paste((255, 255, 255), (180, 180, 220, 220))  # a white top 40 px wide at (200, 200)
    crop = Crop(path="unused.jpg", x=200.0, y=200.0, side=40.0, label="closed")
    plain = judge_view(photo, crop, random.Random(0), train=False, size=size)
    assert plain.shape == (size, size, 3)
    # span 2.5: the top fills the middle 40% of the view, and only that
    middle, corner = plain[size // 2, size // 2], plain[size // 10, size // 10]
    assert middle.min() > 200 and corner.max() < 50
    trained = judge_view(photo, crop, random.Random(0), train=True, low_res_share=1.0, hue_share=0.0, size=size)
    assert trained.shape == (size, size, 3)
