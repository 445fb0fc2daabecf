"""Property tests: the loader never fails in any way but ImageError; any file name survives the writers."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bottlecheck.imaging import ImageError, load_image
from bottlecheck.outputs import open_output, read_existing
from tests.corpus import corpus_files

SEEDS = [data for data, _, _ in corpus_files().values() if data]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_loader_on_arbitrary_bytes(data):
    try:
        array = load_image(data)
    except ImageError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert array.shape == (224, 224, 3) and array.dtype == np.uint8


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.integers(0, 10_000), st.binary(min_size=1, max_size=64))
def test_loader_on_mutated_images(seed, position, patch):
    """Real files of every format with bytes overwritten or cut: an array or an ImageError, nothing else."""
    position %= len(seed)
    data = seed[:position] + patch + seed[position + len(patch) :]
    try:
        array = load_image(data)
    except ImageError as exc:
        assert "\n" not in str(exc)
    else:
        assert array.shape == (224, 224, 3)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 400),
    st.integers(1, 400),
    st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK", "I;16", "1"]),
    st.sampled_from(["PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF"]),
)
def test_loader_on_any_size_and_mode(width, height, mode, fmt):
    image = Image.new(mode, (width, height))
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to load
    array = load_image(buffer.getvalue())
    assert array.shape == (224, 224, 3)
    # Letterbox: the long side fills the canvas.
    content = np.any(array != 127, axis=2) if mode != "L" else None
    assert content is None or content.shape == (224, 224)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(names, min_size=1, max_size=8, unique=True), st.sampled_from(["csv", "jsonl", "json"]))
def test_any_file_name_round_trips_through_the_writers(tmp_path, paths, fmt):
    out = tmp_path / f"rows.{fmt}"
    writer, _, finish = open_output(out, fmt, resume=False)
    for path in paths:
        writer.write({"path": path, "status": "error", "confidence": None, "p_open": None, "error": 'x, "y"\nz'})
    finish()
    rows, _ = read_existing(out, fmt)
    assert [row["path"] for row in rows] == paths
