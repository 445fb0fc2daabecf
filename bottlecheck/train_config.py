"""Training settings and their defaults: the one place both the library and ``bottlecheck train`` read them from.

Importing this module needs no TensorFlow, so the CLI can show the defaults in ``--help``. It sits
outside ``bottlecheck.training`` so that the CLI imports nothing of training until ``train`` runs;
training imports it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    data_dirs: Sequence[str]
    out: str
    base: str = "bundled"  # "bundled", "imagenet", or a model directory
    epochs: int = 8
    warmup_epochs: int = 1  # head only, at 10x the learning rate, before the backbone thaws
    batch_size: int = 32
    learning_rate: float = 1e-4
    val_fraction: float = 0.15
    patience: int = 3
    trainable_from: str | None = "blocks_9"  # None trains every layer
    input_size: int = 224
    seed: int = 0
    workers: int = 2
    version: str | None = None
    source_weights: dict[str, float] = field(default_factory=dict)
    max_steps_per_epoch: int | None = None
    data_root: str | None = None  # metadata records data directories relative to this (else by name)
