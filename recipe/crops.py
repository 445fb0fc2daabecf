"""The cap judge's training crops: every marked top of the rendered close-ups and the real sources.

A crop is a top's (or a rim's) box in a photo, its label (``open``, ``closed`` or ``none``), the
photo's key and its source (``bottlecheck.training.judge.Crop``); the judge's views are cut from
it. The sources:

=====================  ==========================================================================
source                 tops
=====================  ==========================================================================
caps-render            rendered close-ups: crown caps of six styles, twist, PET screw and sports
                       caps, foil; bare lips, torn foil, bare PET threads; tumblers, wine glasses,
                       jars, cups, loose caps (``none``)
product-poster         ``real/``: web product shots (closed) and poster-board empties (open),
                       tops in ``annotations/real-tops.json``; the brewery logos (``real/other``)
                       give ``none`` where the finder is fooled
trashnet               ``annotations/trashnet-tops.json``: the finder's candidates, marked by eye
beer-office            ``annotations/real-sources-tops.json``, and the ones below
beer-checkins
street-restaurants
=====================  ==========================================================================

``recipe/train_cap_judge.py`` trains the shipped cap judge on them; the measure-only experiments
read them too.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from bottlecheck.training.judge import Crop, judge_view

from .real_photos import DATA, FOLDER_GROUPS, TRASHNET_CLOSED

RECIPE = Path(__file__).resolve().parent

#: The real-sources folders with marked tops (``annotations/real-sources-tops.json``).
REAL_SOURCES = ("beer-office", "beer-checkins", "street-restaurants")
#: Rendered families held out one at a time: (name, test on a crop's family).
FAMILIES: dict[str, Callable[[str], bool]] = {
    "white and silver crown caps": lambda family: family in ("crown:white", "crown:silver"),
    "foil necks": lambda family: family.startswith("foil"),
    "PET necks": lambda family: family.startswith("pet"),
    "glassware (not a top)": lambda family: family in ("tumbler", "wine_glass", "jar", "cup"),
}


def cap_render_crops(directories: Iterable[Path], group: str = "caps-render") -> list[Crop]:
    """One crop per image of ``render_caps.py``: the top's (or rim's) box, its label and its family."""
    crops = []
    for directory in directories:
        for log in sorted(Path(directory).glob("labels-*.jsonl")):
            for line in log.read_text().splitlines():
                meta = json.loads(line)
                x0, y0, x1, y1 = meta["box"]
                family = meta["kind"] + (f":{meta['cap_style']}" if "cap_style" in meta else "")
                path = str(Path(directory) / meta["path"])
                crops.append(
                    Crop(
                        path,
                        (x0 + x1) / 2,
                        (y0 + y1) / 2,
                        max(x1 - x0, y1 - y0),
                        meta["label"],
                        meta["index"],
                        group,
                        family,
                    )
                )
    return crops


def marked_crops(annotation: Path, folder: Path, group_of: Callable[[str], str]) -> list[Crop]:
    """Tops marked in an annotation file (``{"images": {relative path: [{x, y, side, label}]}}``)."""
    document = json.loads(annotation.read_text())
    crops = []
    for rel, tops in sorted(document["images"].items()):
        for top in tops if isinstance(tops, list) else tops["tops"]:
            crops.append(
                Crop(str(folder / rel), top["x"], top["y"], top["side"], top["label"], photo_key(rel), group_of(rel))
            )
    return crops


def views_digest() -> str:
    """A short digest of how views are made, so cached features of other views are never reused."""
    import inspect

    return f"{zlib.crc32(inspect.getsource(judge_view).encode()):08x}"


def places_digest(crops: Sequence[Crop]) -> str:
    """A short digest of where the crops are cut (not their labels): cached features of the same places are reused.

    A view does not depend on its crop's label, so relabelled marks keep their features; the
    labels are always read from the crops, never from a cache.
    """
    places = "\n".join(f"{c.path}|{c.x:.1f}|{c.y:.1f}|{c.side:.1f}" for c in crops)
    return f"{zlib.crc32(places.encode()):08x}"


def marks_digest(crops: Sequence[Crop]) -> str:
    """A short digest of the crops' places and labels: for caches that keep the labels beside the features."""
    return f"{zlib.crc32((places_digest(crops) + ''.join(c.label for c in crops)).encode()):08x}"


def photo_key(name: str) -> int:
    return zlib.crc32(name.encode())


#: Every file of marked tops (and by-eye not-tops) and the folder its paths are relative to.
ANNOTATIONS = (
    ("real-tops.json", DATA / "real"),
    ("trashnet-tops.json", DATA / "unlabelled" / "trashnet-glass"),
    ("real-sources-tops.json", DATA / "real-sources"),
    ("real-sources-more-tops.json", DATA / "real-sources"),
    # Last, so that the crops before it keep their views' draws (a view's jitter comes from one stream).
    ("real-sources-unknown-tops.json", DATA / "real-sources"),
)


def group_of(annotation: str, rel: str) -> str:
    """The repository group of a marked photo (``real/`` holds two: the product shots and TrashNet)."""
    if annotation == "real-tops.json":
        trashnet = rel.startswith("open/") or rel.split("/")[-1] in TRASHNET_CLOSED
        return "trashnet" if trashnet else "product-poster"
    if annotation == "trashnet-tops.json":
        return "trashnet"
    return FOLDER_GROUPS[rel.split("/")[0]]


def marked(labels: tuple[str, ...]) -> list[Crop]:
    """Every mark of the given labels in every annotation file, each with its repository group."""
    crops = []
    for name, folder in ANNOTATIONS:
        crops += marked_crops(RECIPE / "annotations" / name, folder, functools.partial(group_of, name))
    return [c for c in crops if c.label in labels]


def alike(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weights under which each (group, label) weighs the same: no group's size or class balance decides."""
    keys = list(zip(groups, labels, strict=True))
    counts = Counter(keys)
    weights = np.array([1.0 / counts[k] for k in keys])
    return weights * len(weights) / weights.sum()
