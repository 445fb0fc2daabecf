"""The whole bad-input corpus through the CLI and the HTTP API: one clear row or JSON error each."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bottlecheck.cli.main import main
from bottlecheck.labels import STATUSES
from bottlecheck.server import create_app
from tests.corpus import OK, build_corpus, corpus_files

IS_ROOT = os.geteuid() == 0


def _expected_rows(entries, as_root: bool):
    expected = {}
    for entry in entries:
        expect = entry.expect
        if entry.name == "unreadable.jpg" and as_root:
            expect = OK  # root reads a mode-000 file; checked below as an ordinary user
        expected[entry.name] = expect
    return expected


def _check_rows(rows, folder, expected):
    names = [os.path.relpath(row["path"], folder) for row in rows]
    assert sorted(names) == sorted(expected), "one row per input, no more, no less"
    for name, row in zip(names, rows, strict=True):
        want = expected[name]
        if want == OK:
            assert row["status"] in STATUSES, (name, row)
            assert row["error"] in (None, ""), (name, row)
        else:
            assert row["status"] == "error", (name, row)
            assert want in row["error"] and "\n" not in row["error"], (name, row)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cli_gives_every_corpus_entry_one_clear_row(tmp_path, fmt):
    folder = tmp_path / "corpus"
    entries = build_corpus(folder)
    out = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(main, ["classify", str(folder), "-o", str(out), "-q"], catch_exceptions=False)
    assert result.exit_code == 1  # some errors, all reported
    if fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
        for row in rows:
            row["error"] = row["error"] or None
    _check_rows(rows, folder, _expected_rows(entries, IS_ROOT))


@pytest.mark.skipif(not IS_ROOT, reason="as an ordinary user the CLI test above already sees mode 000")
def test_unreadable_file_without_root_privileges(tmp_path):
    """Root reads anything; drop the capabilities that let it, as setpriv(1) does, and look again."""
    folder = tmp_path / "corpus"
    entries = build_corpus(folder)
    out = tmp_path / "rows.jsonl"
    command = [
        "setpriv",
        "--bounding-set",
        "-dac_override,-dac_read_search",
        sys.executable,
        "-m",
        "bottlecheck",
        "classify",
        str(folder),
        "-o",
        str(out),
        "-q",
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    _check_rows(rows, folder, _expected_rows(entries, as_root=False))


@pytest.fixture(scope="module")
def client(classifier):
    app = create_app({"RATE_LIMIT": "10000/minute"}, classifier=classifier)
    return app.test_client()


@pytest.mark.parametrize("name", list(corpus_files()))
def test_http_answers_every_corpus_file(client, name):
    data, expect, status = corpus_files()[name]
    upload_name = name.replace("\n", "%0A")  # how browsers encode a newline in a multipart file name
    response = client.post(
        "/classify", data={"file": (io.BytesIO(data), upload_name)}, content_type="multipart/form-data"
    )
    assert response.status_code == status, response.data
    body = response.get_json()
    if status == 200:
        assert body["Bottle_Status"] in STATUSES
    else:
        assert set(body) == {"error", "detail"} and body["error"] == "Unable to process image"
        assert body["detail"] and "\n" not in body["detail"]  # a one-line reason
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
