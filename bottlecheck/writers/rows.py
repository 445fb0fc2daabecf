"""Output writers (table, CSV, JSON, JSONL) and reading back a partial output for ``--resume``.

Every row of a run has the same fields, in the same order, declared by the kind
of model that answered (``Classifier.columns``): ``path``, ``status``, ``confidence``,
``p_open``, ``error`` (:data:`~bottlecheck.prediction.FIELDS`, a whole-photo model), or with
``bottles``, ``open_tops`` and ``closed_tops`` before ``error``
(:data:`~bottlecheck.prediction.TOPS_FIELDS`, a tops model). Fields a CSV cell
cannot hold (``Classifier.nested_columns``: a tops model's ``tops``) are written by JSON and
JSONL only. A run with video clips adds ``frame`` and ``time_s`` after ``path``.
CSV and JSONL rows are written and flushed one at a time, so a crash loses at most the
batch in flight, and a row cut short by a kill is dropped on resume rather than breaking
the parser. JSON (one array) cannot be appended to, so it is written to a temporary file
and renamed into place when the run ends: the file is either the old one or complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from bottlecheck.prediction import DECIMALS, FIELDS, Prediction, rounded

# A run with video clips or streams: each row also says which frame and when (presentation time, s).
FRAME_FIELDS = ("frame", "time_s")
FORMATS = ("table", "csv", "json", "jsonl")
_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "table"}


def with_frames(fields: tuple[str, ...]) -> tuple[str, ...]:
    """``fields`` with :data:`FRAME_FIELDS` after ``path``: the columns of a run that has clips."""
    return fields[:1] + FRAME_FIELDS + fields[1:]


def format_for_path(path: str | os.PathLike) -> str | None:
    """The format implied by an output file's extension, or None."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


def resolve_format(fmt: str | None, output: str | os.PathLike | None, interactive: bool) -> str:
    """The format to write: ``fmt``; else ``output``'s extension; else table on a terminal, JSONL in a pipe.

    Raises ValueError for an output file whose extension names no format (``-o out.xml``
    without ``-f``): guessing would write JSONL into a file its reader expects to be XML.
    """
    if fmt is not None:
        return fmt
    if output is not None:
        found = format_for_path(output)
        if found is None:
            known = ", ".join(sorted(_EXTENSIONS))
            raise ValueError(f"cannot tell the format of {os.fspath(output)!r} from its extension ({known}); pass -f")
        return found
    return "table" if interactive else "jsonl"


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.{DECIMALS}f}"


def _fields(row: dict, fields: tuple[str, ...] = FIELDS) -> dict:
    """The row's fields in order, probabilities rounded to :data:`DECIMALS`."""
    return {k: rounded(row.get(k)) for k in fields}


class RowWriter:
    """Base class: ``write(row)`` for each row, then ``close()``.

    ``fields`` are the row's columns; ``nested`` the fields only a structured format (JSON,
    JSONL) writes, after them.
    """

    def __init__(self, stream: TextIO, fields: tuple[str, ...] = FIELDS, nested: tuple[str, ...] = ()):
        self.stream = stream
        self.fields = fields
        self.structured = fields + nested

    def write(self, row: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stream.flush()


class JSONLWriter(RowWriter):
    def write(self, row: dict) -> None:
        self.stream.write(json.dumps(_fields(row, self.structured), ensure_ascii=False) + "\n")
        self.stream.flush()


class CSVWriter(RowWriter):
    def __init__(self, stream: TextIO, header: bool = True, fields: tuple[str, ...] = FIELDS):
        super().__init__(stream, fields)
        # RFC 4180 line ends: with "\r\n" as terminator the writer also quotes a lone "\r" in a name.
        self._csv = csv.writer(stream, lineterminator="\r\n")
        if header:
            self._csv.writerow(fields)
            stream.flush()

    def write(self, row: dict) -> None:
        # Text columns, as the table's: probabilities with exactly DECIMALS decimals (0.8650, 1.0000).
        cells = _fields(row, self.fields).values()
        self._csv.writerow(["" if v is None else _number(v) if isinstance(v, float) else v for v in cells])
        self.stream.flush()


class JSONWriter(RowWriter):
    """Collects rows and writes one JSON array on close."""

    def __init__(
        self,
        stream: TextIO,
        previous: list[dict] | None = None,
        fields: tuple[str, ...] = FIELDS,
        nested: tuple[str, ...] = (),
    ):
        super().__init__(stream, fields, nested)
        self.rows = list(previous or [])

    def write(self, row: dict) -> None:
        self.rows.append(_fields(row, self.structured))

    def close(self) -> None:
        self.dump(self.stream)

    def dump(self, stream: TextIO) -> None:
        json.dump(self.rows, stream, indent=2, ensure_ascii=False)
        stream.write("\n")
        stream.flush()


#: The table's optional columns, in the order they are shown when the run's fields hold them:
#: field, heading, width, and how a value prints (a blank cell for None: a photo has no frame).
_TABLE_COLUMNS: tuple[tuple[str, str, int, Callable[[Any], str]], ...] = (
    ("bottles", "TOPS", 4, str),
    ("open_tops", "OPEN", 4, str),
    ("frame", "FRAME", 6, str),
    ("time_s", "TIME_S", 8, lambda value: f"{value:.3f}"),
)


class TableWriter(RowWriter):
    """A readable, streaming table: fixed-width columns first, the path last.

    Status, confidence and ``p_open`` always; then those of :data:`_TABLE_COLUMNS` the run's
    fields hold (a model's top counts, a clip's frame and time).
    """

    def __init__(self, stream: TextIO, fields: tuple[str, ...] = FIELDS, nested: tuple[str, ...] = ()):
        super().__init__(stream, fields, nested)
        self.extra = [column for column in _TABLE_COLUMNS if column[0] in fields]
        headings = "".join(f" {heading:>{width}}" for _, heading, width, _ in self.extra)
        stream.write(f"{'STATUS':<7} {'CONF':>6} {'P_OPEN':>6}{headings}  PATH\n")

    def write(self, row: dict) -> None:
        path = str(row["path"]).replace("\n", "\\n")
        cells = "".join(
            f" {'' if row.get(field) is None else show(row[field]):>{width}}" for field, _, width, show in self.extra
        )
        line = f"{row['status']:<7} {_number(row.get('confidence')):>6} {_number(row.get('p_open')):>6}{cells}  {path}"
        if row.get("error"):
            line += f"  ({row['error']})"
        self.stream.write(line + "\n")
        self.stream.flush()


def make_writer(
    fmt: str,
    stream: TextIO,
    header: bool = True,
    previous: list[dict] | None = None,
    fields: tuple[str, ...] = FIELDS,
    nested: tuple[str, ...] = (),
) -> RowWriter:
    if fmt == "jsonl":
        return JSONLWriter(stream, fields, nested)
    if fmt == "csv":
        return CSVWriter(stream, header=header, fields=fields)
    if fmt == "json":
        return JSONWriter(stream, previous, fields, nested)
    if fmt == "table":
        return TableWriter(stream, fields)
    raise ValueError(f"unknown format {fmt!r}")


# ------------------------------------------------------------------ resume
def _complete_jsonl(text: str) -> tuple[list[dict], int]:
    """Rows of every complete line, and the byte length they occupy."""
    # Split on "\n" only: str.splitlines() also breaks on U+2028 and friends, which JSON
    # leaves raw inside strings (ensure_ascii=False). The last piece has no newline: it is
    # empty, or a row cut short by a crash.
    *complete, _tail = text.split("\n")
    rows, good_end, offset = [], 0, 0
    for line in complete:
        offset += len(line.encode()) + 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if isinstance(row, dict) and "path" in row:
            rows.append(row)
        good_end = offset
    return rows, good_end


def _complete_csv(text: str, fields: tuple[str, ...] = FIELDS) -> tuple[list[dict], int]:
    """Rows of every complete record, and the byte length they occupy."""
    # Try the whole text, then drop the last line until it parses (a quoted
    # newline means a record can span lines, so cut at line ends and re-check).
    candidate = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    while candidate:
        try:
            records = list(csv.reader(io.StringIO(candidate, newline=""), strict=True))
        except csv.Error:
            records = None
        if records and records[0] == list(fields) and all(len(r) == len(fields) for r in records[1:]):
            rows = [dict(zip(fields, r, strict=False)) for r in records[1:]]
            return rows, len(candidate.encode())
        candidate = candidate[: candidate[:-1].rfind("\n") + 1]
    return [], 0


def _only_a_cut_first_line(text: str, fmt: str, fields: tuple[str, ...]) -> bool:
    """Whether ``text`` is the start of what this writer puts first (a JSONL row, the CSV header), cut by a kill."""
    if "\n" in text:
        return False
    start = '{"path": ' if fmt == "jsonl" else ",".join(fields)
    return text.startswith(start) or start.startswith(text)


def read_existing(path: str | os.PathLike, fmt: str, fields: tuple[str, ...] = FIELDS) -> tuple[list[dict], int]:
    """Rows already written to ``path`` and the byte length of its complete part.

    Raises ValueError when ``path`` holds something else (another program's output, another
    model's columns): resuming it would overwrite it. A file that holds only the start of its
    first line (a kill before the first row was complete) holds no rows.
    """
    try:
        with open(path, encoding="utf-8", newline="") as stream:  # keep "\r" inside CSV fields
            text = stream.read()
    except FileNotFoundError:
        return [], 0
    if fmt == "jsonl":
        rows, keep = _complete_jsonl(text)
    elif fmt == "csv":
        rows, keep = _complete_csv(text, fields)
    elif fmt == "json":
        try:
            found = json.loads(text)
        except json.JSONDecodeError:
            found = None
        rows = [r for r in found if isinstance(r, dict) and "path" in r] if isinstance(found, list) else []
        keep = len(text.encode()) if isinstance(found, list) else 0
    else:
        raise ValueError(f"--resume does not support the {fmt} format")
    if not keep and text and not _only_a_cut_first_line(text, fmt, fields):
        raise ValueError(
            f"{os.fspath(path)} does not hold {fmt} rows with the columns {', '.join(fields)}; "
            "not resuming it (it would be overwritten)"
        )
    return rows, keep


class Sink:
    """Where a run's rows go: ``write(row)`` each one; ``done`` holds the paths an earlier run answered.

    ``done_frames`` holds, for a clip, the frames an earlier run answered (a clip's rows may stop
    anywhere: it is decoded again and only the other frames classified); ``previous`` the
    earlier run's rows that stay.
    """

    def __init__(self, writer: RowWriter, done: set[str], previous: list[dict] | None = None):
        self.writer = writer
        self.done = done
        self.previous = previous or []
        self.done_frames: dict[str, set[int]] = {}
        for row in self.previous:
            frame = Prediction.from_row(row).frame if row.get("frame") not in (None, "") else None
            if frame is not None:
                self.done_frames.setdefault(str(row["path"]), set()).add(frame)
        self.written: list[str] = []  # the paths of this run's rows, in the order written

    def write(self, row: dict) -> None:
        self.writer.write(row)
        self.written.append(str(row["path"]))


def in_input_order(rows: list[dict], order: Sequence[str]) -> list[dict]:
    """``rows`` sorted by their path's place in ``order``; rows of paths not in it first, as they were."""
    place: dict[str, int] = {}
    for index, path in enumerate(order, start=1):
        place.setdefault(path, index)
    return sorted(rows, key=lambda row: place.get(str(row["path"]), 0))  # stable: ties keep their order


def _replace_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write a whole file beside ``path`` and rename it into place: ``path`` is old or complete, never half."""
    directory = path.parent if str(path.parent) else Path(".")
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            write(stream)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


@contextlib.contextmanager
def open_sink(
    output: str | os.PathLike | None,
    fmt: str,
    resume: bool = False,
    stdout: TextIO | None = None,
    fields: tuple[str, ...] = FIELDS,
    order: Sequence[str] | None = None,
    nested: tuple[str, ...] = (),
) -> Iterator[Sink]:
    """Open where rows go: ``output`` (a file) or ``stdout``; closed (and for JSON renamed into place) on exit.

    With ``resume``, the complete rows already in ``output`` are kept and their paths are
    ``sink.done``, except error rows: those are dropped from the file and their inputs
    classified again (a file may have been half copied last time). A file that holds
    something else (another program's output, another model's columns) raises ValueError
    rather than being overwritten. Rows are appended as they come (a crash loses at most the
    rows in flight); with ``order`` (the run's inputs), a run that ends normally leaves the
    file's rows in that order, rewriting the file atomically when the retried rows (or an
    earlier run's other inputs) put them out of it. Rows of paths not in ``order`` come first.
    ``fields`` are the rows' columns and ``nested`` what JSON and JSONL write after them
    (``Classifier.columns`` and ``Classifier.nested_columns``).
    """
    if output is None:
        writer = make_writer(fmt, stdout or sys.stdout, fields=fields, nested=nested)
        try:
            yield Sink(writer, set())
        finally:
            writer.close()
        return
    path = Path(output)
    previous: list[dict] = []
    keep = 0
    if resume:
        previous, keep = read_existing(path, fmt, fields)
    good = [row for row in previous if row.get("status") != "error"]
    done = {str(row["path"]) for row in good}
    if fmt == "json":  # one array: collect, then write the whole file and rename it into place
        collector = JSONWriter(io.StringIO(), previous=good, fields=fields, nested=nested)
        ended = False
        try:
            yield Sink(collector, done, good)
            ended = True
        finally:
            if ended and order is not None:
                collector.rows = in_input_order(collector.rows, order)
            _replace_atomically(path, collector.dump)
        return
    if len(good) < len(previous):  # earlier error rows: rewrite the file without them, then append
        _replace_atomically(
            path, lambda stream: _write_rows(make_writer(fmt, stream, fields=fields, nested=nested), good)
        )
        stream = open(path, "a", encoding="utf-8", newline="")
        writer = make_writer(fmt, stream, header=False, fields=fields, nested=nested)
    elif resume and keep:
        with open(path, "r+b") as raw:  # drop a row cut short by a crash
            raw.truncate(keep)
        stream = open(path, "a", encoding="utf-8", newline="")
        writer = make_writer(fmt, stream, header=False, fields=fields, nested=nested)
    else:
        stream = open(path, "w", encoding="utf-8", newline="")
        writer = make_writer(fmt, stream, fields=fields, nested=nested)
    sink = Sink(writer, done, good)
    try:
        yield sink
    finally:
        writer.close()
        stream.close()
    written = [str(row["path"]) for row in good] + sink.written
    if order is not None and written != [str(row["path"]) for row in in_input_order(_paths(written), order)]:
        rows, _ = read_existing(path, fmt, fields)
        _replace_atomically(
            path,
            lambda stream: _write_rows(
                make_writer(fmt, stream, fields=fields, nested=nested), in_input_order(rows, order)
            ),
        )


def _paths(paths: list[str]) -> list[dict]:
    return [{"path": path} for path in paths]


def _write_rows(writer: RowWriter, rows: list[dict]) -> None:
    for row in rows:
        writer.write(row)
    writer.close()
