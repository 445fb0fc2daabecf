"""The OpenAPI 3.1 description served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string", "description": "what went wrong, in more words (not on every error)"},
        "request_id": {"type": "string"},
    },
}
_TOP = {
    "type": "object",
    "properties": {
        "box": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 4,
            "maxItems": 4,
            "description": "x0, y0, x1, y1 in the photo's own pixels, after EXIF orientation",
        },
        "status": {"type": "string", "enum": ["open", "closed"]},
        "confidence": {"type": "number", "minimum": 0.5, "maximum": 1},
    },
}
_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["Bottle_Status", "Confidence"],
    "properties": {
        "Bottle_Status": {
            "type": "string",
            "enum": ["open", "closed", "unknown"],
            "description": "open when any bottle top found is open, closed when every one is closed; "
            "unknown (a tops model) when no top is visible (cut off, no bottle, too dark)",
        },
        "Confidence": {"type": "number", "minimum": 0.5, "maximum": 1, "description": "probability of Bottle_Status"},
        "p_open": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "model_version": {"type": "string"},
        "bottles": {"type": "array", "items": _TOP, "description": "a tops model: every bottle top found"},
        "counts": {
            "type": "object",
            "description": "a tops model: bottle tops found, open and closed",
            "properties": {k: {"type": "integer", "minimum": 0} for k in ("bottles", "open", "closed")},
        },
    },
}
_ITEM = {
    "oneOf": [
        {**_ANSWER, "properties": {**_ANSWER["properties"], "filename": {"type": "string"}}},
        {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "filename": {"type": "string"}},
        },
    ]
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(version: str, keys_required: bool) -> dict[str, Any]:
    errors = {
        "400": _json(_ERROR, "No file uploaded, or not a readable image"),
        "413": _json(_ERROR, "Upload too large or too many files"),
        "429": _json(_ERROR, "Rate limit exceeded (see Retry-After)"),
        "503": _json(_ERROR, "Server busy (see Retry-After)"),
    }
    if keys_required:
        errors["401"] = _json(_ERROR, "Missing or invalid API key")
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "bottlecheck",
            "version": version,
            "description": "Is this beer bottle open (cap off) or closed (cap on)?",
        },
        "paths": {
            "/classify": {
                "post": {
                    "summary": "Classify one image, or several",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "one photo: one answer",
                                        },
                                        "image": {
                                            "type": "string",
                                            "format": "binary",
                                            "description": "another name for file; with both (or either "
                                            "repeated) the photos are answered as a list, as files are",
                                        },
                                        "files": {
                                            "type": "array",
                                            "items": {"type": "string", "format": "binary"},
                                            "description": "several photos, answered as a list; with file or "
                                            "image as well, the list is in field order: file, image, files",
                                        },
                                    },
                                }
                            },
                            "image/*": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One answer for a single photo in `file` (or `image`); a list "
                            "(each with its filename, in field order: file, image, files) for several",
                            "content": {
                                "application/json": {"schema": {"oneOf": [_ANSWER, {"type": "array", "items": _ITEM}]}}
                            },
                        },
                        **errors,
                    },
                }
            },
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": _json({"type": "object"}, "alive")}}},
            "/readyz": {"get": {"summary": "Model loaded", "responses": {"200": _json({"type": "object"}, "ready")}}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }
    if keys_required:
        document["components"] = {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
        }
        document["paths"]["/classify"]["post"]["security"] = [{"apiKey": []}, {"bearer": []}]
    return document
