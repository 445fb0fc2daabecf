"""The recipe's view of the shared real photos: a by-eye verdict replaces a folder's label."""

from __future__ import annotations

import json

from recipe import real_photos


def test_real_other_photos_with_a_cap_in_frame_count_as_closed_and_unclear_ones_are_left_out(tmp_path, monkeypatch):
    """``real/other`` is labelled "no top"; the review names the photos that show a capped bottle
    (closed) and those where the top is at the frame's edge (left out). The rest stay "no top"."""
    reviewed = json.loads(real_photos.OTHER_REVIEW.read_text())["photos"]
    closed = next(name for name, verdict in reviewed.items() if verdict == "closed")
    unclear = next(name for name, verdict in reviewed.items() if verdict == "unclear")
    for sub, names in (("open", ["lip.jpg"]), ("closed", ["cap.jpg"]), ("other", [closed, unclear, "can.jpg"])):
        (tmp_path / "real" / sub).mkdir(parents=True)
        for name in names:
            (tmp_path / "real" / sub / name).write_bytes(b"")
    monkeypatch.setattr(real_photos, "FOLDER_GROUPS", {})  # the real-sources folders are not needed here

    truth = {p.path.name: (p.truth, p.group, p.kinds) for p in real_photos.labelled_photos(tmp_path)}

    assert truth[closed][:2] == ("closed", "product-poster")
    assert "no top in frame" not in truth[closed][2]
    assert unclear not in truth
    assert truth["can.jpg"] == ("none", "product-poster", ("no top in frame",))
    assert truth["lip.jpg"][0] == "open" and truth["cap.jpg"][0] == "closed"


def test_every_photo_the_review_names_is_in_real_other_and_every_verdict_is_known():
    reviewed = json.loads(real_photos.OTHER_REVIEW.read_text())["photos"]
    assert set(reviewed.values()) <= {"closed", "unclear"}
    folder = real_photos.DATA / "real" / "other"
    if folder.is_dir():  # the shared photos: beside the repository where the recipe runs
        assert set(reviewed) <= {p.name for p in folder.iterdir()}
