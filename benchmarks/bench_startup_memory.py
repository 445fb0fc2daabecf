"""Cold start and memory.

- Cold start: wall time of ``bottlecheck classify one.jpg`` in a fresh process, beside the
  baseline script (import TensorFlow, build Keras ResNet50, predict one image).
- Memory: peak RSS of a 10,000-image classify run (1,000 distinct 640x480 JPEGs, each linked
  ten times) and of a 1,000-image run of 4000x3000 photos' worth of phone frames.

    python benchmarks/bench_startup_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine, make_photos, summary, write_results  # noqa: E402

BASELINE_ONE = r"""
import sys, numpy as np
from PIL import Image
import keras
model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=2)
x = np.asarray(Image.open(sys.argv[1]).convert("RGB").resize((224, 224)), dtype=np.float32)[None]
print(model.predict(keras.applications.resnet50.preprocess_input(x), verbose=0))
"""


def wall(command: list[str], repeats: int) -> dict:
    subprocess.run(command, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        times.append(time.perf_counter() - start)
    return summary(times)


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Peak RSS of a child process (getrusage of children: each measurement in its own process)."""
    script = (
        "import resource, subprocess, sys, time; s = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - s)"
    )
    out = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, check=True)
    kb, seconds = out.stdout.split()
    return round(int(kb) / 1024, 1), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    base = Path(tempfile.gettempdir()) / "bottlecheck-bench"
    one = make_photos(base / "camera_640x480", 1, (640, 480), seed=1)[0]
    repeats = 3 if args.quick else 10
    results = {"machine": machine()}
    results["cold_start_s"] = {
        "bottlecheck_classify_one": wall([sys.executable, "-m", "bottlecheck", "classify", str(one), "-q"], repeats),
        "bottlecheck_tensorflow_engine": wall(
            [sys.executable, "-m", "bottlecheck", "classify", str(one), "-q", "--engine", "tensorflow"],
            max(2, repeats // 3),
        ),
        "baseline_keras_resnet50": wall([sys.executable, "-c", BASELINE_ONE, str(one)], max(2, repeats // 3)),
    }
    distinct = make_photos(base / "camera_640x480", 100 if args.quick else 1000, (640, 480), seed=1)
    many = base / ("links_quick" if args.quick else "links_10000")
    many.mkdir(exist_ok=True)
    total = 1000 if args.quick else 10_000
    for i in range(total):
        link = many / f"{i:05d}.jpg"
        if not link.exists():
            os.symlink(distinct[i % len(distinct)], link)
    out = base / "rows.jsonl"
    mb, seconds = peak_rss_mb([sys.executable, "-m", "bottlecheck", "classify", str(many), "-o", str(out), "-q"])
    results["classify_peak_rss"] = {
        "images": total,
        "size": "640x480",
        "peak_rss_mb": mb,
        "seconds": round(seconds, 1),
        "images_per_second": round(total / seconds, 1),
    }
    big = make_photos(base / "photo_4000x3000", 10 if args.quick else 50, (4000, 3000), seed=5)
    big_dir = big[0].parent
    mb, seconds = peak_rss_mb([sys.executable, "-m", "bottlecheck", "classify", str(big_dir), "-o", str(out), "-q"])
    results["classify_12mp_peak_rss"] = {
        "images": len(big),
        "size": "4000x3000",
        "peak_rss_mb": mb,
        "seconds": round(seconds, 1),
    }
    _ = resource  # getrusage is used in the child script
    write_results(results, args.out)


if __name__ == "__main__":
    main()
