"""Kill a classify run with SIGKILL part-way, resume it, and find every input exactly once."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bottlecheck.labels import STATUSES
from tests.helpers import bottle_photo


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for i in range(240):
        (folder / f"{i:04d}.jpg").write_bytes(bottle_photo(i % 2 == 0, size=(480, 640), seed=i))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return folder


def _rows(path, fmt):
    text = path.read_text(encoding="utf-8")
    if fmt == "jsonl":
        return [json.loads(line) for line in text.split("\n") if line]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _count_lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_sigkill_then_resume_gives_each_input_exactly_once(many_photos, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    command = [sys.executable, "-m", "bottlecheck", "classify", str(many_photos), "-o", str(out), "-b", "8", "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while _count_lines(out) < 40 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = _count_lines(out)
    assert 0 < partial < 241

    with open(out, "a", encoding="utf-8") as stream:  # as if the kill cut a row in half
        stream.write('{"path": "half' if fmt == "jsonl" else '"half-written,op')

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 1, resumed.stderr  # broken.jpg is an error row
    rows = _rows(out, fmt)
    paths = [os.path.basename(row["path"]) for row in rows]
    expected = sorted(p.name for p in many_photos.iterdir())
    assert sorted(paths) == expected, "every input exactly once"
    assert len(set(paths)) == len(paths)
    for row in rows:
        assert row["status"] in (*STATUSES, "error")
        assert (row["status"] == "error") == (os.path.basename(row["path"]) == "broken.jpg")
