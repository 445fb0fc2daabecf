"""Both engines run the same model and must agree on p_open."""

from __future__ import annotations

import numpy as np
import pytest

from bottlecheck.artifact import load_artifact
from bottlecheck.engines import LiteRTEngine, TensorFlowEngine, load_engine
from bottlecheck.imaging import load_image
from tests.helpers import bottle_photo, needs_tensorflow


@needs_tensorflow
def test_litert_and_tensorflow_agree_on_the_bundled_model():
    artifact = load_artifact()
    images = np.stack([load_image(bottle_photo(i % 2 == 0, seed=i)) for i in range(6)])
    rng = np.random.default_rng(0)
    images = np.concatenate([images, rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)])
    litert = LiteRTEngine(artifact).predict(images)
    tensorflow = TensorFlowEngine(artifact).predict(images)
    assert litert.shape == tensorflow.shape == (8,)
    assert np.max(np.abs(litert - tensorflow)) < 1e-3
    # Batch size must not change answers (the interpreter is resized between calls).
    single = np.array([LiteRTEngine(artifact).predict(images[i : i + 1])[0] for i in range(3)])
    assert np.max(np.abs(single - litert[:3])) < 1e-5


def test_auto_prefers_litert():
    assert load_engine(load_artifact(), "auto").name == "litert"
    with pytest.raises(ValueError):
        load_engine(load_artifact(), "onnx")
