"""Where a photo's time goes with the bundled two-stage model: decode, finder, crops, judge, second look, writing.

    python benchmarks/bench_stages.py [--quick] [--photos DIR] --out benchmarks/results/stages.json

Each stage is timed alone, one thread, on the same photos: phone-sized JPEGs (1080x1920) with
bottles in them when ``--photos`` is not given are the real photos in ``../shared/data/real``
(read where they lie, never copied) re-encoded at 1080x1920, so the finder finds tops and the
judge has work; otherwise any folder of photos. The photos go through the stages a batch at a
time, as ``classify`` runs them; a warm-up pass, then the median and range of 5 passes (2 with
``--quick``). Milliseconds per photo (the judge also per top).
The second look (the unsure tops and the candidates the gate doubts, cut again at more spans and
judged) is timed as the product runs it, with how many candidates it took: its cost depends on
how many the judge is unsure of, so it is worth timing on both kinds of photo (3.2.0: 14 of 215
candidates on the throughput benchmark's photo-like JPEGs, 11 of 142 on the real ones).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REAL, machine, phone_sized, photo_like, summary, write_results  # noqa: E402
from bottlecheck.classifier import Classifier  # noqa: E402
from bottlecheck.imaging import letterbox  # noqa: E402
from bottlecheck.tops_classifier import TopsClassifier  # noqa: E402
from bottlecheck.writers.rows import open_sink  # noqa: E402

STAGES = ("decode", "finder", "crops", "judge", "second_look", "writing")


@dataclass
class Pass:
    """One pass over the photos: seconds in each stage, and what the stages found."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    finder_view: float = 0.0  # of the decode stage: shrinking the decoded photo for the finder
    tops: int = 0
    judged_again: int = 0
    counted_below_floor: int = 0  # tops the last look counted under the finder's floor (3.6.0)
    finder_input: str = ""


def staged_pass(c: TopsClassifier, paths: list[Path], batch: int) -> Pass:
    """Every photo through the product's stages a batch at a time, as ``classify`` runs them, each stage timed.

    A batch at a time, not all photos decoded first: the product never holds more than a few
    batches of decoded photos, and memory it frees is what the next batch decodes into.
    """
    result = Pass()
    shapes = set()
    clock = time.perf_counter
    with (
        tempfile.TemporaryDirectory() as folder,
        open_sink(str(Path(folder) / "rows.jsonl"), "jsonl", False, fields=c.columns, nested=c.nested_columns) as sink,
    ):
        for i in range(0, len(paths), batch):
            chunk = paths[i : i + batch]
            start = clock()
            photos = [c.preprocess(p) for p in chunk]
            result.seconds["decode"] += clock() - start
            start = clock()
            for photo in photos:  # again, alone: the finder view's part of the decode stage
                letterbox(
                    photo.image,
                    c.finder_size,
                    pad_value=c.artifact.pad_value,
                    multiple=c.pad_multiple,
                    reducing_gap=c.reducing_gap,
                )
            result.finder_view += clock() - start
            shapes.update(f"{p.finder_input.shape[1]}x{p.finder_input.shape[0]}" for p in photos)

            start = clock()
            maps = c.finder_maps(photos)
            result.seconds["finder"] += clock() - start

            start = clock()
            found = [c.tops_in(photo, out) for photo, out in zip(photos, maps, strict=True)]
            crops = [
                c.crop(photo, x, y, side)
                for photo, placed in zip(photos, found, strict=True)
                for x, y, side, _ in placed
            ]
            result.seconds["crops"] += clock() - start
            result.tops += len(crops)

            start = clock()
            judged = c.judge_crops(crops)
            result.seconds["judge"] += clock() - start

            start = clock()
            looked = c.look_again(photos, found, judged)
            again = sum(not np.array_equal(a, b) for a, b in zip(judged, looked, strict=True))
            found, looked = c.look_below_floor(photos, maps, found, looked)  # 3.6.0: where nothing counts
            result.seconds["second_look"] += clock() - start
            result.judged_again += again
            result.counted_below_floor += len(looked) - len(judged)

            rows = iter(looked)
            answers = [
                c.answer_with(photo, placed, [next(rows) for _ in placed])
                for photo, placed in zip(photos, found, strict=True)
            ]
            predictions = [c.prediction_from(str(p), a) for p, a in zip(chunk, answers, strict=True)]
            start = clock()
            for prediction in predictions:
                sink.write(prediction.as_dict())
            result.seconds["writing"] += clock() - start
    result.finder_input = " or ".join(sorted(shapes))
    return result


def per_photo_ms(seconds: float, photos: int) -> float:
    return round(1000 * seconds / photos, 2)


def _ms(fn, items: list, repeats: int) -> dict[str, float]:
    """Milliseconds per item of ``fn`` over ``items``: median and range of ``repeats`` passes, one warm-up."""
    for item in items[:2]:
        fn(item)
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        passes.append(1000 * (time.perf_counter() - start) / len(items))
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in summary(passes).items()}


def decode_options(photos: dict[str, list[bytes]], repeats: int) -> dict[str, dict]:
    """What decoding costs at each JPEG DCT scale, and whether a region decode could pay (issue 39).

    Pillow's draft mode at 1/1, 1/2 (today's: the scale covering 900 px), 1/4 (the finder's 256
    px alone) and 1/8. The entropy (Huffman) pass reads every byte whatever the scale, so the 1/8
    decode is close to the floor of any decode of the file. With Debian's ``libturbojpeg0`` and
    ``PyTurboJPEG`` importable, also TurboJPEG's scaled decode and its lossless crop of one
    top's region (MCU-aligned, 320 px square) decoded at 1/2: the "decode the finder's view small,
    then each top's region" path, which needs both.
    """

    def pillow(scale: int):
        def decode(data: bytes) -> None:
            image = Image.open(io.BytesIO(data))
            image.draft("RGB", (image.width // scale, image.height // scale))
            image.load()

        return decode

    try:
        from turbojpeg import TJPF_RGB, TurboJPEG  # type: ignore[import-not-found]

        turbo = TurboJPEG()
    except (ImportError, OSError, RuntimeError):  # no PyTurboJPEG, or no libturbojpeg0 under it
        turbo = None
    out: dict[str, dict] = {}
    for name, items in photos.items():
        row = {f"pillow 1/{k}": _ms(pillow(k), items, repeats) for k in (1, 2, 4, 8)}
        if turbo is not None:
            for k in (2, 4):
                row[f"turbojpeg 1/{k}"] = _ms(lambda b, k=k: turbo.decode(b, TJPF_RGB, (1, k)), items, repeats)
            # What the product would need: its decoded photo is a Pillow image (the crops are cut from it).
            row["turbojpeg 1/2, as a Pillow image"] = _ms(
                lambda b: Image.fromarray(turbo.decode(b, TJPF_RGB, (1, 2))), items, repeats
            )
            row["turbojpeg region: lossless crop, then 1/2"] = _ms(
                lambda b: turbo.decode(turbo.crop(b, 384, 304, 320, 320), TJPF_RGB, (1, 2)), items, repeats
            )
        out[name] = row
    return out


def turbojpeg_difference(photos: list[bytes]) -> int | None:
    """The largest difference of any pixel between TurboJPEG's 1/2 decode and Pillow's (None: no TurboJPEG here).

    Both wrap libjpeg-turbo: 0 means a switch would leave every answer as it is.
    """
    try:
        from turbojpeg import TJPF_RGB, TurboJPEG  # type: ignore[import-not-found]

        turbo = TurboJPEG()
    except (ImportError, OSError, RuntimeError):
        return None
    largest = 0
    for data in photos:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (image.width // 2, image.height // 2))
        ours = np.asarray(image.convert("RGB"), dtype=np.int16)
        theirs = turbo.decode(data, TJPF_RGB, (1, 2)).astype(np.int16)
        largest = max(largest, int(np.abs(ours - theirs).max()))
    return largest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--photos", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    classifier = Classifier.load(engine="litert", threads=1)
    if not isinstance(classifier, TopsClassifier):
        raise SystemExit("the bundled model has one stage: nothing to break down")
    count = 40 if args.quick else 120
    if args.photos:
        paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    elif REAL.is_dir():
        paths = phone_sized(REAL, Path(tempfile.gettempdir()) / "bottlecheck-bench" / "real-phone", count)
    else:
        raise SystemExit(f"no photos: pass --photos DIR ({REAL} is not here)")
    n = len(paths)
    c = classifier
    batch = c.preferred_batch
    files = [Path(path).read_bytes() for path in paths]  # and in the page cache, as a camera's new photo is
    # A first pass warms up: each decoded photo lands in memory the process never touched, which the
    # product's steady state reuses. Its decode figure is kept; the timed passes follow it.
    first = staged_pass(c, paths, batch)
    passes = [staged_pass(c, paths, batch) for _ in range(2 if args.quick else 5)]
    times = {name: [p.seconds[name] for p in passes] for name in STAGES}
    median = {name: statistics.median(values) for name, values in times.items()}
    total = sum(median.values())
    last = passes[-1]
    results = {
        "machine": machine(),
        "model": f"{c.artifact.name} {c.artifact.version}",
        "photos": n,
        "image": "real bottle photos padded to 1080x1920 JPEG" if not args.photos else str(args.photos),
        "finder_input": last.finder_input,
        "batch": batch,
        "passes": len(passes),
        "tops": last.tops,
        "tops_per_photo": round(last.tops / n, 2),
        "ms_per_photo": {name: per_photo_ms(seconds, n) for name, seconds in median.items()},
        "ms_per_photo_range": {name: [per_photo_ms(min(v), n), per_photo_ms(max(v), n)] for name, v in times.items()},
        "share": {name: round(seconds / total, 3) for name, seconds in median.items()},
        "first_pass_decode_ms_per_photo": per_photo_ms(first.seconds["decode"], n),
        "judge_ms_per_top": round(1000 * median["judge"] / max(1, last.tops), 2),
        "second_look": {
            "spans": list(c.second_spans),
            "band": c.second_band,
            "top_floor": c.top_floor,
            "candidates_judged_again": last.judged_again,
            "counted_below_the_finders_floor": last.counted_below_floor,
        },
        "one_look_images_per_second": round(n / (total - median["second_look"]), 1),
        "one_thread_images_per_second": round(n / total, 1),
        "finder_view_ms_per_photo": per_photo_ms(statistics.median(p.finder_view for p in passes), n),
        "decode_options_ms": decode_options(
            {
                "these photos": files,
                "photo-like 1080x1920 (noisier, as section 1)": [photo_like(1080, 1920, k) for k in range(20)],
            },
            2 if args.quick else 5,
        ),
    }
    results["turbojpeg_largest_pixel_difference"] = turbojpeg_difference(files)
    write_results(results, args.out)


if __name__ == "__main__":
    main()
