"""Labelled image folders and stratified splits, shared by training and evaluation.

A data directory follows the ImageFolder convention (Keras, Ultralytics):
``DATA/open/*.jpg`` and ``DATA/closed/*.jpg``, searched recursively; ``DATA/none/``
may hold photos with no bottle top visible (a close-up of the label, no bottle), which
a two-stage model should answer ``unknown`` (evaluation only; training ignores them). Several
directories can be combined; each keeps a ``source`` name (the directory's name)
so metrics can be reported per source. ``DATA/tops.json`` (:data:`CORRECTED_TOPS`, written by
``bottlecheck review --export``) may give the tops a person marked in some photos.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bottlecheck.imaging import is_image_path
from bottlecheck.labels import LABELS
from bottlecheck.sources.discovery import walk_images

NO_TOP = "none"
#: The corrected tops of a data directory: ``{"tops": {"open/x.jpg": [[x0, y0, x1, y1], ...]}}``.
CORRECTED_TOPS = "tops.json"


@dataclass(frozen=True)
class Example:
    path: str
    label: int  # index into LABELS (0 closed, 1 open), or 2 for NO_TOP
    source: str

    @property
    def label_name(self) -> str:
        return LABELS[self.label] if self.label < len(LABELS) else NO_TOP


def scan_image_folder(root: str | Path, source: str | None = None) -> list[Example]:
    """Examples under ``root/closed``, ``root/open`` (and ``root/none``); other folders are ignored."""
    root = Path(root)
    examples = []
    for index, label in enumerate((*LABELS, NO_TOP)):
        folder = root / label
        if folder.is_dir():
            examples += [Example(p, index, source or root.name) for p in walk_images(str(folder))]
    if not examples:
        raise FileNotFoundError(f"{root}: no images in {root / 'open'} or {root / 'closed'}")
    return examples


def unread_images(root: str | Path) -> dict[str, int]:
    """Images under ``root`` that :func:`scan_image_folder` does not read, by where they are.

    Keys are the folders below ``root`` other than ``closed``, ``open`` and ``none`` that hold
    images (``other/``), and ``root`` itself for images lying directly in it; values count them.
    """
    root = Path(root)
    known = {*LABELS, NO_TOP}
    unread: dict[str, int] = {}
    loose = 0
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name not in known:
            count = sum(1 for _ in walk_images(str(child)))
            if count:
                unread[f"{child}{os.sep}"] = count
        elif child.is_file() and is_image_path(child):
            loose += 1
    if loose:
        unread[f"{root}{os.sep}"] = loose
    return unread


def scan_data_dirs(data_dirs: Sequence[str | Path]) -> list[Example]:
    """Every labelled image under each ``DATA/{closed,open}``, the directory's name as source."""
    return [e for d in data_dirs for e in scan_image_folder(d)]


def describe_sources(data_dirs: Sequence[str | Path], root: str | Path | None = None) -> list[str]:
    """Data directories as a model's metadata records them: relative to ``root``, else by name.

    An artefact says what it was trained on, never where a disk was mounted on the
    machine that trained it.
    """
    described = []
    for directory in data_dirs:
        path = Path(directory).resolve()
        if root is not None and path.is_relative_to(Path(root).resolve()):
            described.append(path.relative_to(Path(root).resolve()).as_posix() or ".")
        else:
            described.append(path.name)
    return described


def stratified_split(examples: Sequence[Example], fraction: float, seed: int = 0) -> tuple[list, list]:
    """Split keeping each (source, label) group's share: ``fraction`` goes to validation."""
    rng = random.Random(seed)
    groups: dict[tuple[str, int], list[Example]] = {}
    for example in examples:
        groups.setdefault((example.source, example.label), []).append(example)
    train, val = [], []
    for key in sorted(groups):
        items = sorted(groups[key], key=lambda e: e.path)
        rng.shuffle(items)
        n_val = int(round(len(items) * fraction)) if len(items) > 1 else 0
        n_val = min(max(n_val, 1 if fraction > 0 and len(items) > 2 else 0), len(items) - 1)
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def corrected_tops(data_dirs: Sequence[str | Path]) -> dict[str, list[tuple[float, float, float, float]]]:
    """The tops a person marked (``DATA/tops.json``), keyed by the photo's path as the folders are scanned.

    Boxes are ``(x0, y0, x1, y1)`` in the photo's own upright pixels. Where a person corrected
    the finder (a missed top, a box on no top), training should learn from what they marked,
    not from what the finder found; a directory without the file gives nothing (the finder's
    tops are used, as before).
    """
    found: dict[str, list[tuple[float, float, float, float]]] = {}
    for directory in data_dirs:
        path = Path(directory) / CORRECTED_TOPS
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        for relative, boxes in (data.get("tops") or {}).items():
            key = os.path.normpath(os.path.join(str(directory), relative))
            found[key] = [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes if len(b) == 4]
    return found
