"""A third kind of model, registered from outside the package, works everywhere with no edit to it (issue 21).

The toy kind below is all it took: a :class:`Classifier` subclass (decode, run, answer, its own
columns and statuses) and one :func:`register_kind` call. The pipeline, the CLI's writers and the
HTTP server answer with it as they do with the package's own kinds, because none of them asks
which kind of model it holds.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bottlecheck import Classifier, Prediction
from bottlecheck.artifact import ModelArtifact, ModelError, write_metadata
from bottlecheck.cli.main import main
from bottlecheck.imaging import ImageSource, decode_image
from bottlecheck.kinds import register_kind, registered_kinds, unregister_kind
from bottlecheck.labels import CLOSED, OPEN, UNKNOWN

TOY = "toy-brightness"
PACKAGE = Path(__file__).resolve().parent.parent / "bottlecheck"


class BrightnessClassifier(Classifier):
    """Open when the photo is bright, closed when dark, unknown in between; no ``p_open`` column."""

    columns = ("path", "status", "confidence", "error")
    statuses = (OPEN, CLOSED, UNKNOWN)

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact, engine="auto", threshold=None, threads=None):
        return cls(artifact, threshold)

    @property
    def engine_name(self) -> str:
        return "numpy"

    @property
    def preferred_batch(self) -> int:
        return 3

    def preprocess(self, source: ImageSource) -> float:
        return float(np.asarray(decode_image(source, max_side=32, max_pixels=self.max_pixels)).mean() / 255)

    def infer(self, prepared: list) -> list[float]:
        return [float(value) for value in prepared]

    def prediction_from(self, name: str, result) -> Prediction:
        if 0.4 < result < 0.6:
            return Prediction(name, UNKNOWN, 1.0 - 2 * abs(result - 0.5))
        status, confidence = self.decide(result)
        return Prediction(name, status, confidence, result)

    def replica(self):
        return copy.copy(self)


@pytest.fixture
def toy_model(tmp_path):
    register_kind(TOY, BrightnessClassifier.from_artifact)
    directory = tmp_path / "toy-model"
    directory.mkdir()
    write_metadata(directory, {"kind": TOY, "input": {"size": 32}, "threshold": 0.5, "version": "toy-1"})
    yield directory
    unregister_kind(TOY)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, level in (("a-bright.png", 240), ("b-dark.png", 15), ("c-grey.png", 128)):
        Image.new("RGB", (40, 30), (level,) * 3).save(folder / name)
    (folder / "d-broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


EXPECTED = ["open", "closed", "unknown", "error"]


def test_the_registry_loads_a_model_of_the_toy_kind_and_the_pipeline_answers_in_order(toy_model, photos):
    classifier = Classifier.load(toy_model)
    assert isinstance(classifier, BrightnessClassifier) and TOY in registered_kinds()
    paths = [str(p) for p in sorted(photos.iterdir())]
    for workers, batch in ((1, 2), (2, 1), (2, 3)):  # decoding ahead, and lanes of copies
        rows = list(classifier.classify_paths(paths * 3, batch_size=batch, workers=workers))
        assert [Path(r.path).name for r in rows] == [Path(p).name for p in paths * 3]
        assert [r.status for r in rows] == EXPECTED * 3, (workers, batch)


def test_the_cli_writes_the_toy_kinds_own_columns_in_every_format(toy_model, photos):
    def run(*args):
        return CliRunner().invoke(main, ["classify", str(photos), "--model", str(toy_model), "-q", *args])

    as_csv = run("-f", "csv")
    assert as_csv.exit_code == 1, as_csv.output  # 1: some input could not be read (the broken one)
    records = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert records[0] == list(BrightnessClassifier.columns)
    assert [r[1] for r in records[1:]] == EXPECTED
    as_json = json.loads(run("-f", "json").stdout)
    assert [list(row) for row in as_json] == [list(BrightnessClassifier.columns)] * 4
    table = run("-f", "table").stdout.splitlines()
    assert table[0].split() == ["STATUS", "CONF", "P_OPEN", "PATH"]
    assert [line.split()[0] for line in table[1:]] == EXPECTED
    summary = CliRunner().invoke(main, ["classify", str(photos), "--model", str(toy_model), "-f", "jsonl"])
    assert re.search(r"1 open, 1 closed, 1 unknown, 1 error", summary.stderr)  # its statuses are counted
    info = json.loads(CliRunner().invoke(main, ["info", "--model", str(toy_model), "--json"]).stdout)
    assert info["kind"] == TOY and info["engine"] == "numpy"


def test_the_server_answers_with_the_toy_kind(toy_model):
    from bottlecheck.server import create_app

    client = create_app({"MODEL": str(toy_model), "MODEL_COPIES": 2}).test_client()

    def post(content: bytes):
        return client.post(
            "/classify", data={"file": (io.BytesIO(content), "x.png")}, content_type="multipart/form-data"
        )

    bright = io.BytesIO()
    Image.new("RGB", (20, 20), (250, 250, 250)).save(bright, "PNG")
    answer = post(bright.getvalue())
    assert answer.status_code == 200
    assert answer.get_json() == {
        "Bottle_Status": "open",
        "Confidence": 0.9804,
        "p_open": 0.9804,
        "model_version": "toy-1",
    }
    assert post(bright.getvalue()).get_json() == answer.get_json()  # from the cache: the same body
    refused = post(b"not an image")
    assert refused.status_code == 400 and refused.get_json()["error"] == "Unable to process image"


def test_a_kind_nobody_registered_is_refused_with_the_kinds_known(tmp_path):
    directory = tmp_path / "future-model"
    directory.mkdir()
    write_metadata(directory, {"kind": "video-aware", "input": {"size": 32}})
    with pytest.raises(ModelError, match=r"'video-aware' is not one this bottlecheck knows \(.*tops.*whole-photo"):
        Classifier.load(directory)
    result = CliRunner().invoke(main, ["info", "--model", str(directory)])
    assert result.exit_code == 2 and "video-aware" in result.stderr


def test_no_edge_asks_which_kind_of_model_answered():
    """``is_two_stage`` and ``"bottles" in`` appear only in the modules of the kinds themselves."""
    kinds = {PACKAGE / "classifier.py", PACKAGE / "tops_classifier.py"}
    asking = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path not in kinds
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "is_two_stage" in line or '"bottles" in' in line
    ]
    assert asking == []
