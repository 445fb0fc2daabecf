"""The one image loader: every path (CLI, server, training, evaluation) goes through here.

Bytes or a path in, a model-ready ``uint8`` array out. The steps, in order:

1. open lazily and refuse decompression bombs from the header alone, before any
   pixel is decoded;
2. ask the JPEG decoder for a reduced-size decode (draft mode: DCT scaling by
   1/2, 1/4 or 1/8), so a 12-megapixel photo is never fully decoded only to be
   shrunk to 224 px;
3. honour EXIF orientation (phones store portrait photos sideways);
4. normalise every mode (grey, palette, RGBA, CMYK, 16-bit) to 8-bit RGB,
   compositing transparency on the pad colour;
5. letterbox: scale the long side to the model's input and pad the rest. Never a
   centre crop: the cap is at the top of a tall bottle, and a square crop of a
   portrait photo cuts it off.

Normalisation to the network's range happens inside the exported model, so every
caller feeds the same 0..255 array and nothing can drift between training and
serving.
"""

from __future__ import annotations

import io
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A Pillow image is a picture already decoded elsewhere (a video frame, see bottlecheck.sources.video):
# it takes the same steps from the size check on, so the same pixels get the same model input.
ImageSource = str | Path | bytes | bytearray | memoryview | BinaryIO | Image.Image

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
# Image formats a user may well have in a folder but that we do not decode: walked and
# reported as an error row with a clear reason, rather than silently skipped.
UNSUPPORTED_EXTENSIONS = {
    ".svg": "SVG",
    ".svgz": "SVG",
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".avif": "AVIF",
    ".raw": "camera RAW",
    ".dng": "camera RAW",
    ".cr2": "camera RAW",
    ".nef": "camera RAW",
}
# Letterbox bars and transparent areas take this grey: after the model's
# (x - 127) / 128 scaling it is zero, "no signal". Training writes it into the
# artefact's metadata (input.pad_value) and inference reads it from there.
PAD_VALUE = 127
# 50 megapixels covers every phone and line camera we know of; a header claiming
# more is a bomb or a mistake, refused before decoding.
DEFAULT_MAX_PIXELS = 50_000_000


class ImageError(ValueError):
    """An input that cannot be turned into a model input; ``str()`` is a one-line reason."""


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("empty file (0 bytes)")
        stream: BinaryIO = io.BytesIO(bytes(source))
        return Image.open(stream)
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ImageError("broken symbolic link" if path.is_symlink() else "no such file") from None
        except PermissionError:
            raise ImageError("permission denied") from None
        except OSError as exc:  # a symlink loop, a name too long, an I/O error
            raise ImageError(f"cannot read: {exc.strerror or exc}") from None
        if stat.S_ISDIR(info.st_mode):
            raise ImageError("is a directory, not an image")
        if info.st_size == 0:
            raise ImageError("empty file (0 bytes)")
        unsupported = UNSUPPORTED_EXTENSIONS.get(path.suffix.lower())
        if unsupported:
            raise ImageError(f"unsupported format ({unsupported}); convert to JPEG or PNG")
        try:
            return Image.open(path)
        except PermissionError:
            raise ImageError("permission denied") from None
    return Image.open(source)


def decode_image(
    source: ImageSource,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` to an upright 8-bit RGB image.

    ``max_side`` is the size the caller will shrink the long side to; JPEG
    decoding is then done at the smallest DCT scale that still covers it.
    Raises :class:`ImageError` with a one-line reason for anything unreadable.
    """
    return decode_photo(source, max_side, max_pixels)[0]


def decode_photo(
    source: ImageSource,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`decode_image`, and the photo's own upright size (before any reduced-scale decoding).

    Boxes found in the (perhaps smaller) decoded image are reported in the photo's own pixels.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" and friends: noise for our users
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"image too large: {width}x{height} pixels (limit {max_pixels:,})")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF, multi-page TIFF: the first frame
            if max_side and image.format == "JPEG":
                scale = max_side / max(width, height)
                image.draft(image.mode, (int(width * scale) + 1, int(height * scale) + 1))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # not a copy of every upright photo (0.1-0.8 ms)
            if (image.width > image.height) != (width > height):  # EXIF turned it a quarter
                width, height = height, width
            return _to_rgb(image), (width, height)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large (limit {max_pixels:,} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError("not a readable image (unknown format)") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except MemoryError:
        raise ImageError("image could not be decoded: out of memory") from None
    except Exception as exc:
        # Decoders meet hostile bytes here and fail in many ways (OSError, SyntaxError,
        # TypeError, IndexError, struct.error, ... all seen from fuzzing): every one of
        # them means "this file is broken", never "the program is".
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"corrupt or truncated image: {reason}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode != "I" or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        array = np.asarray(image, dtype=np.float64)
        top = 1.0 if array.max() <= 1.0 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (PAD_VALUE, PAD_VALUE, PAD_VALUE, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def canvas_size(width: int, height: int, size: int, multiple: int | None = None) -> tuple[int, int]:
    """The letterbox canvas for an image already fitted to ``width`` x ``height`` (long side at most ``size``).

    Square (``size`` x ``size``) without ``multiple``; otherwise each side rounded up to a multiple of it.
    """
    if not multiple:
        return size, size
    return (min(size, -(-width // multiple) * multiple), min(size, -(-height // multiple) * multiple))


def letterbox(
    image: Image.Image,
    size: int,
    scale: float = 1.0,
    center: tuple[float, float] = (0.5, 0.5),
    resample: int = Image.Resampling.BILINEAR,
    pad_value: int = PAD_VALUE,
    multiple: int | None = None,
    reducing_gap: float | None = None,
) -> np.ndarray:
    """Fit ``image`` inside a ``size`` x ``size`` canvas without cropping it.

    With the defaults the long side fills the canvas and the image is centred.
    Training passes a ``scale`` below 1 and an off-centre ``center`` to vary the
    bottle's size and position; the whole image always stays inside the canvas,
    so the top of the bottle is never cut.

    With ``multiple``, the canvas is only as wide and high as the image needs, rounded up to a
    multiple of it (a 1080x1920 photo at 320: 192x320, not 320x320): a fully convolutional model
    then spends no time on grey bands (the finder: 40% less for a phone photo). ``reducing_gap``
    is Pillow's: shrink by a whole factor with a box filter first (faster; what the finder trains on).
    """
    width, height = image.size
    fit = size / max(width, height) * min(max(scale, 0.05), 1.0)
    new_w, new_h = max(1, round(width * fit)), max(1, round(height * fit))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample, reducing_gap=reducing_gap)
    canvas_w, canvas_h = canvas_size(new_w, new_h, size, multiple)
    canvas = np.full((canvas_h, canvas_w, 3), pad_value, dtype=np.uint8)
    left = round((canvas_w - new_w) * min(max(center[0], 0.0), 1.0))
    top = round((canvas_h - new_h) * min(max(center[1], 0.0), 1.0))
    canvas[top : top + new_h, left : left + new_w] = np.asarray(image, dtype=np.uint8)
    return canvas


def load_image(
    source: ImageSource, size: int = 224, max_pixels: int = DEFAULT_MAX_PIXELS, pad_value: int = PAD_VALUE
) -> np.ndarray:
    """Path or bytes in; ``(size, size, 3)`` uint8 RGB letterboxed model input out."""
    return letterbox(decode_image(source, max_side=size, max_pixels=max_pixels), size, pad_value=pad_value)


def is_image_path(path: str | Path) -> bool:
    """True when the file name looks like an image: one we decode, or one we report as unsupported."""
    suffix = Path(path).suffix.lower()
    return suffix in IMAGE_EXTENSIONS or suffix in UNSUPPORTED_EXTENSIONS
