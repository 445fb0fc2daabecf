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


def test_the_stages_section_gives_each_stage_its_median_range_and_share_and_how_it_was_timed():
    """Issue 39's figures: medians with ranges over passes, the first pass's decode, and TurboJPEG's pixels."""
    ranges = {"decode": [13.5, 13.9], "finder": [11.9, 12.0], "crops": [2.9, 3.0], "judge": [12.3, 12.4]}
    ranges |= {"writing": [0.05, 0.07]}
    result = {
        **stages_result(None),
        "model": "bottlecheck-tops 3.4.0",
        "batch": 4,
        "passes": 5,
        "ms_per_photo_range": ranges,
        "finder_view_ms_per_photo": 1.11,
        "first_pass_decode_ms_per_photo": 3.98,
        "turbojpeg_largest_pixel_difference": 0,
    }
    text = "\n".join(stages_section(result))
    assert "bottlecheck-tops 3.4.0" in text
    assert "4 photos at a time as `classify` runs them; milliseconds per photo, median (min-max) of 5 passes" in text
    assert "| 13.71 (13.5-13.9; 30%) | 11.94 (11.9-12.0; 26%) |" in text
    assert "The first pass (a warm-up, not counted) decoded at 3.98 ms a photo." in text
    assert "TurboJPEG's 1/2 decode gives the same pixels as Pillow's" in text
    differing = "\n".join(stages_section({**result, "turbojpeg_largest_pixel_difference": 3}))
    assert "gives pixels up to 3 levels from Pillow's" in differing
    # a result from before the passes: one figure a stage, no range, no claim about TurboJPEG
    old = "\n".join(stages_section(stages_result(None)))
    assert "| 13.71 (30%) |" in old and "passes" not in old and "TurboJPEG" not in old


def capacity_result() -> dict:
    """A result of ``benchmarks/bench_capacity.py`` in the shape it writes."""

    def level(rps, p50, p99, hits=0.0, errors=0):
        return {
            "requests_per_second": rps,
            "p50_ms": p50,
            "p99_ms": p99,
            "measured_hit_rate": hits,
            "errors": {"connect": 0, "read": 0, "write": 0, "status": errors, "timeout": 0},
        }

    return {
        "p99_target_ms": 300.0,
        "target_rps": 1000,
        "headroom": 0.7,
        "cores_per_replica": 2,
        "duration_s": 12,
        "image": "1080x1920 JPEG",
        "replica_rss_mb": 310.0,
        "redis_cpu_ms_per_request": 0.05,
        "nginx_cpu_ms_per_request": 0.2,
        "one_replica": {
            "0%": {"levels": {"8": level(110.0, 70, 110), "32": level(120.0, 260, 320)}, "at_target": None},
            "90%": {"levels": {"8": level(600.0, 12, 40, 0.9)}, "at_target": None},
        },
        "behind_nginx": {"1": {"16": level(112.0, 140, 190)}, "2": {"16": level(118.0, 130, 230)}},
        "plan": {},
    }


def test_a_replicas_rate_at_the_target_is_its_best_level_within_the_p99_and_without_errors():
    from benchmarks.bench_capacity import best_at

    levels = capacity_result()["one_replica"]["0%"]["levels"]
    assert best_at(levels, 300.0)["clients"] == 8  # 32 clients is faster but its p99 is 320 ms
    assert best_at(levels, 400.0)["clients"] == 32
    levels["8"]["errors"]["status"] = 3
    assert best_at(levels, 300.0) is None  # a level with errors never counts


def test_the_capacity_plan_sizes_replicas_at_the_headroom_and_prices_the_other_parts():
    from benchmarks.bench_capacity import plan

    # 1000 / (110 * 0.7) = 12.99: 13 replicas of 2 cores and 310 MB; 670 KB uploads are 5.36 Gbit/s.
    p = plan(110.0, 310.0, 2, 670_000, 0.05, 0.2)
    assert (p["replicas"], p["cores"], p["memory_gb"]) == (13, 26, 3.9)
    assert (p["upload_mb_per_s"], p["upload_gbit_per_s"]) == (670.0, 5.36)
    assert (p["redis_cores"], p["nginx_cores"]) == (0.05, 0.2)


def test_the_capacity_section_shows_each_hit_rate_the_measured_rate_and_the_plan():
    from benchmarks.bench_capacity import best_at, plan
    from benchmarks.report import capacity_section

    data = capacity_result()
    for entry in data["one_replica"].values():
        entry["at_target"] = best_at(entry["levels"], data["p99_target_ms"])
    data["plan"] = {
        k: plan(v["at_target"]["requests_per_second"], 310.0, 2, 670_000, 0.05, 0.2)
        for k, v in data["one_replica"].items()
    }
    lines = capacity_section(data)
    text = "\n".join(lines)
    assert "| 0% | 110.0, 70 / 110 (0%) | 120.0, 260 / 320 (0%) | **110.0** at 8 clients |" in lines
    assert "| 90% | 600.0, 12 / 40 (90%) | - | **600.0** at 8 clients |" in lines
    assert "| 0% | 13 | 26 | 3.9 GB | 670.0 MB/s (5.36 Gbit/s) | 0.05 cores | 0.2 cores |" in lines
    assert "| 90% | 3 | 6 |" in text  # 1000 / (600 * 0.7) = 2.4
    assert "| 2 | 118.0, 130 / 230 |" in lines


def test_the_serving_section_compares_the_server_and_the_cli_per_core_they_used():
    from benchmarks.report import per_core_lines

    cli = {"median": 90.0, "cores": {"median": 2.0}}  # 45 images/s a core
    server = {"requests_per_second": 72.0, "server_cores": 1.8}  # 40 requests/s a core
    (line,) = per_core_lines(cli, server)
    assert "Per core it serves 40.0 requests/s" in line and "45.0 images/s per core" in line
    assert line.endswith("**0.89** of the CLI's per-core rate.")
    assert per_core_lines({"median": 90.0}, server) == []  # older results: no CPU recorded, no claim


def test_benchmarks_md_is_what_the_report_writes_from_the_results_and_the_notes():
    """``benchmarks/run`` rewrites BENCHMARKS.md from ``benchmarks/results`` and ``benchmarks/NOTES.md``: a note
    written into BENCHMARKS.md by hand is lost at the next run (3.5.0's was, nearly), so it must be in NOTES.md."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "benchmarks/report.py", "benchmarks/results"]
    report = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True)
    assert report.stdout == (root / "BENCHMARKS.md").read_text()


def test_section_one_gives_issue_39s_own_measure_when_the_run_took_it():
    """The few photos through each whole command, start included: both times and their ratio, or nothing."""
    from benchmarks.report import whole_commands_lines

    seconds = {"median": 1.2, "min": 1.1, "max": 1.3, "runs": 3}
    whole = {"photos": 120, "bottlecheck_seconds": seconds, "baseline_seconds": {**seconds, "median": 21.0}}
    text = "\n".join(whole_commands_lines(whole))
    assert "120 of the phone photos" in text and "1.20 s (1.10-1.30)" in text and "21.00 s" in text
    assert "**17.5x**" in text
    assert whole_commands_lines(None) == []
