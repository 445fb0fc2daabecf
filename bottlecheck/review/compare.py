"""Old model against new on the reviewed photos, and whether the results came from the loaded model.

Both exist so that a person is told, not left to guess: whether a retrained model answers the
photos they labelled better than the one that made the results (on the photos it trained on,
and on the held-back ones it never saw, which is the honest figure), and whether the results
file was written by another model than the one loaded (its boxes and confidences would then
not be this model's, and a comparison against it would compare the wrong thing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from bottlecheck.review.queue import Item

#: Photos re-classified to tell whether the results are the loaded model's.
CHECKED = 3
#: Confidence may differ this much (the files round to 4 decimals; engines differ a little).
TOLERANCE = 0.02


class Answers(Protocol):
    """What is needed of a classifier: answers for paths, in order (:meth:`Classifier.classify_paths`)."""

    def classify_paths(self, paths: Iterable[str]) -> Iterable[Any]: ...


def is_right(label: str | None, status: str | None) -> bool | None:
    """Whether an answer matches a person's label (``none``: the model says ``unknown``); None: no label."""
    if label == "none":
        return status == "unknown"
    if label in ("open", "closed"):
        return status == label
    return None


def check_model(items: list[Item], classifier: Answers, version: str, count: int = CHECKED) -> str | None:
    """A sentence when the results were not made by ``classifier`` (another model version), else None.

    A results row does not name its model, so the first ``count`` photos still on disk are
    classified again: a different answer, or a confidence more than :data:`TOLERANCE` away,
    says the file came from another model (or another threshold).
    """
    present = [item for item in items if item.file is not None and item.status in ("open", "closed", "unknown")]
    checked = present[:count]
    if not checked:
        return None
    differ = []
    answers = list(classifier.classify_paths([item.file for item in checked if item.file is not None]))
    for item, answer in zip(checked, answers, strict=True):
        same = answer.status == item.status and (
            item.confidence is None
            or answer.confidence is None
            or abs(float(answer.confidence) - item.confidence) <= TOLERANCE
        )
        if not same:
            was = f"{item.status} {item.confidence:.2f}" if item.confidence is not None else item.status
            now = f"{answer.status} {answer.confidence:.2f}" if answer.confidence is not None else answer.status
            differ.append(f"{item.path}: results say {was}, the model {now}")
    if not differ:
        return None
    return (
        f"These results were not made by the loaded model ({version}): {len(differ)} of {len(checked)} photos "
        f"classified again got another answer ({'; '.join(differ)}). Boxes and confidences shown are the results', "
        "not this model's."
    )


def new_answers(items: list[Item], paths: Iterable[str], classifier: Answers) -> dict[str, dict[str, Any]]:
    """The ``classifier``'s answer (status, confidence) for each of ``paths`` whose photo is on disk."""
    wanted = set(paths)
    chosen = [item for item in items if item.path in wanted and item.file is not None]
    answers = classifier.classify_paths([item.file for item in chosen if item.file is not None])
    return {
        item.path: {"status": answer.status, "confidence": answer.confidence}
        for item, answer in zip(chosen, answers, strict=True)
    }


def summary(
    items: list[Item],
    labels: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    heldout: Iterable[str],
) -> dict[str, dict[str, int]]:
    """Photos right before (the results) and after (``new``), for the trained-on and the held-back labelled photos."""
    held = set(heldout)
    counts = {group: {"photos": 0, "old_right": 0, "new_right": 0} for group in ("reviewed", "heldout")}
    for item in items:
        label = (labels.get(item.path) or {}).get("label")
        if item.path not in new or is_right(label, None) is None:
            continue
        group = counts["heldout" if item.path in held else "reviewed"]
        group["photos"] += 1
        group["old_right"] += bool(is_right(label, item.status))
        group["new_right"] += bool(is_right(label, new[item.path]["status"]))
    return counts
