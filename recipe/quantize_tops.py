"""Post-training int8 quantization of model 2's two stages, and how far it moves the answers.

    python recipe/quantize_tops.py --model model/ --renders /var/tmp/tops --real ../shared/data/real \
        --out /var/tmp/m2-int8

Full-integer weights and activations (float32 input and output kept, so the engines' interface
does not change), calibrated on a representative set: finder inputs from renders and real
photos, judge crops where the float32 finder puts tops in them. Then, on held-out photos, the
float32 and int8 answers side by side: how many statuses flip, the largest change of a photo's
confidence, and each stage's raw output difference. Writes ``finder.int8.tflite`` and
``judge.int8.tflite`` into ``--out`` with a JSON report; shipping them is a separate decision.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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


def quantize(keras_path: Path, samples: list[np.ndarray]) -> bytes:
    tf = import_tensorflow()
    import keras

    model = keras.models.load_model(keras_path, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None].astype(np.float32)] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--renders", action="append", required=True, type=Path)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=300)
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
        data = quantize(args.model / f"{stage}.keras", samples)
        (args.out / f"{stage}.tflite").write_bytes(data)
        print(f"{stage}: {len(data) / 1e6:.1f} MB int8 ({time.time() - started:.0f} s)", flush=True)
    metadata = load_artifact(args.out).metadata
    metadata["version"] = f"{metadata['version']}-int8"
    write_metadata(args.out, metadata)

    int8_model = Classifier.load(args.out, engine="litert")
    held_out = [str(d / m["path"]) for d, m in render_records(args.renders) if m["index"] % 10 == 0]
    held_out += [str(p) for p in sorted(args.real.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    before = list(float_model.classify_paths(held_out))
    after = list(int8_model.classify_paths(held_out))
    flips = [(b.path, b.status, a.status) for b, a in zip(before, after, strict=True) if b.status != a.status]
    moved = [abs((b.confidence or 0) - (a.confidence or 0)) for b, a in zip(before, after, strict=True)]
    report = {
        "photos": len(held_out),
        "status_flips": len(flips),
        "flips": flips[:20],
        "confidence_change_max": round(max(moved), 4),
        "confidence_change_mean": round(float(np.mean(moved)), 4),
        "sizes_mb": {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(args.out.glob("*.tflite"))},
    }
    (args.out / "quantization.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
