"""Events, not just frames: the stretches of a clip or stream where an open bottle top is seen.

A line operator wants "an open bottle passed at 00:03:12", not 9,000 rows. A stretch starts at
the first of :data:`HYSTERESIS` consecutive open frames and ends at the last open frame before
:data:`HYSTERESIS` consecutive frames that are not open (closed, unknown or unreadable), or at
the clip's end: one noisy frame neither starts a stretch nor ends one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bottlecheck.prediction import rounded

#: Consecutive sampled frames that start (open) or end (not open) a stretch.
HYSTERESIS = 2


@dataclass
class Event:
    """One stretch where an open top is seen: first and last open frame, and the most confident one."""

    path: str
    start_s: float | None
    end_s: float | None
    start_frame: int
    end_frame: int
    open_frames: int
    peak_confidence: float
    peak_time_s: float | None
    peak_frame: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON object: numbers to :data:`~bottlecheck.prediction.DECIMALS`, as in every output."""
        return rounded(asdict(self))

    def describe(self) -> str:
        peak = f"peak {self.peak_confidence:.2f} at {clock(self.peak_time_s)}"
        return f"{self.path}: open {clock(self.start_s)} - {clock(self.end_s)} ({self.open_frames} open frames, {peak})"


def clock(seconds: float | None) -> str:
    """``00:03:12.5``; ``-`` for no time."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{rest:04.1f}"


class _Clip:
    def __init__(self, path: str):
        self.path = path
        self.run: list[dict] = []  # open frames not yet a stretch (fewer than HYSTERESIS in a row)
        self.current: Event | None = None
        self.closing = 0  # frames not open since the current stretch's last open frame

    def feed(self, row: dict) -> Event | None:
        if row.get("frame") is None:  # a clip's error row: the clip ended there
            return None
        if row.get("status") == "open":
            self.closing = 0
            if self.current is not None:
                self._extend(self.current, row)
                return None
            self.run.append(row)
            if len(self.run) >= HYSTERESIS:
                first = self.run[0]
                self.current = Event(
                    self.path,
                    first.get("time_s"),
                    first.get("time_s"),
                    first["frame"],
                    first["frame"],
                    1,
                    float(first.get("confidence") or 0.0),
                    first.get("time_s"),
                    first["frame"],
                )
                for later in self.run[1:]:
                    self._extend(self.current, later)
                self.run = []
            return None
        self.run = []
        if self.current is None:
            return None
        self.closing += 1
        if self.closing >= HYSTERESIS:
            return self.finish()
        return None

    @staticmethod
    def _extend(event: Event, row: dict) -> None:
        event.end_s, event.end_frame = row.get("time_s"), row["frame"]
        event.open_frames += 1
        confidence = float(row.get("confidence") or 0.0)
        if confidence > event.peak_confidence:
            event.peak_confidence, event.peak_time_s, event.peak_frame = confidence, row.get("time_s"), row["frame"]

    def finish(self) -> Event | None:
        done, self.current, self.closing, self.run = self.current, None, 0, []
        return done


class EventTracker:
    """Feed rows in order (frames of several clips may interleave); get each stretch once it has ended."""

    def __init__(self) -> None:
        self._clips: dict[str, _Clip] = {}

    def feed(self, row: dict) -> Event | None:
        """The stretch this row ends, if any. Rows without a ``frame`` (photos) are ignored."""
        if row.get("frame") is None:
            return None
        path = str(row["path"])
        clip = self._clips.get(path)
        if clip is None:
            clip = self._clips[path] = _Clip(path)
        return clip.feed(row)

    def finish(self, path: str | None = None) -> list[Event]:
        """End the stretches still open: of ``path`` (its clip ended), else of every clip."""
        paths = [path] if path is not None else list(self._clips)
        ended = [clip.finish() for name in paths if (clip := self._clips.pop(name, None)) is not None]
        return [event for event in ended if event is not None]


def stretches(rows: list[dict]) -> list[Event]:
    """Every stretch in ``rows`` (one clip's, or several clips' in order), in the order they end."""
    tracker = EventTracker()
    events = [event for row in rows if (event := tracker.feed(row)) is not None]
    return events + tracker.finish()
