"""Post-training int8 quantization of model 2's two stages, and whether it holds the accuracy bar.

    python recipe/quantize_tops.py --model model/ --renders /var/tmp/tops --real ../shared/data/real \
        --out /var/tmp/m2-int8 [--unseen-renders DIR] [--speed-photos DIR] [--report int8.json]

Full-integer weights and activations (float32 input and output kept, so the engines' interface
does not change), calibrated on a representative set: finder inputs from renders and real
photos, judge crops where the float32 finder puts tops in them. Then, on every evaluation set of
the model card (held-out renders, held-out real photos, held-out photos without a top, and
``--unseen-renders``), float32 and int8 side by side: balanced accuracy, accuracy and calibration
error of the answers, and whether int8 holds the bar to ship (accuracy at most 0.5 points lower,
ECE within 0.01, on every set); how many statuses flip and how far confidences move; with
``--speed-photos``, photos/s of both. Writes ``finder.tflite`` and ``judge.tflite`` (int8) into
``--out`` with ``quantization.json``; ``benchmarks/report.py`` turns that into BENCHMARKS.md's
int8 section.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.artifact import load_artifact, write_metadata
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.finder import render_records

try:  # python -m recipe.quantize_tops
    from .held_out import held_out, predict, score_predictions, unseen_renders
except ImportError:  # python recipe/quantize_tops.py (benchmarks/run): Python puts this file's folder first on sys.path
    from held_out import held_out, predict, score_predictions, unseen_renders  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent


def representative_photos(renders: list[Path], real: Path, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    rendered = [str(d / m["path"]) for d, m in render_records(renders) if m["index"] % 10 != 0]
    photos = [str(p) for p in sorted(real.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    rng.shuffle(rendered)
    rng.shuffle(photos)
    return rendered[: count // 2] + photos[: count - count // 2]


def stage_inputs(classifier, paths: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Finder inputs of ``paths`` and judge crops around every top the float32 finder marks."""
    finder_inputs, crops = [], []
    for path in paths:
        photo = classifier.preprocess(path)
        finder_inputs.append(photo.finder_input)
        crops += [classifier.crop(photo, x, y, side) for x, y, side, _ in classifier.find_tops(photo, 0.2, 8)]
    return finder_inputs, crops


def quantize(keras_path: Path, samples: list[np.ndarray], out: Path) -> int:
    """Write the full-integer int8 version of a stage's Keras model to ``out``; its size in bytes."""
    import_tensorflow()
    import keras

    import bottlecheck.layers  # noqa: F401  (the any-size finder's upsampling)
    from bottlecheck.training.model import export_tflite

    return export_tflite(keras.models.load_model(keras_path, compile=False), out, representative=samples)


BAR_KEYS = ("balanced_accuracy_unknown_as_wrong", "answered_accuracy", "answered_ece", "no_top_unknown_rate")


def side_by_side(sets: dict[str, list], float32: dict[str, list], int8: dict[str, list]) -> dict:
    """Each card set's balanced accuracy, accuracy and ECE of the answers, share of photos without a top
    answered unknown, float32 and int8 (their predictions by set), and the bar (ECE within 0.01, the
    others at most 0.5 points lower)."""
    report = {}
    for name, items in sets.items():
        before, after = score_predictions(items, float32[name]), score_predictions(items, int8[name])
        deltas = {key: None if before[key] is None else round(after[key] - before[key], 4) for key in BAR_KEYS}
        holds = all(
            delta is None or (abs(delta) <= 0.01 if key == "answered_ece" else delta >= -0.005)
            for key, delta in deltas.items()
        )
        report[name] = {"float32": before, "int8": after, "int8_minus_float32": deltas, "within_the_bar": holds}
    return report


def photos_per_second(model: Classifier, paths: list[str], repeats: int = 3) -> float:
    list(model.classify_paths(paths[:16]))
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        list(model.classify_paths(paths))
        best = max(best, len(paths) / (time.perf_counter() - started))
    return round(best, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--renders", action="append", required=True, type=Path)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--unseen-renders", action="append", type=Path, default=[])
    parser.add_argument("--speed-photos", type=Path, help="a folder of phone-sized JPEGs to time both on")
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    float_model = Classifier.load(args.model, engine="litert")
    paths = representative_photos(args.renders, args.real, args.samples, seed=0)
    finder_inputs, crops = stage_inputs(float_model, paths)
    print(f"representative set: {len(finder_inputs)} finder inputs, {len(crops)} judge crops", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("finder.tflite", "judge.tflite", "finder.keras", "judge.keras", "metadata.json"):
        shutil.copy2(args.model / name, args.out / name)
    started = time.time()
    for stage, samples in (("finder", finder_inputs), ("judge", crops)):
        size = quantize(args.model / f"{stage}.keras", samples, args.out / f"{stage}.tflite")
        print(f"{stage}: {size / 1e6:.1f} MB int8 ({time.time() - started:.0f} s)", flush=True)
    metadata = load_artifact(args.out).metadata
    metadata["version"] = f"{metadata['version']}-int8"
    write_metadata(args.out, metadata)

    int8_model = Classifier.load(args.out, engine="litert")
    sets = held_out(args.renders, args.real, HERE / "annotations" / "real-tops.json", args.real / "other")
    if args.unseen_renders:
        sets["unseen renders"] = unseen_renders(args.unseen_renders)
    float32 = {name: predict(float_model, items) for name, items in sets.items()}
    int8 = {name: predict(int8_model, items) for name, items in sets.items()}
    before = [p for predictions in float32.values() for p in predictions]
    after = [p for predictions in int8.values() for p in predictions]
    flips = [(b.path, b.status, a.status) for b, a in zip(before, after, strict=True) if b.status != a.status]
    moved = [abs((b.confidence or 0) - (a.confidence or 0)) for b, a in zip(before, after, strict=True)]
    report = {
        "model": f"{float_model.artifact.name} {float_model.artifact.version}",
        "representative": {"photos": len(paths), "finder_inputs": len(finder_inputs), "judge_crops": len(crops)},
        "photos": len(before),
        "status_flips": len(flips),
        "flips": flips[:20],
        "confidence_change_max": round(max(moved), 4),
        "confidence_change_mean": round(float(np.mean(moved)), 4),
        "sets": side_by_side(sets, float32, int8),
        "sizes_mb": {
            "float32": {n: round((args.model / n).stat().st_size / 1e6, 2) for n in ("finder.tflite", "judge.tflite")},
            "int8": {n: round((args.out / n).stat().st_size / 1e6, 2) for n in ("finder.tflite", "judge.tflite")},
        },
    }
    report["ships"] = all(entry["within_the_bar"] for entry in report["sets"].values())
    if args.speed_photos:
        speed_paths = sorted(str(p) for p in args.speed_photos.glob("*.jpg"))
        report["photos_per_second"] = {
            "photos": len(speed_paths),
            "float32": photos_per_second(float_model, speed_paths),
            "int8": photos_per_second(int8_model, speed_paths),
        }
    text = json.dumps(report, indent=2) + "\n"
    (args.out / "quantization.json").write_text(text)
    if args.report:
        args.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
