"""Propose candidate tops in labelled photos and draw contact sheets of them, to mark by eye.

    python -m recipe.propose_tops ../shared/data/real-sources/beer-office ../shared/data/real-sources/beer-checkins \
        --out /var/tmp/propose

For every photo listed in a folder's ``labels.csv`` (``file,label,...``) the model's finder
proposes candidate tops (score 0.15, at most 8 a photo); ``candidates.json`` holds them (centre
and side in the photo's pixels after EXIF orientation) and ``sheetNN.png`` shows each one's crop
2.5 times its side, numbered, with its photo's label and the finder's score. A person marks
which numbers are tops (they take their photo's label) and which to leave out; the rest are
``none``. ``annotations/real-sources-tops.json`` was made this way (its ``about`` says how).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw

from bottlecheck import Classifier
from bottlecheck.tops import cut_square

from .sheets import save_sheets

TILE, COLUMNS, ROWS = 112, 8, 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders with a labels.csv")
    parser.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "model")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-score", type=float, default=0.15)
    args = parser.parse_args()
    classifier = Classifier.load(args.model, engine="litert")
    args.out.mkdir(parents=True, exist_ok=True)
    candidates, tiles = {}, []
    for folder in args.folders:
        with (folder / "labels.csv").open() as handle:
            for row in csv.DictReader(handle):
                photo = classifier.preprocess(str(folder / row["file"]))
                to_full = photo.size[0] / photo.image.width
                found = []
                for x, y, side, score in classifier.find_tops(photo, args.min_score, 8):  # type: ignore[attr-defined]
                    found.append(
                        {
                            "number": len(tiles),
                            "x": round(x * to_full, 1),
                            "y": round(y * to_full, 1),
                            "side": round(side * to_full, 1),
                            "score": round(float(score), 3),
                        }
                    )
                    crop = cut_square(photo.image, x, y, max(side * 2.5, 8), TILE)
                    tiles.append((crop, f"{len(tiles)} {row['label'][0]} {score:.2f}"))
                candidates[f"{folder.name}/{row['file']}"] = {"label": row["label"], "candidates": found}
    (args.out / "candidates.json").write_text(json.dumps(candidates, indent=1) + "\n")
    captioned = []
    for crop, caption in tiles:
        tile = Image.new("RGB", (TILE, TILE + 12))
        tile.paste(crop, (0, 0))
        ImageDraw.Draw(tile).text((2, TILE), caption, fill=(255, 255, 0))
        captioned.append(tile)
    save_sheets(captioned, args.out, "sheet", COLUMNS, ROWS, background=(0, 0, 0))
    print(f"{len(tiles)} candidates in {len(candidates)} photos; sheets in {args.out}")


if __name__ == "__main__":
    main()
