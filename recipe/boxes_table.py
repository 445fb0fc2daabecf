"""Where a model's answers come from: on a marked bottle top, or on something that is not one.

    bottlecheck classify ../shared/data/real-sources ../shared/data/real -f jsonl -o A.jsonl
    python -m recipe.boxes_table A.jsonl [--left-out GROUP=FOLD.jsonl ...] [--json OUT.json] [--sheets DIR]

A right answer from a box on a bowl is luck, and the balanced accuracy of ``recipe.kinds_table``
cannot tell it from skill. This table reads each answered photo's boxes (``classify``'s JSONL)
against the tops marked in ``recipe/annotations`` and counts, per repository group:

- **answered**: photos with a marked top answered open or closed;
- **from no marked top**: the answer's deciding boxes (an open answer's most open top; a closed
  answer's counted tops, all closed) include none on a marked top (open, closed or unsure);
- **from a not-top**: a deciding box lies on a mark that a person called not a top (a bowl, a
  label, a glass). The marks the recipe made by rule alone (``gate turned down``) were never
  checked by eye, so they are not used here;
- **right from no marked top**: of the first, how many were right anyway;
- **wrong on a marked top**: answers resting on a marked top that are wrong, the cap's misreadings
  (or, in an open answer, another marked top misread open). Beside the wrong answers from no
  marked top (the first count less the second), it splits the mistakes into false tops and
  misread ones.

A box is on a mark when its centre lies within half the mark's side of the mark's centre (or
within one finder cell, 8 px, for a small mark). The marks were drawn from model 2.2.0's and
3.2.0's candidates, so a box on no mark may be a top nobody marked: the first count is an upper
bound on answers from no top, the second a lower bound on answers from a known not-top.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .crops import ANNOTATIONS, RECIPE, group_of
from .kinds_table import left_out_folds, read_answers
from .real_photos import GROUPS
from .sheets import save_sheets

#: Labels of a mark that is a top (unsure: a top whose status the marking could not give).
TOP_LABELS = ("open", "closed", "unsure")
#: How a rule-made mark that nobody checked by eye is described in the annotation files.
UNCHECKED = "gate turned down"


def marks_by_photo(annotations=ANNOTATIONS, directory: Path = RECIPE / "annotations") -> dict[str, tuple[str, list]]:
    """Each marked photo's resolved path -> (its repository group, its marks in the photo's pixels)."""
    marks = {}
    for name, folder in annotations:
        document = json.loads((directory / name).read_text())
        for rel, tops in sorted(document["images"].items()):
            tops = tops if isinstance(tops, list) else tops["tops"]
            path = str((folder / rel).resolve())
            marks[path] = (group_of(name, rel), [*marks.get(path, ("", []))[1], *tops])  # a photo in two files
    return marks


def on_mark(box: list[float], mark: dict) -> bool:
    """Whether a box's centre lies on a mark (within half its side, or a finder cell)."""
    reach = max(mark["side"] / 2, 8.0)
    return abs((box[0] + box[2]) / 2 - mark["x"]) <= reach and abs((box[1] + box[3]) / 2 - mark["y"]) <= reach


def deciding_boxes(answer: dict) -> list[list[float]]:
    """The boxes an answer rests on: an open photo's most open top, or a closed photo's counted tops."""
    tops = answer.get("tops") or []
    if answer["status"] == "open":
        opened = [t for t in tops if t["status"] == "open"]
        return [max(opened, key=lambda t: t["p_open"])["box"]] if opened else []
    return [t["box"] for t in tops]


def where_answers_come_from(
    answers: dict[str, dict], marks: dict[str, tuple[str, list]], truth: dict[str, str]
) -> dict:
    """Per group: answered photos, answered from no marked top (and right anyway), from a not-top.

    ``cases`` lists the answers that rest on no marked top, each with its deciding boxes, to look at.
    """
    cases = []
    table = {
        g: {
            "answered": 0,
            "from_no_marked_top": 0,
            "right_from_no_marked_top": 0,
            "from_a_not_top": 0,
            "wrong_on_a_marked_top": 0,
        }
        for g in GROUPS
    }
    for path, (group, photo_marks) in marks.items():
        answer = answers.get(path)
        if answer is None or answer["status"] not in ("open", "closed"):
            continue
        if not any(m["label"] in ("open", "closed") for m in photo_marks):
            continue
        boxes = deciding_boxes(answer)
        tops = [m for m in photo_marks if m["label"] in TOP_LABELS]
        not_tops = [m for m in photo_marks if m["label"] == "none" and m.get("how") != UNCHECKED]
        row = table[group]
        row["answered"] += 1
        if any(on_mark(b, m) for b in boxes for m in tops):
            row["wrong_on_a_marked_top"] += answer["status"] != truth.get(path)
        else:
            row["from_no_marked_top"] += 1
            row["right_from_no_marked_top"] += answer["status"] == truth.get(path)
            cases.append(
                {"path": path, "group": group, "status": answer["status"], "truth": truth.get(path), "boxes": boxes}
            )
        row["from_a_not_top"] += any(on_mark(b, m) for b in boxes for m in not_tops)
    total = {k: sum(row[k] for row in table.values()) for k in next(iter(table.values()))}
    return {"groups": table, "all": total, "cases": cases}


def markdown(result: dict) -> str:
    lines = [
        "| group | answered | from no marked top | right anyway | from a not-top | wrong on a marked top |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in [*result["groups"].items(), ("**all**", result["all"])]:
        if row["answered"]:
            lines.append(
                f"| {name} | {row['answered']} | {row['from_no_marked_top']} | {row['right_from_no_marked_top']} "
                f"| {row['from_a_not_top']} | {row['wrong_on_a_marked_top']} |"
            )
    return "\n".join(lines)


def draw_sheets(cases: list[dict], marks: dict[str, tuple[str, list]], out: Path, per_sheet: int = 36) -> list[Path]:
    """Contact sheets of the answers that rest on no marked top: each photo shrunk, its deciding box in
    red and its marked tops in green, beside the deciding box cut at 2.5 times its side."""
    from PIL import Image, ImageDraw

    from bottlecheck.imaging import decode_image
    from bottlecheck.tops import cut_square

    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for case in cases:
        image = decode_image(case["path"])
        box = case["boxes"][0]
        whole = image.copy()
        whole.thumbnail((128, 128))
        scale = whole.width / image.width
        draw = ImageDraw.Draw(whole)
        for m in marks[case["path"]][1]:
            if m["label"] in TOP_LABELS:
                half = m["side"] / 2 * scale
                draw.rectangle(
                    (m["x"] * scale - half, m["y"] * scale - half, m["x"] * scale + half, m["y"] * scale + half),
                    outline=(0, 255, 0),
                )
        draw.rectangle(tuple(v * scale for v in box), outline=(255, 0, 0), width=2)
        side = max(box[2] - box[0], 4.0)
        crop = cut_square(image, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, side * 2.5, 128)
        tile = Image.new("RGB", (256, 142), (255, 255, 255))
        tile.paste(whole, (0, 0))
        tile.paste(crop, (128, 0))
        ImageDraw.Draw(tile).text(
            (2, 129), f"{case['group'][:14]} {case['status']} (truth {case['truth']})", fill=(0, 0, 0)
        )
        tiles.append(tile)
    return save_sheets(tiles, out, "no-marked-top-", columns=6, rows=per_sheet // 6, trim=True)


def main(argv: list[str] | None = None) -> None:
    from .real_photos import labelled_photos

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("answers", type=Path, help="bottlecheck classify -f jsonl output")
    parser.add_argument("--left-out", action="append", default=[], metavar="GROUP=FILE")
    parser.add_argument("--json", type=Path, help="write the table here too (with the answers on no marked top)")
    parser.add_argument("--sheets", type=Path, help="draw the answers on no marked top on contact sheets here")
    args = parser.parse_args(argv)
    answers = read_answers(args.answers)
    marks = marks_by_photo()
    for group, fold in left_out_folds(parser, args.left_out).items():
        for path, (photo_group, _marks) in marks.items():
            if photo_group == group:
                answers.pop(path, None)
                if path in fold:
                    answers[path] = fold[path]
    truth = {str(p.path.resolve()): p.truth for p in labelled_photos()}
    if not any(path in answers for path in marks):
        sys.exit("no answer is for a marked photo: classify ../shared/data/real-sources and ../shared/data/real")
    result = where_answers_come_from(answers, marks, truth)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    if args.sheets:
        for sheet in draw_sheets(result["cases"], marks, args.sheets):
            print(f"wrote {sheet}")


if __name__ == "__main__":
    main()
