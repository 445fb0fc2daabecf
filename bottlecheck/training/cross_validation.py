"""How far ``bottlecheck train`` moves a cap judge's cap: chosen by cross-validation on the user's own photos.

Twenty photos of one bottle can teach the cap a new cap, or teach it the table they stand on. A
fixed pull towards the base's cap (L2 10, tops 3.0-3.3) was chosen on one source; on
another it may move too far (worse than the base) or not far enough (worse than a cap fitted on
the user's photos alone, the head-only fit). So each candidate, from the base's cap kept as it is
to a cap fitted from zero, is fitted on all but one fold of the user's photos and scored on the
fold it never saw; the best mean balanced accuracy wins, and on a tie the candidate that moves
least. A photo's views stay in one fold: a view of a photo trained on says nothing of new photos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bottlecheck.evaluation.metrics import balanced_accuracy, log_loss
from bottlecheck.training.judge import LinearCap, fit_linear_cap

#: The pulls towards the base's cap to choose among, least moved first: ``inf`` keeps the base's cap,
#: ``0`` fits one from zero on the user's photos (the head-only fit, a light L2 as the recipe's caps).
PULLS: tuple[float, ...] = (math.inf, 100.0, 10.0, 1.0, 0.0)
#: The L2 of the fit from zero (towards zero, not the base).
FROM_ZERO_L2 = 1e-2
#: Most folds: five, or fewer when a class has fewer photos (each fold must hold both classes).
MAX_FOLDS = 5


def pull_name(pull: float) -> str:
    if math.isinf(pull):
        return "the base's cap kept"
    if pull == 0:
        return "a cap fitted from zero (head only)"
    return f"refit, pulled towards the base's cap at L2 {pull:g}"


def fit_with_pull(
    features: np.ndarray, is_open: np.ndarray, weights: np.ndarray, prior: LinearCap, pull: float
) -> LinearCap:
    """The cap ``pull`` gives: the prior itself, a fit from zero, or a fit pulled towards the prior."""
    if math.isinf(pull):
        return prior
    if pull == 0:
        return fit_linear_cap(features, is_open, weights, FROM_ZERO_L2)
    return fit_linear_cap(features, is_open, weights, pull, prior=prior)


def photo_folds(photo_of_view: np.ndarray, is_open: np.ndarray, folds: int) -> np.ndarray:
    """Each view's fold: photos of each class dealt round the folds in turn, a photo's views together."""
    fold_of_photo: dict[int, int] = {}
    for label in (0, 1):
        photos = sorted(set(photo_of_view[is_open == label].tolist()) - set(fold_of_photo))
        for rank, photo in enumerate(photos):
            fold_of_photo[photo] = rank % folds
    return np.array([fold_of_photo[p] for p in photo_of_view.tolist()])


@dataclass
class PullChoice:
    """The pull chosen, every candidate's cross-validated scores, and the folds they came from."""

    pull: float
    scores: dict[float, dict[str, float]]
    folds: int
    photos: int
    scheme: str = "photo"  # "photo": folds of photos; "source": one fold per data directory

    def describe(self) -> str:
        listed = "; ".join(f"{pull_name(pull)} {score['balanced_accuracy']:.3f}" for pull, score in self.scores.items())
        folds = (
            f"{self.folds}-fold cross-validation on the {self.photos} training photos"
            if self.scheme == "photo"
            else f"cross-validation across the {self.folds} data directories, each left out in turn"
        )
        unseen = "photos" if self.scheme == "photo" else "directories"
        return f"chose {pull_name(self.pull)} by {folds} (balanced accuracy of tops on {unseen} no fit saw: {listed})"

    def as_metadata(self) -> dict:
        return {
            "chosen": pull_name(self.pull),
            "folds": self.folds,
            "folds_are": "photos" if self.scheme == "photo" else "data directories",
            "photos": self.photos,
            "balanced_accuracy": {pull_name(p): round(s["balanced_accuracy"], 4) for p, s in self.scores.items()},
            "log_loss": {pull_name(p): round(s["log_loss"], 4) for p, s in self.scores.items()},
        }


def choose_pull(
    features: np.ndarray,
    is_open: np.ndarray,
    photo_of_view: np.ndarray,
    weights: np.ndarray,
    prior: LinearCap,
    pulls: tuple[float, ...] = PULLS,
    source_of_view: np.ndarray | None = None,
) -> PullChoice:
    """The pull whose caps did best on the photos they never saw (:data:`PULLS`, least moved first on a tie).

    ``features`` and ``is_open`` are the training views (a top's views in a row), ``photo_of_view``
    the photo each came from, ``weights`` their weights in the fit. With ``source_of_view`` (each
    view's data directory) and two or more sources that each hold both classes, each fold is one
    source: the choice is then made on places the fit never saw. Folds of one scene's photos
    cannot see that a cap learned the scene (a refit that wins them lost on another scene of the
    same bottles: the model card), so photos from two places make a better choice than from one.
    """
    by_source = _source_folds(source_of_view, is_open)
    if by_source is not None:
        fold, folds, scheme = by_source, int(by_source.max()) + 1, "source"
    else:
        per_class = [len(set(photo_of_view[is_open == label].tolist())) for label in (0, 1)]
        folds = max(2, min(MAX_FOLDS, *per_class))
        fold, scheme = photo_folds(photo_of_view, is_open, folds), "photo"
    scores: dict[float, dict[str, float]] = {}
    for pull in pulls:
        accuracy, loss = [], []
        for k in range(folds):
            train, held = fold != k, fold == k
            if not held.any() or len(set(is_open[train].tolist())) < 2:
                continue
            cap = fit_with_pull(features[train], is_open[train], weights[train], prior, pull)
            p_open = np.clip(1 / (1 + np.exp(-cap.logits(features[held]))), 1e-6, 1 - 1e-6)
            accuracy.append(balanced_accuracy(is_open[held], p_open))  # a held fold holds both classes
            loss.append(log_loss(is_open[held], p_open))
        scores[pull] = {"balanced_accuracy": float(np.mean(accuracy)), "log_loss": float(np.mean(loss))}
    best = max(scores.values(), key=lambda s: s["balanced_accuracy"])["balanced_accuracy"]
    chosen = next(pull for pull in pulls if scores[pull]["balanced_accuracy"] >= best - 1e-9)
    return PullChoice(chosen, scores, folds, len(set(photo_of_view.tolist())), scheme)


def _source_folds(source_of_view: np.ndarray | None, is_open: np.ndarray) -> np.ndarray | None:
    """One fold per source, when at least two sources each hold both classes (else None: fold by photo)."""
    if source_of_view is None:
        return None
    sources = sorted(set(source_of_view.tolist()))
    whole = [s for s in sources if len(set(is_open[source_of_view == s].tolist())) == 2]
    if len(whole) < 2 or len(whole) != len(sources):
        return None
    index = {s: k for k, s in enumerate(sources)}
    return np.array([index[s] for s in source_of_view.tolist()])
