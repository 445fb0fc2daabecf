"""Images and checks the tests share: made on the fly, no binaries committed."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Tests that need TensorFlow (the reference engine, training) say so one by one, so the
# rest of their module still runs on a LiteRT-only install.
needs_tensorflow = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow: pip install '.[train]'"
)


#: The bundled model's directory, and the example photos beside it.
MODEL = Path(__file__).resolve().parent.parent / "model"
EXAMPLES = MODEL.parent / "examples"


def bundled_model_with(directory: Path, judge: dict, decision: dict | None = None) -> Path:
    """A copy of the bundled model in ``directory``: its judge's metadata with ``judge``'s keys set (a value of
    None removes the key), its decision's with ``decision``'s."""
    shutil.copytree(MODEL, directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    for key, value in judge.items():
        if value is None:
            metadata["stages"]["judge"].pop(key, None)
        else:
            metadata["stages"]["judge"][key] = value
    metadata["decision"].update(decision or {})
    (directory / "metadata.json").write_text(json.dumps(metadata))
    return directory


def one_candidate_answer(classifier, row: np.ndarray) -> dict:
    """The answer to the first example photo with one candidate whose judge row is ``row``, after the model's looks."""
    photo = classifier.preprocess(str(EXAMPLES / "rendered_open_1.jpg"))
    placed = [(100.0, 100.0, 30.0, 0.9)]
    return classifier.answer_with(photo, placed, classifier.look_again([photo], [placed], [row]))


def assert_counted(answer: dict, counted_at: float | None, p_open: float) -> None:
    """``answer`` counts its one candidate at p(top) ``counted_at`` with the cap's own ``p_open`` (None: unknown)."""
    if counted_at is None:
        assert answer["status"] == "unknown" and answer["tops"] == []
        return
    (top,) = answer["tops"]
    assert top["p_top"] == pytest.approx(counted_at)
    assert top["p_open"] == pytest.approx(p_open)  # the cap's answer is untouched
    assert answer["status"] == ("open" if p_open >= 0.5 else "closed")


def bundled_fields() -> list[str]:
    """The columns of a classify row with the bundled model (a two-stage model adds the tops)."""
    from bottlecheck import Classifier

    return list(Classifier.load().columns)


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


def phone_photo(seed: int, size: tuple[int, int] = (1080, 1920)) -> bytes:
    """A distinct phone-sized JPEG (smooth noise, about 100-300 KB): the cache cannot answer it."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (96, 54, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header that claims ``width`` x ``height`` pixels, and almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def run_tflite(path: Path, inputs: np.ndarray) -> np.ndarray:
    """A TFLite file's first output for ``inputs``, through LiteRT's own interpreter (not our engine)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
