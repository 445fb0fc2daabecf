"""The review page and its JSON API, as a Flask blueprint: ``bottlecheck review`` serves it alone,
``bottlecheck serve`` mounts it at ``/review`` (behind the API keys when keys are set).

Routes (below the blueprint's prefix):

* ``GET /`` the page (static HTML and script, nothing fetched from elsewhere);
* ``GET /api/state`` the photos in review order, each with the model's answer and boxes, the
  labels so far, a warning when the results are not the loaded model's, the comparison;
* ``GET /api/photo/<n>`` the n-th photo, upright, at most :data:`SHOWN_SIDE` pixels on its long side;
* ``GET /api/labels`` the labels (re-read when the file changed: a hand edit, another browser);
* ``PUT /api/label`` ``{"path": ..., "entry": {...} | null}`` one photo's decision, saved at once.

The session (results, labels file, warning, comparison) is built once, by :func:`mount`, and kept
in ``app.extensions``: the page holds no state a kill could lose.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from PIL import Image, ImageOps

from bottlecheck.review.compare import Answers, check_model, new_answers, summary
from bottlecheck.review.queue import SAMPLE, Item, review_items
from bottlecheck.review.store import LabelStore, labels_path_for
from bottlecheck.review.uploads import UPLOADS_EXTENSION, UploadQueue

SHOWN_SIDE = 1600  # for looking at: a phone photo's 12 megapixels would only slow the page
EXTENSION = "bottlecheck.review"

review = Blueprint("review", __name__)


@dataclass
class ReviewSession:
    """One results file under review: its photos in order, their labels, and what the page must say."""

    results: Path
    items: list[Item]
    store: LabelStore
    warning: str | None = None
    model: str | None = None
    compare: dict[str, Any] | None = None
    sizes: dict[str, list[int]] = field(default_factory=dict)
    sample: float = SAMPLE
    stamp: tuple[int, int] | None = None  # the results file's mtime and size when last read
    _refreshing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        results: str | os.PathLike,
        classifier: Answers | None = None,
        version: str | None = None,
        newer: Answers | None = None,
        newer_version: str | None = None,
        sample: float = SAMPLE,
        labels: str | os.PathLike | None = None,
    ) -> ReviewSession:
        """Read ``results``; check them against ``classifier`` (the loaded model); compare with ``newer`` if given."""
        stamp = _stamp(results)
        items = review_items(results, sample)
        store = LabelStore(labels or labels_path_for(results))
        session = cls(Path(results), items, store, model=version, sample=sample, stamp=stamp)
        if classifier is not None:
            session.warning = check_model(items, classifier, version or "unknown version")
        if newer is not None:
            session.compare_with(newer, newer_version or "new model")
        for item in items:
            if item.file is not None:
                session.sizes[item.path] = upright_size(item.file)
        return session

    def compare_with(self, newer: Answers, version: str) -> None:
        """The new model's answers on every labelled photo (trained-on and held back), and the counts right."""
        labels = self.store.labels()
        heldout = [photo["path"] for photo in self.store.meta().get("heldout", [])]
        labelled = [path for path, entry in labels.items() if entry.get("label") in ("open", "closed", "none")]
        answers = new_answers(self.items, labelled, newer)
        self.compare = {
            "model": version,
            "answers": answers,
            "heldout": heldout,
            "summary": summary(self.items, labels, answers, heldout),
        }

    def refresh(self) -> None:
        """Take in rows added to the results since they were read (uploads ``serve`` queued while the page is open).

        New photos join the end of the queue, in review order among themselves; those already
        listed keep their place, so a photo's number on the page never changes under it.
        """
        with self._refreshing:  # a threaded server: two calls at once must not both append the new rows
            stamp = _stamp(self.results)
            if stamp == self.stamp:
                return
            known = {item.path for item in self.items}
            added = [item for item in review_items(self.results, self.sample) if item.path not in known]
            for item in added:
                if item.file is not None:
                    self.sizes[item.path] = upright_size(item.file)
            self.items = self.items + added
            self.stamp = stamp

    def shown(self, path: str) -> str:
        """``path`` as the page shows it: below the results' folder relative to it (short, and the same
        wherever the folder is), otherwise as the row says."""
        relative = os.path.relpath(os.path.abspath(path), self.results.resolve().parent)
        return path if relative.startswith("..") else relative

    def state(self) -> dict[str, Any]:
        self.refresh()
        rows = []
        for item in self.items:
            row = item.as_dict()
            row["size"] = self.sizes.get(item.path)
            row["shown"] = self.shown(item.file or item.path)
            rows.append(row)
        return {
            "results": self.results.name,
            "labels_file": str(self.store.path),
            "model": self.model,
            "warning": self.warning,
            "items": rows,
            "labels": self.store.labels(),
            "compare": self.compare,
        }


def _stamp(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def upright_size(path: str) -> list[int]:
    """The photo's width and height as it is shown (EXIF orientation applied): the boxes' pixels; [0, 0] unread."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # turned a quarter: width and height swap
                width, height = height, width
            return [width, height]
    except (OSError, ValueError, Image.DecompressionBombError):
        return [0, 0]


def mount(app: Flask, session: ReviewSession, url_prefix: str = "/review") -> None:
    """Serve ``session``'s page and API from ``app`` under ``url_prefix``."""
    app.extensions[EXTENSION] = session
    app.register_blueprint(review, url_prefix=url_prefix)


def _session() -> ReviewSession:
    session = current_app.extensions.get(EXTENSION)
    if session is None:  # pragma: no cover - mounted without a session
        abort(404)
    return session


@review.get("/")
def page() -> Response:
    html = resources.files("bottlecheck.review").joinpath("review.html").read_text(encoding="utf-8")
    return Response(html, mimetype="text/html")


@review.get("/api/state")
def state() -> Response:
    return jsonify(_session().state())


@review.get("/api/labels")
def labels() -> Response:
    return jsonify(_session().store.labels())


@review.put("/api/label")
def put_label() -> Response | tuple[Response, int]:
    session = _session()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        return jsonify({"error": 'send {"path": PHOTO, "entry": {...} or null}'}), 400
    if body["path"] not in {item.path for item in session.items}:
        return jsonify({"error": f"not a photo of {session.results.name}: {body['path']}"}), 404
    entry = body.get("entry")
    try:
        stored = session.store.put(body["path"], entry if isinstance(entry, dict) else None)
    except (ValueError, TypeError) as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify({"path": body["path"], "entry": stored, "labels": session.store.labels()})


@review.get("/api/photo/<int:number>")
def photo(number: int) -> Response:
    session = _session()
    if number >= len(session.items):  # listed since this worker last looked (another worker served the state)
        session.refresh()
    if not 0 <= number < len(session.items):
        abort(404)
    item = session.items[number]
    if item.file is None:
        abort(404)
    try:
        with Image.open(item.file) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        abort(404)
    image.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    response = Response(buffer.getvalue(), mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store"
    return response


def create_review_app(session: ReviewSession) -> Flask:
    """The app ``bottlecheck review`` runs: the blueprint at ``/review``, ``/`` sending there."""
    from flask import redirect

    app = Flask(__name__)
    if hasattr(app.json, "sort_keys"):
        app.json.sort_keys = False
    mount(app, session)

    @app.get("/")
    def home() -> Any:
        return redirect("/review/")

    return app


def mount_from_settings(app: Flask, classifier: Any, settings: Mapping[str, Any]) -> None:
    """``bottlecheck serve``: mount the page when ``REVIEW_RESULTS`` names a file or ``REVIEW_UPLOADS`` a folder.

    With ``REVIEW_UPLOADS``, web-page uploads ticked "queue for review" are kept there
    (:class:`~bottlecheck.review.uploads.UploadQueue`) and, unless ``REVIEW_RESULTS`` names
    another file, are what the page shows, new ones as they come. The server's own model is the
    loaded model the results are checked against.
    """
    results = settings.get("REVIEW_RESULTS")
    if settings.get("REVIEW_UPLOADS"):
        queue = UploadQueue(settings["REVIEW_UPLOADS"], classifier.columns, classifier.nested_columns)
        app.extensions[UPLOADS_EXTENSION] = queue
        results = results or queue.rows
    if not results:
        return
    mount(app, ReviewSession.open(results, classifier, classifier.artifact.version))
