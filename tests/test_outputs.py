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


# ------------------------------------------------------------------ rows read back (Prediction.from_row)
def _answers():
    from bottlecheck.prediction import BottleTop, Prediction

    top = BottleTop((10.5, 20.0, 40.25, 60.0), "open", 0.87654, 0.87654, 0.99, 0.5)
    return [
        Prediction.with_tops("a.jpg", "open", 0.87654, 0.87654, [top]),
        Prediction("b.jpg", "unknown", 0.9, None, bottles=0, open_tops=0, closed_tops=0, tops=()),
        Prediction("c.jpg", "error", error="cannot identify image"),
        Prediction("clip.mp4", "closed", 0.75, 0.25, bottles=1, open_tops=0, closed_tops=1, frame=30, time_s=1.0),
    ]


def test_a_csv_row_and_a_jsonl_row_of_the_same_answer_read_back_equal(tmp_path):
    from dataclasses import replace

    from bottlecheck.prediction import TOPS_FIELDS, Prediction
    from bottlecheck.writers.rows import with_frames

    fields = with_frames(TOPS_FIELDS)
    read = {}
    for fmt in ("csv", "jsonl", "json"):
        out = tmp_path / f"out.{fmt}"
        with open_sink(out, fmt, fields=fields, nested=("tops",)) as sink:
            for answer in _answers():
                sink.write(answer.as_dict())
        rows, _ = read_existing(out, fmt, fields)
        read[fmt] = [Prediction.from_row(row) for row in rows]
    assert read["jsonl"] == read["json"]
    assert [replace(a, tops=None) for a in read["jsonl"]] == read["csv"]  # a CSV has no tops column
    first, unknown, error, frame = read["csv"]
    assert (first.confidence, first.p_open, first.bottles, first.error) == (0.8765, 0.8765, 1, None)  # text typed
    assert unknown.p_open is None and error.confidence is None and error.error == "cannot identify image"
    assert (frame.frame, frame.time_s, first.frame, first.time_s) == (30, 1.0, None, None)
    assert read["jsonl"][0].tops[0].box == (10.5, 20.0, 40.25, 60.0) and read["jsonl"][0].tops[0].confidence == 0.8765


def test_text_cells_are_typed_and_a_bad_one_is_named():
    from bottlecheck.prediction import BottleTop, Prediction

    text = {
        "path": "a.jpg",
        "frame": "3",
        "time_s": "0.5000",
        "status": "open",
        "confidence": "0.8650",
        "p_open": "None",
        "bottles": "2",
        "open_tops": "1.0",
        "closed_tops": "",
        "error": "",
        "tops": json.dumps(
            [{"box": ["1", 2, 3, 4.5], "status": "open", "confidence": 0.9, "p_open": 0.9, "p_top": 1, "score": 1}]
        ),
        "label": "ignored: not a column of an answer",
    }
    assert Prediction.from_row(text) == Prediction(
        "a.jpg",
        "open",
        0.865,
        None,
        bottles=2,
        open_tops=1,
        closed_tops=None,
        tops=(BottleTop((1.0, 2.0, 3.0, 4.5), "open", 0.9, 0.9, 1, 1),),
        frame=3,
        time_s=0.5,
    )
    assert Prediction.from_row(Prediction.from_row(text).as_dict()) == Prediction.from_row(text)  # Ray's way
    for key, bad in (("confidence", "high"), ("bottles", "1.5"), ("frame", "x"), ("tops", "{")):
        with pytest.raises(ValueError, match=key):
            Prediction.from_row({**text, key: bad})
    with pytest.raises(ValueError, match="path and a status"):
        Prediction.from_row({"path": "a.jpg"})


def test_events_and_the_writers_round_by_the_one_rule():
    from bottlecheck.prediction import DECIMALS, rounded
    from bottlecheck.runs.events import Event
    from bottlecheck.writers.rows import _fields

    event = Event("clip.mp4", 1.0, 2.5, 30, 75, 10, 0.987654321, 1.5, 45)
    assert event.as_dict()["peak_confidence"] == round(0.987654321, DECIMALS) == rounded(0.987654321)
    nested = {"confidence": 0.123456, "tops": [{"box": (1.23456, 2.0), "p_open": 0.55557}], "bottles": 3}
    assert rounded(nested) == {"confidence": 0.1235, "tops": [{"box": [1.2346, 2.0], "p_open": 0.5556}], "bottles": 3}
    assert _fields(nested, ("confidence", "tops", "bottles")) == rounded(nested)


def test_a_photo_named_null_or_none_keeps_its_name_when_its_row_is_read_back():
    """Empty-value words are None in every other column; a path is a file name, whatever it spells."""
    from bottlecheck.prediction import Prediction

    for name in ("null", "None"):
        row = Prediction.from_row({"path": name, "status": "open", "confidence": "0.8", "p_open": "null"})
        assert row.path == name and row.p_open is None and row.confidence == 0.8
