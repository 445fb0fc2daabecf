"""Training settings: :class:`TrainConfig` lives in :mod:`bottlecheck.train_config`, outside training, so
that the CLI reads its defaults without importing training (training depends on the library, never
the reverse)."""

from __future__ import annotations

from bottlecheck.train_config import TrainConfig

__all__ = ["TrainConfig"]
