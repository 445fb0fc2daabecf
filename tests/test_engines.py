"""Both engines run the same model and must agree on p_open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bottlecheck.artifact import load_artifact
from bottlecheck.engines import LiteRTEngine, TensorFlowEngine, load_engine
from bottlecheck.imaging import load_image
from tests.helpers import needs_tensorflow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@needs_tensorflow
def test_litert_and_tensorflow_agree_on_the_bundled_model():
    """Every stage of the shipped model: the exported LiteRT file against its Keras source."""
    artifact = load_artifact()
    rng = np.random.default_rng(0)
    for stage in sorted(artifact.stages) or [None]:
        size = int((artifact.stage(stage) if stage else artifact.metadata)["input"]["size"])
        photos = [load_image(EXAMPLES / name, size) for name in sorted(p.name for p in EXAMPLES.glob("*.jpg"))]
        images = np.concatenate([np.stack(photos), rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)])
        litert = LiteRTEngine(artifact, stage=stage).run(images)
        tensorflow = TensorFlowEngine(artifact, stage=stage).run(images)
        assert litert.shape == tensorflow.shape and len(litert) == len(images)
        assert np.max(np.abs(litert - tensorflow)) < 1e-3, stage
        # Batch size must not change answers (the interpreter is resized between calls).
        single = np.concatenate([LiteRTEngine(artifact, stage=stage).run(images[i : i + 1]) for i in range(3)])
        assert np.max(np.abs(single - litert[:3])) < 1e-5, stage


def test_auto_prefers_litert():
    artifact = load_artifact()
    stage = min(artifact.stages) if artifact.stages else None
    assert load_engine(artifact, "auto", stage=stage).name == "litert"
    with pytest.raises(ValueError):
        load_engine(load_artifact(), "onnx")
