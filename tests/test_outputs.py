"""Writers, the output sink, and reading back partial outputs for --resume."""

from __future__ import annotations

import csv
import json

import pytest

from bottlecheck.prediction import FIELDS
from bottlecheck.writers.rows import format_for_path, open_sink, read_existing, resolve_format

NASTY = ["plain.jpg", "comma,name.jpg", 'quote"name.jpg', "new\nline.jpg", "ünïcødé 名前.jpg", "tab\tname.jpg"]


def _row(path, status="open"):
    if status == "error":
        return {"path": path, "status": "error", "confidence": None, "p_open": None, "error": "no such file"}
    return {"path": path, "status": status, "confidence": 0.9, "p_open": 0.9, "error": None}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_any_file_name_round_trips(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    with open_sink(out, fmt) as sink:
        assert sink.done == set()
        for name in NASTY:
            sink.write(_row(name))
    rows, _ = read_existing(out, fmt)
    assert [r["path"] for r in rows] == NASTY
    if fmt == "csv":
        with open(out, newline="", encoding="utf-8") as stream:
            assert next(csv.reader(stream)) == list(FIELDS)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_drops_a_row_cut_short_by_a_crash(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    with open_sink(out, fmt) as sink:
        sink.write(_row("a.jpg"))
        sink.write(_row("b,\n.jpg"))
    with open(out, "a", encoding="utf-8") as stream:  # a kill in the middle of a row
        stream.write('"c.jpg,open,0.9' if fmt == "csv" else '{"path": "c.jpg", "sta')
    with open_sink(out, fmt, resume=True) as sink:
        assert sink.done == {"a.jpg", "b,\n.jpg"}
        sink.write(_row("c.jpg", "closed"))
    rows, _ = read_existing(out, fmt)
    assert [r["path"] for r in rows] == ["a.jpg", "b,\n.jpg", "c.jpg"]
    assert rows[-1]["status"] == "closed"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_resume_retries_error_rows_and_drops_them_from_the_file(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    with open_sink(out, fmt) as sink:
        sink.write(_row("a.jpg"))
        sink.write(_row("half-copied.jpg", "error"))
        sink.write(_row("c.jpg", "closed"))
    with open_sink(out, fmt, resume=True) as sink:
        assert sink.done == {"a.jpg", "c.jpg"}  # the error row is not done: it is tried again
        sink.write(_row("half-copied.jpg", "open"))
    rows, _ = read_existing(out, fmt)
    assert [(r["path"], r["status"]) for r in rows] == [
        ("a.jpg", "open"),
        ("c.jpg", "closed"),
        ("half-copied.jpg", "open"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left behind


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_resume_given_the_inputs_leaves_the_rows_in_input_order(tmp_path, fmt):
    """The retried error row goes back to its place; rows of inputs not given this time come first."""
    out = tmp_path / f"out.{fmt}"
    with open_sink(out, fmt) as sink:
        for name in ("earlier.jpg", "a.jpg", "half-copied.jpg", "c.jpg"):
            sink.write(_row(name, "error" if name == "half-copied.jpg" else "open"))
    order = ["a.jpg", "half-copied.jpg", "c.jpg", "d.jpg"]
    with open_sink(out, fmt, resume=True, order=order) as sink:
        assert sink.done == {"earlier.jpg", "a.jpg", "c.jpg"}
        sink.write(_row("half-copied.jpg", "closed"))
        sink.write(_row("d.jpg", "closed"))
    rows, _ = read_existing(out, fmt)
    assert [(r["path"], r["status"]) for r in rows] == [
        ("earlier.jpg", "open"),
        ("a.jpg", "open"),
        ("half-copied.jpg", "closed"),
        ("c.jpg", "open"),
        ("d.jpg", "closed"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # rewritten by a rename, nothing left behind


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_redoes_a_file_whose_only_row_was_cut_short(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    out.write_text('{"path": "a.jpg", "sta' if fmt == "jsonl" else "path,sta", encoding="utf-8")
    with open_sink(out, fmt, resume=True, order=["a.jpg"]) as sink:
        assert sink.done == set()
        sink.write(_row("a.jpg"))
    rows, _ = read_existing(out, fmt)
    assert [r["path"] for r in rows] == ["a.jpg"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_resume_refuses_a_file_that_holds_something_else(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    out.write_text("name,colour\nx,red\n" if fmt == "csv" else "<html>not rows</html>", encoding="utf-8")
    with pytest.raises(ValueError, match="not resuming"), open_sink(out, fmt, resume=True):
        pass
    assert out.read_text(encoding="utf-8").startswith(("name,colour", "<html>"))


def test_json_output_is_one_valid_array_and_resumes(tmp_path):
    out = tmp_path / "out.json"
    with open_sink(out, "json") as sink:
        sink.write(_row("a.jpg"))
    with open_sink(out, "json", resume=True) as sink:
        assert sink.done == {"a.jpg"}
        sink.write(_row("b.jpg"))
    assert [r["path"] for r in json.loads(out.read_text())] == ["a.jpg", "b.jpg"]
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_json_output_keeps_the_rows_written_before_an_interruption(tmp_path):
    out = tmp_path / "out.json"
    with pytest.raises(KeyboardInterrupt), open_sink(out, "json") as sink:
        sink.write(_row("a.jpg"))
        raise KeyboardInterrupt
    assert [r["path"] for r in json.loads(out.read_text())] == ["a.jpg"]


def test_format_from_extension():
    assert format_for_path("x.CSV") == "csv"
    assert format_for_path("x.jsonl") == "jsonl"
    assert format_for_path("x.json") == "json"
    assert format_for_path("x.bin") is None


def test_format_resolution_refuses_an_unknown_extension_unless_told():
    assert resolve_format(None, "rows.ndjson", interactive=True) == "jsonl"
    assert resolve_format(None, None, interactive=True) == "table"
    assert resolve_format(None, None, interactive=False) == "jsonl"
    assert resolve_format("csv", "out.xml", interactive=False) == "csv"
    with pytest.raises(ValueError, match="out.xml"):
        resolve_format(None, "out.xml", interactive=False)
