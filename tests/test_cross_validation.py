"""``bottlecheck train`` chooses how far to move the cap by cross-validation on the user's own photos: it
keeps the base's cap where the photos cannot do better, and refits where the base's cap is wrong for them."""

from __future__ import annotations

import math

import numpy as np

from bottlecheck.training.cross_validation import PULLS, choose_pull, fit_with_pull, photo_folds
from bottlecheck.training.judge import LinearCap

VIEWS = 4


def _photos(rng: np.random.Generator, photos: int, informative: int, noise: float = 1.0):
    """``photos`` photos (half open), VIEWS views each; feature ``informative`` tells open from closed."""
    is_open_photo = np.arange(photos) % 2
    photo_of_view = np.repeat(np.arange(photos), VIEWS)
    is_open = is_open_photo[photo_of_view]
    x = rng.normal(scale=noise, size=(len(is_open), 6))
    x[:, informative] += 2.0 * (2 * is_open - 1)
    return x, is_open, photo_of_view


def test_a_photos_views_share_a_fold_and_every_fold_holds_both_classes():
    photo_of_view = np.repeat(np.arange(20), VIEWS)
    is_open = (np.arange(20) % 2)[photo_of_view]
    fold = photo_folds(photo_of_view, is_open, 5)
    for photo in range(20):
        assert len(set(fold[photo_of_view == photo].tolist())) == 1
    for k in range(5):
        assert set(is_open[fold == k].tolist()) == {0, 1}


def test_a_base_cap_that_already_knows_the_users_caps_is_kept():
    """The prior reads feature 0, and so do the user's twenty photos: no refit does better on unseen folds, so
    the one that moves least (the base's cap) is chosen, and the adapted cap is the base's exactly."""
    rng = np.random.default_rng(0)
    x, is_open, photo_of_view = _photos(rng, 20, informative=0, noise=0.3)
    prior = LinearCap(np.array([3.0, 0, 0, 0, 0, 0]), 0.0)
    choice = choose_pull(x, is_open, photo_of_view, np.ones(len(is_open)), prior)
    assert math.isinf(choice.pull), choice.scores
    assert choice.scores[math.inf]["balanced_accuracy"] == 1.0
    assert fit_with_pull(x, is_open, np.ones(len(is_open)), prior, choice.pull) is prior
    assert choice.folds == 5 and choice.photos == 20


def test_a_base_cap_that_is_wrong_for_the_users_caps_is_refit_and_beats_it_on_unseen_photos():
    """The prior reads feature 0, the user's caps show in feature 1 only: the base's cap is a coin toss on
    them, and the chosen refit scores better on the folds it never saw."""
    rng = np.random.default_rng(1)
    x, is_open, photo_of_view = _photos(rng, 20, informative=1)
    prior = LinearCap(np.array([3.0, 0, 0, 0, 0, 0]), 0.0)
    choice = choose_pull(x, is_open, photo_of_view, np.ones(len(is_open)), prior)
    assert not math.isinf(choice.pull)
    assert choice.scores[choice.pull]["balanced_accuracy"] > choice.scores[math.inf]["balanced_accuracy"] + 0.2
    assert set(choice.scores) == set(PULLS)  # every candidate scored, so the output can show them all
    assert "cross-validation on the 20 training photos" in choice.describe()


def test_the_chosen_pull_is_never_worse_on_unseen_folds_than_the_base_or_a_head_only_fit():
    rng = np.random.default_rng(2)
    for informative in (0, 1, 2):
        x, is_open, photo_of_view = _photos(rng, 16, informative, noise=1.5)
        prior = LinearCap(np.array([1.0, 0.5, 0, 0, 0, 0]), 0.1)
        choice = choose_pull(x, is_open, photo_of_view, np.ones(len(is_open)), prior)
        chosen = choice.scores[choice.pull]["balanced_accuracy"]
        assert chosen >= choice.scores[math.inf]["balanced_accuracy"]
        assert chosen >= choice.scores[0.0]["balanced_accuracy"]


def test_photos_from_two_places_are_folded_by_place_so_a_cap_that_learns_one_place_loses():
    """In place A the user's labels also follow feature 1, in place B its opposite (a scene's cue, not the
    cap's); both follow feature 0, which the base's cap reads. Left out by place, a refit learns A's cue and
    fails on B: the base's cap is kept, and the choice says it was made across places."""
    rng = np.random.default_rng(3)
    xs, labels, photos, places = [], [], [], []
    for place, sign in (("A", 1.0), ("B", -1.0)):
        x, is_open, photo_of_view = _photos(rng, 16, informative=0, noise=1.0)
        x[:, 0] -= 1.0 * (2 * is_open - 1)  # feature 0 only half as telling as _photos makes it
        x[:, 1] += sign * 3.0 * (2 * is_open - 1)
        xs.append(x)
        labels.append(is_open)
        photos.append(photo_of_view + (0 if place == "A" else 100))
        places.append(np.full(len(is_open), place))
    x, is_open, photo_of_view, place_of_view = map(np.concatenate, (xs, labels, photos, places))
    prior = LinearCap(np.array([2.0, 0, 0, 0, 0, 0]), 0.0)
    choice = choose_pull(x, is_open, photo_of_view, np.ones(len(is_open)), prior, source_of_view=place_of_view)
    assert choice.scheme == "source" and choice.folds == 2
    assert math.isinf(choice.pull), choice.scores
    assert choice.scores[0.0]["balanced_accuracy"] < choice.scores[math.inf]["balanced_accuracy"] - 0.2
    assert "across the 2 data directories" in choice.describe()
    assert choice.as_metadata()["folds_are"] == "data directories"


def test_one_place_or_a_place_with_one_class_folds_by_photo():
    rng = np.random.default_rng(4)
    x, is_open, photo_of_view = _photos(rng, 20, informative=1)
    prior = LinearCap(np.zeros(6), 0.0)
    one_place = np.full(len(is_open), "A")
    weights = np.ones(len(is_open))
    assert choose_pull(x, is_open, photo_of_view, weights, prior, source_of_view=one_place).scheme == "photo"
    lopsided = np.where(is_open == 1, "A", "B")  # each place holds one class: no fold could score both
    choice = choose_pull(x, is_open, photo_of_view, np.ones(len(is_open)), prior, source_of_view=lopsided)
    assert choice.scheme == "photo" and choice.folds == 5
