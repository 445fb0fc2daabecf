"""Batch throughput of ``bottlecheck classify DIR`` beside its limits and the baseline.

    python benchmarks/bench_batch.py [--quick]

For 1080x1920 phone frames and 640x480 camera frames (photo-like JPEGs, fixed seeds):
- the CLI end to end (a subprocess, as users run it), LiteRT and TensorFlow engines;
- the limits: decoding+preprocessing alone with the same number of threads, and model
  inference alone on pre-decoded arrays at the same batch size, threads and engine copies;
- the baseline a user would otherwise write: Keras ResNet50 at 224x224 with
  ``model.predict`` called once per image in a Python loop;
- how cost grows: batch sizes 1, 4, 8, 32 and 1 or 2 workers (in-process pipeline; one worker
  decodes ahead of one two-threaded engine, two run a copy of the model each).
Prints JSON; ``benchmarks/run`` turns it into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REAL_SOURCES, machine, make_photos, phone_sized, summary, write_results  # noqa: E402
from bottlecheck.classifier import Classifier  # noqa: E402
from bottlecheck.engines import usable_cpus  # noqa: E402

SIZES = {"phone_1080x1920": (1080, 1920), "camera_640x480": (640, 480)}
# The photo-like JPEGs hold no bottle: most are `unknown`, a model's costliest case since 3.6.0 (the
# last look judges up to two more candidates where nothing counts). Beside them, the same size with
# bottles in: the shared real photos padded to 1080x1920 (as bench_stages), when they are here.
REAL_PHONE = "phone_1080x1920_real_bottles"
SCALING_BATCHES = (1, 4, 8, 32)
WHOLE_COMMAND_PHOTOS = 120  # issue 39: "on 120 phone-sized JPEGs, including the start"


def cli_throughput(folder: Path, count: int, engine: str, repeats: int, batch: int | None, workers: int) -> dict:
    rates, cores = [], []
    for _ in range(repeats):
        out = Path(tempfile.mkstemp(suffix=".jsonl")[1])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bottlecheck",
                "classify",
                str(folder),
                "-o",
                str(out),
                "-q",
                "--engine",
                engine,
                *(["-b", str(batch)] if batch else []),
                "-w",
                str(workers),
            ],
            check=True,
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rates.append(count / wall)
        # The cores the command kept busy: a per-core rate compares it with the server (bench_serving).
        cores.append((after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / wall)
        assert sum(1 for _ in out.open()) == count
        out.unlink()
    return {**summary(rates), "cores": summary(cores)}


def decode_throughput(paths: list[Path], classifier: Classifier, workers: int, repeats: int) -> dict:
    rates = []
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(classifier.preprocess, paths[:20]))  # warm up
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(classifier.preprocess, paths))
            rates.append(len(paths) / (time.perf_counter() - start))
    return summary(rates)


def inference_throughput(classifier: Classifier, prepared: list, batch: int, workers: int, repeats: int) -> dict:
    """The model alone on decoded inputs (model 2: the finder, the crops and the judge), run as the pipeline runs it.

    LiteRT: ``workers`` threads, each with its own single-threaded copy of the model, share the
    batches. TensorFlow (no copies): one thread, TensorFlow's pool spreading each batch.
    """
    replicas = [classifier.replica() for _ in range(workers)] if workers > 1 else []
    lanes = [r for r in replicas if r is not None] or [classifier]
    batches = [prepared[i : i + batch] for i in range(0, len(prepared), batch)]

    def run(lane: Classifier, share: list) -> None:
        for chunk in share:
            lane.infer(chunk)

    with ThreadPoolExecutor(len(lanes)) as pool:
        list(pool.map(run, lanes, [batches[:1]] * len(lanes)))  # warm up every copy
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(run, lanes, [batches[i :: len(lanes)] for i in range(len(lanes))]))
            rates.append(len(prepared) / (time.perf_counter() - start))
    return summary(rates)


def pipeline_throughput(classifier: Classifier, paths: list[Path], batch: int, workers: int, repeats: int) -> dict:
    names = [str(p) for p in paths]
    list(classifier.classify_paths(names[:batch], batch, workers))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = list(classifier.classify_paths(names, batch, workers))
        rates.append(len(rows) / (time.perf_counter() - start))
    return summary(rates)


# The seed's design as a user would write it: Keras ResNet50, ``predict`` once per photo.
BASELINE_SCRIPT = r"""
import sys, time, numpy as np
from PIL import Image
import keras
model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=2)
paths = sys.argv[1:]
def run(ps):
    for p in ps:
        x = np.asarray(Image.open(p).convert("RGB").resize((224, 224)), dtype=np.float32)[None]
        model.predict(keras.applications.resnet50.preprocess_input(x), verbose=0)
"""
# Its rate once warmed up (printed), and the whole command as a user runs it (nothing left out).
BASELINE = (
    BASELINE_SCRIPT
    + r"""
run(paths[:3])
start = time.perf_counter(); run(paths); print(len(paths) / (time.perf_counter() - start))
"""
)
BASELINE_WHOLE = BASELINE_SCRIPT + "run(paths)\n"


def whole_commands(folder: Path, paths: list[Path], repeats: int) -> dict:
    """Issue 39's measure: the same photos through each whole command, its start included, side by side.

    ``bottlecheck classify FOLDER`` (its defaults) and the baseline's script each run from a fresh
    process, alternating, so that both meet the machine in the same state; seconds from launch to exit.
    """
    ours, theirs = [], []
    for _ in range(repeats):
        out = Path(tempfile.mkstemp(suffix=".jsonl")[1])
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bottlecheck", "classify", str(folder), "-o", str(out), "-q"], check=True)
        ours.append(time.perf_counter() - start)
        assert sum(1 for _ in out.open()) == len(paths)
        out.unlink()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", BASELINE_WHOLE, *map(str, paths)],
            check=True,
            capture_output=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        theirs.append(time.perf_counter() - start)
    return {"photos": len(paths), "bottlecheck_seconds": summary(ours), "baseline_seconds": summary(theirs)}


def baseline_throughput(paths: list[Path], repeats: int) -> dict:
    rates = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", BASELINE, *map(str, paths)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        rates.append(float(out.stdout.strip().splitlines()[-1]))
    return summary(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    count = args.count or (100 if args.quick else 1000)
    repeats = 1 if args.quick else 3
    litert = Classifier.load(engine="litert")
    tensorflow = Classifier.load(engine="tensorflow")
    # The CLI's defaults (LiteRT's batch, one pipeline thread per CPU), spelled out for the limits.
    batch, workers = litert.preferred_batch, usable_cpus()
    results: dict = {"machine": machine(), "count": count, "batch_size": batch, "workers": workers, "sizes": {}}
    sizes = {**SIZES, **({REAL_PHONE: (1080, 1920)} if REAL_SOURCES.is_dir() else {})}
    for name, size in sizes.items():
        folder = Path(tempfile.gettempdir()) / "bottlecheck-bench" / name
        if name == REAL_PHONE:
            paths = phone_sized(REAL_SOURCES, folder, count)
        else:
            paths = make_photos(folder, count, size, seed=1)
        arrays = [litert.preprocess(p) for p in paths[: min(count, 256)]]
        entry = {
            "cli_litert": cli_throughput(folder, count, "litert", repeats, batch, workers),
            "cli_tensorflow": cli_throughput(folder, count, "tensorflow", 1, None, workers),
            "decode_only": decode_throughput(paths, litert, workers, repeats),
            "inference_only_litert": inference_throughput(litert, arrays, batch, workers, repeats),
            "inference_only_tensorflow": inference_throughput(tensorflow, arrays, 32, workers, repeats),
            "baseline_resnet50_predict_loop": baseline_throughput(paths[: 50 if args.quick else 200], repeats),
        }
        if name == "phone_1080x1920":
            few = 30 if args.quick else WHOLE_COMMAND_PHOTOS
            subset = folder.with_name(f"{name}-{few}")  # the first `few` of the same photos, alone in a folder
            entry["whole_commands"] = whole_commands(subset, make_photos(subset, few, size, seed=1), repeats)
        if name == "camera_640x480":
            sub = paths[: min(count, 400)]
            entry["scaling"] = {
                f"batch{b}_workers{w}": pipeline_throughput(litert, sub, b, w, 1)
                for b in SCALING_BATCHES
                for w in (1, 2)
            }
        results["sizes"][name] = entry
        print(
            f"{name}: {json.dumps({k: round(v['median'], 1) for k, v in entry.items() if 'median' in v})}",
            file=sys.stderr,
        )
    write_results(results, args.out)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
