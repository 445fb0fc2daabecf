"""Video: frames classified per second on a 1080p H.264 clip, and the real-time factor at the default sampling.

    python benchmarks/bench_video.py [--quick] --out benchmarks/results/video.json

The clip is made once by Debian's ``ffmpeg`` from the shipped renders (open and closed, 2 s
each in turn), scaled to 1920x1080 with temporal noise so it costs to decode like a camera's
clip (libx264, veryfast, crf 23, yuv420p, 30 fps). Timed in-process, the way ``classify clip.mp4``
runs it (PyAV decoding on FFmpeg's threads in the calling thread, two pipeline threads each
converting, preprocessing and running its own copy of the model):

- decode alone: every frame decoded, none converted (what sampling can never go below);
- the default sampling (2 frames a second): frames classified per second and the real-time
  factor, seconds of video per second of work;
- every frame (``--every 1``): frames classified per second, the pipeline's ceiling.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, machine, summary, write_results  # noqa: E402
from bottlecheck.classifier import Classifier  # noqa: E402
from bottlecheck.sources.video import Sampling, clip_frames  # noqa: E402


def make_clip(target: Path, seconds: int) -> Path:
    if target.exists():
        return target
    examples = ROOT / "examples"
    inputs = []
    for name in ("rendered_closed_1.jpg", "rendered_open_1.jpg"):
        inputs += ["-loop", "1", "-t", "2", "-framerate", "30", "-i", str(examples / name)]
    scale = "scale=1920:1080:force_original_aspect_ratio=decrease,pad=1920:1080:(ow-iw)/2:(oh-ih)/2,setsar=1"
    graph = f"[0]{scale}[a];[1]{scale}[b];[a][b]concat=n=2,loop={max(0, -(-seconds // 4) - 1)}:120,noise=alls=6:allf=t"
    command = ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-t", str(seconds)]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", str(target)]
    subprocess.run(command, check=True, timeout=600)
    return target


def decode_only(clip: str) -> int:
    import av

    with av.open(clip) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def classify(classifier: Classifier, clip: str, sampling: Sampling) -> int:
    return sum(1 for _ in classifier.classify_paths(clip_frames(clip, sampling)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 10 s clip, one repetition")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--clip", type=Path, help="a clip of your own instead of the generated one")
    args = parser.parse_args()
    seconds, repeats = (10, 1) if args.quick else (20, 3)
    if shutil.which("ffmpeg") is None and args.clip is None:
        sys.exit("needs ffmpeg to make the clip (or --clip)")
    folder = Path(tempfile.gettempdir()) / "bottlecheck-bench"
    folder.mkdir(exist_ok=True)
    clip = str(args.clip or make_clip(folder / f"line_1080p_{seconds}s.mp4", seconds))
    import av

    with av.open(clip) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6
        size, rate = f"{stream.codec_context.width}x{stream.codec_context.height}", float(stream.average_rate)
    classifier = Classifier.load(engine="litert")
    classify(classifier, clip, Sampling(every=30))  # warm up: the model's copies allocate their tensors

    def measure(run) -> tuple[dict, int]:
        times, count = [], 0
        for _ in range(repeats):
            start = time.perf_counter()
            count = run()
            times.append(time.perf_counter() - start)
        return summary(times), count

    decode_s, decoded = measure(lambda: decode_only(clip))
    default_s, sampled = measure(lambda: classify(classifier, clip, Sampling()))
    every_s, everything = measure(lambda: classify(classifier, clip, Sampling(every=1)))
    results = {
        "machine": machine(),
        "clip": {"size": size, "fps": rate, "seconds": round(duration, 2), "frames": decoded, "codec": "h264"},
        "decode_only": {"seconds": decode_s, "frames_per_second": round(decoded / decode_s["median"], 1)},
        "default_sampling": {
            "sampling": Sampling().describe(),
            "frames": sampled,
            "seconds": default_s,
            "frames_per_second": round(sampled / default_s["median"], 1),
            "realtime_factor": round(duration / default_s["median"], 1),
        },
        "every_frame": {
            "frames": everything,
            "seconds": every_s,
            "frames_per_second": round(everything / every_s["median"], 1),
            "realtime_factor": round(duration / every_s["median"], 2),
        },
    }
    results["load_average"] = round(os.getloadavg()[0], 1)  # another job on the machine shows here
    write_results(results, args.out)


if __name__ == "__main__":
    main()
