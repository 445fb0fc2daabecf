"""Train model 2 (top finder and top judge) from annotated renders and the annotated real photos.

    python -m recipe.train_tops --renders R/tops --out runs/m2 --version 2.0.0

Renders come from ``recipe/render/render_tops.py``; real photos from ``../shared/data/real``
with the tops in ``recipe/annotations/real-tops.json``. Every fifth annotated real photo
(by sorted name) and every tenth render (by index) are held out: they pick the judge's
temperature and give the metrics written into the artefact. Both stages train small heads
on frozen ImageNet EfficientNet-Lite0 features (see ``bottlecheck/training/finder.py`` and
``judge.py`` for why); on 2 cores this takes minutes, most of it computing features.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bottlecheck import Classifier, __version__
from bottlecheck.imaging import decode_image, decode_photo
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.finder import (
    FINDER_SIZE,
    STRIDE,
    Scene,
    augmented_view,
    compute_features,
    evaluate_finder,
    finder_head,
    finder_loss,
    load_render_scenes,
    render_records,
)
from bottlecheck.training.judge import (
    JUDGE_LABELS,
    Crop,
    compute_judge_features,
    judge_head,
    judge_temperature,
    load_render_crops,
)

HERE = Path(__file__).resolve().parent


def real_scenes(annotations: dict, root: Path) -> list[Scene]:
    scenes = []
    for rel, entry in sorted(annotations["images"].items()):
        tops = [(t["x"], t["y"], t["side"], t["label"], True) for t in entry["tops"]]
        scenes.append(Scene(str(root / rel), tops, index=len(scenes)))
    return scenes


def real_crops(scenes: list[Scene], sizes: dict[str, tuple[int, int]], negatives: int, seed: int) -> list[Crop]:
    """Each annotated top, and ``none`` crops away from the tops (labels, glass, background)."""
    rng = random.Random(seed)
    crops = []
    for scene in scenes:
        width, height = sizes[scene.path]
        for x, y, side, label, _ in scene.tops:
            crops.append(Crop(scene.path, x, y, side, label, scene.index, "real"))
        sides = [t[2] for t in scene.tops] or [max(width, height) / 10]
        for _ in range(negatives):
            side = rng.choice(sides) * rng.uniform(0.6, 1.6)
            for _attempt in range(30):
                x, y = rng.uniform(0, width), rng.uniform(0, height)
                if all(abs(x - t[0]) > side * 1.5 or abs(y - t[1]) > side * 1.5 for t in scene.tops):
                    crops.append(Crop(scene.path, x, y, side, "none", scene.index, "real"))
                    break
    return crops


def hard_negatives(
    head, scenes: list[Scene], min_score: float = 0.15, per_photo: int = 6, size: int = FINDER_SIZE
) -> list[Crop]:
    """``none`` crops where the trained finder sees a top in a photo that has none, plus two random ones each.

    ``head`` is a finder head just trained, or a two-stage :class:`Classifier` whose finder is reused.
    """
    from bottlecheck.tops import Letterbox, decode_tops

    rng = random.Random(5)
    if isinstance(head, Classifier):  # an exported finder: the classifier finds, in its decoded image
        found = []
        for scene in scenes:
            photo = head.preprocess(scene.path)
            to_full = photo.size[0] / photo.image.width
            tops = head.find_tops(photo, min_score, per_photo)  # type: ignore[attr-defined]
            found.append((photo.size, [(x * to_full, y * to_full, side * to_full) for x, y, side, _ in tops]))
    else:
        fine, coarse, _ = compute_features(scenes, 1, 0, False, lambda _line: None, size)
        outputs = head.predict([fine.astype(np.float32), coarse.astype(np.float32)], verbose=0)
        found = []
        for scene, out in zip(scenes, outputs, strict=True):
            photo_size = decode_photo(scene.path, max_side=1)[1]  # the upright size; no full decode for it
            geometry = Letterbox(*photo_size, size)
            tops = decode_tops(out[..., 0], out[..., 1], out[..., 2:4], STRIDE, min_score, per_photo)
            found.append((photo_size, [(*geometry.to_photo(t.x, t.y), t.side / geometry.scale) for t in tops]))
    crops = []
    for scene, ((width, height), placed) in zip(scenes, found, strict=True):
        for x, y, side in placed:
            crops.append(Crop(scene.path, x, y, side, "none", scene.index, "real"))
        for _ in range(2):
            side = max(width, height) * rng.uniform(0.08, 0.3)
            crops.append(
                Crop(scene.path, rng.uniform(0, width), rng.uniform(0, height), side, "none", scene.index, "real")
            )
    return crops


def labelled_tops(path: Path, data_root: Path) -> tuple[list[Crop], list[Crop]]:
    """Crops marked by eye in an annotation file like ``annotations/trashnet-tops.json``: (train, held out).

    Photos at even positions by sorted name train, odd ones are held out.
    """
    document = json.loads(path.read_text())
    folder = data_root / document["source"]
    train, held = [], []
    for k, (name, tops) in enumerate(sorted(document["images"].items())):
        for top in tops:
            crop = Crop(str(folder / name), top["x"], top["y"], top["side"], top["label"], 20_000 + k, "real")
            (train if k % 2 == 0 else held).append(crop)
    return train, held


def judge_report(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    predicted = probabilities.argmax(1)
    matrix = np.zeros((3, 3), int)
    for truth, guess in zip(labels, predicted, strict=True):
        matrix[truth, guess] += 1
    tops = labels != JUDGE_LABELS.index("none")
    p_open = probabilities[:, 1] / np.maximum(probabilities[:, 0] + probabilities[:, 1], 1e-9)
    open_vs_closed = (p_open[tops] >= 0.5) == (labels[tops] == 1)
    confidence = np.maximum(p_open[tops], 1 - p_open[tops])
    ece = 0.0
    for low in np.linspace(0.5, 1.0, 6)[:-1]:
        in_bin = (confidence >= low) & (confidence < low + 0.1 + (low >= 0.9) * 0.01)
        if in_bin.any():
            ece += in_bin.mean() * abs(open_vs_closed[in_bin].mean() - confidence[in_bin].mean())
    return {
        "count": int(len(labels)),
        "accuracy": round(float((predicted == labels).mean()), 4),
        "open_vs_closed_accuracy": round(float(open_vs_closed.mean()), 4) if tops.any() else None,
        "open_vs_closed_ece": round(float(ece), 4),
        "confusion_matrix": {"rows": "true closed/open/none", "columns": "predicted", "values": matrix.tolist()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", action="append", required=True, type=Path)
    parser.add_argument("--real", type=Path, default=HERE.parent.parent / "shared" / "data" / "real")
    parser.add_argument("--annotations", type=Path, default=HERE / "annotations" / "real-tops.json")
    parser.add_argument(
        "--no-tops",
        type=Path,
        default=HERE.parent.parent / "shared" / "data" / "real" / "other",
        help="real photos with no bottle top (brewery logos): every other one (by sorted name) trains, the rest "
        "is held out",
    )
    parser.add_argument(
        "--labelled-tops",
        type=Path,
        action="append",
        default=None,
        help="crops marked by eye (default: annotations/trashnet-tops.json); half train the judge, half are held out",
    )
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument(
        "--finder-from",
        type=Path,
        default=None,
        help="reuse this two-stage model's finder (files and metrics) and train only the judge",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", default=None)
    parser.add_argument("--finder-views", type=int, default=6)
    parser.add_argument("--real-views", type=int, default=12, help="views per real photo for the finder")
    parser.add_argument("--judge-views", type=int, default=4)
    parser.add_argument("--real-judge-views", type=int, default=12)
    parser.add_argument("--finder-epochs", type=int, default=25)
    parser.add_argument(
        "--finder-size", type=int, default=FINDER_SIZE, help="the photo's long side in the finder's input"
    )
    parser.add_argument("--judge-epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import_tensorflow()
    import keras

    started = time.time()
    keras.utils.set_random_seed(args.seed)

    def log(line: str) -> None:
        print(f"[{time.time() - started:6.0f}s] {line}", flush=True)

    annotations = json.loads(args.annotations.read_text())
    real = real_scenes(annotations, args.real)
    sizes = {str(args.real / rel): (e["width"], e["height"]) for rel, e in annotations["images"].items()}
    real_val = [s for k, s in enumerate(real) if k % 5 == 0]
    real_train = [s for k, s in enumerate(real) if k % 5 != 0]
    renders = load_render_scenes(args.renders)
    render_val = [s for s in renders if s.index % 10 == 0]
    render_train = [s for s in renders if s.index % 10 != 0]
    no_tops = sorted(p for p in args.no_tops.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    no_tops_train = [Scene(str(p), [], index=10_000 + k) for k, p in enumerate(no_tops) if k % 2 == 1]
    log(f"renders {len(render_train)} train / {len(render_val)} held out; real {len(real_train)} / {len(real_val)}")
    log(f"photos without a top: {len(no_tops_train)} train / {len(no_tops) - len(no_tops_train)} held out")

    # ---- finder
    if args.finder_from is None:
        size = args.finder_size
        fine, coarse, target = compute_features(render_train, args.finder_views, args.seed, True, log, size)
        # Real photos, and real photos without a top (round logos look like caps from above): empty targets.
        rfine, rcoarse, rtarget = compute_features(
            real_train + no_tops_train, args.real_views, args.seed + 1, True, log, size
        )
        fine, coarse, target = (
            np.concatenate([fine, rfine]),
            np.concatenate([coarse, rcoarse]),
            np.concatenate([target, rtarget]),
        )
        log(f"finder features: {len(target)} views")
        head = finder_head(size // STRIDE)
        steps = max(1, len(target) // 32)
        schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps * args.finder_epochs, alpha=0.05)
        head.compile(optimizer=keras.optimizers.Adam(schedule), loss=finder_loss)
        head.fit(
            [fine.astype(np.float32), coarse.astype(np.float32)],
            target,
            batch_size=32,
            epochs=args.finder_epochs,
            verbose=0,
        )
        finder_metrics = {}
        for name, scenes in (("rendered_held_out", render_val), ("real_held_out", real_val)):
            vfine, vcoarse, _ = compute_features(scenes, 1, 1, False, lambda _line: None, size)
            outputs = head.predict([vfine.astype(np.float32), vcoarse.astype(np.float32)], verbose=0)
            rng = random.Random(1)
            truth = [augmented_view(decode_image(s.path), s.tops, rng, size, train=False)[1] for s in scenes]
            finder_metrics[name] = {str(t): evaluate_finder(outputs, truth, t) for t in (0.2, 0.3, 0.4, 0.5)}
            log(f"finder {name}: {finder_metrics[name]['0.3']}")
    else:  # keep a trained finder: its files, its metrics, and its mistakes as the judge's hard negatives
        head = Classifier.load(args.finder_from, engine="litert")
        finder_metrics = json.loads((args.finder_from / "metadata.json").read_text())["metrics"]["finder"]
        log(f"finder reused from {args.finder_from}")

    # ---- judge
    crops = load_render_crops(args.renders, seed=args.seed)
    rcrops = real_crops(real_train, sizes, negatives=3, seed=args.seed)
    real_crops_only = list(rcrops)
    # Where the trained finder is fooled: the judge says none.
    hard = hard_negatives(head, no_tops_train, size=args.finder_size)
    rcrops += hard
    labelled = args.labelled_tops if args.labelled_tops is not None else [HERE / "annotations" / "trashnet-tops.json"]
    vcrops_labelled = []
    for path in labelled:
        train_part, held_part = labelled_tops(path, args.data_root)
        rcrops += train_part
        vcrops_labelled += held_part
    vcrops_render = [c for c in crops if c.index % 10 == 0]
    vcrops_real = real_crops(real_val, sizes, negatives=3, seed=args.seed + 7)
    train_crops = [c for c in crops if c.index % 10 != 0]
    log(
        f"judge crops: {Counter(c.label for c in train_crops)} rendered, {Counter(c.label for c in rcrops)} real "
        f"({len(hard)} of them the finder's detections on photos without a top)"
    )
    X1, y1 = compute_judge_features(train_crops, args.judge_views, args.seed, True, log)
    X2, y2 = compute_judge_features(rcrops, args.real_judge_views, args.seed + 1, True, log)
    X, y = np.concatenate([X1, X2]), np.concatenate([y1, y2])
    judge_model = judge_head()
    judge_model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    judge_model.fit(X, y, batch_size=64, epochs=args.judge_epochs, verbose=0, shuffle=True)
    Xv1, yv1 = compute_judge_features(vcrops_render, 1, 2, False, lambda _line: None)
    Xv2, yv2 = compute_judge_features(vcrops_real, 1, 3, False, lambda _line: None)
    # The labelled tops' held-out half measures, it does not calibrate (it is also the card's check set).
    logits_val = judge_model.predict(np.concatenate([Xv1, Xv2]), verbose=0)
    temperature = judge_temperature(logits_val, np.concatenate([yv1, yv2]))

    def probabilities(features: np.ndarray) -> np.ndarray:
        z = judge_model.predict(features, verbose=0) / temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    judge_metrics = {
        "rendered_held_out": judge_report(probabilities(Xv1), yv1),
        "real_held_out": judge_report(probabilities(Xv2), yv2),
    }
    if vcrops_labelled:
        Xv3, yv3 = compute_judge_features(vcrops_labelled, 1, 4, False, lambda _line: None)
        judge_metrics["labelled_tops_held_out"] = judge_report(probabilities(Xv3), yv3)
    log(f"judge: temperature {temperature:.3f}; {json.dumps(judge_metrics)}")

    from bottlecheck.training.model import artifact_identity
    from bottlecheck.training.tops_model import save_tops_artifact

    metadata = {
        **artifact_identity("bottlecheck-tops", args.version),
        "training": {
            "bottlecheck": __version__,
            "recipe": "recipe/train_tops.py",
            "data": {
                "renders": {"scenes": len(render_train), "by_scene": dict(Counter(_scene_kinds(args.renders)))},
                "real": {"photos": len(real_train), "annotations": "recipe/annotations/real-tops.json"},
                "real_without_tops": {"photos": len(no_tops_train), "folder": "real/other (brewery logos)"},
                "labelled_tops": {
                    "files": [
                        str(p.relative_to(HERE.parent)) if p.is_relative_to(HERE.parent) else p.name for p in labelled
                    ],
                    "crops": len(rcrops) - len(hard) - len(real_crops_only),
                },
            },
            "held_out": {
                "renders": len(render_val),
                "real_photos": len(real_val),
                "real_without_tops": len(no_tops) - len(no_tops_train),
                "rule": "render index % 10 == 0; every 5th annotated real photo by sorted name; every other "
                "photo without a top (even positions by sorted name)",
            },
            "config": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
                if k not in ("renders", "real", "out", "annotations", "no_tops", "labelled_tops", "data_root")
            },
            "seconds": round(time.time() - started, 1),
        },
        "metrics": {"finder": finder_metrics, "judge": judge_metrics},
    }
    save_tops_artifact(
        head, judge_model, temperature, args.out, metadata, finder_from=args.finder_from, finder_size=args.finder_size
    )
    log(f"wrote {args.out}")


def _scene_kinds(render_dirs: list[Path]) -> list[str]:
    return [meta["scene"] for _directory, meta in render_records(render_dirs)]


if __name__ == "__main__":
    main()
