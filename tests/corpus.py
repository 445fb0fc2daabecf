"""The bad-input corpus: every awkward thing users put in their folders, generated on the fly.

``build_corpus(folder)`` writes the files and returns one :class:`Entry` per input,
with what the CLI must answer (a status, or an error reason) and, for files that
can be uploaded, what the HTTP API must answer.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import bottle_photo, png_header_only

OK = "ok"  # classified: open or closed


@dataclass
class Entry:
    name: str  # file name inside the corpus folder
    expect: str  # OK, or a substring of the error reason
    http: int | None  # expected status of an upload, None when there is nothing to upload


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _photo() -> Image.Image:
    return Image.open(io.BytesIO(bottle_photo(False, size=(240, 400), seed=11))).convert("RGB")


def corpus_files() -> dict[str, tuple[bytes, str, int]]:
    """name -> (bytes, expectation, HTTP status) for every entry that is a plain file."""
    photo = _photo()
    jpeg = _save(photo, "JPEG", quality=90)
    rng = np.random.default_rng(0)
    frames = [photo, photo.rotate(10), photo.rotate(-10)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    multipage = io.BytesIO()
    frames[0].save(multipage, "TIFF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6
    palette = photo.convert("P", palette=Image.ADAPTIVE, colors=32)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    return {
        "empty.jpg": (b"", "empty file", 400),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "corrupt or truncated", 400),
        "random.jpg": (rng.bytes(4096), "not a readable image", 400),
        "text.png": (b"just some text, not a picture\n" * 20, "not a readable image", 400),
        "page.png": (b"<!doctype html><html><body><img src=x></body></html>", "not a readable image", 400),
        "drawing.svg": (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
            "unsupported format (SVG)",
            400,
        ),
        "bomb.png": (png_header_only(100_000, 100_000), "too large", 400),
        "animated.gif": (animated.getvalue(), OK, 200),
        "multipage.tif": (multipage.getvalue(), OK, 200),
        "cmyk.jpg": (_save(photo.convert("CMYK"), "JPEG"), OK, 200),
        "sixteen-bit.png": (_save(sixteen, "PNG"), OK, 200),
        "grayscale.jpg": (_save(photo.convert("L"), "JPEG"), OK, 200),
        "palette-transparent.png": (_save(palette, "PNG"), OK, 200),
        "exif-rotated.jpg": (_save(photo.rotate(90, expand=True), "JPEG", exif=exif.tobytes()), OK, 200),
        "photo.webp": (_save(photo, "WEBP"), OK, 200),
        "name with spaces.jpg": (jpeg, OK, 200),
        "comma,name.jpg": (jpeg, OK, 200),
        'quote"name.jpg': (jpeg, OK, 200),
        "new\nline.jpg": (jpeg, OK, 200),
        "ünïcødé-名前.jpg": (jpeg, OK, 200),
    }


def build_corpus(folder: Path) -> list[Entry]:
    """Write the corpus into ``folder``; return the entries a directory walk must report."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (data, expect, http) in corpus_files().items():
        (folder / name).write_bytes(data)
        entries.append(Entry(name, expect, http))
    jpeg = (folder / "name with spaces.jpg").read_bytes()
    # A directory named like an image: walked into, its image classified, no row of its own.
    (folder / "x.jpg").mkdir()
    (folder / "x.jpg" / "inside.jpg").write_bytes(jpeg)
    entries.append(Entry("x.jpg/inside.jpg", OK, None))
    # An unreadable file (checked where the process is not root: root reads anything).
    (folder / "unreadable.jpg").write_bytes(jpeg)
    os.chmod(folder / "unreadable.jpg", 0)
    entries.append(Entry("unreadable.jpg", "permission denied", None))
    os.symlink(folder / "does-not-exist.jpg", folder / "broken-link.jpg")
    entries.append(Entry("broken-link.jpg", "broken symbolic link", None))
    os.symlink("self-loop.jpg", folder / "self-loop.jpg")
    entries.append(Entry("self-loop.jpg", "symbolic links", None))
    os.symlink(folder, folder / "dir-loop")  # a directory loop: must be walked once
    return entries
