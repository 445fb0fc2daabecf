"""Copies of photos with what the model saw drawn on them: each bottle top's box, status and confidence.

Like Ultralytics' ``save=True``: a QA engineer opens the folder and sees at a glance why a
frame was called open. Boxes are in the photo's own pixels (after EXIF orientation), so
they are drawn on the upright photo; the photo's answer is written in a band at the top.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bottlecheck.classifier import Prediction
from bottlecheck.imaging import ImageSource, decode_photo

COLOURS = {"open": (230, 40, 40), "closed": (40, 200, 70), "unknown": (150, 150, 150), "error": (150, 150, 150)}
MAX_SIDE = 1600  # annotated copies are for looking at: no need for all 12 megapixels


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1
        return ImageFont.load_default()


def annotated(source: ImageSource, prediction: Prediction) -> Image.Image:
    """The photo with the prediction drawn on it."""
    image, size = decode_photo(source, max_side=MAX_SIDE)
    image = image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    scale = image.width / size[0]
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    font = _font(max(12, round(max(image.size) / 45)))
    for top in prediction.tops or ():
        x0, y0, x1, y1 = (v * scale for v in top["box"])
        colour = COLOURS[top["status"]]
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=line)
        label = f"{top['status']} {top['confidence']:.2f}"
        text_box = draw.textbbox((x0, y0), label, font=font)
        lift = text_box[3] - text_box[1] + 2 * line
        origin = (x0, y0 - lift if y0 - lift >= 0 else y1 + line)
        draw.rectangle(draw.textbbox(origin, label, font=font), fill=colour)
        draw.text(origin, label, fill=(255, 255, 255), font=font)
    confidence = "" if prediction.confidence is None else f" {prediction.confidence:.2f}"
    tops = prediction.bottles
    counts = "" if tops is None else f"  ({tops} top{'' if tops == 1 else 's'}, {prediction.open_tops} open)"
    banner = f"{prediction.status}{confidence}{counts}"
    box = draw.textbbox((line, line), banner, font=font)
    draw.rectangle([0, 0, box[2] + line, box[3] + line], fill=COLOURS.get(prediction.status, (0, 0, 0)))
    draw.text((line, line), banner, fill=(255, 255, 255), font=font)
    return image


class AnnotatedCopies:
    """Writes ``DIR/<name>.jpg`` for each input; names that repeat (same file name in two folders) get a number."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._used: set[str] = set()

    def save(self, path: str, prediction: Prediction) -> Path | None:
        if prediction.status == "error":
            return None
        stem = Path(path).stem or "image"
        name, number = f"{stem}.jpg", 1
        while name in self._used:
            number += 1
            name = f"{stem}-{number}.jpg"
        self._used.add(name)
        target = self.directory / name
        annotated(path, prediction).save(target, "JPEG", quality=90)
        return target
