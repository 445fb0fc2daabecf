"""The HTTP API: ``create_app(config)`` builds it; ``bottlecheck serve`` runs it under gunicorn.

``create_app`` is imported on first use, so that the CLI can read the server's defaults
(``bottlecheck.server.config``) without importing Flask and prometheus_client: the
latter must first see ``PROMETHEUS_MULTIPROC_DIR``, which ``serve`` sets for several workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bottlecheck.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from bottlecheck.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
