"""Shared helpers for the benchmarks: photo-like inputs, timing statistics, machine facts."""

from __future__ import annotations

import io
import json
import os
import platform
import random
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"
REAL_SOURCES = ROOT.parent / "shared" / "data" / "real-sources"


def photo_like(width: int, height: int, seed: int) -> bytes:
    """A JPEG that compresses like a photo: smooth gradients, shapes, texture and sensor noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 4, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(20, width // 2), y0 + rng.integers(20, height // 2)
        draw.ellipse([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    base = base.filter(ImageFilter.GaussianBlur(2))
    noise = rng.normal(0, 6, (height, width, 3))
    array = np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


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


def make_photos(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """Write ``count`` photo-like JPEGs (deterministic) once; reuse them on later runs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{size[0]}x{size[1]}_{seed}_{i:05d}.jpg"
        if not path.exists():
            path.write_bytes(photo_like(size[0], size[1], seed * 100_003 + i))
        paths.append(path)
    return paths


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "runs": len(ordered),
    }


def timed(fn, repeats: int, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return summary(times)


def machine() -> dict[str, str | int]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "python": platform.python_version(), "os": platform.platform()}


def rss_kb(pid: int) -> tuple[int, int]:
    """Current and peak resident set size of a process, in kB (from /proc)."""
    current = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return current, peak


def worker_pids(master_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes so far (from /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def write_results(results: dict, out: Path | None) -> None:
    """Print a benchmark's results as JSON, and write them to ``out`` when given (benchmarks/run reads them)."""
    text = json.dumps(results, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
