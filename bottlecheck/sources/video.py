"""Video clips and live streams as inputs: decode once, sample frames, hand them to the batch pipeline.

A clip (``.mp4``, ``.mov``, ``.mkv``, ``.avi``, ``.webm``, ...) is demuxed and decoded once
with PyAV (FFmpeg's own threads: ``thread_type="AUTO"``). Frames are sampled by their
presentation time (``--fps``, default :data:`DEFAULT_FPS`) or by count (``--every N``); a
frame not sampled is dropped as it comes out of the decoder, never converted. A sampled
frame becomes a :class:`VideoFrame`, which a worker thread of
:meth:`~bottlecheck.classifier.Classifier.classify_paths` converts to RGB and classifies
beside photos and other frames, so the model's batches stay full across clips.

**How a frame becomes RGB**: FFmpeg's swscale converts the decoded frame to 8-bit RGB (``rgb24``,
the frame's own colour matrix, BT.601 when the stream names none; PyAV's
``VideoFrame.to_ndarray``). At its own size, unless the classifier would shrink a picture that
large anyway (the two-stage model shrinks one over twice its ``decode_side``, 900 px, to 900 px:
a 1080p frame becomes 900x506): then swscale shrinks it to that same size in the same pass (area
filter), which costs a fraction of converting 2 megapixels and shrinking them again in Pillow.
From there a frame takes exactly the path a PNG of the same pixels takes
(:func:`bottlecheck.imaging.decode_photo`: size check, letterbox), so a frame's row is the row
that PNG gets as an image (``tests/test_video.py`` checks it on a losslessly encoded clip).

A clip that cannot be read gives one error row (``no such file``, ``empty file (0 bytes)``,
``not a readable video (unknown format)``); a clip that breaks or ends early gives the rows
of the frames it could read and then one error row that says where it stopped.

A stream (``rtsp://``, ``http://`` MPEG-TS or MJPEG, a V4L2 device ``/dev/video0``) is read
until the run is stopped; when it drops, the run says so on stderr and reconnects with
back-off, and says when the source is back.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import stat
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from bottlecheck.imaging import ImageError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".ts", ".mts", ".mpg", ".mpeg"})
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
#: Frames a second sampled from a clip when neither ``--fps`` nor ``--every`` is given: a bottle
#: passing a line camera is in view for a second or more, so two looks a second see it twice.
DEFAULT_FPS = 2.0
INSTALL_HINT = "video needs PyAV: pip install 'bottlecheck[video]'"


def is_video_path(path: str | os.PathLike) -> bool:
    """True when the file name looks like a video clip."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


def is_stream(source: str) -> bool:
    """True for a live source: a network URL or a V4L2 device path."""
    return source.lower().startswith(STREAM_PREFIXES) or source.startswith("/dev/video")


@functools.cache
def available() -> bool:
    """Whether PyAV is installed (without importing it: a run of photos never pays for it)."""
    return importlib.util.find_spec("av") is not None


@dataclass(frozen=True)
class Sampling:
    """Which frames to classify: every ``every``-th decoded frame, else ``fps`` frames a second of video."""

    every: int | None = None
    fps: float | None = None

    def picker(self) -> Callable[[int, float | None], bool]:
        """A fresh ``pick(index, time_s)`` for one clip: True for a frame to classify.

        By time: the first frame at or after each tick of a grid ``1 / fps`` apart, starting at
        the clip's first frame (a 30 fps clip at 2 fps: frames 0, 15, 30, ...). A frame without a
        time is taken by its index.
        """
        if self.every:
            every = self.every
            return lambda index, _time: index % every == 0
        step = 1.0 / (self.fps or DEFAULT_FPS)
        due: list[float] = []

        def pick(index: int, time_s: float | None) -> bool:
            if time_s is None:
                return index % max(1, round(step * 30)) == 0
            if not due:
                due.append(time_s)
            if time_s + 1e-6 < due[0]:
                return False
            due[0] += step * max(1, math.floor((time_s - due[0]) / step + 1e-6) + 1)
            return True

        return pick

    def describe(self) -> str:
        return f"every {self.every} frames" if self.every else f"{self.fps or DEFAULT_FPS:g} frames/s"


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame (or a clip's error), decoded but not yet converted: a :class:`DeferredInput`."""

    name: str
    frame: int | None
    time_s: float | None
    picture: Any = field(default=None, repr=False)  # av.VideoFrame
    error: str | None = None

    def image(self, max_side: int | None = None) -> Image.Image:
        """The frame in 8-bit RGB (swscale), shrunk to ``max_side`` (area filter) if it is over twice that."""
        if self.error is not None:
            raise ImageError(self.error)
        size = shrunk_size(self.picture.width, self.picture.height, max_side)
        if size is None:
            return Image.fromarray(self.picture.to_ndarray(format="rgb24"))
        width, height = size
        return Image.fromarray(
            self.picture.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
        )

    def row_fields(self) -> dict[str, Any]:
        return {"frame": self.frame, "time_s": self.time_s}


def shrunk_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """The size a ``width`` x ``height`` picture is converted at: None (its own) unless it is over twice ``max_side``.

    The same rule and size as the two-stage model's own shrink of a large photo (Pillow's
    ``thumbnail``), done by swscale in the same pass as the conversion to RGB.
    """
    if not max_side or max(width, height) <= 2 * max_side:
        return None
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _file_problem(path: str) -> str | None:
    """The reason a clip cannot be opened at all, in the words an image's error row uses."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link" if os.path.islink(path) else "no such file"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, not a video"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _after(frames: int) -> str:
    return f"(after {frames} frame{'' if frames == 1 else 's'})"


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": '")[0]  # PyAV appends the file name: the row already has it


def _duration(container: Any, stream: Any) -> tuple[float, float] | None:
    """(start, duration) of the stream in seconds, from the stream or else the container; None if unknown."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration:
        return start, float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:  # with audio, the container's may be the audio's
        return start, container.duration / 1_000_000
    return None


def clip_frames(path: str, sampling: Sampling, skip: Container[int] = ()) -> Iterator[VideoFrame]:
    """The sampled frames of one clip, in order, then an error item if it broke or ended early.

    ``skip`` holds frame indices already answered (``--resume``): decoded, not converted.
    """

    def error(reason: str) -> VideoFrame:
        return VideoFrame(path, None, None, error=reason)

    try:
        import av
    except ImportError:
        yield error(INSTALL_HINT)
        return

    problem = _file_problem(path)
    if problem:
        yield error(problem)
        return
    try:
        container = av.open(path, mode="r")
    except av.error.InvalidDataError:
        yield error("not a readable video (unknown format)")
        return
    except (av.FFmpegError, OSError) as exc:
        yield error(f"not a readable video: {_reason(exc)}")
        return
    with container:
        if not container.streams.video:
            yield error("not a readable video (no video stream)")
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        pick = sampling.picker()
        index, last_time = -1, None
        try:
            for picture in container.decode(stream):
                index += 1
                time_s = picture.time if picture.time is not None else (index / rate if rate else None)
                last_time = time_s
                if pick(index, time_s) and index not in skip:
                    yield VideoFrame(path, index, time_s, picture)
        except (av.FFmpegError, OSError, ValueError) as exc:
            yield error(f"corrupt or truncated video: {_reason(exc)} {_after(index + 1)}")
            return
        if index < 0:
            yield error("corrupt or truncated video: no frame could be decoded")
            return
        span = _duration(container, stream)
        if span is not None and last_time is not None:
            start, duration = span
            frame_time = 1.0 / rate if rate else 0.1
            if last_time + 1.5 * frame_time + 0.05 < start + duration:
                yield error(
                    f"corrupt or truncated video: frames end at {last_time - start:.2f} s of {duration:.2f} s "
                    f"{_after(index + 1)}"
                )


def stream_frames(
    source: str,
    sampling: Sampling,
    say: Callable[[str], None],
    retry: tuple[float, float] = (0.5, 30.0),
    read_timeout: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[VideoFrame]:
    """The sampled frames of a live source, forever: reconnects with back-off when it drops.

    Frames are numbered from 0 over the whole run and timed in seconds from the first frame
    (each connection's presentation times, placed at the moment its first frame arrived): a
    restarted camera starts its clock again, the rows' times go on. ``say`` tells a person
    (stderr) when the source is lost and when it is back.
    """
    import av

    started: float | None = None  # when the run's first frame arrived
    index = -1
    pick = sampling.picker()
    delay = retry[0]
    lost_at: float | None = None
    device_format = "v4l2" if source.startswith("/dev/") else None
    while True:
        try:
            container = av.open(source, mode="r", format=device_format, timeout=(max(read_timeout, 5.0), read_timeout))
        except (av.FFmpegError, OSError) as exc:
            if lost_at is None:
                lost_at = time.monotonic()
                say(f"lost {source}: {_reason(exc)}; reconnecting")
            sleep(delay)
            delay = min(delay * 2, retry[1])
            continue
        if lost_at is not None:
            say(f"regained {source} after {time.monotonic() - lost_at:.1f} s")
            lost_at = None
        delay = retry[0]
        reason = "the stream ended"
        with container:
            try:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                first: float | None = None  # this connection's first presentation time
                offset = 0.0  # and where it falls in the run
                for picture in container.decode(stream):
                    index += 1
                    time_s = None
                    if started is None:
                        started = time.monotonic()
                    if picture.time is not None:
                        if first is None:
                            first, offset = picture.time, time.monotonic() - started
                        time_s = round(offset + picture.time - first, 3)
                    if pick(index, time_s):
                        yield VideoFrame(source, index, time_s, picture)
            except IndexError:
                reason = "no video stream"
            except (av.FFmpegError, OSError) as exc:
                reason = _reason(exc)
        lost_at = time.monotonic()
        say(f"lost {source}: {reason}; reconnecting")
        sleep(delay)


def annotated_codec() -> tuple[str, str]:
    """(codec, file suffix) of an annotated clip a browser plays: H.264 in MP4 where PyAV has libx264, else VP9."""
    import av

    return ("libx264", ".mp4") if "libx264" in av.codecs_available else ("libvpx-vp9", ".webm")


def write_annotated_clip(source: str, rows: list[dict], target: os.PathLike | str) -> str | None:
    """Decode ``source`` again and write each answered frame with its answer drawn on it (``--save-annotated``).

    The clip plays at the sampled rate (each frame shown until the next sampled one); every frame
    has the first one's size (a frame whose answer band is taller is cut at the bottom, one whose
    band is shorter padded). H.264 (yuv420p, ``+faststart``) in MP4, or VP9 in WebM where PyAV was
    built without libx264. Returns the file written, or None when no frame was answered.
    """
    import fractions

    import av

    from bottlecheck.prediction import Prediction
    from bottlecheck.writers.annotate import annotated

    read = (Prediction.from_row(row) for row in rows)  # a resumed CSV's rows are text
    answers = {prediction.frame: prediction for prediction in read if prediction.frame is not None}
    if not answers:
        return None
    codec, _ = annotated_codec()
    time_base = fractions.Fraction(1, 1000)
    output: Any = None
    stream: Any = None
    size: tuple[int, int] = (0, 0)
    last_pts = -1
    os.makedirs(os.path.dirname(os.fspath(target)) or ".", exist_ok=True)
    with av.open(source) as container:
        decoded = container.streams.video[0]
        decoded.thread_type = "AUTO"
        try:
            for index, picture in enumerate(container.decode(decoded)):
                prediction = answers.get(index)
                if prediction is None:
                    continue
                image = annotated(Image.fromarray(picture.to_ndarray(format="rgb24")), prediction)
                if output is None:
                    size = (image.width + image.width % 2, image.height + image.height % 2)  # yuv420p: even sides
                    output = av.open(
                        os.fspath(target), mode="w", options={"movflags": "+faststart"} if codec == "libx264" else {}
                    )
                    stream = output.add_stream(codec, rate=2)  # nominal: each frame carries its own time
                    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
                    stream.time_base = time_base
                    stream.codec_context.time_base = time_base
                    if codec == "libx264":
                        stream.options = {"crf": "23", "preset": "veryfast"}
                if image.size != size:
                    canvas = Image.new("RGB", size, (0, 0, 0))
                    canvas.paste(image, (0, 0))
                    image = canvas
                frame = av.VideoFrame.from_image(image)
                time_s = prediction.time_s
                pts = round(time_s * 1000) if time_s is not None else last_pts + 500
                frame.pts, frame.time_base = max(pts, last_pts + 1), time_base
                last_pts = frame.pts
                for packet in stream.encode(frame):
                    output.mux(packet)
        except (av.FFmpegError, OSError, ValueError):
            pass  # a broken clip: what was read so far is written
        finally:
            if output is not None:
                for packet in stream.encode(None):
                    output.mux(packet)
                output.close()
    return os.fspath(target) if output is not None else None
