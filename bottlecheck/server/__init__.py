"""The HTTP API: ``create_app(config)`` builds it; ``bottlecheck serve`` runs it under gunicorn."""

from bottlecheck.server.app import create_app

__all__ = ["create_app"]
