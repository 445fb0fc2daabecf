"""Run the app under gunicorn (a real WSGI server) from ``bottlecheck serve``.

Each worker builds its own app after the fork, so the model is loaded once per
worker and no interpreter state crosses a fork. Workers use threads (``gthread``)
so that concurrent requests in a worker meet in the micro-batcher. On SIGTERM
gunicorn stops accepting connections and lets requests in flight finish (up to
``graceful_timeout``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

log = logging.getLogger("bottlecheck.server")


def _child_exit(_server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class BottlecheckServer(BaseApplication):
    def __init__(self, app_config: dict[str, Any], options: dict[str, Any]):
        self.app_config = app_config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)
        self.cfg.set("child_exit", _child_exit)

    def load(self):
        from bottlecheck.server.app import create_app

        return create_app(self.app_config)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    app_config: dict[str, Any],
    timeout: int = 60,
    graceful_timeout: int = 30,
) -> None:
    # First, before anything imports prometheus_client: it picks its multiprocess value
    # class once, at import, from this variable. Set later, workers kept their counts to
    # themselves and /metrics with --workers 2 came back empty.
    refuse_a_taken_port(host, port)
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bottlecheck-metrics-")
    import logging.config

    from bottlecheck.server.config import api_keys, load_config
    from bottlecheck.server.observability import logging_config

    settings = load_config(app_config)
    log_format = str(settings["LOG_FORMAT"])
    if log_format == "auto":  # a person at a terminal reads text; a collector reads JSON
        log_format = "text" if sys.stderr.isatty() else "json"
    log_config = logging_config(log_format)
    logging.config.dictConfig(log_config)
    if not api_keys(settings) and not is_loopback(host):
        log.warning(
            "serving on %s without API keys: anyone who can reach this port can use it "
            "(set BOTTLECHECK_API_KEYS or --api-keys-file)",
            host,
        )
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "keepalive": 5,
        "accesslog": None,  # the app writes one structured line per request
        "errorlog": "-",
        "loglevel": "info",
        "logconfig_dict": log_config,  # gunicorn's own lines in the same format as ours
        "preload_app": False,
        # Heartbeat files in memory when we may write there (not in every container).
        "worker_tmp_dir": "/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
        "control_socket_disable": True,  # gunicorn >= 25: no runtime-control socket in $HOME
    }
    try:
        BottlecheckServer(app_config, options).run()
    finally:  # the folder this run made for the workers' metrics files; one given by the caller is theirs
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class PortTaken(Exception):
    """The address to serve on is in use (or not ours to bind): said in one line, before the model loads."""


def refuse_a_taken_port(host: str, port: int) -> None:
    """Raise :class:`PortTaken` when ``host:port`` cannot be bound, as gunicorn would bind it (SO_REUSEADDR).

    Gunicorn itself retries for five seconds, logging each try, and then exits 1 with no hint.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortTaken(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; start the server with a different port (--port)"
            ) from None
