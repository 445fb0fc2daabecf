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

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

access_log = logging.getLogger("bottlecheck.access")


class Metrics:
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
