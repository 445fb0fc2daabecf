"""Server settings: defaults, overridden by ``BOTTLECHECK_*`` environment variables, overridden by code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "MODEL": None,  # model directory; None = bundled
    "ENGINE": "auto",
    "ENGINE_THREADS": None,  # threads of the one model copy when MODEL_COPIES is 1
    "MODEL_COPIES": None,  # single-threaded model copies, one batching thread each; None = one per CPU
    "THRESHOLD": None,  # None = the model's
    "API_KEYS": "",  # comma-separated; empty = no authentication
    "API_KEYS_FILE": None,  # one key per line, '#' comments
    "RATE_LIMIT": "600/minute;30/second",  # per API key, or per client address without keys
    "RATE_LIMIT_STORAGE_URI": "memory://",  # redis://host:6379 to share limits across workers
    "MAX_UPLOAD_MB": 20.0,
    "MAX_FILES": 32,  # images in one request
    "MAX_FORM_PARTS": 64,  # multipart fields of any kind
    "MAX_PIXELS": 50_000_000,
    "BATCH_MAX_SIZE": None,  # images per model call; None = the engine's best (4 for LiteRT, 32 for TensorFlow)
    "BATCH_MAX_WAIT_MS": 5.0,
    "QUEUE_MAX": 64,
    "REQUEST_TIMEOUT_S": 30.0,
    "CACHE_SIZE": 4096,  # LRU entries; 0 disables
    "CACHE_URL": None,  # redis://host:6379/0 to share the cache
    "TRUSTED_PROXIES": 0,  # X-Forwarded-For hops to trust (behind a load balancer)
    "LOG_FORMAT": "auto",  # "json" (every line, gunicorn's too), "text", or "auto": text to a terminal, else JSON
    "REVIEW_RESULTS": None,  # a classify results file (JSONL, CSV) to review at /review
    "REVIEW_UPLOADS": None,  # a directory: web-page uploads ticked "queue for review" are kept there for /review
}

_TYPES = {key: type(value) for key, value in DEFAULTS.items() if value is not None}
_TYPES.update({"ENGINE_THREADS": int, "MODEL_COPIES": int, "BATCH_MAX_SIZE": int, "THRESHOLD": float})


def load_config(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """Merge defaults, ``BOTTLECHECK_<NAME>`` environment variables and ``overrides``."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        raw = environ.get(f"BOTTLECHECK_{key}")
        if raw not in (None, ""):
            kind = _TYPES.get(key, str)
            config[key] = kind(raw)
    for key, value in (overrides or {}).items():
        config[key.upper()] = value
    return config


def api_keys(config: Mapping[str, Any]) -> list[str]:
    """The configured keys, from the list and from the keys file."""
    keys = config.get("API_KEYS") or ""
    found = [k.strip() for k in (keys.split(",") if isinstance(keys, str) else keys) if k and k.strip()]
    path = config.get("API_KEYS_FILE")
    if path:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                line = line.split("#", 1)[0].strip()
                if line:
                    found.append(line)
    return found
