"""Video clips in ``bottlecheck classify``: clips encoded here from known photos, so every frame's answer is known.

Clips are tiny (320x240, a few frames a second) and made by Debian's ``ffmpeg``; the lossless
ones (H.264 RGB at qp 0 in Matroska) carry exactly the PNGs' pixels, so a frame's row must be the
row the same PNG gets as an image.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from bottlecheck.cli.main import main
from bottlecheck.runs.events import stretches
from bottlecheck.sources.video import Sampling

from .conftest import EXAMPLES

av = pytest.importorskip("av")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")
SIZE = (320, 240)


def frames_of(sequence: str, folder: Path) -> list[Path]:
    """A PNG per letter of ``sequence`` (``o`` the open render, ``c`` the closed one), 320x240."""
    folder.mkdir(parents=True, exist_ok=True)
    source = {
        "o": Image.open(EXAMPLES / "rendered_open_1.jpg").convert("RGB").resize(SIZE, Image.Resampling.BILINEAR),
        "c": Image.open(EXAMPLES / "rendered_closed_1.jpg").convert("RGB").resize(SIZE, Image.Resampling.BILINEAR),
    }
    paths = []
    for index, letter in enumerate(sequence):
        path = folder / f"f{index:03d}.png"
        source[letter].save(path)
        paths.append(path)
    return paths


def encode(frames: Path, target: Path, rate: int, codec: list[str]) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-framerate", str(rate), "-i", str(frames / "f%03d.png"), *codec, str(target)],
        check=True,
        timeout=60,
    )
    return target


LOSSLESS = ["-c:v", "libx264rgb", "-qp", "0"]  # gbrp: the PNGs' pixels, exactly
H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "12", "-movflags", "+faststart"]
# 4:4:4: at 320x240 the open render's top is a few pixels, and 4:2:0 chroma at crf 20 loses it
# (the model then says closed 0.63): a test of our plumbing, not of the codec's damage.
VP9 = ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv444p", "-crf", "10", "-b:v", "0", "-deadline", "realtime"]
MJPEG = ["-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj444p"]

# 4 frames a second: closed 1 s, open 1.5 s with one closed frame inside it, closed 1.25 s with one
# open frame inside it (noise), open 1 s to the end.
EVENTS = "cccc" + "oooooo" + "c" + "oooo" + "ccccc" + "o" + "cccc" + "oooo"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    root = tmp_path_factory.mktemp("clips")
    frames_of("ccooocc", root / "short")
    frames_of(EVENTS, root / "events")
    frames_of("c" * 30, root / "thirty")
    made = {
        "lossless": encode(root / "short", root / "short.mkv", 4, LOSSLESS),
        "events": encode(root / "events", root / "events.mkv", 4, LOSSLESS),
        "h264": encode(root / "thirty", root / "thirty.mp4", 10, H264),
        "vp9": encode(root / "short", root / "short.webm", 4, VP9),
        "mjpeg": encode(root / "short", root / "short.avi", 4, MJPEG),
    }
    made["short_frames"] = root / "short"
    return made


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["classify", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


ANSWER = ("status", "confidence", "p_open", "bottles", "open_tops", "closed_tops", "tops")


@needs_ffmpeg
def test_a_clips_rows_are_its_frames_rows_as_images(clips):
    """Lossless H.264 (RGB) in Matroska: each frame's row equals its PNG's row, field for field."""
    code, out, _ = run(str(clips["lossless"]), "--every", "1", "-f", "jsonl", "-q")
    assert code == 0
    rows = jsonl(out)
    pngs = sorted(clips["short_frames"].glob("*.png"))
    code, out, _ = run(*map(str, pngs), "-f", "jsonl", "-q")
    images = jsonl(out)
    assert [r["frame"] for r in rows] == list(range(7))
    assert [r["time_s"] for r in rows] == [i / 4 for i in range(7)]
    assert [[r[k] for k in ANSWER] for r in rows] == [[r[k] for k in ANSWER] for r in images]
    assert [r["status"] for r in rows] == ["closed", "closed", "open", "open", "open", "closed", "closed"]


@needs_ffmpeg
def test_frames_become_rgb_with_the_pixels_encoded(clips):
    """The conversion the classifier uses (VideoFrame.image) gives back the PNGs' pixels exactly."""
    from bottlecheck.sources.video import clip_frames

    pngs = sorted(clips["short_frames"].glob("*.png"))
    frames = list(clip_frames(str(clips["lossless"]), Sampling(every=1)))
    assert len(frames) == len(pngs)
    for frame, png in zip(frames, pngs, strict=True):
        assert frame.image().tobytes() == Image.open(png).convert("RGB").tobytes()


@needs_ffmpeg
def test_default_sampling_is_two_frames_a_second_and_fps_and_every_choose_others(clips):
    clip = str(clips["h264"])  # 30 frames at 10 fps
    _, out, _ = run(clip, "-f", "jsonl", "-q")
    assert [(r["frame"], r["time_s"]) for r in jsonl(out)] == [(i * 5, i * 0.5) for i in range(6)]
    _, out, _ = run(clip, "-f", "jsonl", "-q", "--fps", "4")  # 0.25 s: the first frame at or after each tick
    assert [r["frame"] for r in jsonl(out)] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]
    _, out, _ = run(clip, "-f", "jsonl", "-q", "--every", "7")
    assert [r["frame"] for r in jsonl(out)] == [0, 7, 14, 21, 28]
    assert all(r["status"] == "closed" for r in jsonl(out))
    code, _, err = run(clip, "--every", "2", "--fps", "3")
    assert code == 2 and "give one" in err


@needs_ffmpeg
def test_clips_and_photos_mixed_in_input_order_in_every_format(clips, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    photo = str(EXAMPLES / "rendered_open_1.jpg")
    args = [photo, str(clips["vp9"]), str(fake), str(clips["lossless"]), str(tmp_path / "missing.mov")]
    code, out, err = run(*args, "-f", "jsonl")
    assert code == 1  # the fake clip and the missing one are error rows
    rows = jsonl(out)
    assert [r["path"] for r in rows] == [photo] + [str(clips["vp9"])] * 4 + [str(fake)] + [args[3]] * 4 + [args[4]]
    assert rows[5]["status"] == "error" and rows[5]["error"] == "not a readable video (unknown format)"
    assert rows[5]["frame"] is None
    assert rows[-1]["error"] == "no such file"
    assert [r["status"] for r in rows[1:5]] == ["closed", "open", "open", "closed"]  # VP9 in WebM, lossy
    _, out, _ = run(str(clips["mjpeg"]), "-f", "jsonl", "-q")  # MJPEG in AVI
    assert [(r["frame"], r["status"]) for r in jsonl(out)] == [(0, "closed"), (2, "open"), (4, "open"), (6, "closed")]
    assert "1 image and 8 frames of 4 clips" in err
    assert list(rows[0])[:3] == ["path", "frame", "time_s"]

    _, out, _ = run(*args, "-f", "csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert [(r["path"], r["frame"], r["status"]) for r in table] == [
        (r["path"], "" if r["frame"] is None else str(r["frame"]), r["status"]) for r in rows
    ]
    _, out, _ = run(*args, "-f", "json")
    assert [(r["path"], r["frame"], r["status"]) for r in json.loads(out)] == [
        (r["path"], r["frame"], r["status"]) for r in rows
    ]
    _, out, _ = run(*args, "-f", "table")
    lines = out.splitlines()
    assert lines[0].split() == ["STATUS", "CONF", "P_OPEN", "TOPS", "OPEN", "FRAME", "TIME_S", "PATH"]
    assert lines[3].split()[5:7] == ["2", "0.500"]


@needs_ffmpeg
def test_a_truncated_clip_gives_the_frames_it_could_read_and_one_error_row(clips, tmp_path):
    whole = clips["events"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: len(whole) // 2])
    code, out, _ = run(str(cut), "--every", "1", "-f", "jsonl", "-q")
    assert code == 1
    rows = jsonl(out)
    assert len(rows) >= 3
    assert all(r["status"] != "error" for r in rows[:-1]) and [r["frame"] for r in rows[:-1]] == list(
        range(len(rows) - 1)
    )
    assert rows[-1]["status"] == "error" and rows[-1]["error"].startswith("corrupt or truncated video")
    assert rows[-1]["frame"] is None
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _, out, _ = run(str(empty), "-f", "jsonl", "-q")
    assert jsonl(out)[0]["error"] == "empty file (0 bytes)"


@needs_ffmpeg
def test_resume_continues_a_clip_cut_short_and_retries_its_error_row(clips, tmp_path):
    out = tmp_path / "rows.jsonl"
    photo = str(EXAMPLES / "rendered_closed_1.jpg")
    args = [str(clips["lossless"]), photo, "--every", "1", "-o", str(out), "-q"]
    assert run(*args)[0] == 0
    full = out.read_text()
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:20])  # killed while writing frame 3's row
    assert run(*args, "--resume")[0] == 0
    assert jsonl(out.read_text()) == jsonl(full)
    # A clip that broke: its error row is retried (the frames already answered are not).
    cut = tmp_path / "cut.mkv"
    whole = clips["events"].read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    out2 = tmp_path / "cut.csv"
    args = [str(cut), photo, "--every", "1", "-o", str(out2), "-q"]
    assert run(*args)[0] == 1
    first = out2.read_text()
    assert run(*args, "--resume")[0] == 1
    assert out2.read_text() == first


@needs_ffmpeg
def test_events_are_the_known_open_stretches(clips, tmp_path):
    events = tmp_path / "events.jsonl"
    code, out, err = run(str(clips["events"]), "--every", "1", "-f", "jsonl", "--events", str(events))
    assert code == 0
    statuses = "".join("o" if r["status"] == "open" else "c" for r in jsonl(out))
    assert statuses == EVENTS  # every frame answered as its photo
    found = [json.loads(line) for line in events.read_text().splitlines()]
    # The closed frame at 10 does not end the first stretch; the open frame at 20 starts none.
    assert [(e["start_frame"], e["end_frame"], e["open_frames"]) for e in found] == [(4, 14, 10), (25, 28, 4)]
    assert [(e["start_s"], e["end_s"]) for e in found] == [(1.0, 3.5), (6.25, 7.0)]
    assert all(0.5 < e["peak_confidence"] <= 1 for e in found)
    assert "2 stretches with an open top" in err and "00:00:01.0 - 00:00:03.5" in err


def test_sampling_by_time_takes_the_first_frame_at_or_after_each_tick():
    pick = Sampling(fps=2).picker()
    times = [i / 30 for i in range(90)]  # 30 fps, 3 s
    assert [i for i, t in enumerate(times) if pick(i, t)] == [0, 15, 30, 45, 60, 75]
    pick = Sampling(fps=2).picker()  # a stream whose clock jumps (a reconnect): the grid follows
    assert [pick(i, t) for i, t in enumerate([0.0, 0.2, 0.5, 10.0, 10.1, 10.5])] == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    pick = Sampling(every=3).picker()
    assert [i for i in range(10) if pick(i, None)] == [0, 3, 6, 9]


def test_one_noisy_frame_neither_starts_nor_ends_a_stretch():
    def rows(pattern: str) -> list[dict]:
        return [
            {
                "path": "a.mp4",
                "frame": i,
                "time_s": i / 2,
                "status": "open" if c == "o" else "closed",
                "confidence": 0.9,
            }
            for i, c in enumerate(pattern)
        ]

    assert stretches(rows("cocc")) == []
    assert [(e.start_frame, e.end_frame) for e in stretches(rows("coocooccoo"))] == [(1, 5), (8, 9)]
    assert [(e.start_frame, e.end_frame, e.open_frames) for e in stretches(rows("oocccoo"))] == [(0, 1, 2), (5, 6, 2)]


@needs_ffmpeg
def test_a_stream_is_read_until_stopped_and_reconnects_when_its_source_restarts(clips, tmp_path):
    """Debian's ffmpeg serves the clip as MPEG-TS over HTTP on the loopback; it is killed and restarted."""
    import os
    import signal
    import socket
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    serve = ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clips["h264"]), "-c", "copy"]
    serve += ["-f", "mpegts", "-listen", "1", url]
    output, log = tmp_path / "live.jsonl", tmp_path / "live.err"

    def wait_for(check, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {log.read_text()}")

    def rows() -> list[dict]:
        text = output.read_text() if output.exists() else ""
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    server = subprocess.Popen(serve, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    command = [sys.executable, "-m", "bottlecheck", "classify", url, "-o", str(output), "--every", "1", "-w", "1"]
    with open(log, "w") as stderr:
        proc = subprocess.Popen(command, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: len(rows()) >= 5, "rows from the stream")
        lost = log.read_text().count("lost ")
        server.terminate()
        server.wait(timeout=10)
        wait_for(lambda: log.read_text().count("lost ") > lost, "the run to say it lost the source")
        before = len(rows())
        server = subprocess.Popen(serve, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: "regained" in log.read_text() and len(rows()) >= before + 5, "rows after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        server.kill()
        server.wait(timeout=10)
    err = log.read_text()
    assert code == 0, err
    assert "stopped" in err and f"regained {url} after" in err
    found = rows()
    assert output.read_text().endswith("\n")  # every row complete
    assert [r["frame"] for r in found] == list(range(len(found)))  # no frame read was lost
    assert all(r["status"] == "closed" and r["path"] == url for r in found)
    times = [r["time_s"] for r in found]
    assert times == sorted(times) and times[0] == 0.0


@needs_ffmpeg
def test_save_annotated_writes_a_clip_a_browser_plays(clips, tmp_path):
    """H.264 (yuv420p) in MP4 with the index up front, one frame per row, the answer's band drawn on each."""
    photo = tmp_path / "in" / "photo.jpg"
    photo.parent.mkdir()
    shutil.copy(EXAMPLES / "rendered_closed_1.jpg", photo)
    clip = tmp_path / "in" / "short.mkv"
    shutil.copy(clips["lossless"], clip)
    seen = tmp_path / "seen"
    code, out, _ = run(str(clip), str(photo), "--every", "1", "-f", "jsonl", "-q", "--save-annotated", str(seen))
    assert code == 0
    assert (seen / "photo.jpg").exists()
    written = seen / "short.mp4"
    with av.open(str(written)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        pictures = [frame.to_image() for frame in container.decode(stream)]
    statuses = [r["status"] for r in jsonl(out) if r["frame"] is not None]
    assert len(pictures) == len(statuses) == 7
    band = {"open": (230, 40, 40), "closed": (40, 200, 70)}
    for picture, status in zip(pictures, statuses, strict=True):
        corner = picture.getpixel((1, 1))
        assert all(abs(a - b) < 40 for a, b in zip(corner, band[status], strict=True)), (corner, status)
    assert written.read_bytes()[4:8] == b"ftyp" and b"moov" in written.read_bytes()[:4096]  # +faststart


@needs_ffmpeg
def test_a_large_frame_is_converted_at_the_size_the_model_would_shrink_it_to(tmp_path):
    """1920x1080: straight to 900x506 (the two-stage model's own shrink of a photo that size); smaller: as is."""
    from PIL import Image as PILImage

    from bottlecheck.sources.video import clip_frames

    frames = tmp_path / "big"
    frames.mkdir()
    PILImage.open(EXAMPLES / "rendered_open_1.jpg").convert("RGB").resize((1920, 1080)).save(frames / "f000.png")
    clip = encode(frames, tmp_path / "big.mkv", 1, LOSSLESS)
    (frame,) = clip_frames(str(clip), Sampling(every=1))
    assert frame.image(900).size == (900, 506)
    assert frame.image(None).size == (1920, 1080)
    assert frame.image(1000).size == (1920, 1080)  # not over twice: the model takes it whole


@needs_ffmpeg
def test_a_folder_walk_takes_its_clips_and_leaves_them_out_without_pyav(clips, tmp_path, monkeypatch):
    folder = tmp_path / "line"
    folder.mkdir()
    shutil.copy(clips["lossless"], folder / "a.mkv")
    shutil.copy(EXAMPLES / "rendered_closed_1.jpg", folder / "b.jpg")
    code, out, _ = run(str(folder), "-f", "jsonl", "-q")
    assert code == 0
    assert [(Path(r["path"]).name, r["frame"]) for r in jsonl(out)] == [("a.mkv", f) for f in (0, 2, 4, 6)] + [
        ("b.jpg", None)
    ]
    import bottlecheck.sources.discovery as discovery

    monkeypatch.setattr(discovery, "video_available", lambda: False)  # an install without bottlecheck[video]
    code, out, _ = run(str(folder), "-f", "jsonl", "-q")
    assert code == 0 and [Path(r["path"]).name for r in jsonl(out)] == ["b.jpg"]
