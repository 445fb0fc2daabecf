"""The labelled photos split into training and validation: shared by ``train`` (a one-stage model)
and ``adapt_judge`` (a two-stage base's judge refitted), so that neither imports the other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bottlecheck.evaluation.datasets import Example, scan_data_dirs, stratified_split
from bottlecheck.labels import LABELS
from bottlecheck.train_config import TrainConfig

# Fewer validation images than this per class and a fitted temperature or threshold follows
# noise: 10 open + 10 closed photos of a new bottle type left 3 for validation and gave a
# temperature of 0.05, which turned every answer into 0.00 or 1.00.
MIN_CALIBRATION_PER_CLASS = 10


def split_training_data(config: TrainConfig) -> tuple[list[Example], list[Example]]:
    """The labelled photos of ``config.data_dirs`` (``none/`` is for evaluation only), split for validation."""
    examples = [e for e in scan_data_dirs(config.data_dirs) if e.label_name in LABELS]
    train_set, val_set = stratified_split(examples, config.val_fraction, config.seed)
    if not val_set:
        raise ValueError("too few images for a validation split: need at least 3 per class")
    return train_set, val_set


def describe_split(train_set: Sequence[Example], val_set: Sequence[Example]) -> str:
    return (
        f"data: {len(train_set)} train, {len(val_set)} validation "
        f"({dict(Counter(LABELS[e.label] for e in train_set))} train)"
    )
