"""Shared fixtures: small images made on the fly (no binaries committed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import bottle_photo

# Keep TensorFlow and LiteRT quiet in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Two JPEGs, one PNG and a zero-byte .jpg."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_open.jpg").write_bytes(bottle_photo(True, seed=1))
    (folder / "b_closed.jpg").write_bytes(bottle_photo(False, seed=2))
    (folder / "c_closed.png").write_bytes(bottle_photo(False, seed=3, fmt="PNG"))
    (folder / "d_empty.jpg").write_bytes(b"")
    return folder


@pytest.fixture(scope="session")
def classifier():
    from bottlecheck import Classifier

    return Classifier.load(engine="litert")
