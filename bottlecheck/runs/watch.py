"""``bottlecheck watch DIR``: classify each photo or clip that lands in a folder, once, when it is complete.

The folder (and below) is watched with ``watchdog`` (inotify on Linux). Any event on a file
with an image or video extension (created, written, closed, moved or renamed into place) makes
it a candidate; a candidate is classified once its size and modification time have not changed
for ``settle`` seconds, so a file still being copied is never read half-way. Hidden files
(``.name``) and the usual partial names (``*.part``, ``*.tmp``, ``*.crdownload``, ``*~``) are
ignored until renamed into place.

Rows are appended to the output (JSONL or CSV, flushed a row at a time); the output is also
the state: on start its rows say which files were answered, and every file already in the
folder that it does not name is classified. A restart answers no file twice and misses none
that landed while it was down. A clip is done once any of its rows is in the output.

Alarms: ``--on-open URL`` POSTs a JSON event for each open photo and each open stretch of a clip
(path, time, confidence, boxes) from a bounded queue with retries on its own thread, so a dead
webhook never stops the watching (events beyond the queue are dropped and counted);
``--metrics-port`` serves Prometheus counts by status and the time of the last open bottle.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from bottlecheck.classifier import Classifier
from bottlecheck.prediction import rounded
from bottlecheck.runs.classify import ClassifyRun
from bottlecheck.runs.events import stretches
from bottlecheck.sources.discovery import CLIP, input_kind, is_input_path, read_input, walk_images
from bottlecheck.sources.video import Sampling

PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".swp", "~")
WEBHOOK_QUEUE = 1000
WEBHOOK_TRIES = 4


def is_candidate(path: str) -> bool:
    """An image or clip under its final name (not hidden, not a partial download)."""
    name = os.path.basename(path)
    return not name.startswith(".") and not name.lower().endswith(PARTIAL_SUFFIXES) and is_input_path(name)


class WatchMetrics:
    """Prometheus series of a watch: rows by status, the time of the last open bottle, the webhook's health."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

        disable_created_metrics()  # as the server: no *_created series

        self.registry = CollectorRegistry(auto_describe=True)
        self.rows = Counter(
            "bottlecheck_watch_rows", "Rows written (photos and sampled frames), by status", ["status"],
            registry=self.registry,
        )  # fmt: skip
        for status in ("open", "closed", "unknown", "error"):
            self.rows.labels(status)
        self.files = Counter("bottlecheck_watch_files", "Files classified", registry=self.registry)
        self.last_open = Gauge(
            "bottlecheck_watch_last_open_timestamp_seconds",
            "Unix time of the last open bottle seen (0: none yet)",
            registry=self.registry,
        )
        self.webhook_failures = Counter(
            "bottlecheck_watch_webhook_failures", "Webhook events given up after every retry", registry=self.registry
        )
        self.webhook_dropped = Counter(
            "bottlecheck_watch_webhook_dropped", "Webhook events dropped: the queue was full", registry=self.registry
        )
        self.pending = Gauge("bottlecheck_watch_pending_files", "Files waiting to settle", registry=self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=self.registry)

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


class Webhook:
    """POSTs events to ``url`` from a bounded queue on its own thread, retrying with back-off."""

    def __init__(
        self,
        url: str,
        metrics: WatchMetrics,
        say: Callable[[str], None],
        timeout: float = 5.0,
        backoff: float = 0.5,
        size: int = WEBHOOK_QUEUE,
    ):
        self.url, self.metrics, self.say, self.timeout, self.backoff = url, metrics, say, timeout, backoff
        self.queue: queue.Queue[dict | None] = queue.Queue(maxsize=size)
        self.thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self.thread.start()

    def send(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:  # a dead webhook: keep watching, count what it missed
            self.metrics.webhook_dropped.inc()

    def close(self, wait: float = 5.0) -> None:
        """Let the queue drain for up to ``wait`` seconds (a live webhook gets the last events)."""
        try:
            self.queue.put(None, timeout=wait)
        except queue.Full:
            return
        self.thread.join(wait)

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            body = json.dumps(event).encode()
            for attempt in range(WEBHOOK_TRIES):
                request = urllib.request.Request(
                    self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=self.timeout) as response:
                        if response.status < 300:
                            break
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    reason = str(getattr(exc, "reason", exc))
                    if attempt == WEBHOOK_TRIES - 1:
                        self.metrics.webhook_failures.inc()
                        self.say(f"webhook {self.url} failed {WEBHOOK_TRIES} times ({reason}); event dropped")
                        break
                time.sleep(self.backoff * 2**attempt)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Watcher:
    """Classifies settled files of ``directory``, writing their rows through ``run``; :meth:`run` until :meth:`stop`."""

    def __init__(
        self,
        directory: str,
        classifier: Classifier,
        run: ClassifyRun,
        sampling: Sampling,
        settle: float = 1.0,
        metrics: WatchMetrics | None = None,
        webhook: Webhook | None = None,
        say: Callable[[str], None] = print,
        workers: int | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        self.directory = directory
        self.classifier = classifier
        self.classify_run = run  # rows are written, and a restart's answered files read, through the run
        self.sampling = sampling
        self.settle = settle
        self.metrics = metrics or WatchMetrics()
        self.webhook = webhook
        self.say = say
        self.workers = workers
        self.echo = echo  # a line per answer and per open stretch, for a person watching the terminal
        self.done: set[str] = run.answered()
        self._seen: dict[str, tuple[float, tuple[int, int] | None]] = {}  # path -> (last change, (size, mtime))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ events
    def touch(self, path: str) -> None:
        """Something happened to ``path``: (re)start its settling clock."""
        if not is_candidate(path):
            return
        path = self._name(path)
        with self._lock:
            if path in self.done:
                return
            self._seen[path] = (time.monotonic(), None)
        self._wake.set()

    def _name(self, path: str) -> str:
        """Rows name files as found under DIR, as ``classify DIR`` would."""
        return os.path.join(self.directory, os.path.relpath(path, self.directory))

    def _handler(self) -> Any:
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.is_directory:
                    if event.event_type in ("created", "moved"):  # a folder moved in: its files too
                        for path in walk_images(getattr(event, "dest_path", "") or event.src_path):
                            watcher.touch(path)
                    return
                if event.event_type == "moved":
                    watcher.touch(event.dest_path)
                elif event.event_type != "deleted":
                    watcher.touch(event.src_path)

        return Handler()

    # ------------------------------------------------------------------ settling
    def ready(self) -> list[str]:
        """Candidates whose size and mtime held still for ``settle`` seconds; forgets those that vanished."""
        now = time.monotonic()
        found = []
        with self._lock:
            for path, (since, signature) in list(self._seen.items()):
                try:
                    info = os.stat(path)
                except OSError:
                    del self._seen[path]  # deleted or renamed away before it settled
                    continue
                current = (info.st_size, info.st_mtime_ns)
                if current != signature:
                    self._seen[path] = (now, current)
                elif now - since >= self.settle and info.st_size > 0:
                    del self._seen[path]
                    found.append(path)
            self.metrics.pending.set(len(self._seen))
        return sorted(found)

    # ------------------------------------------------------------------ work
    def classify(self, path: str) -> None:
        # Done from now: events that arrive while it is read (a late close, an atime) never queue it again.
        with self._lock:
            self.done.add(path)
            self._seen.pop(path, None)
        kind = input_kind(path, streams=False)  # a file in the folder: a photo or a clip
        items = read_input(path, self.sampling, skip=self.classify_run.skip(path), say=self.say, kind=kind)
        rows = []
        # A photo is one model call: no pipeline threads (nor copies of the model) for it alone.
        workers = self.workers if kind == CLIP else 1
        for prediction in self.classifier.classify_paths(items, workers=workers):
            row = self.classify_run.write(prediction)
            self.metrics.rows.labels(prediction.status).inc()
            rows.append(row)
            if prediction.status == "open":
                self.metrics.last_open.set(time.time())
                if self.webhook is not None and prediction.frame is None:
                    self.webhook.send(self._event(row))
        self.metrics.files.inc()
        if self.echo is not None:
            self._tell(path, rows, kind)
        if self.webhook is not None and kind == CLIP:
            for stretch in stretches(rows):
                peak = next(r for r in rows if r.get("frame") == stretch.peak_frame)
                self.webhook.send(
                    {**self._event(peak), **stretch.as_dict(), "confidence": stretch.as_dict()["peak_confidence"]}
                )

    def _tell(self, path: str, rows: list[dict], kind: str) -> None:
        """One line for a photo's answer; for a clip, its frame count and each open stretch."""
        assert self.echo is not None
        if kind != CLIP:
            for row in rows:
                said = row["error"] if row["status"] == "error" else f"{row['confidence']:.2f}"
                self.echo(f"{row['status']:<7} {said}  {path}")
            return
        found = stretches(rows)
        self.echo(f"clip    {len(rows)} frames, {len(found)} open stretch(es)  {path}")
        for stretch in found:
            self.echo("  " + stretch.describe())

    @staticmethod
    def _event(row: dict) -> dict:
        return {
            "event": "open",
            "path": row["path"],
            "time": _now(),
            "confidence": rounded(row["confidence"]),  # DECIMALS, as every output
            "p_open": rounded(row["p_open"]),
            "frame": row.get("frame"),
            "time_s": row.get("time_s"),
            "boxes": [rounded(top) for top in row.get("tops") or ()],
        }

    def scan(self) -> None:
        """Every file already in the folder that the output does not name becomes a candidate."""
        for path in walk_images(self.directory):
            self.touch(path)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        from watchdog.observers import Observer

        observer = Observer()
        observer.schedule(self._handler(), self.directory, recursive=True)
        observer.start()
        try:
            self.scan()  # after the observer started: a file landing now is seen by one or both
            if on_ready is not None:
                on_ready()
            while not self._stopped.is_set():
                for path in self.ready():
                    if self._stopped.is_set():
                        break
                    self.classify(path)
                with self._lock:
                    waiting = bool(self._seen)
                # Candidates are re-checked every quarter of the settling time; with none, sleep until an event.
                self._wake.wait(timeout=max(0.05, self.settle / 4) if waiting else 1.0)
                self._wake.clear()
        finally:
            observer.stop()
            observer.join(timeout=5)
