"""``bottlecheck watch``: a real process watching a real folder, a webhook received by a server in the test.

Files are copied in slowly (a half-written photo must not be read) and renamed into place; the
process is stopped with SIGTERM and restarted in the middle (no file answered twice, none that
landed meanwhile missed); a dead webhook does not stop the watching. Every wait polls with a
deadline: no fixed sleep races the process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import EXAMPLES

pytest.importorskip("watchdog")
# Real processes with a webhook server and a metrics server each: not the quick inner loop.
pytestmark = pytest.mark.server

OPEN, CLOSED = EXAMPLES / "rendered_open_1.jpg", EXAMPLES / "rendered_closed_1.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Hook:
    """A webhook: records every JSON body POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Watch:
    def __init__(self, folder: Path, output: Path, *args: str):
        self.stderr_path = output.with_suffix(f".{time.monotonic_ns()}.err")
        self.stderr = open(self.stderr_path, "w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "bottlecheck", "watch", str(folder), "-o", str(output), "-w", "1", *args]
        self.proc = subprocess.Popen(command, stderr=self.stderr, stdout=subprocess.DEVNULL, env=env)
        wait_for(lambda: "watching" in self.err() or self.proc.poll() is not None, what="the watch to start")
        assert self.proc.poll() is None, self.err()

    def err(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.stderr.close()
        return code


def rows(output: Path) -> list[dict]:
    if not output.exists():
        return []
    return [json.loads(line) for line in output.read_text().splitlines() if line.endswith("}")]


def paths(output: Path) -> list[str]:
    return [Path(r["path"]).name for r in rows(output)]


def copy_slowly(source: Path, target: Path, pieces: int = 4, pause: float = 0.3) -> None:
    """Write ``target`` in pieces with pauses shorter than the watch's settling time."""
    data = source.read_bytes()
    step = len(data) // pieces + 1
    with open(target, "wb") as stream:
        for start in range(0, len(data), step):
            stream.write(data[start : start + step])
            stream.flush()
            time.sleep(pause)


def test_watch_answers_each_file_once_when_complete_survives_a_restart_and_calls_the_webhook(tmp_path):
    folder, output = tmp_path / "line", tmp_path / "rows.jsonl"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(CLOSED, folder / "before.jpg")  # already there at the start: answered at the start
    hook = Hook()
    port = free_port()
    watch = Watch(folder, output, "--settle", "1.5", "--on-open", hook.url, "--metrics-port", str(port), "-v")
    try:
        wait_for(lambda: "before.jpg" in paths(output), what="the file already there")

        copy_slowly(OPEN, folder / "slow.jpg")  # pauses of 0.3 s, settle 1.5 s: never read half-written
        wait_for(lambda: "slow.jpg" in paths(output), what="the slowly copied file")

        partial = folder / "sub" / ".incoming.jpg.part"
        copy_slowly(CLOSED, partial, pieces=2, pause=0.2)
        os.rename(partial, folder / "sub" / "renamed.jpg")  # the usual atomic hand-over
        wait_for(lambda: "renamed.jpg" in paths(output), what="the renamed file")

        answers = {Path(r["path"]).name: r for r in rows(output)}
        assert {k: v["status"] for k, v in answers.items()} == {
            "before.jpg": "closed",
            "slow.jpg": "open",
            "renamed.jpg": "closed",
        }
        assert answers["renamed.jpg"]["path"] == str(folder / "sub" / "renamed.jpg")

        event = wait_for(lambda: hook.received, what="the webhook")[0]
        assert Path(event["path"]).name == "slow.jpg" and event["confidence"] == answers["slow.jpg"]["confidence"]
        assert event["boxes"] and {"box", "status", "confidence"} <= set(event["boxes"][0])
        assert event["time"].endswith("+00:00")

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'bottlecheck_watch_rows_total{status="open"} 1.0' in metrics, metrics
        assert 'bottlecheck_watch_rows_total{status="closed"} 2.0' in metrics
        last_open = [line for line in metrics.splitlines() if line.startswith("bottlecheck_watch_last_open")]
        assert float(last_open[0].split()[-1]) > time.time() - 120
        said = watch.err()  # -v: a line per answer for a person at the terminal
        slow = answers["slow.jpg"]
        assert f"open    {slow['confidence']:.2f}  {folder / 'slow.jpg'}" in said
        assert f"closed  {answers['before.jpg']['confidence']:.2f}  {folder / 'before.jpg'}" in said
    finally:
        assert watch.stop() == 0

    # Down: a file lands. Up again, with a dead webhook: the new file is answered, no old one again.
    shutil.copy(OPEN, folder / "sub" / "while_down.jpg")
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    watch = Watch(folder, output, "--settle", "0.5", "--on-open", dead)
    try:
        assert "3 files already answered" in watch.err()
        assert "before.jpg" not in watch.err()  # not a terminal and no -v: no line per answer
        wait_for(lambda: "while_down.jpg" in paths(output), what="the file that landed while down")
        shutil.copy(OPEN, folder / "after.jpg")
        wait_for(lambda: "after.jpg" in paths(output), what="a file after the restart, the webhook dead")
    finally:
        assert watch.stop() == 0
    hook.close()
    names = paths(output)
    assert sorted(names) == sorted(["before.jpg", "slow.jpg", "renamed.jpg", "while_down.jpg", "after.jpg"])
    assert len(hook.received) == 1  # the first run's one open photo


def test_watch_classifies_a_clip_and_posts_its_open_stretch(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    pytest.importorskip("av")
    from .test_video import LOSSLESS, encode, frames_of

    frames_of("cooooc", tmp_path / "frames")
    clip = encode(tmp_path / "frames", tmp_path / "clip.mkv", 4, LOSSLESS)
    folder, output = tmp_path / "line", tmp_path / "rows.jsonl"
    folder.mkdir()
    hook = Hook()
    watch = Watch(folder, output, "--settle", "0.3", "--on-open", hook.url, "--every", "1", "--verbose")
    try:
        shutil.copy(clip, folder / ".clip.mkv.tmp")
        os.rename(folder / ".clip.mkv.tmp", folder / "clip.mkv")
        wait_for(lambda: len(rows(output)) == 6, what="the clip's rows")
        event = wait_for(lambda: hook.received, what="the stretch's webhook")[0]
    finally:
        assert watch.stop() == 0
        hook.close()
    assert [r["frame"] for r in rows(output)] == list(range(6))
    assert (event["start_frame"], event["end_frame"], event["open_frames"]) == (1, 4, 4)
    assert event["path"] == str(folder / "clip.mkv") and event["boxes"]
    said = watch.err()  # --verbose: what a person at the terminal reads
    assert f"clip    6 frames, 1 open stretch(es)  {folder / 'clip.mkv'}" in said
    assert f"{folder / 'clip.mkv'}: open 00:00:00.2 - 00:00:01.0 (4 open frames" in said
