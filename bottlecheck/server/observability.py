"""Prometheus metrics and the structured access log.

Each app gets its own registry, so tests can build many apps. Under gunicorn
with several workers, ``bottlecheck serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` aggregates every worker's values (prometheus_client's multiprocess
mode).
"""

from __future__ import annotations

import json
import logging
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# The *_created series (a timestamp per label set) double what a scrape returns and no
# dashboard or alert here reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

access_log = logging.getLogger("bottlecheck.access")


class ServerMetrics:
    """The HTTP server's Prometheus metrics (``/metrics``); a watch has its own (``WatchMetrics``)."""

    def __init__(self, model_version: str):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bottlecheck_http_requests_total",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "bottlecheck_http_request_duration_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "bottlecheck_batch_size", "Images per model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.images = Counter("bottlecheck_images_total", "Images answered, by status", ["status"], registry=r)
        self.cache_hits = Counter("bottlecheck_cache_hits_total", "Answers served from the cache", registry=r)
        self.cache_misses = Counter("bottlecheck_cache_misses_total", "Images that needed the model", registry=r)
        self.overloaded = Counter("bottlecheck_overload_rejections_total", "Requests refused with 503", registry=r)
        # For autoscaling (a HorizontalPodAutoscaler or KEDA on a Prometheus query): how much work
        # waits and how much is being served right now, summed over the workers of a replica.
        self.queue_depth = Gauge(
            "bottlecheck_queue_depth", "Images waiting for the model", registry=r, multiprocess_mode="livesum"
        )
        self.in_flight = Gauge(
            "bottlecheck_requests_in_flight", "Requests being served", registry=r, multiprocess_mode="livesum"
        )
        self.model_info = Gauge(
            "bottlecheck_model_info",
            "The loaded model (value is always 1)",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_info.labels(version=model_version).set(1)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def log_request(**fields) -> None:
    """One JSON line per request: method, path, status, latency, key id (never the key)."""
    access_log.info(json.dumps(fields, separators=(",", ":"), default=str))


class JSONFormatter(logging.Formatter):
    """Every log line as one JSON object, gunicorn's own lines too, so a log shipper parses one format.

    An access line (already a JSON object) keeps its fields, with the time and level added.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields: dict = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == access_log.name and message.startswith("{"):
            try:
                fields.update(json.loads(message))
            except json.JSONDecodeError:
                fields["message"] = message
        else:
            fields["message"] = message
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields, separators=(",", ":"), default=str)


def logging_config(log_format: str) -> dict:
    """``logging.config.dictConfig`` for the server (gunicorn's loggers included): ``json`` or ``text``."""
    formatter = (
        {"()": JSONFormatter}
        if log_format == "json"
        else {"format": "%(asctime)s [%(levelname)s] %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"level": "INFO", "handlers": ["default"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["default"], "propagate": False},
            # The app writes one structured line per request; gunicorn's access line would repeat it.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
