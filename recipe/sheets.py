"""Contact sheets: crops laid out in a grid to look at by eye (marking tops, checking answers)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def save_sheets(
    tiles: list[Image.Image],
    out: Path,
    stem: str,
    columns: int,
    rows: int,
    background: tuple[int, int, int] = (255, 255, 255),
    trim: bool = False,
) -> list[Path]:
    """Lay equal-sized tiles ``columns`` by ``rows`` a sheet, in order, saved as ``out/{stem}NN.png``.

    ``trim``: a sheet is only as tall as its tiles' rows (else every sheet has ``rows`` rows).
    """
    if not tiles:
        return []
    width, height = tiles[0].size
    per = columns * rows
    paths = []
    for start in range(0, len(tiles), per):
        chunk = tiles[start : start + per]
        shown = -(-len(chunk) // columns) if trim else rows
        sheet = Image.new("RGB", (columns * width, shown * height), background)
        for i, tile in enumerate(chunk):
            sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
        paths.append(out / f"{stem}{start // per:02d}.png")
        sheet.save(paths[-1])
    return paths
