"""The shared real photos as the recipe measures them: each labelled photo's group and kinds.

A **group** is the repository a photo came from (``../shared/data/real-sources/README.md``):
folders of one group share photographers, so a group is held out whole. A **kind** is what
the held-out set is scored on (white or silver crowns on clear glass, foil necks, bare PET
necks, ...), read off each photo's note in ``labels.csv`` by the words below. A model is
chosen on the groups it never saw, and shipped only when no kind falls.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

#: real-sources folder -> its repository group (the README's "group" column).
FOLDER_GROUPS = {
    "beer-office": "beer-office",
    "beer-checkins": "beer-checkins",
    "street-restaurants": "street-restaurants",
    "hk-glass-waste": "hk-drinking-waste",
    "pet-darkbg-topdown": "hk-drinking-waste",
    "pet-rvm-chamber": "hk-drinking-waste",
    "pet-5l-rig": "hk-drinking-waste",
    "beercooler": "beercooler",
    "liftpiloot-beerglass": "liftpiloot",
    "algeria-pet-home": "algeria-pet",
    "crushed-pet-topdown": "crushed-pet",
    "nepal-litter-phone": "nepal-litter",
}
PET_FOLDERS = {"algeria-pet-home", "crushed-pet-topdown", "pet-darkbg-topdown", "pet-rvm-chamber", "pet-5l-rig"}
#: TrashNet's two capped bottles sit in real/closed beside the product shots.
TRASHNET_CLOSED = {"glass77.jpg", "glass131.jpg"}
# real/other is labelled "no top", but seven of its photos show a capped bottle or growler and three
# are unclear: the by-eye verdicts (annotations/real-other-review.json) replace the folder's label.
OTHER_REVIEW = Path(__file__).resolve().parent / "annotations" / "real-other-review.json"
GROUPS = ("product-poster", "trashnet", *dict.fromkeys(FOLDER_GROUPS.values()))
#: The groups 3.x's cap was trained on (with the renders); the other six it never saw.
OLDER_GROUPS = ("product-poster", "trashnet", "beer-office", "beer-checkins", "street-restaurants")

KINDS = (
    "white/silver crowns on clear glass",
    "coloured crowns",
    "foil necks",
    "bare lips side-on",
    "bare PET necks",
    "PET caps",
    "lying or from above",
    "no top in frame",
)


@dataclass
class Photo:
    """One labelled photo: truth is open, closed or none (no top in the frame)."""

    path: Path
    folder: str
    group: str
    truth: str
    note: str = ""
    n_tops: int | None = None
    kinds: tuple[str, ...] = field(default=())


def kinds_of(folder: str, truth: str, note: str) -> tuple[str, ...]:
    """The held-out set's kinds a photo belongs to, from its folder, truth and note (several may apply)."""
    text = note.lower()
    pet = folder in PET_FOLDERS or "pet " in text or "pet," in text
    kinds = []
    if truth == "none":
        return ("no top in frame",)
    if pet:
        kinds.append("bare PET necks" if truth == "open" else "PET caps")
    else:
        crowned = "crown" in text or folder == "product-poster"
        if truth == "closed" and crowned and "clear" in text and ("silver" in text or "white" in text):
            kinds.append("white/silver crowns on clear glass")
        elif truth == "closed" and crowned:
            kinds.append("coloured crowns")
        if "foil" in text:
            kinds.append("foil necks")
        if truth == "open" and ("lip" in text or folder == "trashnet"):
            kinds.append("bare lips side-on")
    if any(word in text for word in ("lying", "top-down", "from above", "above")) or folder == "trashnet":
        kinds.append("lying or from above")
    return tuple(kinds)


def labelled_photos(data: Path = DATA) -> list[Photo]:
    """Every labelled real photo: ``real/`` (product shots, TrashNet) and each real-sources folder."""
    photos = []
    real = data / "real"
    reviewed = json.loads(OTHER_REVIEW.read_text())["photos"]
    for sub, label in (("open", "open"), ("closed", "closed"), ("other", "none")):
        for path in sorted((real / sub).iterdir()):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            truth = reviewed.get(path.name, label) if sub == "other" else label
            if truth == "unclear":
                continue
            folder = "trashnet" if sub == "open" or path.name in TRASHNET_CLOSED else "product-poster"
            note = "bottle lying on poster board" if folder == "trashnet" else ""
            photos.append(Photo(path, folder, folder, truth, note, None, kinds_of(folder, truth, note)))
    for folder, group in FOLDER_GROUPS.items():
        with (data / "real-sources" / folder / "labels.csv").open() as handle:
            for row in csv.DictReader(handle):
                if row["label"] not in ("open", "closed"):
                    continue
                n_tops = int(row["n_tops_visible"]) if row.get("n_tops_visible", "").strip().isdigit() else None
                photos.append(
                    Photo(
                        data / "real-sources" / folder / row["file"],
                        folder,
                        group,
                        row["label"],
                        row.get("note", ""),
                        n_tops,
                        kinds_of(folder, row["label"], row.get("note", "")),
                    )
                )
    return photos
