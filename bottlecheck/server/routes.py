"""The routes: ``/classify`` (the contract), probes, metrics, the OpenAPI description and the web page.

Handlers parse the request, call the :class:`~bottlecheck.server.service.ClassificationService`
and format its answers; nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from flask import Blueprint, Response, current_app, g, jsonify, request

from bottlecheck import __version__
from bottlecheck.prediction import Prediction
from bottlecheck.review.uploads import UPLOADS_EXTENSION, UploadQueue
from bottlecheck.server.batcher import Overloaded
from bottlecheck.server.errors import error_response
from bottlecheck.server.openapi import openapi_document
from bottlecheck.server.service import BAD_IMAGE, ClassificationService

NO_FILE = "No file uploaded"
# The contract's field is "file"; "image" is what other clients of this kind of API send,
# so it is accepted as an alias; "files" (repeated) asks for a list of answers. "file" and "image"
# are one field under two names: more than one photo in them (both, or one repeated) is answered
# as "files" is, with a list in field order (README, OpenAPI).
SINGLE_FIELDS = ("file", "image")
LIST_FIELD = "files"

api = Blueprint("api", __name__)


def _service() -> ClassificationService:
    return current_app.extensions["bottlecheck"]


def _collect_uploads() -> list[tuple[str, bytes]]:
    uploads = []
    for field in (*SINGLE_FIELDS, LIST_FIELD):
        for storage in request.files.getlist(field):
            uploads.append((storage.filename or field, storage.read()))
    if not uploads and (request.mimetype or "").startswith("image/"):
        data = request.get_data(cache=False)
        if data:
            uploads.append(("body", data))
    return uploads


def _no_file_detail() -> str:
    got = sorted(request.files.keys())
    return (
        "send the photo as the multipart file field 'file' (or its alias 'image'), several photos as "
        f"repeated 'files' fields, or the raw image as the body with an image/* Content-Type; "
        f"file fields received: {got if got else 'none'}"
    )


@api.post("/classify")
def classify() -> Response:
    uploads = _collect_uploads()
    if not uploads:
        return error_response(400, NO_FILE, detail=_no_file_detail())
    max_files = int(current_app.config["BOTTLECHECK"]["MAX_FILES"])
    if len(uploads) > max_files:
        return error_response(413, f"Too many files: at most {max_files} per request")
    single = len(uploads) == 1 and not request.files.getlist(LIST_FIELD)
    service = _service()
    queue: UploadQueue | None = current_app.extensions.get(UPLOADS_EXTENSION)
    queued: set[int] = set()

    def keep_for_review(queue: UploadQueue) -> Callable[[int], Callable[[Prediction], None]]:
        def for_upload(index: int) -> Callable[[Prediction], None]:
            def keep(prediction: Prediction) -> None:
                queue.add(uploads[index][1], prediction)
                queued.add(index)

            return keep

        return for_upload

    asked = request.form.get("review", "").lower() in ("1", "true", "on", "yes")
    try:
        results = service.classify_many(uploads, keep_for_review(queue) if queue is not None and asked else None)
    except Overloaded:
        service.metrics.overloaded.inc()
        g.retry_after = "1"
        return error_response(503, "Server busy, retry shortly")
    for index in queued:  # said after the contract's keys: the page shows it
        results[index]["review"] = "queued"
    if single:
        result = results[0]
        if "error" in result:
            return error_response(400, BAD_IMAGE, detail=result.get("detail"))
        return jsonify(result)
    for (name, _), result in zip(uploads, results, strict=True):
        result["filename"] = name
    return jsonify(results)


@api.get("/healthz")
def health() -> Response:
    return jsonify({"status": "ok"})


@api.get("/readyz")
def ready() -> Response:
    service = _service()
    return jsonify(
        {
            "status": "ready",
            "model_version": service.classifier.artifact.version,
            "engine": service.classifier.engine_name,
            "queue_depth": service.batcher.queue_depth,
        }
    )


@api.get("/metrics")
def metrics() -> Response:
    return Response(_service().metrics.render(), mimetype="text/plain; version=0.0.4")


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(__version__, current_app.extensions["bottlecheck.keys"].required))


@api.get("/")
def index() -> Response:
    page = resources.files("bottlecheck.server").joinpath("index.html").read_text(encoding="utf-8")
    required = current_app.extensions["bottlecheck.keys"].required
    queue = UPLOADS_EXTENSION in current_app.extensions
    page = page.replace("{{KEYS_REQUIRED}}", "true" if required else "false")
    return Response(page.replace("{{REVIEW_QUEUE}}", "true" if queue else "false"), mimetype="text/html")
