"""The classify/info contract, through click's CliRunner and the installed console script."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bottlecheck.artifact import load_artifact
from bottlecheck.cli.main import main
from bottlecheck.labels import STATUSES
from tests.helpers import bottle_photo, bundled_fields, needs_tensorflow

FIELDS = bundled_fields()
JSON_FIELDS = FIELDS + (["tops"] if "bottles" in FIELDS else [])  # JSON rows also carry each top
SUMMARY = re.compile(r"(\d+) images?: (\d+) open, (\d+) closed(?:, (\d+) unknown)?, (\d+) errors?\n")


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_directory_to_jsonl_one_row_per_file_and_exit_1(photo_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run("classify", str(photo_dir), "-o", str(out), "-q")
    assert result.exit_code == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["a_open.jpg", "b_closed.jpg", "c_closed.png", "d_empty.jpg"]
    assert all(list(r) == JSON_FIELDS for r in rows)
    empty = rows[-1]
    assert empty["status"] == "error" and "empty" in empty["error"] and empty["p_open"] is None
    for row in rows[:3]:
        assert row["status"] in STATUSES and row["error"] is None and row["confidence"] >= 0.5
        if row["status"] != "unknown":
            expected = row["p_open"] if row["status"] == "open" else 1 - row["p_open"]
            assert abs(row["confidence"] - expected) < 1e-5


def test_all_good_exits_0_and_threshold_decides(photo_dir):
    (photo_dir / "d_empty.jpg").unlink()
    for threshold, status in (("0", "open"), ("1", "closed")):
        result = run("classify", str(photo_dir), "-f", "jsonl", "-t", threshold, "-q")
        assert result.exit_code == 0, result.output
        statuses = {json.loads(line)["status"] for line in result.output.splitlines()}
        assert statuses == {status}


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "table"])
def test_formats_on_stdout(photo_dir, fmt):
    result = run("classify", str(photo_dir), "-f", fmt, "-q")
    assert result.exit_code == 1
    text = result.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    elif fmt == "json":
        rows = json.loads(text)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        lines = text.splitlines()
        header = lines[0].split()
        assert header[:3] == ["STATUS", "CONF", "P_OPEN"] and header[-1] == "PATH"
        rows = [{"status": line.split()[0]} for line in lines[1:]]
    assert [r["status"] for r in rows][-1] == "error" and len(rows) == 4


def test_output_format_from_extension_and_summary(photo_dir, tmp_path):
    out = tmp_path / "results.csv"
    result = run("classify", str(photo_dir), "-o", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    counts = [sum(r["status"] == s for r in rows) for s in ("open", "closed", "unknown", "error")]
    summary = SUMMARY.search(result.output)  # on stderr, singular "error"
    assert summary and summary.group(0).endswith(" 1 error\n"), result.output
    assert [int(g or 0) for g in summary.groups()] == [4, *counts[:3], counts[3]]
    assert out.read_bytes().startswith((",".join(FIELDS) + "\r\n").encode())


def test_nothing_found_says_so_and_exits_3(photo_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    for args in ([str(empty)], [str(tmp_path / "*.jpg")], [str(photo_dir / "*.gif"), str(empty)]):
        result = run("classify", *args, "-f", "csv")
        assert result.exit_code == 3, (args, result.output)
        assert "nothing to classify" in result.output and "path,status" not in result.output
    assert "no images match: " + str(tmp_path / "*.jpg") in run("classify", str(tmp_path / "*.jpg")).output


@pytest.mark.parametrize("option", ["-o", "--events"])
def test_an_output_in_a_missing_folder_is_one_line_and_a_usage_exit(photo_dir, tmp_path, option):
    target = tmp_path / "nodir" / "sub" / ("r.csv" if option == "-o" else "e.jsonl")
    result = CliRunner().invoke(main, ["classify", str(photo_dir / "a_open.jpg"), option, str(target)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and f"folder {target.parent} does not exist" in result.output
    assert not (tmp_path / "nodir").exists()


def test_watch_refuses_a_missing_folder_and_a_missing_watchdog_leaving_nothing(photo_dir, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["watch", str(photo_dir), "-o", str(tmp_path / "nodir" / "w.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    monkeypatch.setattr("bottlecheck.cli.watch._watchdog_available", lambda: False)
    result = CliRunner().invoke(main, ["watch", str(photo_dir), "-o", str(tmp_path / "w.jsonl")])
    assert result.exit_code == 2 and "pip install 'bottlecheck[video]'" in result.output
    assert not (tmp_path / "w.jsonl").exists()


def test_clips_left_out_for_want_of_pyav_are_counted_aloud(photo_dir, monkeypatch):
    (photo_dir / "d_empty.jpg").unlink()
    for name in ("line1.mp4", "line2.mov"):
        (photo_dir / name).write_bytes(b"not decoded")
    monkeypatch.setattr("bottlecheck.sources.discovery.video_available", lambda: False)
    result = CliRunner().invoke(main, ["classify", str(photo_dir), "-f", "jsonl"])
    assert result.exit_code == 0
    assert "skipped 2 video clip(s)" in result.output and "pip install 'bottlecheck[video]'" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("{")]) == 3


def test_a_second_run_does_not_classify_its_own_annotated_copies_or_output(photo_dir, tmp_path):
    (photo_dir / "d_empty.jpg").unlink()
    args = ["classify", str(photo_dir), "--save-annotated", str(photo_dir / "seen"), "-q"]
    first = run(*args, "-o", str(photo_dir / "out.jsonl"))
    assert first.exit_code == 0 and len(list((photo_dir / "seen").iterdir())) == 3
    second = run(*args, "-o", str(photo_dir / "again.jsonl"))
    assert second.exit_code == 0
    rows = [json.loads(line) for line in (photo_dir / "again.jsonl").read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == ["a_open.jpg", "b_closed.jpg", "c_closed.png"]


def test_an_unknown_output_extension_is_a_usage_error_unless_the_format_is_given(photo_dir, tmp_path):
    out = tmp_path / "out.xml"
    result = CliRunner().invoke(main, ["classify", str(photo_dir), "-o", str(out)])
    assert result.exit_code == 2 and "out.xml" in result.output and not out.exists()
    assert run("classify", str(photo_dir), "-o", str(out), "-f", "csv", "-q").exit_code == 1
    assert out.read_text().startswith("path,status")


def test_resume_retries_error_rows_and_exits_on_the_final_state(photo_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    broken = photo_dir / "d_empty.jpg"  # zero bytes: as if still being copied
    assert run("classify", str(photo_dir), "-o", str(out), "-q").exit_code == 1
    broken.write_bytes(bottle_photo(True, seed=42))  # the copy finished
    result = run("classify", str(photo_dir), "-o", str(out), "--resume")
    assert result.exit_code == 0, result.output
    assert "1 image: " in result.output and "3 already done" in result.output and "0 errors" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == sorted(p.name for p in photo_dir.iterdir())
    assert all(r["status"] != "error" for r in rows)
    # Nothing left to do and nothing failed: 0. Still failing: 1, and the row is still there.
    assert run("classify", str(photo_dir), "-o", str(out), "--resume", "-q").exit_code == 0
    broken.write_bytes(b"")
    assert run("classify", str(photo_dir), "-o", str(out), "-q").exit_code == 1
    assert run("classify", str(photo_dir), "-o", str(out), "--resume", "-q").exit_code == 1
    final = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(final) == 4 and [r["status"] for r in final].count("error") == 1


def test_resume_puts_a_retried_row_back_in_its_place(photo_dir, tmp_path):
    """The README promises rows in input order: the retried error row is not left at the end."""
    broken = photo_dir / "b_closed.jpg"
    good = broken.read_bytes()
    broken.write_bytes(b"")
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        broken.write_bytes(b"")
        assert run("classify", str(photo_dir), "-o", str(out), "-q").exit_code == 1
        broken.write_bytes(good)
        assert run("classify", str(photo_dir), "-o", str(out), "--resume", "-q").exit_code == 1  # d_empty.jpg
        if fmt == "csv":
            rows = list(csv.DictReader(out.open(newline="")))
        else:
            rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [Path(r["path"]).name for r in rows] == ["a_open.jpg", "b_closed.jpg", "c_closed.png", "d_empty.jpg"]
        assert [r["status"] for r in rows][1] != "error"


def test_resume_redoes_a_file_whose_only_row_was_cut_short(photo_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(f'{{"path": "{photo_dir / "a_open.jpg"}", "status": "op')  # killed while writing row 1
    result = run("classify", str(photo_dir / "a_open.jpg"), "-o", str(out), "--resume")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["a_open.jpg"]


def test_probabilities_have_four_decimals_everywhere(photo_dir):
    rows = [json.loads(line) for line in run("classify", str(photo_dir), "-f", "jsonl", "-q").output.splitlines()]
    for row in rows:
        for key in ("confidence", "p_open"):
            if row[key] is not None:
                assert round(row[key], 4) == row[key]
    # CSV, text like the table: exactly 4 decimals, also where the number is 0.865 or 1.0.
    table = run("classify", str(photo_dir), "-f", "table", "-q").output.splitlines()[1:]
    written = list(csv.DictReader(io.StringIO(run("classify", str(photo_dir), "-f", "csv", "-q").output)))
    # A number a JSON writer prints short (0.865, 1.0) keeps its 4 decimals in CSV and the table too.
    from bottlecheck.writers.rows import CSVWriter, TableWriter

    for writer_class in (CSVWriter, TableWriter):
        stream = io.StringIO()
        writer = writer_class(stream)
        writer.write({"path": "x.jpg", "status": "open", "confidence": 0.865, "p_open": 1.0, "error": None})
        writer.close()
        assert "0.8650" in stream.getvalue() and "1.0000" in stream.getvalue(), stream.getvalue()
    for row, line in zip(written, table, strict=True):
        for key in ("confidence", "p_open"):
            assert re.fullmatch(r"(\d\.\d{4})?", row[key]), row
            assert f" {row[key]} " in line, (row, line)  # the table's very text


def test_missing_path_glob_and_stdin(photo_dir, tmp_path):
    missing = str(tmp_path / "nope.jpg")
    result = run(
        "classify",
        missing,
        str(photo_dir / "*.png"),
        "-",
        "-f",
        "jsonl",
        "-q",
        input=str(photo_dir / "a_open.jpg") + "\n\n",
    )
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(Path(r["path"]).name, r["status"]) for r in rows][0] == ("nope.jpg", "error")
    assert rows[0]["error"] == "no such file"
    assert [Path(r["path"]).name for r in rows[1:]] == ["c_closed.png", "a_open.jpg"]
    assert result.exit_code == 1


def test_symlink_loop_and_odd_names(photo_dir):
    os.symlink(photo_dir, photo_dir / "loop")
    odd = photo_dir / 'odd, "name"\nwith newline.jpg'
    odd.write_bytes(bottle_photo(True, seed=9))
    result = run("classify", str(photo_dir), "-f", "csv", "-q")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 5, "the loop is walked once, never again"
    assert str(odd) in [r["path"] for r in rows]


def test_resume_skips_done_inputs(photo_dir, tmp_path):
    out = tmp_path / "out.csv"
    first = sorted(photo_dir.iterdir())[:2]
    run("classify", *map(str, first), "-o", str(out), "-q")
    result = run("classify", str(photo_dir), "-o", str(out), "--resume")
    assert "2 already done" in result.output
    rows = list(csv.DictReader(out.open(newline="")))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(p.name for p in photo_dir.iterdir())
    assert len(rows) == 4


@pytest.mark.parametrize(
    "args",
    [
        ["classify"],
        ["classify", "x.jpg", "--resume"],
        ["classify", "x", "-f", "xml"],
        ["classify", "x", "--batch-size", "0"],
    ],
)
def test_usage_errors_exit_2(args):
    assert CliRunner().invoke(main, args).exit_code == 2


def test_a_directory_that_is_not_a_model_is_a_usage_error(photo_dir):
    result = CliRunner().invoke(main, ["classify", str(photo_dir), "--model", str(photo_dir)])
    assert result.exit_code == 2 and "metadata.json" in result.output


def test_info_reports_model(tmp_path):
    result = run("info", "--json")
    facts = json.loads(result.output)
    artifact = load_artifact()
    assert facts["engine"] == "litert" and facts["model_version"] == artifact.version
    assert facts["labels"] == ["closed", "open"] and len(facts["sha256"]) == 64
    if artifact.stages:  # each stage's input size, and the rule that makes the answer
        assert set(facts["stages"]) == {"finder", "judge"} and "unknown" in facts["decision"]["rule"]
        assert facts["stages"]["judge"]["labels"] == ["closed", "open", "none"]
        text = run("info").output  # what a person reads: the unknown answers are not hidden
        assert "balanced accuracy with unknown as wrong" in text and "finder.real_held_out: recall" in text
        # Held-out figures first and together; what the model trained on apart, under its own heading.
        from bottlecheck.writers.model_card import HELD_OUT, TRAINED_ON

        held, trained = text.index(HELD_OUT), text.index(TRAINED_ON)
        assert held < trained
        below = {line.strip().split(":")[0]: text.index(line) for line in text.splitlines() if line.startswith("  ")}
        assert all(
            held < at and (at < trained) == name.startswith("leave_one_out")
            for name, at in below.items()
            if name.startswith(("leave_one_out", "judge."))
        )
        second_look = artifact.stage("judge").get("second_look")
        if second_look:  # it changes answers, so it is shown: in JSON as the metadata has it, and in words
            shown = {k: v for k, v in second_look.items() if k in ("spans", "band", "min_top", "top_floor")}
            assert facts["stages"]["judge"]["second_look"] == shown and "rule" not in shown
            spans = " and ".join(f"{span:g}" for span in second_look["spans"])
            said = f"second look at spans {spans} when p_open is within {second_look['band']:g} of the threshold"
            if second_look.get("min_top"):
                said += f" and p_top is at least {second_look['min_top']:g}"
            if second_look.get("top_floor") is not None:  # 3.2.0: the gate's doubtful candidates too
                said += f"; and at candidates with p_top from {second_look['top_floor']:g} up to the decision's line"
            assert said in " ".join(text.split())
    else:
        assert facts["input_size"] == 224


@needs_tensorflow
def test_tensorflow_engine_prints_no_start_up_banner(photo_dir):
    script = shutil.which("bottlecheck", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [script, "classify", str(photo_dir / "a_open.jpg"), "--engine", "tensorflow", "-f", "csv"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0
    assert SUMMARY.fullmatch(proc.stderr) and proc.stderr.startswith("1 image: "), proc.stderr
    assert "oneDNN" not in proc.stderr and "absl" not in proc.stderr


def test_serve_help_shows_its_defaults():
    help_text = " ".join(run("serve", "--help").output.split())  # as one line: click wraps long ones
    assert "--max-upload-mb FLOAT RANGE Request body limit in MB (413 above). [default: 20.0;" in help_text
    assert (
        "--rate-limit TEXT Per API key, or per client address without keys; off leaves limits to the ingress. "
        "[default: 600/minute;30/second]"
    ) in help_text
    assert "(20.0)" not in help_text


def test_installed_console_script(photo_dir, tmp_path):
    """The real entry point in a subprocess, as users run it."""
    script = shutil.which("bottlecheck", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    assert script, "bottlecheck console script is not installed"
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([script, "classify", str(photo_dir), "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(out.read_text().splitlines()) == 4
    proc = subprocess.run([sys.executable, "-m", "bottlecheck", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "bottlecheck" in proc.stdout


def test_the_cli_imports_neither_flask_nor_prometheus_until_it_serves():
    """Cold start stays small, and prometheus_client must not load before serve sets its multiprocess dir."""
    code = (
        "import sys, bottlecheck.cli.main; "
        "print(sorted({'flask', 'prometheus_client', 'tensorflow'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_save_annotated_writes_a_readable_copy_of_each_answered_photo(photo_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "seen"
    result = run("classify", str(photo_dir), "--save-annotated", str(out), "-f", "csv", "-q")
    assert result.exit_code == 1  # the empty file is still an error row; it gets no copy
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_open.jpg", "b_closed.jpg", "c_closed.png"]  # each in its own format
    for name in names:
        with Image.open(out / name) as image, Image.open(photo_dir / name) as original:
            assert image.format == original.format
            # Small photos keep their pixels (boxes line up); the answer's band is added above.
            assert image.width == original.width and image.height > original.height
            assert image.getpixel((2, 2)) != original.convert("RGB").getpixel((2, 2))


def test_save_annotated_mirrors_the_inputs_folders_instead_of_numbering_same_names(tmp_path):
    from PIL import Image

    for folder, is_open in (("line-1", True), ("line-2", False)):
        (tmp_path / "frames" / folder).mkdir(parents=True)
        (tmp_path / "frames" / folder / "x.png").write_bytes(bottle_photo(is_open, seed=3, fmt="PNG"))
    (tmp_path / "frames" / "x.jpg").write_bytes(bottle_photo(True, seed=4))
    out = tmp_path / "seen"
    result = run("classify", str(tmp_path / "frames"), "--save-annotated", str(out), "-f", "csv", "-q")
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["line-1/x.png", "line-2/x.png", "x.jpg"]
    for name in written:
        with Image.open(out / name) as image:
            assert image.format == ("PNG" if name.endswith(".png") else "JPEG")
    # One file named on its own goes straight into DIR, under its name.
    run("classify", str(tmp_path / "frames" / "line-1" / "x.png"), "--save-annotated", str(tmp_path / "one"), "-q")
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["x.png"]


def _many_photos(folder: Path, count: int = 12) -> Path:
    folder.mkdir()
    for k in range(count):
        (folder / f"{k:02d}.jpg").write_bytes(bottle_photo(k % 2 == 0, seed=k))
    return folder


def test_the_summary_always_reaches_stderr_with_several_workers(tmp_path):
    """Each pipeline thread's model copy allocates at its first batch; hiding LiteRT's delegate line
    from there swapped fd 2 in several threads at once, and one restored /dev/null (issue 20)."""
    photos = _many_photos(tmp_path / "photos")
    script = shutil.which("bottlecheck", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    for _ in range(4):
        proc = subprocess.run(
            [script, "classify", str(photos), "-w", "4", "-b", "1", "-f", "csv"], capture_output=True, text=True
        )
        assert proc.returncode == 0
        assert SUMMARY.fullmatch(proc.stderr) and proc.stderr.startswith("12 images: "), repr(proc.stderr)


def test_a_library_callers_stderr_is_still_its_own_after_a_run_with_several_workers(tmp_path):
    photos = _many_photos(tmp_path / "photos")
    before = os.fstat(2)
    for _ in range(6):
        with pytest.raises(SystemExit) as exit_:
            main(["classify", str(photos), "-w", "4", "-b", "1", "-f", "csv", "-q"], standalone_mode=False)
        assert exit_.value.code == 0
        after = os.fstat(2)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino), "fd 2 no longer the caller's stderr"
