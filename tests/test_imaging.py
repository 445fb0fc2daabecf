"""The one image loader: orientation, modes, bombs, letterbox and draft decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bottlecheck.imaging import PAD_VALUE, ImageError, decode_image, letterbox, load_image
from tests.helpers import png_header_only


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _top_red_portrait() -> Image.Image:
    """A portrait image, red in its top tenth: where a cap would be."""
    image = Image.new("RGB", (300, 900), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 300, 90))
    return image


def test_letterbox_keeps_the_top_of_a_portrait_photo():
    array = load_image(_encode(_top_red_portrait(), "PNG"), size=224)
    assert array.shape == (224, 224, 3) and array.dtype == np.uint8
    # The whole height fits: the red band is the first rows, bars are at the sides.
    assert array[2, 112].tolist() == [255, 0, 0]
    assert array[200, 112].tolist() == [0, 0, 255]
    assert array[112, 5].tolist() == [PAD_VALUE] * 3
    assert array[112, 218].tolist() == [PAD_VALUE] * 3


def test_exif_orientation_is_applied():
    # Stored sideways (landscape) with orientation 6 ("rotate 90 CW to display").
    stored = _top_red_portrait().rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    array = load_image(_encode(stored, "JPEG", exif=exif.tobytes(), quality=95), size=224)
    red = (array[..., 0] > 200) & (array[..., 2] < 60)
    rows = np.nonzero(red.any(axis=1))[0]
    assert rows.max() < 40, "red band should be at the top once EXIF rotation is applied"


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA", "I;16", "1"])
def test_every_mode_becomes_rgb(mode):
    base = Image.new("RGB", (64, 48), (200, 100, 50))
    if mode == "I;16":
        image = Image.fromarray(np.full((48, 64), 40000, dtype=np.uint16))
        data = _encode(image, "PNG")
    elif mode == "CMYK":
        data = _encode(base.convert("CMYK"), "JPEG")
    else:
        data = _encode(base.convert(mode), "PNG" if mode != "CMYK" else "JPEG")
    image = decode_image(data)
    assert image.mode == "RGB" and image.size == (64, 48)
    if mode == "I;16":  # 40000/65535 of full scale, not clipped to white
        assert abs(np.asarray(image)[0, 0, 0] - 155) <= 2


def test_transparency_is_composited_on_the_pad_colour():
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    array = np.asarray(decode_image(_encode(image, "PNG")))
    assert array[0, 0].tolist() == [PAD_VALUE] * 3


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageError, match="too large"):
        decode_image(png_header_only(100_000, 100_000))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"\x00\x01garbage" * 50, "not a readable image"),
        (b"<html><body>hi</body></html>", "not a readable"),
    ],
)
def test_unreadable_bytes_give_one_line_reasons(data, reason):
    with pytest.raises(ImageError) as info:
        load_image(data)
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_truncated_jpeg_is_an_error_not_a_crash():
    data = _encode(Image.new("RGB", (400, 300), (10, 200, 30)), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 3])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_large_jpeg_is_decoded_in_draft_mode():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    data = _encode(photo, "JPEG", quality=85)
    image = decode_image(data, max_side=224)
    # DCT scaling stops at 1/8: 4000x3000 decodes as 500x375, never full size.
    assert image.size == (500, 375)
    assert load_image(data).shape == (224, 224, 3)


def test_letterbox_scale_and_position_keep_the_whole_image():
    image = Image.new("RGB", (100, 200), (255, 0, 0))
    array = letterbox(image, 224, scale=0.5, center=(0.0, 1.0))
    red = np.argwhere(array[..., 0] == 255)
    assert red[:, 0].max() == 223 and red[:, 1].min() == 0  # bottom-left corner
    assert red[:, 0].min() == 224 - 112  # the full height (half scale) is there


def test_truncated_multipage_tiff_found_by_fuzzing():
    """atheris found Pillow raising TypeError ("Missing dimensions") on a cut multi-page TIFF."""
    frames = [Image.new("RGB", (400, 300), (i * 60, 80, 120)) for i in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 200):
        try:
            load_image(data[:cut])
        except ImageError as exc:
            assert "\n" not in str(exc)
