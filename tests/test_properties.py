"""Property tests: the loader never fails in any way but ImageError; any file name survives the writers."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from bottlecheck.imaging import ImageError, load_image
from bottlecheck.writers.rows import open_sink, read_existing
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
@example(334, 4, "P", "BMP")  # stored as 1-bit: shrunk, its black and white average to the pad grey here and there
def test_loader_on_any_size_and_mode(width, height, mode, fmt):
    colour = {"RGB": (200, 30, 30), "L": 250, "RGBA": (200, 30, 30, 255), "P": 3, "CMYK": (0, 200, 200, 0)}
    image = Image.new(mode, (width, height), colour.get(mode, 0))
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to load
    array = load_image(buffer.getvalue(), pad_value=127)
    assert array.shape == (224, 224, 3) and array.dtype == np.uint8
    # Letterbox: the long side fills the canvas, the short side is scaled by the same factor
    # and centred, the rest is padding. Read the content's extent off the middle row and column.
    # The content may hold the pad's own grey, so it is told from the padding by loading again
    # with another pad: the photo's pixels are the same both times, the padding's are not.
    fit = 224 / max(width, height)
    expect_w, expect_h = max(1, round(width * fit)), max(1, round(height * fit))
    content = np.all(array == load_image(buffer.getvalue(), pad_value=0), axis=2)
    if expect_w >= 3 and expect_h >= 3 and content[112, 112]:
        content_w = int(np.sum(content[112]))
        content_h = int(np.sum(content[:, 112]))
        assert abs(content_w - expect_w) <= 1 and abs(content_h - expect_h) <= 1, (content_w, content_h)
        assert max(content_w, content_h) >= 223


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(names, min_size=1, max_size=8, unique=True), st.sampled_from(["csv", "jsonl", "json"]))
def test_any_file_name_round_trips_through_the_writers(tmp_path, paths, fmt):
    out = tmp_path / f"rows.{fmt}"
    with open_sink(out, fmt) as sink:
        for path in paths:
            sink.write({"path": path, "status": "error", "confidence": None, "p_open": None, "error": 'x, "y"\nz'})
    rows, _ = read_existing(out, fmt)
    assert [row["path"] for row in rows] == paths
