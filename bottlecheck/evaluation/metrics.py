"""Classification metrics computed from labels and ``p_open``: plain NumPy, no TensorFlow.

Used by ``bottlecheck evaluate`` and by training to report validation results and
to choose the temperature and the decision threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bottlecheck.labels import LABELS


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties count half."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    # average ranks over ties
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def expected_calibration_error(labels: np.ndarray, p_open: np.ndarray, threshold: float = 0.5, bins: int = 10) -> float:
    """ECE of the reported confidence (probability of the predicted class), equal-width bins."""
    labels = np.asarray(labels, dtype=int)
    p_open = np.asarray(p_open, dtype=float)
    predicted = (p_open >= threshold).astype(int)
    confidence = np.where(predicted == 1, p_open, 1 - p_open)
    correct = (predicted == labels).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1) if threshold == 0.5 else np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=False):
        mask = (
            (confidence > low) & (confidence <= high) if low > edges[0] else (confidence >= low) & (confidence <= high)
        )
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def classification_report(labels: np.ndarray, p_open: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, confusion matrix, ROC AUC and ECE."""
    labels = np.asarray(labels, dtype=int)
    p_open = np.asarray(p_open, dtype=float)
    predicted = (p_open >= threshold).astype(int)
    matrix = [[int(((labels == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]
    per_class, recalls = {}, []
    for index, name in enumerate(LABELS):
        tp = matrix[index][index]
        fp = matrix[1 - index][index]
        fn = matrix[index][1 - index]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        recalls.append(recall)
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": int((labels == index).sum()),
        }
    auc = roc_auc(labels, p_open)
    return {
        "count": int(len(labels)),
        "threshold": round(float(threshold), 4),
        "accuracy": round(float((predicted == labels).mean()) if len(labels) else 0.0, 4),
        "balanced_accuracy": round(float(np.mean(recalls)), 4),  # of the recalls, not of their roundings
        "per_class": per_class,
        "confusion_matrix": {
            "rows": "true " + "/".join(LABELS),
            "columns": "predicted " + "/".join(LABELS),
            "values": matrix,
        },
        "roc_auc": None if auc is None else round(auc, 4),
        "ece": round(expected_calibration_error(labels, p_open, threshold), 4),
    }


def tempered(p: Any, temperature: float) -> Any:
    """``sigmoid(logit(p) / temperature)``: a probability under a temperature, as :func:`fit_temperature` fits
    one on its logit (``p`` a number or an array; clipped off 0 and 1 so that its logit is finite)."""
    return 1.0 / (1.0 + np.exp(-logit(p) / temperature))


def log_loss(is_open: Any, p_open: Any) -> float:
    """The mean negative log-likelihood of 0/1 answers ``is_open`` under ``p_open`` (clipped 1e-6 off 0 and 1)."""
    y = np.asarray(is_open, dtype=float)
    p = np.clip(np.asarray(p_open, dtype=float), 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def logit(p: Any) -> np.ndarray:
    """``log(p / (1 - p))``, ``p`` clipped as :func:`tempered` clips it."""
    clipped = np.clip(np.asarray(p, dtype=float), 1e-7, 1.0 - 1e-7)
    return np.log(clipped / (1.0 - clipped))


#: The temperatures :func:`fit_temperature` searches: wide enough for a whole-photo model's
#: logit (training clips it to its own range after) and for a judge's or the cap's logits.
TEMPERATURE_SEARCH = (0.05, 20.0)


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """The temperature that minimises the validation negative log-likelihood: the one fitter.

    ``logits`` of one column (a whole-photo model's, the cap judge's) are sigmoid(logits / t)
    and ``labels`` 0 or 1; logits of several columns (a judge's closed, open, none) are
    softmax(logits / t) and ``labels`` the column of each example's class. Golden-section
    search on log t within :data:`TEMPERATURE_SEARCH` (the likelihood has one minimum in it).
    """
    logits = np.asarray(logits, dtype=float)
    if logits.ndim == 1:
        binary = np.asarray(labels, dtype=float)

        def nll(t: float) -> float:
            z = logits / t
            return float(np.mean(np.logaddexp(0, z) - binary * z))

    else:
        classes = np.asarray(labels, dtype=int)
        rows = np.arange(len(classes))

        def nll(t: float) -> float:
            z = logits / t
            z = z - z.max(axis=1, keepdims=True)
            return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, classes]))

    low, high = np.log(TEMPERATURE_SEARCH[0]), np.log(TEMPERATURE_SEARCH[1])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        if nll(np.exp(a)) < nll(np.exp(b)):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def balanced_accuracy(labels: np.ndarray, p_open: np.ndarray, threshold: float = 0.5) -> float:
    """The mean of the closed and open recalls, open meaning ``p_open >= threshold`` (a class absent: recall 0)."""
    labels = np.asarray(labels, dtype=int)
    predicted = np.asarray(p_open, dtype=float) >= threshold
    return float(
        np.mean([((predicted == bool(c)) & (labels == c)).sum() / max(1, (labels == c).sum()) for c in (0, 1)])
    )


def choose_threshold(labels: np.ndarray, p_open: np.ndarray, min_gain: float = 0.01) -> float:
    """The decision threshold for calibrated ``p_open``: 0.5 unless validation clearly says otherwise.

    After temperature scaling, 0.5 is the right cut for equal costs and balanced classes. A
    different cut is taken only when it raises validation balanced accuracy by at least
    ``min_gain`` (one point by default); smaller gains on a few hundred images are noise
    that would not carry to new photos. Among equally good cuts, the one nearest 0.5 wins.
    """
    labels = np.asarray(labels, dtype=int)
    p_open = np.asarray(p_open, dtype=float)
    at_half = balanced_accuracy(labels, p_open, 0.5)
    best, best_key = 0.5, (at_half, 0.0)
    for t in np.unique(np.round(p_open, 4)):
        key = (balanced_accuracy(labels, p_open, float(t)), -abs(float(t) - 0.5))
        if key > best_key:
            best, best_key = float(t), key
    return best if best_key[0] >= at_half + min_gain else 0.5


def reports_by_source(
    labels: np.ndarray, p_open: np.ndarray, sources: Sequence[str], threshold: float
) -> dict[str, dict[str, Any]]:
    """:func:`classification_report` for each source separately (a source is a data directory's name)."""
    sources_array = np.asarray(sources)
    return {
        source: classification_report(labels[sources_array == source], p_open[sources_array == source], threshold)
        for source in sorted(set(sources))
    }
