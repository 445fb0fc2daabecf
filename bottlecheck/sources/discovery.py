"""Turn the user's inputs into one ordered set of inputs, and each input into what the classifier reads.

Both ``classify`` and ``watch`` go through here, so whether an input is a photo, a clip or a
stream is decided in one place (:func:`input_kind`) and read one way (:func:`read_input`):
a photo is its path, a clip its sampled frames, a stream its frames until the run is stopped.
:func:`find_inputs` is the whole of it for ``classify``'s PATH arguments.

A PATH may be a file (taken as given, whatever its extension), a directory
(walked recursively in sorted order, image and video extensions only, symlinked
directories followed once so loops end), a glob (image files and directories
it matches), or ``-`` for paths on stdin.
A file name that does not exist is kept: it becomes an error row, never silently
lost. A directory with no images or a glob that matches nothing yields nothing and
is reported through ``on_empty`` (a glob is a question, not a file name).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from bottlecheck.imaging import is_image_path
from bottlecheck.sources.video import Sampling, VideoFrame, clip_frames, is_stream, is_video_path, stream_frames
from bottlecheck.sources.video import available as video_available

_GLOB_CHARS = frozenset("*?[")
PHOTO, CLIP, STREAM = "photo", "clip", "stream"


def input_kind(path: str, streams: bool = True) -> str:
    """How an input is read, by its name: :data:`STREAM` (a camera's URL, a V4L2 device), :data:`CLIP`, :data:`PHOTO`.

    ``streams=False`` for files found in a folder (``watch``), which are never live sources.
    """
    if streams and is_stream(path):
        return STREAM
    return CLIP if is_video_path(path) else PHOTO


def read_input(
    path: str,
    sampling: Sampling,
    skip: Container[int] = (),
    say: Callable[[str], None] | None = None,
    kind: str | None = None,
) -> Iterator[str | VideoFrame]:
    """What the classifier is handed for one input: a photo's path, a clip's sampled frames, a stream's frames.

    ``skip`` holds a clip's frames already answered (``--resume``); ``say`` tells a person when a
    stream is lost and regained (on stderr unless given); ``kind`` is :func:`input_kind`'s answer,
    where the caller has it already.
    """
    kind = kind or input_kind(path)
    if kind == STREAM:
        return stream_frames(path, sampling, say=say or _stderr)
    if kind == CLIP:
        return clip_frames(path, sampling, skip=skip)
    return iter([path])


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class Inputs:
    """A run's inputs, in order and each once, with those read as frames picked out.

    ``videos`` are the clips and streams, ``streams`` the live ones among them;
    ``skipped_clips`` the clips in folders left out because PyAV is not installed.
    """

    paths: list[str]
    videos: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    skipped_clips: list[str] = field(default_factory=list)

    def items(
        self,
        paths: Iterable[str],
        sampling: Sampling,
        skip: Callable[[str], Container[int]],
        say: Callable[[str], None] | None = None,
    ) -> Iterator[str | VideoFrame]:
        """Everything the classifier reads for ``paths`` (some of :attr:`paths`), one input after another."""
        for path in paths:
            kind = STREAM if path in self.streams else CLIP if path in self.videos else PHOTO
            yield from read_input(path, sampling, skip(path), say, kind)


def find_inputs(
    arguments: Iterable[str],
    stdin: TextIO | None = None,
    on_empty: Callable[[str, str], None] | None = None,
    exclude: Iterable[str] = (),
) -> Inputs:
    """The one source factory: photos, folders, globs, clips, stream URLs and ``-`` (stdin) as one :class:`Inputs`.

    An input named twice is read once, where it first appears; ``exclude`` and ``on_empty`` as
    in :func:`expand_inputs`.
    """
    skipped: list[str] = []
    found = expand_inputs(arguments, stdin=stdin, on_empty=on_empty, exclude=exclude, on_skip=skipped.append)
    paths = list(dict.fromkeys(found))
    kinds = {path: input_kind(path) for path in paths}
    return Inputs(
        paths,
        videos=frozenset(path for path, kind in kinds.items() if kind != PHOTO),
        streams=frozenset(path for path, kind in kinds.items() if kind == STREAM),
        skipped_clips=skipped,
    )


def is_input_path(path: str) -> bool:
    """An image or a video clip, by its name; clips only where PyAV is installed (``bottlecheck[video]``).

    Without it a folder's clips are left out, as before clips were read, rather than failing the run.
    """
    return is_image_path(path) or (is_video_path(path) and video_available())


def walk_images(
    directory: str, exclude: frozenset[str] = frozenset(), on_skip: Callable[[str], None] | None = None
) -> Iterator[str]:
    """Image and video files under ``directory``, sorted, each real directory visited once.

    A directory or file whose real path is in ``exclude`` is passed over (a run's own annotated
    copies and output, so that running the same command twice does not classify them).
    ``on_skip(path)`` hears of each video clip left out because PyAV is not installed.
    """
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        try:
            stat = os.stat(root)
        except OSError:
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen:  # a symlink back up the tree: stop here
            dirs[:] = []
            continue
        seen.add(key)
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) not in exclude)
        for name in sorted(files):
            path = os.path.join(root, name)
            if exclude and os.path.realpath(path) in exclude:
                continue
            if is_input_path(name):
                yield path
            elif on_skip is not None and is_video_path(name):
                on_skip(path)


def expand_inputs(
    arguments: Iterable[str],
    stdin: TextIO | None = None,
    on_empty: Callable[[str, str], None] | None = None,
    exclude: Iterable[str] = (),
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Yield input paths for each CLI argument, in order.

    ``on_empty(argument, reason)`` is called for a directory without images or a glob
    that matches none, so the caller can say so. Inside directories, paths in ``exclude``
    are left out and ``on_skip`` hears of clips left out (:func:`walk_images`).
    """
    exclude = frozenset(os.path.realpath(path) for path in exclude)
    for argument in arguments:
        if argument == "-":
            lines = (line.rstrip("\r\n") for line in (stdin or ()))
            yield from expand_inputs(
                (line for line in lines if line), on_empty=on_empty, exclude=exclude, on_skip=on_skip
            )
            continue
        if is_stream(argument) and not os.path.lexists(argument):
            found = iter([argument])  # a camera's URL (its "?" is a query, not a glob) or a V4L2 device
        elif os.path.isdir(argument):
            found = _report_if_empty(
                walk_images(argument, exclude, on_skip), argument, "no images in directory", on_empty
            )
        elif os.path.lexists(argument) or not _GLOB_CHARS & set(argument):
            found = iter([argument])  # a file, or a name that will be an error row ("no such file")
        else:
            found = _report_if_empty(_glob_images(argument, exclude, on_skip), argument, "no images match", on_empty)
        yield from found


def _glob_images(
    pattern: str, exclude: frozenset[str] = frozenset(), on_skip: Callable[[str], None] | None = None
) -> Iterator[str]:
    """Image files and the images in directories that ``pattern`` matches, like a directory argument."""
    for match in sorted(glob.glob(pattern, recursive=True)):
        if exclude and os.path.realpath(match) in exclude:
            continue
        if os.path.isdir(match):
            yield from walk_images(match, exclude, on_skip)
        elif is_input_path(match):
            yield match


def _report_if_empty(
    paths: Iterator[str], argument: str, reason: str, on_empty: Callable[[str, str], None] | None
) -> Iterator[str]:
    empty = True
    for path in paths:
        empty = False
        yield path
    if empty and on_empty is not None:
        on_empty(argument, reason)
