"""Writers and reading back partial outputs for --resume."""

from __future__ import annotations

import csv
import json

import pytest

from bottlecheck.outputs import FIELDS, format_for_path, open_output, read_existing

NASTY = ["plain.jpg", "comma,name.jpg", 'quote"name.jpg', "new\nline.jpg", "ünïcødé 名前.jpg", "tab\tname.jpg"]


def _row(path, status="open"):
    return {"path": path, "status": status, "confidence": 0.9, "p_open": 0.9, "error": None}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_any_file_name_round_trips(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    writer, done, finish = open_output(out, fmt, resume=False)
    assert done == set()
    for name in NASTY:
        writer.write(_row(name))
    finish()
    rows, _ = read_existing(out, fmt)
    assert [r["path"] for r in rows] == NASTY
    if fmt == "csv":
        with open(out, newline="", encoding="utf-8") as stream:
            assert next(csv.reader(stream)) == list(FIELDS)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_drops_a_row_cut_short_by_a_crash(tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    writer, _, finish = open_output(out, fmt, resume=False)
    writer.write(_row("a.jpg"))
    writer.write(_row("b,\n.jpg"))
    finish()
    with open(out, "a", encoding="utf-8") as stream:  # a kill in the middle of a row
        stream.write('"c.jpg,open,0.9' if fmt == "csv" else '{"path": "c.jpg", "sta')
    writer, done, finish = open_output(out, fmt, resume=True)
    assert done == {"a.jpg", "b,\n.jpg"}
    writer.write(_row("c.jpg", "closed"))
    finish()
    rows, _ = read_existing(out, fmt)
    assert [r["path"] for r in rows] == ["a.jpg", "b,\n.jpg", "c.jpg"]
    assert rows[-1]["status"] == "closed"


def test_json_output_is_one_valid_array_and_resumes(tmp_path):
    out = tmp_path / "out.json"
    writer, _, finish = open_output(out, "json", resume=False)
    writer.write(_row("a.jpg"))
    finish()
    writer, done, finish = open_output(out, "json", resume=True)
    assert done == {"a.jpg"}
    writer.write(_row("b.jpg"))
    finish()
    assert [r["path"] for r in json.loads(out.read_text())] == ["a.jpg", "b.jpg"]
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_format_from_extension():
    assert format_for_path("x.CSV") == "csv"
    assert format_for_path("x.jsonl") == "jsonl"
    assert format_for_path("x.json") == "json"
    assert format_for_path("x.bin") is None
