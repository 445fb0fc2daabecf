"""Shared fixtures: the shipped examples and images made on the fly (no other binaries committed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Keep TensorFlow and LiteRT quiet in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Two JPEGs, one PNG and a zero-byte .jpg: the shipped examples (held-out renders)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(EXAMPLES / "rendered_open_1.jpg", folder / "a_open.jpg")
    shutil.copy(EXAMPLES / "rendered_closed_1.jpg", folder / "b_closed.jpg")
    Image.open(EXAMPLES / "rendered_closed_2.jpg").save(folder / "c_closed.png")
    (folder / "d_empty.jpg").write_bytes(b"")
    return folder


@pytest.fixture(scope="session")
def classifier():
    from bottlecheck import Classifier

    return Classifier.load(engine="litert")
