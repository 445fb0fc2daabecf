"""The recipe's table of where answers come from: on a marked top, on a known not-top, or elsewhere."""

from __future__ import annotations

import json

from recipe import boxes_table


def top(box, status, p_open):
    return {"box": box, "status": status, "p_open": p_open}


def marks_file(tmp_path, images):
    (tmp_path / "marks.json").write_text(json.dumps({"images": images}))
    return boxes_table.marks_by_photo(annotations=(("marks.json", tmp_path / "data"),), directory=tmp_path)


def a_cap_and_a_none(tmp_path, photo: str, cap: str, how: str) -> dict:
    """One photo's marks: a top marked ``cap`` at (100, 100) and a not-top at (300, 100), marked ``how``."""
    return marks_file(
        tmp_path,
        {
            photo: [
                {"x": 100, "y": 100, "side": 40, "label": cap},
                {"x": 300, "y": 100, "side": 40, "label": "none", "how": how},
            ]
        },
    )


def test_an_open_answer_rests_on_its_most_open_top_and_counts_against_a_not_top_a_person_marked(tmp_path):
    """The bottle's cap is marked closed at (100, 100); a lamp at (300, 100) was called not a top by eye.
    The model counts both and reads the lamp as the more open: the answer comes from the lamp."""
    marks = a_cap_and_a_none(tmp_path, "beer-office/closed/a.jpg", "closed", "by eye: not a top")
    path = next(iter(marks))
    answers = {
        path: {"status": "open", "tops": [top([80, 80, 120, 120], "open", 0.55), top([280, 80, 320, 120], "open", 0.7)]}
    }

    result = boxes_table.where_answers_come_from(answers, marks, {path: "closed"})

    assert result["groups"]["beer-office"] == {
        "answered": 1,
        "from_no_marked_top": 1,
        "right_from_no_marked_top": 0,
        "from_a_not_top": 1,
        "wrong_on_a_marked_top": 0,
    }
    # The same answer with the cap the more open: it rests on the marked top, and misreads it.
    answers[path]["tops"][0]["p_open"] = 0.9
    result = boxes_table.where_answers_come_from(answers, marks, {path: "closed"})
    assert result["all"]["from_no_marked_top"] == 0 and result["all"]["from_a_not_top"] == 0
    assert result["all"]["wrong_on_a_marked_top"] == 1
    # Had the photo been open, the same answer is right: no misreading.
    result = boxes_table.where_answers_come_from(answers, marks, {path: "open"})
    assert result["all"]["wrong_on_a_marked_top"] == 0


def test_a_closed_answer_rests_on_all_its_tops_and_a_rule_made_none_is_not_a_known_not_top(tmp_path):
    marks = a_cap_and_a_none(tmp_path, "beercooler/closed/b.jpg", "closed", "gate turned down")
    path = next(iter(marks))
    on_the_cap = top([80, 80, 120, 120], "closed", 0.1)
    off_the_cap = top([280, 80, 320, 120], "closed", 0.2)

    both = boxes_table.where_answers_come_from(
        {path: {"status": "closed", "tops": [off_the_cap, on_the_cap]}}, marks, {}
    )
    only_off = boxes_table.where_answers_come_from(
        {path: {"status": "closed", "tops": [off_the_cap]}}, marks, {path: "closed"}
    )

    assert both["groups"]["beercooler"]["from_no_marked_top"] == 0
    assert only_off["groups"]["beercooler"] == {
        "answered": 1,
        "from_no_marked_top": 1,
        "right_from_no_marked_top": 1,
        "from_a_not_top": 0,  # nobody looked at the rule-made mark
        "wrong_on_a_marked_top": 0,
    }


def test_a_box_is_on_a_mark_within_half_its_side_or_a_finder_cell_for_a_small_one():
    mark = {"x": 100, "y": 100, "side": 40}
    assert boxes_table.on_mark([110, 110, 130, 130], mark)  # centre (120, 120): 20 px off, half the side
    assert not boxes_table.on_mark([111, 100, 131, 120], mark)  # centre 21 px off in x
    small = {"x": 100, "y": 100, "side": 6}
    assert boxes_table.on_mark([103, 103, 113, 113], small)  # 8 px off: one cell
    assert not boxes_table.on_mark([104, 97, 114, 107], small)  # 9 px off


def test_unknown_answers_and_photos_marked_only_with_not_tops_are_left_out_of_the_count(tmp_path):
    marks = marks_file(
        tmp_path,
        {
            "beer-office/closed/c.jpg": [{"x": 100, "y": 100, "side": 40, "label": "closed"}],
            "beer-office/closed/d.jpg": [{"x": 100, "y": 100, "side": 40, "label": "none"}],
        },
    )
    c, d = sorted(marks)
    answers = {c: {"status": "unknown", "tops": []}, d: {"status": "open", "tops": [top([0, 0, 10, 10], "open", 0.9)]}}

    assert boxes_table.where_answers_come_from(answers, marks, {})["all"]["answered"] == 0


def test_the_contact_sheet_shows_each_case_with_its_deciding_box_in_red_and_its_marked_tops_in_green(tmp_path):
    from PIL import Image

    photo = tmp_path / "data" / "beer-office" / "closed" / "e.jpg"
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (256, 128), (40, 40, 40)).save(photo, quality=95)
    marks = marks_file(tmp_path, {"beer-office/closed/e.jpg": [{"x": 40, "y": 40, "side": 40, "label": "closed"}]})
    path = next(iter(marks))
    answers = {path: {"status": "open", "tops": [top([160, 40, 200, 80], "open", 0.6)]}}
    result = boxes_table.where_answers_come_from(answers, marks, {path: "closed"})

    sheets = boxes_table.draw_sheets(result["cases"], marks, tmp_path / "sheets")

    assert [case["boxes"] for case in result["cases"]] == [[[160, 40, 200, 80]]]
    sheet = Image.open(sheets[0]).convert("RGB")
    assert len(sheets) == 1 and sheet.size == (6 * 256, 142)
    # the photo is shrunk to 128 px wide: the deciding box's left edge at x 80, the mark's at x 10
    assert sheet.getpixel((80, 30)) == (255, 0, 0)
    assert sheet.getpixel((10, 15)) == (0, 255, 0)
    assert sheet.getpixel((128 + 64, 64))[0] < 80  # the crop: the photo's grey, no box drawn on it


def test_a_photo_marked_in_two_annotation_files_keeps_the_marks_of_both(tmp_path):
    """A later by-eye file (tops on candidates nobody marked) adds to a photo's rule-made marks, never replaces them."""
    photo = "beercooler/closed/a.jpg"
    for name, label in (("first.json", "none"), ("later.json", "closed")):
        mark = {"x": len(name), "y": 2, "side": 9, "label": label}
        (tmp_path / name).write_text(json.dumps({"images": {photo: [mark]}}))
    files = (("first.json", tmp_path / "data"), ("later.json", tmp_path / "data"))

    marks = boxes_table.marks_by_photo(annotations=files, directory=tmp_path)

    group, found = marks[str((tmp_path / "data" / photo).resolve())]
    assert group == "beercooler"
    assert [m["label"] for m in found] == ["none", "closed"]
