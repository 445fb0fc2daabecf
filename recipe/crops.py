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

import json
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from bottlecheck.training.judge import Crop, judge_view

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


def photo_key(name: str) -> int:
    return zlib.crc32(name.encode())
