"""Turn the CLI's PATH arguments into a stable, ordered list of inputs.

A PATH may be a file (taken as given, whatever its extension), a directory
(walked recursively in sorted order, image extensions only, symlinked
directories followed once so loops end), a glob (image files and directories
it matches), or ``-`` for paths on stdin.
Names that match nothing are kept: they become error rows, never silently lost.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from typing import TextIO

from bottlecheck.imaging import is_image_path

_GLOB_CHARS = frozenset("*?[")


def walk_images(directory: str) -> Iterator[str]:
    """Image files under ``directory``, sorted, each real directory visited once."""
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
            if is_image_path(name):
                yield os.path.join(root, name)


def expand_inputs(arguments: Iterable[str], stdin: TextIO | None = None) -> Iterator[str]:
    """Yield input paths for each CLI argument, in order."""
    for argument in arguments:
        if argument == "-":
            if stdin is None:
                continue
            for line in stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield from expand_inputs([line])
        elif os.path.isdir(argument):
            yield from walk_images(argument)
        elif os.path.lexists(argument):
            yield argument
        elif _GLOB_CHARS & set(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                yield argument  # reported as "no such file"
            for match in matches:
                if os.path.isdir(match):
                    yield from walk_images(match)
                elif is_image_path(match):  # like a directory: a glob selects images
                    yield match
        else:
            yield argument
