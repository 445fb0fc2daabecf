"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bottlecheck.evaluation.metrics import (
    choose_threshold,
    classification_report,
    expected_calibration_error,
    fit_temperature,
    roc_auc,
)


def test_roc_auc_by_hand():
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_report_confusion_and_per_class():
    labels = np.array([0, 0, 0, 1, 1])
    p_open = np.array([0.1, 0.2, 0.7, 0.9, 0.4])
    report = classification_report(labels, p_open, 0.5)
    assert report["confusion_matrix"]["values"] == [[2, 1], [1, 1]]
    assert report["accuracy"] == 0.6
    assert report["per_class"]["open"]["precision"] == 0.5
    assert report["per_class"]["closed"]["recall"] == round(2 / 3, 4)


def test_report_precision_and_balanced_accuracy_when_the_mistakes_are_lopsided():
    """Two closed called open, one open called closed: precision and recall, accuracy and balanced accuracy
    all differ, so none can stand in for another (the example above is symmetric and could not tell)."""
    labels = np.array([0, 0, 0, 1, 1])
    report = classification_report(labels, np.array([0.1, 0.6, 0.7, 0.9, 0.4]), 0.5)
    assert report["confusion_matrix"]["values"] == [[1, 2], [1, 1]]
    assert report["per_class"]["open"] == {"precision": round(1 / 3, 4), "recall": 0.5, "f1": 0.4, "support": 2}
    assert report["per_class"]["closed"]["precision"] == 0.5
    assert report["per_class"]["closed"]["recall"] == round(1 / 3, 4)
    assert report["accuracy"] == 0.4
    assert report["balanced_accuracy"] == round((1 / 3 + 1 / 2) / 2, 4)


def test_ece_zero_when_confidence_matches_accuracy():
    # 10 predictions at confidence 0.8, 8 of them right.
    labels = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(labels, np.full(10, 0.8)) < 1e-9
    assert abs(expected_calibration_error(np.ones(10), np.full(10, 0.6)) - 0.4) < 1e-9


def test_temperature_recovers_an_overconfident_model():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(int)
    fitted = fit_temperature(labels, true_logits * 3.0)  # three times too confident
    assert abs(fitted - 3.0) < 0.15


def test_threshold_separates_shifted_scores():
    labels = np.array([0, 0, 0, 1, 1, 1])
    p_open = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.9])
    t = choose_threshold(labels, p_open)
    assert 0.2 < t <= 0.3


def test_threshold_stays_at_half_for_a_gain_within_noise():
    # 0.45 would fix one of 200 validation images: half a point, not worth moving for.
    labels = np.array([0] * 100 + [1] * 100)
    p_open = np.concatenate([np.linspace(0.0, 0.4, 100), [0.47], np.linspace(0.6, 1.0, 99)])
    assert choose_threshold(labels, p_open) == 0.5
    assert choose_threshold(labels, p_open, min_gain=0.0) == 0.47


def test_calibration_is_fitted_only_on_enough_validation_images():
    from bottlecheck.training.train import calibrate

    rng = np.random.default_rng(0)
    few = calibrate(np.array([0, 1, 1]), np.array([-9.0, 8.0, 7.0]))
    assert few == {**few, "fitted": False, "temperature": 1.0, "threshold": 0.5}
    labels = rng.integers(0, 2, 200)
    logits = (labels * 2 - 1) * 40.0 + rng.normal(0, 30, 200)  # overconfident logits
    fitted = calibrate(labels, logits)
    assert fitted["fitted"] and 0.5 <= fitted["temperature"] <= 4.0


def test_an_adapted_models_figures_say_how_far_to_trust_them():
    """``bottlecheck train`` on a two-stage base writes the validation accuracy's 95% interval (Wilson) and that
    its photos come from the training scenes (issue 24: adapted on one scene, 0.24 on the same bottle elsewhere)."""
    from bottlecheck.training.adapt_judge import how_far_to_trust, wilson_interval

    low, high = wilson_interval(9, 10)
    assert (round(low, 3), round(high, 3)) == (0.596, 0.982)  # the textbook value for 9 of 10
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: nothing known
    narrow, wide = (
        how_far_to_trust({"count": 200, "accuracy": 0.9}, ["x"]),
        how_far_to_trust({"count": 20, "accuracy": 0.9}, ["line-photos"]),
    )
    assert narrow["accuracy_95_interval"][0] > wide["accuracy_95_interval"][0]  # more photos, a narrower interval
    assert wide["same_scenes_as_training"] and "line-photos" in wide["note"] and "other scenes" in wide["note"]


def test_ece_bins_are_a_twentieth_wide_from_0_5_at_the_default_threshold():
    """Confidences 0.52 (right) and 0.58 (wrong) fall in two bins: |1 - 0.52| / 2 + |0 - 0.58| / 2 = 0.53.

    In one bin of 0.5-0.6 (ten bins over 0..1) they would average out to |0.5 - 0.55| = 0.05.
    """
    labels = np.array([1, 1])
    p_open = np.array([0.52, 0.42])  # the second says closed at 0.58 and is wrong
    assert expected_calibration_error(labels, p_open) == pytest.approx(0.53)
