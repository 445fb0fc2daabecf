"""Where a photo's time goes with the bundled two-stage model: decode, finder, crops, judge, second look, writing.

    python benchmarks/bench_stages.py [--quick] [--photos DIR] --out benchmarks/results/stages.json

Each stage is timed alone, one thread, on the same photos: phone-sized JPEGs (1080x1920) with
bottles in them when ``--photos`` is not given are the real photos in ``../shared/data/real``
(read where they lie, never copied) re-encoded at 1080x1920, so the finder finds tops and the
judge has work; otherwise any folder of photos. Milliseconds per photo (the judge also per top).
The second look (the unsure tops and the candidates the gate doubts, cut again at more spans and
judged) is timed as the product runs it, with how many candidates it took: its cost depends on
how many the judge is unsure of, so it is worth timing on both kinds of photo (3.2.0: 14 of 215
candidates on the throughput benchmark's photo-like JPEGs, 11 of 142 on the real ones).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, machine, photo_like, summary, write_results  # noqa: E402
from bottlecheck.classifier import Classifier  # noqa: E402
from bottlecheck.imaging import letterbox  # noqa: E402
from bottlecheck.tops_classifier import TopsClassifier  # noqa: E402
from bottlecheck.writers.rows import open_sink  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"


def phone_sized(source: Path, folder: Path, count: int) -> list[Path]:
    """Real bottle photos padded and resized to 1080x1920 JPEGs (quality 90), made once."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(
        p for p in source.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and "other" not in p.parts
    )
    out = []
    random.Random(0).shuffle(photos)  # open and closed mixed
    for k, path in enumerate(photos[:count]):
        target = folder / f"{k:04d}.jpg"
        if not target.exists():
            image = ImageOps.exif_transpose(Image.open(path)).convert("RGBA").convert("RGB")
            image = ImageOps.pad(image, (1080, 1920), color=(200, 200, 200))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            target.write_bytes(buffer.getvalue())
        out.append(target)
    return out


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
            row["turbojpeg region: lossless crop, then 1/2"] = _ms(
                lambda b: turbo.decode(turbo.crop(b, 384, 304, 320, 320), TJPF_RGB, (1, 2)), items, repeats
            )
        out[name] = row
    return out


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

    start = time.perf_counter()
    photos = [c.preprocess(p) for p in paths]
    decode = time.perf_counter() - start
    # Of which the finder's view (shrinking the decoded photo and padding it), the rest decoding.
    start = time.perf_counter()
    for photo in photos:
        letterbox(
            photo.image,
            c.finder_size,
            pad_value=c.artifact.pad_value,
            multiple=c.pad_multiple,
            reducing_gap=c.reducing_gap,
        )
    finder_view = time.perf_counter() - start

    start = time.perf_counter()
    maps_flat = [m for i in range(0, n, 8) for m in c.finder_maps(photos[i : i + 8])]
    finder = time.perf_counter() - start

    start = time.perf_counter()
    crops = []
    found = [c.tops_in(photo, out) for photo, out in zip(photos, maps_flat, strict=True)]
    for photo, placed in zip(photos, found, strict=True):
        crops += [c.crop(photo, x, y, side) for x, y, side, _ in placed]
    cutting = time.perf_counter() - start

    start = time.perf_counter()
    judged = [row for i in range(0, len(crops), 16) for row in c.judge.run(np.stack(crops[i : i + 16]))]
    judge = time.perf_counter() - start

    start = time.perf_counter()
    looked = c.look_again(photos, found, judged)
    second_look = time.perf_counter() - start
    again = sum(not np.array_equal(a, b) for a, b in zip(judged, looked, strict=True))

    rows = [c.prediction_from(str(p), r) for p, r in zip(paths, c.infer(photos), strict=True)]
    out_path = Path(tempfile.mkstemp(suffix=".jsonl")[1])
    start = time.perf_counter()
    with open_sink(str(out_path), "jsonl", False, fields=c.columns, nested=c.nested_columns) as sink:
        for row in rows:
            sink.write(row.as_dict())
    writing = time.perf_counter() - start
    out_path.unlink()

    stages = {
        "decode": decode,
        "finder": finder,
        "crops": cutting,
        "judge": judge,
        "second_look": second_look,
        "writing": writing,
    }
    total = sum(stages.values())
    results = {
        "machine": machine(),
        "photos": n,
        "image": "real bottle photos padded to 1080x1920 JPEG" if not args.photos else str(args.photos),
        "finder_input": " or ".join(sorted({f"{p.finder_input.shape[1]}x{p.finder_input.shape[0]}" for p in photos})),
        "tops": len(crops),
        "tops_per_photo": round(len(crops) / n, 2),
        "ms_per_photo": {name: per_photo_ms(seconds, n) for name, seconds in stages.items()},
        "share": {name: round(seconds / total, 3) for name, seconds in stages.items()},
        "judge_ms_per_top": round(1000 * judge / max(1, len(crops)), 2),
        "second_look": {
            "spans": list(c.second_spans),
            "band": c.second_band,
            "top_floor": c.top_floor,
            "candidates_judged_again": again,
        },
        "one_look_images_per_second": round(n / (total - second_look), 1),
        "one_thread_images_per_second": round(n / total, 1),
        "finder_view_ms_per_photo": per_photo_ms(finder_view, n),
        "decode_options_ms": decode_options(
            {
                "these photos": [Path(p).read_bytes() for p in paths],
                "photo-like 1080x1920 (noisier, as section 1)": [photo_like(1080, 1920, k) for k in range(20)],
            },
            2 if args.quick else 5,
        ),
    }
    write_results(results, args.out)


if __name__ == "__main__":
    main()
