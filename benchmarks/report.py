"""Turn the benchmark JSON files into BENCHMARKS.md (tables and the ratios that matter)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REAL_PHONE = "phone_1080x1920_real_bottles"
SIZE_TITLES = {
    "phone_1080x1920": "phone 1080x1920",
    "camera_640x480": "camera 640x480",
    REAL_PHONE: "phone 1080x1920, real bottle photos",
}


def r(entry: dict) -> str:
    return f"{entry['median']:.1f} ({entry['min']:.1f}-{entry['max']:.1f})"


def whole_commands_lines(whole: dict | None) -> list[str]:
    """Issue 39's own measure: a few phone photos through each whole command, the start included."""
    if not whole:
        return []
    ours, theirs = whole["bottlecheck_seconds"], whole["baseline_seconds"]
    return [
        "",
        f"As issue 39 measures it, {whole['photos']} of the phone photos through each whole command from a "
        f"fresh process, the start included, the two run alternately ({ours['runs']} runs each): "
        f"`bottlecheck classify DIR` {ours['median']:.2f} s ({ours['min']:.2f}-{ours['max']:.2f}), the baseline's "
        f"script {theirs['median']:.2f} s ({theirs['min']:.2f}-{theirs['max']:.2f}): "
        f"**{theirs['median'] / ours['median']:.1f}x**.",
    ]


def main() -> None:
    folder = Path(sys.argv[1])
    batch = json.loads((folder / "batch.json").read_text())
    startup = json.loads((folder / "startup_memory.json").read_text())
    serving = json.loads((folder / "serving.json").read_text())
    m = batch["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {m['cores']} cores, {m['cpu']}, Python {m['python']}. Produced by `benchmarks/run` "
        f"(results in `{folder}/`). Medians over repetitions, (min-max) in brackets.",
        "",
        f"## 1. Batch throughput, images/s ({batch['count']} images, batch {batch['batch_size']}, "
        f"{batch['workers']} pipeline threads)",
        "",
    ]
    sizes = [s for s in ("phone_1080x1920", "camera_640x480", REAL_PHONE) if s in batch["sizes"]]
    lines += [
        "| | " + " | ".join(SIZE_TITLES[s] for s in sizes) + " |",
        "| --- |" + " --- |" * len(sizes),
    ]
    rows = [
        ("`bottlecheck classify DIR` (LiteRT)", "cli_litert"),
        ("`bottlecheck classify DIR --engine tensorflow`", "cli_tensorflow"),
        ("limit: decode + preprocess alone", "decode_only"),
        ("limit: inference alone, LiteRT", "inference_only_litert"),
        ("limit: inference alone, TensorFlow", "inference_only_tensorflow"),
        ("baseline: Keras ResNet50, `predict` per image", "baseline_resnet50_predict_loop"),
    ]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(r(batch["sizes"][s][key]) for s in sizes) + " |")
    lines += [
        "",
        "Ratios. Each limit is measured with the whole machine to itself; in the pipeline, decoding and",
        "inference run at the same time on the same cores, so when both keep the CPU busy the best",
        "possible rate is the shared-CPU bound 1 / (1/decode + 1/inference), below the slower stage alone.",
        "",
    ]
    for s in sizes:
        e = batch["sizes"][s]
        limit = min(e["decode_only"]["median"], e["inference_only_litert"]["median"])
        bound = "decoding" if e["decode_only"]["median"] < e["inference_only_litert"]["median"] else "inference"
        share = e["cli_litert"]["median"] / limit
        speedup = e["cli_litert"]["median"] / e["baseline_resnet50_predict_loop"]["median"]
        # Both stages need the same cores: at full overlap their times add up per image.
        shared = 1 / (1 / e["decode_only"]["median"] + 1 / e["inference_only_litert"]["median"])
        lines.append(
            f"- {s}: the CLI runs at **{share:.0%} of the slower stage alone** ({bound}, {limit:.1f} images/s), "
            f"**{e['cli_litert']['median'] / shared:.0%} of the shared-CPU bound** ({shared:.1f} images/s) "
            f"and **{speedup:.1f}x** the baseline."
        )
    lines += whole_commands_lines(batch["sizes"]["phone_1080x1920"].get("whole_commands"))
    scaling = batch["sizes"]["camera_640x480"].get("scaling")
    if scaling:
        lines += [
            "",
            "## 5. How cost grows (in-process pipeline, 640x480, images/s)",
            "",
            "| batch | 1 worker | 2 workers |",
            "| --- | --- | --- |",
        ]
        for b in sorted(int(key[5:].split("_")[0]) for key in scaling if key.endswith("_workers1")):
            lines.append(
                f"| {b} | {scaling[f'batch{b}_workers1']['median']:.1f} | "
                f"{scaling[f'batch{b}_workers2']['median']:.1f} |"
            )
    c = startup["cold_start_s"]
    cold_ratio = c["baseline_keras_resnet50"]["median"] / c["bottlecheck_classify_one"]["median"]
    lines += [
        "",
        "## 2. Cold start: one image from a fresh process, seconds",
        "",
        "| | seconds |",
        "| --- | --- |",
        f"| `bottlecheck classify one.jpg` (LiteRT) | {r(c['bottlecheck_classify_one'])} |",
        f"| same with `--engine tensorflow` | {r(c['bottlecheck_tensorflow_engine'])} |",
        f"| baseline: import TensorFlow, build ResNet50, predict | {r(c['baseline_keras_resnet50'])} |",
        "",
        f"bottlecheck starts **{cold_ratio:.1f}x** faster than the baseline.",
    ]
    lines += [
        "",
        f"## 3. Serving ({serving['image']}, {serving['duration_s']} s per level, wrk on loopback)",
        "",
        "| clients | bottlecheck req/s | p50 / p95 / p99 ms | errors | baseline req/s | p50 / p95 / p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level, ours in serving["bottlecheck"]["levels"].items():
        base = serving["baseline_flask_predict"]["levels"][level]

        def cells(x):
            errors = sum(x["errors"].values())
            return f"{x['requests_per_second']} | {x['p50_ms']:.0f} / {x['p95_ms']:.0f} / {x['p99_ms']:.0f} | {errors}"

        lines.append(f"| {level} | {cells(ours)} | {cells(base)} |")
    top = max(serving["bottlecheck"]["levels"], key=int)
    ratio = serving["bottlecheck"]["levels"][top]["requests_per_second"] / max(
        0.1, serving["baseline_flask_predict"]["levels"][top]["requests_per_second"]
    )
    lines += ["", f"At {top} clients bottlecheck serves **{ratio:.1f}x** the baseline's requests/s."]
    phone, at32 = batch["sizes"].get("phone_1080x1920"), serving["bottlecheck"]["levels"].get("32")
    if phone and at32:  # the server against the same bound as the CLI (same photos' shape, same machine)
        shared = 1 / (1 / phone["decode_only"]["median"] + 1 / phone["inference_only_litert"]["median"])
        lines.append(
            f"At 32 clients it answers **{at32['requests_per_second'] / shared:.0%} of the shared-CPU bound** of "
            f"section 1 for phone photos ({shared:.1f} images/s), p99 **{at32['p99_ms'] / at32['p50_ms']:.2f}x** p50."
        )
        lines += per_core_lines(phone["cli_litert"], at32)
    mem = serving["bottlecheck"]["worker_rss_mb"]
    base_mem = serving["baseline_flask_predict"]["worker_rss_mb"]
    p = startup["classify_peak_rss"]
    big = startup["classify_12mp_peak_rss"]
    lines += [
        "",
        "## 4. Memory",
        "",
        f"- `classify` over {p['images']:,} {p['size']} images: peak RSS **{p['peak_rss_mb']} MB** "
        f"({p['images_per_second']} images/s).",
        f"- `classify` over {big['images']} {big['size']} (12 MP) photos: peak RSS **{big['peak_rss_mb']} MB** "
        "(JPEG draft mode: never a full-resolution decode).",
        f"- serving worker RSS: {mem['start']} MB at start, {mem['end']} MB after all load levels "
        f"(peak {mem['peak']} MB); baseline worker {base_mem['start']} -> {base_mem['end']} MB.",
    ]
    scaleout_path = folder / "scaleout.json"
    if scaleout_path.exists():
        lines += ["", *scaleout_section(json.loads(scaleout_path.read_text()))]
    stages_path = folder / "stages.json"
    if stages_path.exists():
        lines += ["", *stages_section(json.loads(stages_path.read_text()))]
    int8_path = folder / "int8.json"
    if int8_path.exists():
        lines += ["", *int8_section(json.loads(int8_path.read_text()))]
    video_path = folder / "video.json"
    if video_path.exists():
        lines += ["", *video_section(json.loads(video_path.read_text()))]
    capacity_path = folder / "capacity.json"
    if capacity_path.exists():
        lines += ["", *capacity_section(json.loads(capacity_path.read_text()))]
    notes = Path(__file__).resolve().parent / "NOTES.md"
    if notes.exists():  # measurements written by hand (the soak, what a figure means)
        text = notes.read_text()
        text = text.split("-->", 1)[1] if text.startswith("<!--") else text
        lines += ["", text.strip()]
    print("\n".join(lines))


def per_core_lines(cli: dict, server: dict) -> list[str]:
    """The server's requests/s per core it used against the CLI's images/s per core it used.

    On one machine wrk takes some of the cores the server would have; per core of its own, the
    server's rate is what a replica with its cores to itself would give.
    """
    if "server_cores" not in server or "cores" not in cli:  # results from before the CPU was recorded
        return []
    server_rate = server["requests_per_second"] / server["server_cores"]
    cli_rate = cli["median"] / cli["cores"]["median"]
    return [
        f"Per core it serves {server_rate:.1f} requests/s (its processes kept {server['server_cores']:.2f} cores "
        f"busy; wrk the rest) against the CLI's {cli_rate:.1f} images/s per core ({cli['cores']['median']:.2f} "
        f"cores): **{server_rate / cli_rate:.2f}** of the CLI's per-core rate."
    ]


def capacity_section(data: dict) -> list[str]:
    """Section 10: one replica's rate at the p99 target by cache hit rate, and the plan for the seed's 1,000 req/s."""
    target, rps = data["p99_target_ms"], data["target_rps"]
    one = data["one_replica"]
    levels = sorted({int(c) for entry in one.values() for c in entry["levels"]})
    lines = [
        "## 10. Capacity plan: 1,000 requests a second (`benchmarks/bench_capacity.py`)",
        "",
        f"One replica (`bottlecheck serve`, one worker, {data['cores_per_replica']} cores), {data['image']}, a real "
        f"Redis as the shared cache, wrk on loopback, {data['duration_s']} s a level. A hit repeats a photo the "
        "cache holds; a miss sends the same pixels with a unique tail. Requests/s, p50 / p99 ms; the hit rate "
        "as the server counted it:",
        "",
        "| cache hits (asked) | " + " | ".join(f"{c} clients" for c in levels) + f" | best with p99 <= {target:g} ms |",
        "| --- | " + " | ".join("---" for _ in levels) + " | --- |",
    ]
    for name, entry in one.items():
        cells = []
        for c in levels:
            res = entry["levels"].get(str(c))
            hits = f"({res['measured_hit_rate']:.0%})" if res else ""
            cells.append(
                f"{res['requests_per_second']}, {res['p50_ms']:.0f} / {res['p99_ms']:.0f} {hits}" if res else "-"
            )
        best = entry["at_target"]
        cells.append(f"**{best['requests_per_second']}** at {best['clients']} clients" if best else "none")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    balanced = data["behind_nginx"]
    lines += [
        "",
        "Behind nginx, the cache cold (requests/s, p50 / p99 ms):",
        "",
        "| replicas | " + " | ".join(f"{c} clients" for c in next(iter(balanced.values()))) + " |",
        "| --- | " + " | ".join("---" for _ in next(iter(balanced.values()))) + " |",
        *(
            f"| {count} | "
            + " | ".join(f"{r['requests_per_second']}, {r['p50_ms']:.0f} / {r['p99_ms']:.0f}" for r in levels_.values())
            + " |"
            for count, levels_ in balanced.items()
        ),
        "",
        f"On this machine both replicas share its {data['cores_per_replica']} cores, so the second adds no cores: "
        "the row shows what the balancer costs and that spreading loses nothing, not how far two machines go. "
        "Replicas on their own nodes add their own cores; the plan assumes each replica's rate above.",
        "",
        f"**The plan for {rps:,} requests/s** at p99 <= {target:g} ms, each replica planned at "
        f"{data['headroom']:.0%} of its measured rate (room for spikes and the autoscaler's lag); memory from a "
        f"replica's RSS after the runs ({data['replica_rss_mb']} MB); Redis at "
        f"{data['redis_cpu_ms_per_request']} ms and nginx at {data['nginx_cpu_ms_per_request']} ms of CPU a request "
        "(their processes' CPU time over the requests served):",
        "",
        "| cache hits | replicas | cores | memory | uploads | Redis | nginx |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {p['replicas']} | {p['cores']} | {p['memory_gb']} GB | {p['upload_mb_per_s']} MB/s "
            f"({p['upload_gbit_per_s']} Gbit/s) | {p['redis_cores']} cores | {p['nginx_cores']} cores |"
            for name, p in data["plan"].items()
        ),
    ]
    return lines


def video_section(data: dict) -> list[str]:
    """Section 9: a 1080p H.264 clip: decoding alone, the default sampling (real-time factor), every frame."""
    clip, decode = data["clip"], data["decode_only"]
    default, every = data["default_sampling"], data["every_frame"]

    def seconds(entry: dict) -> str:
        s = entry["seconds"]
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"

    machine = data["machine"]
    return [
        "## 9. Video (`benchmarks/bench_video.py`)",
        "",
        f"A {clip['seconds']:g} s {clip['size']} H.264 clip at {clip['fps']:g} fps ({clip['frames']} frames), "
        f"classified in-process as `classify clip.mp4` runs it (LiteRT, 2 pipeline threads); "
        f"{machine['cores']} cores, {machine['cpu']}"
        + (
            f" (1-minute load average {data['load_average']} at the end, its own threads included)"
            if "load_average" in data
            else ""
        )
        + ".",
        "",
        "| | frames | seconds | frames/s | real-time factor |",
        "| --- | --- | --- | --- | --- |",
        f"| decode alone (every frame, none converted) | {clip['frames']} | {seconds(decode)} | "
        f"{decode['frames_per_second']} | {clip['seconds'] / decode['seconds']['median']:.1f}x |",
        f"| **default sampling ({default['sampling']})** | {default['frames']} | {seconds(default)} | "
        f"{default['frames_per_second']} | **{default['realtime_factor']}x** |",
        f"| every frame (`--every 1`) | {every['frames']} | {seconds(every)} | "
        f"**{every['frames_per_second']}** | {every['realtime_factor']}x |",
        "",
        "The real-time factor is seconds of video per second of work: above 1, a camera's clips are "
        "classified faster than they are recorded. At the default sampling the cost is mostly decoding "
        "(every frame must be decoded to reach the sampled ones; the others are never converted). A "
        "sampled 1080p frame is converted by swscale straight to the 900x506 the model looks at.",
    ]


def int8_section(data: dict) -> list[str]:
    """Section 8: the int8 models beside float32, on every evaluation set of the model card, and the bar."""
    lines = [
        "## 8. int8 against float32 (`recipe/quantize_tops.py`)",
        "",
        f"{data['model']}, both stages full-integer int8 (float32 input and output), calibrated on "
        f"{data['representative']['photos']} representative photos ({data['representative']['finder_inputs']} "
        f"finder inputs, {data['representative']['judge_crops']} judge crops). The bar to ship: on every set, "
        "accuracy at most 0.5 points lower and calibration error (ECE) within 0.01.",
        "",
        "| set | photos | balanced accuracy (unknown = wrong) float32 / int8 | accuracy of answers float32 / int8 "
        "| ECE float32 / int8 | no top: answered unknown float32 / int8 | within the bar |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in data["sets"].items():
        f, q = entry["float32"], entry["int8"]

        def pair(key: str, f: dict = f, q: dict = q) -> str:
            return "-" if f[key] is None else f"{f[key]} / {q[key]}"

        none_pair = "-" if f["no_top_unknown_rate"] is None else pair("no_top_answered_unknown")
        lines.append(
            f"| {name} | {f['photos']} | {pair('balanced_accuracy_unknown_as_wrong')} | {pair('answered_accuracy')} "
            f"| {pair('answered_ece')} | {none_pair} | {'yes' if entry['within_the_bar'] else '**no**'} |"
        )
    sizes = data["sizes_mb"]
    lines += [
        "",
        f"{data['status_flips']} of {data['photos']} answers change status; a photo's confidence moves by up to "
        f"{data['confidence_change_max']} (mean {data['confidence_change_mean']}). Files: finder "
        f"{sizes['float32']['finder.tflite']} -> {sizes['int8']['finder.tflite']} MB, judge "
        f"{sizes['float32']['judge.tflite']} -> {sizes['int8']['judge.tflite']} MB.",
    ]
    speed = data.get("photos_per_second")
    if speed:
        lines.append(
            f"Speed, {speed['photos']} phone-sized photos, in-process pipeline: float32 **{speed['float32']}**, "
            f"int8 **{speed['int8']}** photos/s ({speed['int8'] / speed['float32']:.2f}x)."
        )
    lines += [
        "",
        "**int8 ships**: it holds the bar on every set."
        if data["ships"]
        else "**int8 does not ship**: it misses the bar on at least one set (above); the bundled model stays float32.",
    ]
    return lines


def stages_section(data: dict) -> list[str]:
    """Section 7: where one photo's time goes with the two-stage model (each stage alone, one thread)."""
    ms, share = data["ms_per_photo"], data["share"]
    largest = max(share, key=share.get)
    names = [k for k in ("decode", "finder", "crops", "judge", "second_look", "writing") if k in ms]
    headers = {
        "decode": "decode (once, at the DCT scale covering 900 px)",
        "finder": f"finder ({data.get('finder_input', '320x320')})",
        "crops": "cutting the crops",
        "judge": "judge (128 px)",
        "second_look": "second look (unsure tops, doubtful candidates)",
        "writing": "writing the row",
    }
    spread = data.get("ms_per_photo_range", {})
    how = "each stage timed alone on one thread, milliseconds per photo"
    if "passes" in data:
        how = (
            f"each stage timed alone on one thread, {data['batch']} photos at a time as `classify` runs them; "
            f"milliseconds per photo, median (min-max) of {data['passes']} passes after a first"
        )

    def cell(stage: str) -> str:
        low_high = spread.get(stage)
        figure = f"{ms[stage]} ({low_high[0]}-{low_high[1]}; " if low_high else f"{ms[stage]} ("
        return f"{figure}{share[stage]:.0%})"

    lines = [
        f"## 7. Where a photo's time goes (`benchmarks/bench_stages.py`, {data.get('model', 'the bundled model')})",
        "",
        f"{data['photos']} photos ({data['image']}), {data['tops_per_photo']} tops found per photo; {how}:",
        "",
        "| " + " | ".join(headers[k] for k in names) + " |",
        "| " + " | ".join("---" for _ in names) + " |",
        "| " + " | ".join(cell(k) for k in names) + " |",
        "",
        f"The judge costs {data['judge_ms_per_top']} ms a top. One thread does "
        f"{data['one_thread_images_per_second']} photos/s; the largest share is {largest} "
        f"({share[largest]:.0%}).",
    ]
    if "second_look" in data:
        look = data["second_look"]
        spans = " and ".join(f"{s:g}" for s in look["spans"]) or "none"
        floor = "" if look.get("top_floor") is None else f", p(top) floor {look['top_floor']:g}"
        lines += [
            "",
            f"The second look judged {look['candidates_judged_again']} of {data['tops']} candidates again (spans "
            f"{spans}, band {look['band']:g}{floor}); without it one thread would do "
            f"{data['one_look_images_per_second']} photos/s.",
        ]
        if "counted_below_the_finders_floor" in look:  # 3.6.0: the column holds the look under the floor too
            lines[-1] += (
                f" The column also holds the last look under the finder's floor, in the photos where nothing "
                f"counts: it counted {look['counted_below_the_finders_floor']} more tops."
            )
    if "finder_view_ms_per_photo" in data:
        lines += [
            "",
            f"Of the decode column, {data['finder_view_ms_per_photo']} ms a photo is the finder's view (the "
            "decoded photo shrunk and padded); the rest is the JPEG decode itself.",
        ]
    if "first_pass_decode_ms_per_photo" in data:
        lines[-1] += (
            f" The first pass (a warm-up, not counted) decoded at {data['first_pass_decode_ms_per_photo']} ms a photo."
        )
    if "decode_options_ms" in data:
        options = data["decode_options_ms"]
        columns = list(next(iter(options.values())))
        lines += [
            "",
            "Decoding alone at each JPEG scale, milliseconds per photo, median (min-max) of repeated passes; "
            "the region row is one top's 320-px square cut losslessly from the file and decoded at 1/2:",
            "",
            "| photos | " + " | ".join(columns) + " |",
            "| --- | " + " | ".join("---" for _ in columns) + " |",
            *(
                f"| {name} | " + " | ".join(r(row[k]) if k in row else "-" for k in columns) + " |"
                for name, row in options.items()
            ),
        ]
    difference = data.get("turbojpeg_largest_pixel_difference")
    if difference is not None:
        same = "the same pixels as" if difference == 0 else f"pixels up to {difference} levels from"
        lines += [
            "",
            f"TurboJPEG's 1/2 decode gives {same} Pillow's on these photos (both wrap libjpeg-turbo); the "
            "product needs it as a Pillow image, since the crops are cut from one.",
        ]
    return lines


def scaleout_section(data: dict) -> list[str]:
    """Section 6: Ray against the local pipeline, and one against two replicas behind nginx."""
    lines = ["## 6. Scaling out on one machine (`benchmarks/bench_scaleout.py`)", ""]
    ray = data.get("ray", {})
    if "skipped" not in ray:
        lines += [
            f"`classify` on {ray['photos']} {ray['image']} photos, whole command, Ray's start-up included:",
            "",
            "| | wall time, s | images/s | one photo, s |",
            "| --- | --- | --- | --- |",
            f"| local pipeline | {ray['local_s']} | {ray['local_images_per_s']} | {ray['one_photo_local_s']} |",
            f"| `--ray local` | {ray['ray_local_s']} | {ray['ray_local_images_per_s']} | "
            f"{ray['one_photo_ray_local_s']} |",
            "",
            "On one machine Ray runs the same pipeline on the same cores and adds its start-up (the "
            "one-photo column) and a hop through its object store: it costs, never pays. It pays when "
            "the cluster has several machines: each node's actors decode and infer their share, so "
            "throughput grows with nodes while the driver only writes rows.",
            "",
        ]
    replicas = data.get("replicas", {})
    if "skipped" not in replicas:
        levels = sorted({c for setup in replicas["setups"].values() for c in setup}, key=int)
        lines += [
            f"Serving, {replicas['image']}, {replicas['duration_s']} s per level (wrk):",
            "",
            "| | " + " | ".join(f"{c} clients: req/s, p50 / p99 ms, errors" for c in levels) + " |",
            "| --- |" + " --- |" * len(levels),
        ]
        for name, setup in replicas["setups"].items():
            cells = []
            for c in levels:
                e = setup[c]
                cells.append(
                    f"{e['requests_per_second']}, {e['p50_ms']:.0f} / {e['p99_ms']:.0f}, {sum(e['errors'].values())}"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "The two replicas share this machine's two cores, so two cannot serve twice what one does: the "
            "figures show the cost of the load balancer hop and that spreading the load loses nothing. "
            "On separate machines each replica brings its own cores.",
        ]
    return lines


if __name__ == "__main__":
    main()
