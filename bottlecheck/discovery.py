"""Turn the CLI's PATH arguments into a stable, ordered list of inputs.

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
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from bottlecheck.imaging import is_image_path
from bottlecheck.video import available as video_available
from bottlecheck.video import is_stream, is_video_path

_GLOB_CHARS = frozenset("*?[")


def is_input_path(path: str) -> bool:
    """An image or a video clip, by its name; clips only where PyAV is installed (``bottlecheck[video]``).

    Without it a folder's clips are left out, as before clips were read, rather than failing the run.
    """
    return is_image_path(path) or (is_video_path(path) and video_available())


def walk_images(directory: str) -> Iterator[str]:
    """Image and video files under ``directory``, sorted, each real directory visited once."""
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
        dirs.sort()
        for name in sorted(files):
            if is_input_path(name):
                yield os.path.join(root, name)


def expand_inputs(
    arguments: Iterable[str],
    stdin: TextIO | None = None,
    on_empty: Callable[[str, str], None] | None = None,
) -> Iterator[str]:
    """Yield input paths for each CLI argument, in order.

    ``on_empty(argument, reason)`` is called for a directory without images or a glob
    that matches none, so the caller can say so.
    """
    for argument in arguments:
        if argument == "-":
            lines = (line.rstrip("\r\n") for line in (stdin or ()))
            yield from expand_inputs((line for line in lines if line), on_empty=on_empty)
            continue
        if is_stream(argument) and not os.path.lexists(argument):
            found = iter([argument])  # a camera's URL (its "?" is a query, not a glob) or a V4L2 device
        elif os.path.isdir(argument):
            found = _report_if_empty(walk_images(argument), argument, "no images in directory", on_empty)
        elif os.path.lexists(argument) or not _GLOB_CHARS & set(argument):
            found = iter([argument])  # a file, or a name that will be an error row ("no such file")
        else:
            found = _report_if_empty(_glob_images(argument), argument, "no images match", on_empty)
        yield from found


def _glob_images(pattern: str) -> Iterator[str]:
    """Image files and the images in directories that ``pattern`` matches, like a directory argument."""
    for match in sorted(glob.glob(pattern, recursive=True)):
        if os.path.isdir(match):
            yield from walk_images(match)
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
