"""Photos uploaded through ``serve``'s web page, kept for review: a team checks the doubtful ones later.

With ``BOTTLECHECK_REVIEW_UPLOADS=DIR`` a photo sent from the web page with "queue for review"
ticked (the form field ``review``) is saved as ``DIR/photos/<first 16 hex of its SHA-256>.<format>``
and its answer appended to ``DIR/uploads.jsonl``, a row exactly as ``bottlecheck classify -f jsonl``
writes it. That file is what ``/review`` shows (unless ``BOTTLECHECK_REVIEW_RESULTS`` names
another), and ``bottlecheck review DIR/uploads.jsonl --export`` reads it like any other run.

Gunicorn runs several worker processes: each appends its row under an exclusive ``flock`` on the
rows file, one whole line and a flush at a time, so rows never interleave. The same photo sent
twice is saved and queued once (its name is its content's digest).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
from pathlib import Path

from PIL import Image

from bottlecheck.prediction import Prediction
from bottlecheck.writers.rows import JSONLWriter

#: Where ``serve`` keeps its :class:`UploadQueue` (``app.extensions``), when it has one.
UPLOADS_EXTENSION = "bottlecheck.review_uploads"
ROWS_FILE = "uploads.jsonl"
PHOTOS_DIR = "photos"
_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


class UploadQueue:
    """Saves an uploaded photo and its row for review; safe across threads and worker processes."""

    def __init__(self, directory: str | os.PathLike, fields: tuple[str, ...], nested: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.photos = self.directory / PHOTOS_DIR
        self.rows = self.directory / ROWS_FILE
        self.fields, self.nested = fields, nested
        self.photos.mkdir(parents=True, exist_ok=True)
        self.rows.touch(exist_ok=True)  # /review opens it at once, empty until the first upload

    def add(self, data: bytes, prediction: Prediction) -> Path:
        """Keep ``data`` (a photo the model answered) and its answer; the saved photo's path.

        The row's ``path`` is the saved photo's, so the review page and ``--export`` find it.
        """
        digest = hashlib.sha256(data).hexdigest()[:16]
        with Image.open(io.BytesIO(data)) as image:  # it decoded once already: the model answered it
            suffix = _SUFFIXES.get(image.format or "", ".img")
        target = self.photos / f"{digest}{suffix}"
        with open(self.rows, "a", encoding="utf-8") as stream:
            fcntl.flock(stream, fcntl.LOCK_EX)  # one writer at a time, across gunicorn's workers
            try:
                if target.exists():  # queued before: the same photo again
                    return target
                partial = target.with_name(f".{target.name}.part")
                partial.write_bytes(data)
                os.replace(partial, target)  # the row below never names a half-written photo
                row = {**prediction.as_dict(), "path": str(target)}
                JSONLWriter(stream, self.fields, self.nested).write(row)
            finally:
                fcntl.flock(stream, fcntl.LOCK_UN)
        return target
