"""The labels file: a person's decisions, one entry per photo, saved the moment they are made.

The file sits beside the results (``results.jsonl`` -> ``results.jsonl.labels.json``) so the
two travel together. Why it is written the way it is:

* **Atomically.** Each write goes to a temporary file in the same folder, is flushed to disk and
  renamed over the old one (``os.replace``): a kill at any moment leaves the old file or the new
  one, never half of one, so killing the page loses nothing already answered.
* **Merged under a lock.** Two browsers (or two ``review`` processes) on the same results each
  change one photo at a time. A write takes an exclusive lock on ``<labels>.lock``, re-reads the
  file, changes only its own photo and writes the whole back: no decision is lost, and for one
  photo the last write wins.
* **Re-read when it changes.** A person may fix the file by hand while the page runs; reads
  compare the file's mtime and size with the last read and load it again when they differ.

Each entry: ``label`` (``open``, ``closed``, ``none`` for no top visible, ``skip``, or None while
only boxes were corrected), ``added`` (tops the finder missed, ``[x0, y0, x1, y1]`` in the
photo's own pixels), ``removed`` (the finder's boxes that are no top) and ``at`` (epoch seconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere the lock is this process's only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LABELS = ("open", "closed", "none", "skip")
FORMAT_VERSION = 1
SUFFIX = ".labels.json"

Box = list[float]


def labels_path_for(results: str | os.PathLike) -> Path:
    """Where the labels of ``results`` live: beside it, its name plus :data:`SUFFIX`."""
    results = Path(results)
    return results.with_name(results.name + SUFFIX)


def _box(value: Any) -> Box:
    box = [float(v) for v in value]
    if len(box) != 4 or not (box[0] <= box[2] and box[1] <= box[3]):
        raise ValueError(f"a box is [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {value!r}")
    return [round(v, 1) for v in box]


def clean_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as stored: a known label (or None), boxes as four numbers; raises ValueError otherwise.

    The page and hand edits both feed the file, so both go through one check: a typo in a
    label must not turn into an ``open/`` photo at export.
    """
    label = entry.get("label")
    if label is not None and label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)} or null, got {label!r}")
    return {
        "label": label,
        "added": [_box(b) for b in entry.get("added") or []],
        "removed": [_box(b) for b in entry.get("removed") or []],
        "at": float(entry.get("at") or time.time()),
    }


def _empty() -> dict[str, Any]:
    return {"version": FORMAT_VERSION, "labels": {}, "meta": {}}


def read_labels_file(path: Path) -> dict[str, Any]:
    """The file's content; an absent file is empty. Entries that fail :func:`clean_entry` are dropped, not fatal."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _empty()
    data = json.loads(text) if text.strip() else _empty()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a labels file (expected a JSON object)")
    labels: dict[str, Any] = {}
    for photo, entry in (data.get("labels") or {}).items():
        if isinstance(entry, str):  # a hand edit may write just the label
            entry = {"label": entry}
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            labels[str(photo)] = clean_entry(entry)
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return {"version": FORMAT_VERSION, "labels": labels, "meta": meta}


def write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` by temp file, fsync and rename: readers see the old file or the new, never half."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


class LabelStore:
    """The labels of one results file: :meth:`labels` to read, :meth:`put` to change one photo."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._data = _empty()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _refresh(self) -> None:
        stamp = self._stamp()
        if stamp != self._seen or stamp is None:
            self._data = read_labels_file(self.path)
            self._seen = stamp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then other processes (``flock`` on a lock file that is never replaced)."""
        with self._thread_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._lock_path, "a") as lock:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    if fcntl is not None:
                        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def labels(self) -> dict[str, dict[str, Any]]:
        """Every photo's entry, re-read from disk when the file changed (a hand edit, another browser)."""
        with self._thread_lock:
            self._refresh()
            return {photo: dict(entry) for photo, entry in self._data["labels"].items()}

    def meta(self) -> dict[str, Any]:
        with self._thread_lock:
            self._refresh()
            return dict(self._data["meta"])

    def _change(self, change: Any) -> dict[str, Any]:
        with self._locked():
            data = read_labels_file(self.path)  # the file as it is now: what others wrote is kept
            change(data)
            write_atomically(self.path, json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
            self._data, self._seen = data, self._stamp()
            return data

    def put(self, photo: str, entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Set ``photo``'s entry (None removes it, as an undo to nothing); returns what was stored."""
        cleaned = None if entry is None else clean_entry({**entry, "at": time.time()})

        def change(data: dict[str, Any]) -> None:
            if cleaned is None:
                data["labels"].pop(photo, None)
            else:
                data["labels"][photo] = cleaned

        self._change(change)
        return cleaned

    def set_meta(self, key: str, value: Any) -> None:
        """Record something about the labels as a whole (the last export and its held-back photos)."""

        def change(data: dict[str, Any]) -> None:
            data["meta"][key] = value

        self._change(change)
