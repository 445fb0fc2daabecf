"""Every error is JSON: ``{"error": message}``, with ``detail`` where there is more to say."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

log = logging.getLogger("bottlecheck.server")

MESSAGES = {413: "Upload too large", 429: "Rate limit exceeded", 405: "Method not allowed", 404: "Not found"}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None, **extra) -> Response:
    response = jsonify({"error": message, **{k: v for k, v in extra.items() if v is not None}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> WerkzeugResponse:
        response = exc.get_response()  # keeps the exception's headers (Allow on a 405)
        body = error_response(exc.code or 500, MESSAGES.get(exc.code or 500, exc.name))
        response.set_data(body.get_data())
        response.content_type = "application/json"
        if exc.code == 429 and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, g.get("request_id"))
        return error_response(500, "Internal server error", request_id=g.get("request_id"))
