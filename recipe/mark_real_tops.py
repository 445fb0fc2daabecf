"""Mark the tops in the nine newer real-sources folders, from their boxes and the finder's candidates.

    python -m recipe.mark_real_tops --out recipe/annotations/real-sources-more-tops.json

Every labelled photo's candidates come from the finder of ``--model`` (score 0.15, at most 8),
each with the gate's p(top) at the judge's span. A candidate is then marked by rule, not by
eye, and the rules lean to leaving a candidate out rather than guessing:

- where the source boxes the tops (algeria-pet's ``cap`` class marks the top, capped or bare),
  each box is a top and takes the photo's label when every top in it has that label (a closed
  photo, or an open one with a single top); candidates on a box are the same top (left out);
- where the source boxes whole bottles (crushed-pet, nepal-litter), only candidates inside a
  bottle box (grown by a fifth) may be tops;
- a candidate the gate counts (p(top) at least 0.5) is a top: in a closed photo it is closed;
  in an open photo with one visible top, the surest such candidate is open and the rest are
  left out; in an open photo with several tops (some may be capped) all are left out;
- a candidate the gate turns down (p(top) under ``--none-below``) and that lies on no box is
  ``none``; the rest are left out.

Then every open or closed mark was checked by eye on contact sheets (``--sheets DIR`` draws
them) and the verdicts kept in ``annotations/real-sources-more-review.json``, which ``--review``
applies: a mark that is no top (a bowl, a label, a loose cap) becomes ``none``, an unclear one
is dropped. The nones nobody had looked at were checked by eye where they decide most, in the
photos model 3.4.0 answers ``unknown`` (``annotations/real-sources-nones-review.json``: 38 of
416 are tops, capped or bare, and take what they show). The older three folders keep their
by-eye marks (``real-sources-tops.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

from PIL import ImageDraw

from bottlecheck import Classifier
from bottlecheck.tops import cut_square

from .real_photos import DATA, FOLDER_GROUPS, labelled_photos
from .sheets import save_sheets

OLDER = ("beer-office", "beer-checkins", "street-restaurants")
#: The by-eye verdicts: on the open and closed marks (every one), then on the nones in photos answered unknown.
REVIEWS = tuple(
    Path(__file__).resolve().parent / "annotations" / name
    for name in ("real-sources-more-review.json", "real-sources-nones-review.json")
)
TILE, COLUMNS, ROWS = 112, 8, 6


def boxes_of(folder: Path) -> dict[str, list[tuple[str, float, float, float, float]]]:
    """``boxes.csv`` rows by file: (kind, x0, y0, x1, y1) in the photo's pixels."""
    out: dict[str, list] = defaultdict(list)
    path = folder / "boxes.csv"
    if path.exists():
        with path.open() as handle:
            for row in csv.DictReader(handle):
                out[row["file"]].append((row["kind"], *(float(row[k]) for k in ("x0", "y0", "x1", "y1"))))
    return out


def inside(x: float, y: float, box: tuple[float, float, float, float], grow: float) -> bool:
    x0, y0, x1, y1 = box
    gx, gy = (x1 - x0) * grow / 2, (y1 - y0) * grow / 2
    return x0 - gx <= x <= x1 + gx and y0 - gy <= y <= y1 + gy


def mark(classifier: Classifier, photo, boxes: list, none_below: float) -> list[dict]:
    """The marked tops of one photo (x, y, side in its own pixels, label, and how it was marked)."""
    prepared = classifier.preprocess(str(photo.path))
    to_full = prepared.size[0] / prepared.image.width
    found = classifier.find_tops(prepared, 0.15, 8)  # type: ignore[attr-defined]
    rows = classifier.judge_crops([classifier.crop(prepared, x, y, s) for x, y, s, _ in found]) if found else []  # type: ignore[attr-defined]
    none_i = classifier.judge_labels.index("none")  # type: ignore[attr-defined]
    candidates = [
        {"x": x * to_full, "y": y * to_full, "side": s * to_full, "p_top": 1.0 - float(row[none_i])}
        for (x, y, s, _), row in zip(found, rows, strict=True)
    ]
    caps = [b[1:] for b in boxes if b[0] == "cap"]
    bottles = [b[1:] for b in boxes if b[0] == "bottle"]
    single = photo.truth == "closed" or photo.n_tops == 1 or len(caps) == 1
    marks = []
    for box in caps:
        x0, y0, x1, y1 = box
        label = photo.truth if single else "unsure"
        marks.append(
            {"x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "side": max(x1 - x0, y1 - y0), "label": label, "how": "cap box"}
        )
    counted = []
    for c in candidates:
        on_cap = any(inside(c["x"], c["y"], box, 0.5) for box in caps)
        in_bottle = not bottles or any(inside(c["x"], c["y"], box, 0.2) for box in bottles)
        if on_cap:
            continue
        if c["p_top"] >= 0.5 and in_bottle and not caps:
            counted.append(c)
        elif c["p_top"] < none_below and not any(inside(c["x"], c["y"], box, 0.0) for box in bottles):
            marks.append({**c, "label": "none", "how": "gate turned down"})
    if photo.truth == "closed":
        marks += [{**c, "label": "closed", "how": "gate counted, closed photo"} for c in counted]
    elif photo.n_tops == 1 and counted:
        best = max(counted, key=lambda c: c["p_top"])
        marks.append({**best, "label": "open", "how": "surest counted, open photo with one top"})
    for m in marks:
        for key in ("x", "y", "side", "p_top"):
            if key in m:
                m[key] = round(m[key], 1 if key != "p_top" else 3)
    return marks


def reviewed(marks: list[dict], verdicts: list[list]) -> list[dict]:
    """``marks`` with the by-eye verdicts applied.

    On an open or closed mark, 'not a top' makes it none and 'left out' drops it. On a none the
    gate turned down, 'open' or 'closed' makes it a top of that label: the gate turns down real
    tops too (bare PET necks, caps side-on), and a rule-made none that is a top teaches the
    rescue gate to refuse it.
    """
    by_place = {(round(x, 1), round(y, 1)): verdict for x, y, verdict in verdicts}
    out = []
    for m in marks:
        verdict = by_place.get((m["x"], m["y"]), "right")
        if m["label"] == "none" and verdict in ("open", "closed"):
            out.append({**m, "label": verdict, "how": m["how"] + f"; by eye: {verdict} top"})
        elif m["label"] not in ("open", "closed") or verdict == "right":
            out.append(m)
        elif verdict == "not a top":
            out.append({**m, "label": "none", "how": m["how"] + "; by eye: not a top"})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "model")
    parser.add_argument("--out", type=Path, required=True, help="the annotation file to write")
    parser.add_argument("--none-below", type=float, default=0.2, help="a candidate under this p(top) is none")
    parser.add_argument("--sheets", type=Path, help="also draw every open or closed mark on contact sheets here")
    parser.add_argument(
        "--review",
        type=Path,
        action="append",
        help="by-eye verdicts to apply, repeatable (default: annotations/' two review files; 'none': no review)",
    )
    args = parser.parse_args(argv)
    classifier = Classifier.load(args.model, engine="litert")
    images: dict[str, list[dict]] = {}
    verdicts: dict[str, list] | None = None
    if [str(r) for r in args.review or []] != ["none"]:
        verdicts = defaultdict(list)
        for review in args.review or REVIEWS:
            for name, places in json.loads(review.read_text())["review"].items():
                verdicts[name] += places
    box_cache = {folder: boxes_of(DATA / "real-sources" / folder) for folder in FOLDER_GROUPS}
    for photo in labelled_photos():
        if photo.folder not in FOLDER_GROUPS or photo.folder in OLDER:
            continue
        rel = photo.path.relative_to(DATA / "real-sources" / photo.folder).as_posix()
        marks = mark(classifier, photo, box_cache[photo.folder].get(rel, []), args.none_below)
        if verdicts is not None:
            marks = reviewed(marks, verdicts.get(f"{photo.folder}/{rel}", []))
        if marks:
            images[f"{photo.folder}/{rel}"] = marks
    counts = Counter((name.split("/")[0], m["label"]) for name, marks in images.items() for m in marks)
    document = {
        "about": "Tops in the nine newer folders of ../shared/data/real-sources, marked by rule from the source's "
        "boxes and model 3.2.0's finder candidates and gate (recipe/mark_real_tops.py: its docstring gives the rules), "
        "then every open or closed mark checked by eye (real-sources-more-review.json), and the nones in photos "
        "answered unknown by 3.4.0 (real-sources-nones-review.json). "
        "label open/closed: a top with its photo's label (a none the nones review found a top: what it shows); none: a "
        "candidate the gate turned down, on no box; unsure: "
        "a boxed top in an open photo with several tops (not trained on).",
        "source": "real-sources",
        "counts": {f"{folder}/{label}": n for (folder, label), n in sorted(counts.items())},
        "images": images,
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document["counts"], indent=1))
    if args.sheets:
        draw_sheets(images, args.sheets)


def draw_sheets(images: dict[str, list[dict]], out: Path) -> None:
    """Every open or closed mark, cut at 2.5 times its side, numbered with its label, to check by eye."""
    from bottlecheck.imaging import decode_image

    out.mkdir(parents=True, exist_ok=True)
    marked = [(name, m) for name, marks in sorted(images.items()) for m in marks if m["label"] in ("open", "closed")]
    tiles = []
    for number, (name, m) in enumerate(marked):
        image = decode_image(str(DATA / "real-sources" / name))
        tile = cut_square(image, m["x"], m["y"], max(m["side"] * 2.5, 8), TILE)
        draw = ImageDraw.Draw(tile)
        draw.rectangle((0, 0, 40, 12), fill=(0, 0, 0))
        draw.text((2, 1), f"{number} {m['label'][0]}", fill=(255, 255, 0))
        tiles.append(tile)
    save_sheets(tiles, out, "sheet", COLUMNS, ROWS)


if __name__ == "__main__":
    main()
