"""The Flask application factory.

The contract (clients are written against it, keep it exactly):

* ``POST /classify`` with a multipart ``file`` -> ``200 {"Bottle_Status": "open", "Confidence": 0.85, ...}``
* no file -> ``400 {"error": "No file uploaded", "detail": ...}``;
  not an image -> ``400 {"error": "Unable to process image", "detail": ...}``

The factory wires the parts together: settings (:mod:`.config`), the service
(:mod:`.service`), API keys (:mod:`.auth`), the rate limiter, request ids, metrics
and the access log (:mod:`.observability`), error handlers (:mod:`.errors`) and
the routes (:mod:`.routes`).
"""

from __future__ import annotations

import atexit
import copy
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import MethodNotAllowed

from bottlecheck.classifier import Classifier
from bottlecheck.review.blueprint import mount_from_settings as mount_review
from bottlecheck.server.auth import KeyChecker
from bottlecheck.server.config import api_keys, load_config
from bottlecheck.server.errors import error_response, register_error_handlers
from bottlecheck.server.observability import ServerMetrics, log_request
from bottlecheck.server.routes import api
from bottlecheck.server.service import ClassificationService
from bottlecheck.server.uploads import InMemoryUploads
from bottlecheck.server.wsgi import DrainUnreadBody

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# review.page is the review page's static HTML; its data and photos stay behind the keys.
OPEN_ROUTES = {"api.health", "api.ready", "api.metrics", "api.openapi", "api.index", "static", "review.page"}
REFUSALS_WITH_RETRY_AFTER = {429, 503}


def create_app(config: Mapping[str, Any] | None = None, classifier: Classifier | None = None) -> Flask:
    """Build the app: settings from defaults, ``BOTTLECHECK_*`` environment variables, then ``config``.

    Loads the model once; pass ``classifier`` to share one between apps (tests): the
    app works on its own copy, so its settings never change the caller's.
    """
    settings = load_config(config)
    app = Flask(__name__)
    app.request_class = InMemoryUploads  # a phone photo never goes through a temporary file
    upload_limit = int(float(settings["MAX_UPLOAD_MB"]) * 1024 * 1024)
    app.config.update(MAX_CONTENT_LENGTH=upload_limit, MAX_FORM_PARTS=int(settings["MAX_FORM_PARTS"]))
    app.config["BOTTLECHECK"] = settings
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # the contract's key order: Bottle_Status, then Confidence
    if int(settings["TRUSTED_PROXIES"]) > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(settings["TRUSTED_PROXIES"]))  # type: ignore[method-assign]
    app.wsgi_app = DrainUnreadBody(app.wsgi_app, 4 * upload_limit)  # type: ignore[method-assign]

    classifier = _own_classifier(classifier, settings)
    _ = classifier.artifact.checksum  # hash the model file now, not inside the first request
    service = ClassificationService(classifier, settings, ServerMetrics(classifier.artifact.version))
    atexit.register(service.close)
    app.extensions["bottlecheck"] = service
    app.extensions["bottlecheck.keys"] = KeyChecker(api_keys(settings))

    _register_hooks(app, settings)
    register_error_handlers(app)
    app.register_blueprint(api)
    mount_review(app, classifier, settings)  # /review: REVIEW_RESULTS (a results file) or REVIEW_UPLOADS (a folder)
    limiter = app.extensions["bottlecheck.limiter"]
    if limiter is not None:
        app.view_functions["api.classify"] = limiter.limit(settings["RATE_LIMIT"])(app.view_functions["api.classify"])
    return app


def _own_classifier(classifier: Classifier | None, settings: Mapping[str, Any]) -> Classifier:
    if classifier is None:
        classifier = Classifier.load(
            settings["MODEL"],
            engine=settings["ENGINE"],
            threshold=settings["THRESHOLD"],
            threads=settings["ENGINE_THREADS"],
        )
    else:
        classifier = copy.copy(classifier)  # shares the engine (thread-safe), not the settings
        if settings["THRESHOLD"] is not None:
            classifier.threshold = float(settings["THRESHOLD"])
    classifier.max_pixels = int(settings["MAX_PIXELS"])
    return classifier


def _route_of(app: Flask) -> str:
    """The route a request was for, also when its method was wrong (a 405 has no matched rule)."""
    if request.url_rule is not None:
        return request.url_rule.rule
    exc = request.routing_exception
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        adapter = app.url_map.bind_to_environ(request.environ)
        rule, _ = adapter.match(method=next(iter(exc.valid_methods)), return_rule=True)
        return rule.rule
    return "unmatched"


def rate_limited(settings: Mapping[str, Any]) -> bool:
    """Whether ``RATE_LIMIT`` asks for limits: ``off`` (or empty) leaves them to the ingress.

    A limiter whose limit no one reaches still costs every request its bookkeeping (2.9% of a
    worker's samples under load in BENCHMARKS.md's profile, most of it the timer threads that
    :mod:`.limit_storage` now spares); switched off, it is not built at all.
    """
    return str(settings["RATE_LIMIT"] or "").strip().lower() not in ("", "off", "none")


def _limiter(app: Flask, settings: Mapping[str, Any]) -> Any:
    """Flask-Limiter on ``app``: per API key, or per client address without keys; a lost Redis degrades."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    from bottlecheck.server import limit_storage  # registers its scheme with limits

    storage_uri = str(settings["RATE_LIMIT_STORAGE_URI"]).strip()
    if storage_uri.startswith("memory://"):  # limits' own starts a thread every 10 ms under load
        storage_uri = f"{limit_storage.SCHEME}://"
    return Limiter(
        lambda: f"key:{g.key_id}" if g.get("key_id") else f"ip:{get_remote_address()}",
        app=app,
        storage_uri=storage_uri,
        headers_enabled=True,
        default_limits=[],
        # A lost Redis must degrade, never fail requests: limits fall back to this worker's
        # memory until the storage answers again (measured before: every request a 500).
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1}
        if str(settings["RATE_LIMIT_STORAGE_URI"]).startswith(("redis", "rediss"))
        else {},
    )


def _register_hooks(app: Flask, settings: Mapping[str, Any]) -> None:
    keys: KeyChecker = app.extensions["bottlecheck.keys"]
    service: ClassificationService = app.extensions["bottlecheck"]

    @app.before_request
    def start_request() -> Response | None:
        g.started = time.perf_counter()
        service.metrics.in_flight.inc()
        g.counted_in_flight = True
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.key_id = None
        if keys.required and request.endpoint not in OPEN_ROUTES:
            g.key_id = keys.key_id(request.headers)
            if g.key_id is None:
                return error_response(
                    401, "Missing or invalid API key", {"WWW-Authenticate": 'Bearer realm="bottlecheck"'}
                )
        return None

    @app.after_request
    def retry_after_only_on_refusals(response: Response) -> Response:
        # Registered before the limiter, so it runs after the limiter's header injection
        # (after_request runs in reverse order): our 503 says "retry in 1 s", not the rate
        # window, and an answer that was not refused carries no Retry-After at all.
        if g.get("retry_after"):
            response.headers["Retry-After"] = g.retry_after
        elif response.status_code not in REFUSALS_WITH_RETRY_AFTER:
            response.headers.pop("Retry-After", None)
        return response

    app.extensions["bottlecheck.limiter"] = _limiter(app, settings) if rate_limited(settings) else None

    @app.teardown_request
    def leave_flight(_exc: BaseException | None) -> None:
        if g.pop("counted_in_flight", False):
            service.metrics.in_flight.dec()

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = _route_of(app)
        service.metrics.requests.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        service.metrics.latency.labels(route=route).observe(elapsed)
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
