"""train and evaluate end to end on a tiny generated data set; the artefact loads in both engines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bottlecheck.cli.main import main
from tests.helpers import bottle_photo, needs_tensorflow

# Every test here trains a model first: TensorFlow or nothing, and slow (`-m 'not slow'` leaves it out).
pytestmark = [needs_tensorflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for label in ("open", "closed"):
        (root / label).mkdir()
        for i in range(6):
            data = bottle_photo(label == "open", size=(120 + 10 * i, 220), seed=i + (100 if label == "open" else 0))
            (root / label / f"{i}.jpg").write_bytes(data)
    out = tmp_path_factory.mktemp("model") / "m"
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(root),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--max-steps",
            "2",
            "--val-fraction",
            "0.34",
            "--version",
            "test-1",
            "--base",
            "imagenet",  # a one-stage model from ImageNet (the bundled model is two-stage)
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return root, out, result.output


def test_train_writes_a_complete_artefact(trained):
    _, out, log = trained
    assert "epoch 1/3 (head)" in log and "validation (4 images): accuracy" in log  # a warm-up epoch from ImageNet
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["version"] == "test-1"
    assert 0 <= metadata["threshold"] <= 1
    assert metadata["metrics"]["validation"]["count"] == 4
    # 4 validation images: too few to fit a temperature or a threshold, and the model says so
    assert metadata["calibration"]["fitted"] is False and metadata["output"]["temperature"] == 1.0
    assert metadata["threshold"] == 0.5 and "fewer than 10" in log
    assert (out / "model.tflite").stat().st_size > 1_000_000


def test_artefact_loads_in_both_engines_and_they_agree(trained):
    from bottlecheck.artifact import load_artifact
    from bottlecheck.engines import LiteRTEngine, TensorFlowEngine
    from bottlecheck.imaging import load_image

    root, out, _ = trained
    artifact = load_artifact(out)
    images = np.stack([load_image(p) for p in sorted(root.glob("*/*.jpg"))])
    diff = np.abs(LiteRTEngine(artifact).predict(images) - TensorFlowEngine(artifact).predict(images))
    assert diff.max() < 1e-3
    info = json.loads(CliRunner().invoke(main, ["info", "--model", str(out), "--json"]).output)
    assert info["model_version"] == "test-1"


def test_the_exported_model_applies_the_fitted_temperature(trained):
    import keras

    from bottlecheck.artifact import load_artifact
    from bottlecheck.engines import LiteRTEngine
    from bottlecheck.imaging import load_image
    from bottlecheck.training.model import logit_model

    root, out, _ = trained
    artifact = load_artifact(out)
    temperature = artifact.metadata["output"]["temperature"]
    images = np.stack([load_image(p) for p in sorted(root.glob("*/*.jpg"))]).astype(np.float32)
    logits = logit_model(keras.models.load_model(artifact.file("keras"), compile=False)).predict(images, verbose=0)
    expected = 1 / (1 + np.exp(-logits.reshape(-1) / temperature))
    assert np.max(np.abs(LiteRTEngine(artifact).predict(images) - expected)) < 1e-3
    if abs(temperature - 1.0) > 0.05:  # a fitted temperature that differs from 1 changes the answers
        assert np.max(np.abs(expected - 1 / (1 + np.exp(-logits.reshape(-1))))) > 1e-3


def test_evaluate_json_and_html_report(trained, tmp_path):
    root, out, _ = trained
    report_path = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["evaluate", str(root), "--model", str(out), "-f", "json", "--report", str(report_path), "-q"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    report = json.loads(result.output[result.output.index("{") :])
    assert report["count"] == 12
    matrix = report["confusion_matrix"]["values"]
    assert sum(map(sum, matrix)) == 12 and matrix[0][0] + matrix[0][1] == 6
    assert report["accuracy"] == round((matrix[0][0] + matrix[1][1]) / 12, 4)
    page = report_path.read_text()
    wrong = matrix[0][1] + matrix[1][0]
    assert page.count("<figure>") == wrong and "Misclassified" in page
    table = CliRunner().invoke(main, ["evaluate", str(root), "--model", str(out), "-q", "--record", "tiny"]).output
    assert "confusion" in table and "ECE" in table
    recorded = json.loads((out / "metadata.json").read_text())["metrics"]["tiny"]
    assert recorded["count"] == 12 and recorded["confusion_matrix"]["values"] == matrix
