"""One run's side effects, apart from the command that starts it: rows, stretches, annotated copies, stopping.

A run writes its rows (the sink: a file or stdout, new or resumed), finds the open stretches of
its clips (said on stderr, written to ``--events``), draws its answers on copies
(``--save-annotated``: a photo as it is answered, a clip once its rows are in) and, when it reads
live sources, ends cleanly on Ctrl-C or SIGTERM. ``classify`` and ``watch`` both run through
:class:`ClassifyRun`, so a row is written and a live run stopped the same way in both, and the
commands are left to parse options and print.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Container, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bottlecheck.prediction import Prediction
from bottlecheck.sources.discovery import Inputs
from bottlecheck.writers.rows import open_sink

if TYPE_CHECKING:
    from bottlecheck.classifier import Classifier
    from bottlecheck.runs.events import Event
    from bottlecheck.sources.video import Sampling, VideoFrame
    from bottlecheck.writers.annotate import AnnotatedCopies


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class ClassifyRun:
    """The side effects of one run: ``with ClassifyRun(...) as run:``, then :meth:`write` each answer.

    Making one opens the output (:func:`~bottlecheck.writers.rows.open_sink`; ValueError when resuming
    a file that holds something else, which is never overwritten), the ``events_path`` file and
    the ``annotated_dir`` folder. ``inputs`` are a ``classify`` run's (their order is the output's;
    their clips and streams get stretches and annotated clips); a ``watch`` run has none.

    A ``live`` run (a stream, a watched folder) runs until stopped: inside its ``with`` block
    SIGTERM stops it as Ctrl-C does, and a stop says "stopped" and ends it as if it had finished
    (its rows complete, its stretches written). Any other error leaves the block with the output
    as far as it got and no stretches written.
    """

    def __init__(
        self,
        output: str | None,
        fmt: str,
        fields: tuple[str, ...],
        nested: tuple[str, ...] = (),
        *,
        inputs: Inputs | None = None,
        resume: bool = False,
        events_path: str | None = None,
        annotated_dir: str | None = None,
        live: bool = False,
        say: Callable[[str], None] = _stderr,
    ) -> None:
        self.inputs = inputs if inputs is not None else Inputs([])
        self.live = live
        self.say = say
        self.counts = {"open": 0, "closed": 0, "unknown": 0, "error": 0}
        self.frames = 0  # rows of video frames
        self.found: list[Event] = []  # the clips' open stretches, once the run has ended
        self._stack = contextlib.ExitStack()
        self._signals = contextlib.ExitStack()
        try:
            order = inputs.paths if inputs is not None else None
            self.sink = self._stack.enter_context(
                open_sink(output, fmt, resume, fields=fields, nested=nested, order=order)
            )
            videos = bool(self.inputs.videos)
            self.events = (
                VideoEvents(events_path, self.sink.previous, self._stack, bool(self.inputs.streams), say)
                if videos or events_path
                else None
            )
            self.copies: AnnotatedCopies | None = None
            if annotated_dir:
                from bottlecheck.writers.annotate import AnnotatedCopies

                self.copies = AnnotatedCopies(annotated_dir, self.inputs.paths)
            self.clips = AnnotatedClips(self.copies, self.sink.previous) if self.copies and videos else None
        except BaseException:
            self._stack.close()
            raise

    def todo(self) -> list[str]:
        """The inputs to read: those the output does not answer yet, and every clip again.

        A clip's rows may stop anywhere (a run stopped half-way): it is decoded again and only the
        frames not answered are classified (:meth:`skip`).
        """
        return [path for path in self.inputs.paths if path not in self.sink.done or path in self.inputs.videos]

    def answered(self) -> set[str]:
        """The files an earlier run answered (any of a clip's rows counts): ``watch`` skips them."""
        return set(self.sink.done) | set(self.sink.done_frames)

    def skip(self, path: str) -> Container[int]:
        """The frames of clip ``path`` an earlier run answered."""
        return self.sink.done_frames.get(path, ())

    def predictions(
        self,
        classifier: Classifier,
        paths: Iterable[str],
        sampling: Sampling,
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> Iterator[Prediction]:
        """The answers for ``paths`` (some of the run's inputs), in order, on the local pipeline.

        With a stream among the inputs, a row comes as soon as its frame is classified, not a batch later.
        """
        items: Iterator[str | VideoFrame] = self.inputs.items(paths, sampling, skip=self.skip, say=self.say)
        if self.inputs.streams:
            return classifier.classify_paths(items, batch_size=batch_size or 1, workers=workers, prefetch_batches=1)
        return classifier.classify_paths(items, batch_size=batch_size, workers=workers)

    def write(self, prediction: Prediction) -> dict[str, Any]:
        """Write one answer's row, count it, draw it and follow its clip's stretches; the row is returned."""
        row = prediction.as_dict()
        self.sink.write(row)
        path = prediction.path
        if self.clips is not None and path in self.inputs.videos and path not in self.inputs.streams:
            self.clips.add(row)
        elif self.copies is not None and path not in self.inputs.videos:
            self.copies.save(path, prediction)
        self.counts[prediction.status] += 1
        self.frames += prediction.frame is not None
        if self.events is not None:
            self.events.feed(row)
        return row

    def close_with(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` when the run ends, before the output is closed (``watch``'s webhook drains there)."""
        self._stack.callback(callback)

    def __enter__(self) -> ClassifyRun:
        if self.live:
            self._signals.enter_context(_sigterm_stops())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        stopped = self.live and kind is not None and issubclass(kind, KeyboardInterrupt)
        if kind is not None and not stopped:
            self._signals.close()
            self._stack.__exit__(kind, error, traceback)
            return False
        if stopped:  # Ctrl-C or SIGTERM: a live run ends here, its rows complete
            self.say("stopped")
        with self._stack:
            with self._signals:
                if self.clips is not None:
                    self.clips.flush()
                if self.events is not None:
                    self.found = self.events.finish(order=self.inputs.paths)
        return stopped


class AnnotatedClips:
    """``--save-annotated`` for clips: each clip, once its rows are in, written again with its answers drawn."""

    def __init__(self, copies: AnnotatedCopies, previous: list[dict]) -> None:
        self.copies = copies
        self.previous = previous  # a resumed run's earlier rows: their frames are drawn too
        self.path: str | None = None
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        if row["path"] != self.path:
            self.flush()
            self.path = row["path"]
            self.rows = [r for r in self.previous if r.get("path") == self.path]
        self.rows.append(row)

    def flush(self) -> None:
        from bottlecheck.sources.video import annotated_codec, write_annotated_clip

        if self.path is None:
            return
        relative = self.copies.relative(self.path)
        target = self.copies.directory / relative.with_suffix(annotated_codec()[1])
        write_annotated_clip(self.path, self.rows, target)  # it reads the rows, keeps frames, goes in frame order
        self.path, self.rows = None, []


class VideoEvents:
    """The open stretches of a run's clips: said at the end, written to ``--events FILE`` (JSONL).

    A clip's stretches are found from all its rows in frame order when the run ends (with
    ``--resume``, the earlier run's rows too); a stream's are written and said as each ends.
    """

    def __init__(
        self,
        path: str | None,
        previous: list[dict],
        stack: contextlib.ExitStack,
        live: bool,
        say: Callable[[str], None] = _stderr,
    ) -> None:
        from bottlecheck.runs.events import EventTracker

        self.rows: list[dict] = [_frame_row(row) for row in previous if row.get("frame") not in (None, "")]
        self.live = EventTracker() if live else None
        self.live_events: list[Any] = []
        self.say = say
        self.stream = stack.enter_context(open(path, "w", encoding="utf-8")) if path else None

    def feed(self, row: dict) -> None:
        if row.get("frame") is None:
            return
        if self.live is not None:
            event = self.live.feed(row)
            if event is not None:
                self._emit(event)
            return
        self.rows.append(_frame_row(row))

    def _emit(self, event: Any) -> None:
        self.live_events.append(event)
        if self.stream is not None:
            self.stream.write(json.dumps(event.as_dict()) + "\n")
            self.stream.flush()
        self.say(f"open bottle: {event.describe()}")

    def finish(self, order: list[str]) -> list[Any]:
        from bottlecheck.runs.events import stretches

        if self.live is not None:
            for event in self.live.finish():
                self._emit(event)
            return self.live_events
        place = {path: index for index, path in enumerate(order)}
        self.rows.sort(key=lambda row: (place.get(row["path"], -1), row["frame"]))
        found = stretches(self.rows)
        found.sort(key=lambda event: (place.get(event.path, -1), event.start_frame))
        if self.stream is not None:
            for event in found:
                self.stream.write(json.dumps(event.as_dict()) + "\n")
            self.stream.flush()
        return found


def _frame_row(row: dict) -> dict:
    """What a stretch needs of a row (also of one read back from CSV, where every cell is text)."""
    answer = Prediction.from_row(row)
    return {
        "path": answer.path,
        "frame": answer.frame,
        "time_s": answer.time_s,
        "status": answer.status,
        "confidence": answer.confidence,
    }


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """While a live run reads, SIGTERM stops it as Ctrl-C does: the rows so far are written and complete."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a test's runner): Ctrl-C only
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
