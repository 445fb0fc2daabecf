"""Copies of photos with what the model saw drawn on them: each bottle top's box, status and confidence.

Like Ultralytics' ``save=True``: a QA engineer opens the folder and sees at a glance why a
frame was called open. Boxes are in the photo's own pixels (after EXIF orientation), so
they are drawn on the upright photo; the photo's answer is written in a band added above
it, so that it covers nothing (a cap is often at the very top of a frame). Lines and text
are sized to the photo: a 150-pixel-wide frame gets a band it can hold, a phone photo one
that can be read without zooming.

Each copy keeps its input's path below the folder the inputs share, and its format: with
``frames/a/x.png`` and ``frames/b/x.png`` as inputs, ``DIR/a/x.png`` and ``DIR/b/x.png``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bottlecheck.imaging import ImageSource, decode_photo
from bottlecheck.prediction import Prediction

COLOURS = {"open": (230, 40, 40), "closed": (40, 200, 70), "unknown": (150, 150, 150), "error": (150, 150, 150)}
MAX_SIDE = 1600  # annotated copies are for looking at: no need for all 12 megapixels
SMALLEST_FONT = 9  # pixels: the least that still reads on a thumbnail-sized frame

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


Rect = tuple[float, float, float, float]


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1
        return ImageFont.load_default()


def _fitted(draw: ImageDraw.ImageDraw, layouts: list[list[str]], width: float, largest: int) -> tuple[list[str], Font]:
    """The first layout (lines of text) that fits ``width`` and the largest font it fits at.

    A layout may shrink its font to three quarters of ``largest`` before the next (more lines)
    is tried; the last layout shrinks down to :data:`SMALLEST_FONT`.
    """
    for number, lines in enumerate(layouts):
        last = number == len(layouts) - 1
        floor = SMALLEST_FONT if last else max(SMALLEST_FONT, largest * 3 // 4)
        for size in range(largest, floor - 1, -1):
            font = _font(size)
            if all(draw.textlength(line, font=font) <= width for line in lines):
                return lines, font
    return layouts[-1], _font(SMALLEST_FONT)


def annotated(source: ImageSource, prediction: Prediction) -> Image.Image:
    """The photo (long side at most :data:`MAX_SIDE`) with the prediction drawn on it, below a band with the answer."""
    photo, size = decode_photo(source, max_side=MAX_SIDE)
    photo = photo.copy()
    photo.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    scale = photo.width / size[0]
    width, height = photo.size
    line = max(1, round(max(width, height) / 300))
    margin = max(2, line * 2)
    probe = ImageDraw.Draw(photo)
    confidence = "" if prediction.confidence is None else f" {prediction.confidence:.2f}"
    tops = prediction.bottles
    answer = f"{prediction.status}{confidence}"
    counts = "" if tops is None else f"{tops} top{'' if tops == 1 else 's'}, {prediction.open_tops} open"
    layouts = [[f"{answer}  ({counts})" if counts else answer]] + ([[answer, counts]] if counts else [])
    lines, font = _fitted(probe, layouts, width - 2 * margin, max(10, round(max(width, height) / 45)))
    step = round(probe.textbbox((0, 0), "Ag", font=font)[3]) + margin // 2  # a line: down to the descender
    band = margin * 2 + step * len(lines)

    image = Image.new("RGB", (width, height + band), COLOURS.get(prediction.status, (0, 0, 0)))
    image.paste(photo, (0, band))
    draw = ImageDraw.Draw(image)
    for number, text in enumerate(lines):
        draw.text((margin, margin + number * step), text, fill=(255, 255, 255), font=font)
    found = list(prediction.tops or ())
    labels = [f"{top.status} {top.confidence:.2f}" for top in found]
    boxes: list[Rect] = [(t.box[0] * scale, t.box[1] * scale, t.box[2] * scale, t.box[3] * scale) for t in found]
    bounds: list[Rect] = [draw.textbbox((0, 0), label, font=font) for label in labels]
    places = place_labels(boxes, bounds, width, height, line)
    for top, box, label, (x, y, area) in zip(found, boxes, labels, places, strict=True):
        colour = COLOURS[top.status]
        draw.rectangle([box[0], box[1] + band, box[2], box[3] + band], outline=colour, width=line)
        draw.rectangle([area[0], area[1] + band, area[2], area[3] + band], fill=colour)
        draw.text((x, y + band), label, fill=(255, 255, 255), font=font)
    return image


def place_labels(
    boxes: list[Rect], bounds: list[Rect], width: int, height: int, line: int
) -> list[tuple[float, float, Rect]]:
    """Where each box's label goes: (x, y) to draw it at and the area its backing covers, in photo pixels.

    Above the box where the photo has room, else below it, never past the photo's sides; moved down
    a line at a time while it would cover a label placed before it (a row of tops side by side),
    unless that would push it out of the photo. ``bounds`` are each label's text box at (0, 0).
    """
    placed: list[Rect] = []
    out = []
    for (x0, y0, _x1, y1), (left, upper, right, lower) in zip(boxes, bounds, strict=True):
        lift = lower + line
        x = min(max(0.0, x0), max(0.0, width - right - line))
        y = y0 - lift if y0 - lift >= 0 else min(y1 + line, height - lower)

        while any(_overlap(_backing(x, y, left, upper, right, lower, line), b) for b in placed):
            if y + lift > height - lower:
                break  # no room below: a label may cover another rather than leave the photo
            y += lift
        placed.append(_backing(x, y, left, upper, right, lower, line))
        out.append((x, y, placed[-1]))
    return out


def _backing(x: float, y: float, left: float, upper: float, right: float, lower: float, line: int) -> Rect:
    """The area a label's coloured backing covers when its text is drawn at (x, y)."""
    return (x + left - line, y + upper - line, x + right + line, y + lower)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _common_folder(paths: Iterable[str]) -> Path | None:
    folders = [os.path.dirname(os.path.abspath(path)) for path in paths]
    return Path(os.path.commonpath(folders)) if folders else None


class AnnotatedCopies:
    """Writes each answered input to ``DIR/<its path below the inputs' shared folder>``, in its own format.

    ``inputs`` are every input of the run (also those a resumed run skips), so a copy's name
    does not depend on which of them this run classifies; without them, copies go straight
    into DIR under their file names. An input whose extension Pillow cannot write gets a
    PNG copy (``name.ext.png``).
    """

    def __init__(self, directory: str | os.PathLike, inputs: Iterable[str] = ()):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._root = _common_folder(inputs)

    def relative(self, path: str) -> Path:
        """``path`` below the folder the inputs share (its file name alone when it is elsewhere)."""
        absolute = Path(os.path.abspath(path))
        if self._root is not None and absolute.is_relative_to(self._root):
            relative = absolute.relative_to(self._root)
        else:
            relative = Path(absolute.name)
        return relative if relative.name else Path("image")

    def target(self, path: str) -> tuple[Path, str]:
        """Where the copy of ``path`` goes, and the format it is written in."""
        relative = self.relative(path)
        fmt = Image.registered_extensions().get(relative.suffix.lower())
        if fmt is None or fmt not in Image.SAVE:
            relative, fmt = relative.with_name(relative.name + ".png"), "PNG"
        return self.directory / relative, fmt

    def save(self, path: str, prediction: Prediction) -> Path | None:
        """Write the annotated copy of ``path``; None for an error row (nothing to draw on)."""
        if prediction.status == "error":
            return None
        target, fmt = self.target(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        image = annotated(path, prediction)
        if fmt == "JPEG":
            image.save(target, fmt, quality=90)
        else:
            image.save(target, fmt)
        return target
