"""The Flask application factory and the /classify API.

The contract (clients are written against it, keep it exactly):

* ``POST /classify`` with a multipart ``file`` -> ``200 {"Bottle_Status": "open", "Confidence": 0.85, ...}``
* no file -> ``400 {"error": "No file uploaded"}``; not an image -> ``400 {"error": "Unable to process image"}``

Several images (repeated ``file``/``files`` fields) get a list in the same order;
a raw body with an ``image/*`` content type is one image. Handlers only parse,
call :class:`ClassificationService` and format; decoding runs in the request
thread, outside the model lock, and the model runs in the micro-batcher.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import resources
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from bottlecheck import __version__
from bottlecheck.classifier import Classifier
from bottlecheck.imaging import ImageError
from bottlecheck.server.batcher import MicroBatcher, Overloaded
from bottlecheck.server.cache import cache_key, make_cache
from bottlecheck.server.config import api_keys, load_config
from bottlecheck.server.observability import Metrics, log_request
from bottlecheck.server.openapi import openapi_document

log = logging.getLogger("bottlecheck.server")

NO_FILE = "No file uploaded"
BAD_IMAGE = "Unable to process image"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
OPEN_ROUTES = {"health", "ready", "metrics", "openapi", "index", "static"}


class ClassificationService:
    """Bytes in, answers out: cache, decode, micro-batched model call."""

    def __init__(self, classifier: Classifier, config: Mapping[str, Any], metrics: Metrics):
        self.classifier = classifier
        self.metrics = metrics
        self.timeout = float(config["REQUEST_TIMEOUT_S"])
        self.cache = make_cache(config.get("CACHE_URL"), int(config["CACHE_SIZE"]))
        self.batcher = MicroBatcher(
            classifier.predict_arrays,
            max_batch=int(config["BATCH_MAX_SIZE"]),
            max_wait=float(config["BATCH_MAX_WAIT_MS"]) / 1000.0,
            max_queue=int(config["QUEUE_MAX"]),
            on_batch=metrics.batch_size.observe,
        )

    def answer(self, p_open: float) -> dict[str, Any]:
        status, confidence = self.classifier.decide(p_open)
        return {
            "Bottle_Status": status,
            "Confidence": round(confidence, 4),
            "p_open": round(p_open, 4),
            "model_version": self.classifier.artifact.version,
        }

    def _abandon(self, pending: list) -> None:
        """Give back the slots of a request's images already queued (the request is refused)."""
        for _, _, future in pending:
            future.cancel()
            self.batcher.end()

    def classify_many(self, uploads: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        """One answer or ``{"error": ...}`` per upload, in order. Raises Overloaded."""
        results: list[dict[str, Any] | None] = [None] * len(uploads)
        pending = []
        checksum = self.classifier.artifact.checksum
        for index, (_name, data) in enumerate(uploads):
            key = cache_key(data, checksum)
            cached = self.cache.get(key)
            if cached is not None:
                self.metrics.cache_hits.inc()
                results[index] = self.answer(cached)
                continue
            self.metrics.cache_misses.inc()
            try:
                self.batcher.begin()  # admission first: a refusal costs no decoding
            except Overloaded:
                self._abandon(pending)
                raise
            try:
                array = self.classifier.preprocess(data)
                pending.append((index, key, self.batcher.submit(array)))
            except ImageError as exc:
                self.batcher.end()
                results[index] = {"error": BAD_IMAGE, "detail": str(exc)}
            except Overloaded:
                self.batcher.end()
                self._abandon(pending)
                raise
        deadline = time.monotonic() + self.timeout
        try:
            for index, key, future in pending:
                p_open = future.result(timeout=max(0.0, deadline - time.monotonic()))
                self.cache.set(key, p_open)
                results[index] = self.answer(p_open)
        except FutureTimeout:
            raise Overloaded("timed out waiting for the model") from None
        finally:
            for _ in pending:
                self.batcher.end()
        for result in results:
            self.metrics.images.labels(status=result.get("Bottle_Status", "error")).inc()
        return results  # type: ignore[return-value]


def _error(status: int, message: str, headers: Mapping[str, str] | None = None, **extra) -> Response:
    response = jsonify({"error": message, **extra})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _collect_uploads() -> list[tuple[str, bytes]]:
    uploads = []
    for field in ("file", "files"):
        for storage in request.files.getlist(field):
            uploads.append((storage.filename or field, storage.read()))
    if not uploads and (request.mimetype or "").startswith("image/"):
        data = request.get_data(cache=False)
        if data:
            uploads.append(("body", data))
    return uploads


def create_app(config: Mapping[str, Any] | None = None, classifier: Classifier | None = None) -> Flask:
    """Build the app: settings from defaults, ``BOTTLECHECK_*`` environment variables, then ``config``.

    Loads the model once (pass ``classifier`` to share one between apps in tests).
    """
    settings = load_config(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(float(settings["MAX_UPLOAD_MB"]) * 1024 * 1024)
    app.config["MAX_FORM_PARTS"] = int(settings["MAX_FORM_PARTS"])
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    app.config["BOTTLECHECK"] = settings
    if int(settings["TRUSTED_PROXIES"]) > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(settings["TRUSTED_PROXIES"]))

    if classifier is None:
        classifier = Classifier.load(
            settings["MODEL"],
            engine=settings["ENGINE"],
            threshold=settings["THRESHOLD"],
            threads=settings["ENGINE_THREADS"],
        )
    classifier.max_pixels = int(settings["MAX_PIXELS"])
    _ = classifier.artifact.checksum  # hash the model file now, not inside the first request
    metrics = Metrics(classifier.artifact.version)
    service = ClassificationService(classifier, settings, metrics)
    app.extensions["bottlecheck"] = service
    keys = {hashlib.sha256(k.encode()).hexdigest()[:12]: k.encode() for k in api_keys(settings)}
    max_files = int(settings["MAX_FILES"])

    @app.before_request
    def start_request():
        g.started = time.perf_counter()
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.key_id = None
        if keys and request.endpoint not in OPEN_ROUTES:
            token = request.headers.get("X-API-Key", "")
            auth = request.headers.get("Authorization", "")
            if not token and auth.lower().startswith("bearer "):
                token = auth[7:].strip()
            matched = None
            for key_id, key in keys.items():  # compare with every key, in constant time each
                if hmac.compare_digest(token.encode(), key):
                    matched = key_id
            if matched is None:
                return _error(401, "Missing or invalid API key", {"WWW-Authenticate": 'Bearer realm="bottlecheck"'})
            g.key_id = matched

    @app.after_request
    def own_retry_after(response: Response) -> Response:
        # Registered before the limiter, so it runs after the limiter's header injection
        # (after_request runs in reverse order): our 503 says "retry in 1 s", not the rate window.
        if g.get("retry_after"):
            response.headers["Retry-After"] = g.retry_after
        return response

    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(
        lambda: f"key:{g.key_id}" if g.get("key_id") else f"ip:{get_remote_address()}",
        app=app,
        storage_uri=settings["RATE_LIMIT_STORAGE_URI"],
        headers_enabled=True,
        default_limits=[],
    )

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        metrics.latency.labels(route=route).observe(elapsed)
        log_request(
            request_id=g.get("request_id"),
            method=request.method,
            path=request.path,
            status=response.status_code,
            latency_ms=round(elapsed * 1000, 2),
            key_id=g.get("key_id"),
            remote=request.remote_addr,
        )
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        messages = {413: "Upload too large", 429: "Rate limit exceeded", 405: "Method not allowed", 404: "Not found"}
        response = exc.get_response()
        body = _error(exc.code or 500, messages.get(exc.code, exc.name))
        response.set_data(body.get_data())
        response.content_type = "application/json"
        if exc.code == 429 and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, g.get("request_id"))
        return _error(500, "Internal server error", request_id=g.get("request_id"))

    @app.post("/classify")
    @limiter.limit(settings["RATE_LIMIT"])
    def classify():
        uploads = _collect_uploads()
        if not uploads:
            return _error(400, NO_FILE)
        if len(uploads) > max_files:
            return _error(413, f"Too many files: at most {max_files} per request")
        single = len(uploads) == 1 and not request.files.getlist("files")
        try:
            results = service.classify_many(uploads)
        except Overloaded:
            metrics.overloaded.inc()
            g.retry_after = "1"
            return _error(503, "Server busy, retry shortly")
        if single:
            result = results[0]
            if "error" in result:
                return _error(400, BAD_IMAGE)
            return jsonify(result)
        for (name, _), result in zip(uploads, results, strict=True):
            result["filename"] = name
        return jsonify(results)

    @app.get("/healthz")
    def health():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def ready():
        body = {
            "status": "ready",
            "model_version": classifier.artifact.version,
            "engine": classifier.engine.name,
            "queue_depth": service.batcher.queue_depth,
        }
        return jsonify(body)

    @app.get("/metrics")
    def metrics_endpoint():
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_document(__version__, bool(keys)))

    @app.get("/")
    def index():
        page = resources.files("bottlecheck.server").joinpath("index.html").read_text(encoding="utf-8")
        return Response(page.replace("{{KEYS_REQUIRED}}", "true" if keys else "false"), mimetype="text/html")

    return app
