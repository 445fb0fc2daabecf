"""BENCHMARKS.md's sections read the result files the benchmarks write (the report runs once, after hours)."""

from __future__ import annotations

from benchmarks.report import stages_section


def stages_result(second_look: dict | None) -> dict:
    """A result of ``benchmarks/bench_stages.py`` in the shape it writes (3.2.0's figures on photo-like JPEGs)."""
    stages = ("decode", "finder", "crops", "judge", "second_look", "writing")
    ms = dict(zip(stages, (13.71, 11.94, 2.98, 12.32, 5.5, 0.06), strict=True))
    result = {
        "photos": 120,
        "image": "/tmp/bc-photolike120",
        "finder_input": "144x256",
        "tops": 215,
        "tops_per_photo": 1.79,
        "ms_per_photo": ms,
        "share": {k: round(v / sum(ms.values()), 3) for k, v in ms.items()},
        "judge_ms_per_top": 6.85,
        "one_look_images_per_second": 24.4,
        "one_thread_images_per_second": 21.5,
    }
    if second_look is None:  # a result from before the second look: no such stage, no such line
        del ms["second_look"], result["share"]["second_look"], result["one_look_images_per_second"]
        return result
    return {**result, "second_look": second_look}


def test_the_stages_section_says_how_many_candidates_the_second_look_took():
    look = {"spans": [1.6, 4.0], "band": 0.15, "top_floor": 0.35, "candidates_judged_again": 42}
    text = "\n".join(stages_section(stages_result(look)))
    assert "second look (unsure tops, doubtful candidates)" in text and "5.5 (" in text
    assert "judged 42 of 215 candidates again (spans 1.6 and 4, band 0.15, p(top) floor 0.35)" in text
    assert "without it one thread would do 24.4 photos/s" in text
    before_floor = "\n".join(stages_section(stages_result({**look, "top_floor": None})))
    assert "(spans 1.6 and 4, band 0.15);" in before_floor


def test_the_stages_section_of_a_model_without_a_second_look_has_no_such_column():
    text = "\n".join(stages_section(stages_result(None)))
    assert "second look" not in text and "judge (128 px)" in text


def test_the_stages_section_shows_each_decode_option_and_the_finder_views_share():
    """Issue 39's decode table: a row per photo set, a column per option, a dash where one was not measured."""
    entry = {"median": 2.31, "min": 2.2, "max": 2.6, "runs": 5}
    result = {
        **stages_result(None),
        "finder_view_ms_per_photo": 0.61,
        "decode_options_ms": {
            "these photos": {"pillow 1/2": entry, "pillow 1/8": {**entry, "median": 1.72}},
            "photo-like": {"pillow 1/2": {**entry, "median": 6.16}},
        },
    }
    lines = stages_section(result)
    assert "0.61 ms a photo is the finder's view" in "\n".join(lines)
    assert "| photos | pillow 1/2 | pillow 1/8 |" in lines
    assert "| these photos | 2.3 (2.2-2.6) | 1.7 (2.2-2.6) |" in lines
    assert "| photo-like | 6.2 (2.2-2.6) | - |" in lines
