"""Both engines run the same model and must agree on p_open; engines size themselves to the CPUs they may use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bottlecheck import engines
from bottlecheck.artifact import load_artifact
from bottlecheck.engines import LiteRTEngine, TensorFlowEngine, cgroup_cpu_limit, load_engine, usable_cpus
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


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, docker --cpus 1.5
        ({"cpu.max": "max 100000\n"}, None),  # no limit
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # not Linux, or no cgroup mounted
    ],
)
def test_a_containers_cpu_limit_is_read_from_its_cgroup(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_one_model_copy_per_cpu_means_per_cpu_of_the_limit_not_of_the_node(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU
    monkeypatch.setattr(engines, "CGROUP_ROOT", tmp_path)
    assert usable_cpus() == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus() == (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
