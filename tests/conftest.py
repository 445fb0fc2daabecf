"""Shared fixtures: small images made on the fly (no binaries committed)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Keep TensorFlow and LiteRT quiet in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def bottle_photo(open_: bool, size=(180, 320), seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A crude synthetic bottle: body, neck and (when closed) a bright cap on top."""
    rng = np.random.default_rng(seed)
    background = tuple(int(v) for v in rng.integers(60, 220, 3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    glass = (90, 50, 10)
    draw.rectangle([w * 0.3, h * 0.45, w * 0.7, h * 0.95], fill=glass)
    draw.polygon([(w * 0.3, h * 0.45), (w * 0.44, h * 0.25), (w * 0.56, h * 0.25), (w * 0.7, h * 0.45)], fill=glass)
    draw.rectangle([w * 0.44, h * 0.1, w * 0.56, h * 0.25], fill=glass)
    if open_:
        draw.ellipse([w * 0.44, h * 0.08, w * 0.56, h * 0.12], outline=(230, 230, 230), width=2)
    else:
        draw.rectangle([w * 0.42, h * 0.06, w * 0.58, h * 0.12], fill=(220, 180, 30))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


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


@pytest.fixture
def labelled_dir(tmp_path: Path) -> Path:
    """A tiny ImageFolder data set: DATA/{open,closed}, six images each."""
    root = tmp_path / "labelled"
    for label in ("open", "closed"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            data = bottle_photo(label == "open", size=(120 + 10 * i, 220), seed=i + (100 if label == "open" else 0))
            (root / label / f"{label}_{i}.jpg").write_bytes(data)
    return root


@pytest.fixture(scope="session")
def classifier():
    from bottlecheck import Classifier

    return Classifier.load(engine="litert")
