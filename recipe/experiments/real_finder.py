"""Would a finder taught the real photos' marked tops answer better on the groups it never saw?

    python -m recipe.experiments.real_finder --work W                  # fine-tuned on the marks alone
    python -m recipe.experiments.real_finder --work W --teacher 1      # and kept near the shipped head
    python -m recipe.experiments.real_finder --work W --teacher 1 --checked-only

The shipped finder's head was trained on renders (model 2.2.0). Here it is fine-tuned on the real
photos' marks (``recipe/annotations``): an open or closed mark is a top, an unsure or by-eye
"left out" one is ignored, everything else is background, so the marked not-tops (bowls, labels,
glasses, lamps) are its hard negatives. Each repository group is left out in turn: the head is
fine-tuned on every other group's photos (4 augmented views each, as the recipe's real views),
exported beside the shipped judge, and the left-out group's photos are classified with it, the
product's own path. The script then prints ``recipe.kinds_table``'s table and
``recipe.boxes_table``'s (where the answers come from) over the eleven left-out folds, and the
finder alone per group on the plain letterbox view: recall of the marked tops and candidates a
photo, against the shipped head on the same views.

Options, each a question:

- ``--teacher L``: the shipped head's own map as a second target (KL on the heat, L1 on side and
  offset at its peaks) wherever no mark says otherwise, weight ``L``: learn the real not-tops
  without forgetting the small tops the renders taught;
- ``--checked-only``: the marks the recipe made by rule (``gate turned down``: 3.2.0's gate
  refused the candidate) are not negatives; nobody looked at them, and the gate refuses real
  PET necks.

Costs on 2 cores: the features 2.5 minutes (cached in ``W``), each fold about 70 s and its
export and classify 5 s. The figures are in ``model/HISTORY.md`` ("a finder taught the real
marks").
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from bottlecheck.imaging import decode_image
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.finder import STRIDE, augmented_view, encode_targets, evaluate_finder, feature_extractor

from .. import boxes_table, kinds_table
from ..crops import RECIPE
from ..real_photos import DATA, GROUPS, labelled_photos

MODEL = Path(__file__).resolve().parents[2] / "model"
SIZE = 256
#: A by-eye mark dropped as unclear has no side in the review file: a middling one.
DROPPED_SIDE = 80.0


def scenes(checked_only: bool) -> list[dict]:
    """Every marked photo (and ``real/other``'s photos with no top): tops, ignored marks, not-tops."""
    review = json.loads((RECIPE / "annotations" / "real-sources-more-review.json").read_text())["review"]
    sources = (DATA / "real-sources").resolve()
    out = []
    for path, (group, marks) in boxes_table.marks_by_photo().items():
        tops, nones = [], []
        for m in marks:
            if m["label"] in ("open", "closed"):
                tops.append((m["x"], m["y"], m["side"], m["label"], True))
            elif m["label"] != "none":
                tops.append((m["x"], m["y"], m["side"], m["label"], False))
            elif not (checked_only and m.get("how") == boxes_table.UNCHECKED):
                nones.append((m["x"], m["y"], m["side"]))
        rel = str(Path(path).relative_to(sources)) if Path(path).is_relative_to(sources) else None
        for x, y, verdict in review.get(rel, []):
            if verdict == "left out":
                tops.append((x, y, DROPPED_SIDE, "left out", False))
        out.append({"path": path, "group": group, "tops": tops, "nones": nones})
    other = json.loads((RECIPE / "annotations" / "real-other-review.json").read_text())["photos"]
    for path in sorted((DATA / "real" / "other").iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png") and path.name not in other:
            out.append({"path": str(path), "group": "product-poster", "tops": [], "nones": []})
    return out


def marked_cells(moved: list[tuple], size: int = SIZE) -> np.ndarray:
    """1 on the finder's cells near any mark (top, ignored or not-top): there the marks, not the teacher, teach."""
    grid = size // STRIDE
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    mask = np.zeros((grid, grid), np.float32)
    for cx, cy, side, _usable in moved:
        sigma = max(0.6, side / STRIDE / 4)
        mask = np.maximum(mask, np.exp(-((xs - cx / STRIDE) ** 2 + (ys - cy / STRIDE) ** 2) / (2 * sigma**2)) > 0.05)
    return mask


def features(items: list[dict], views: int, seed: int) -> dict[str, np.ndarray]:
    """Backbone features, targets and marked cells of one plain view and ``views`` augmented views a photo."""
    extractor = feature_extractor(SIZE)
    rng = random.Random(seed)
    parts: dict[str, list] = {"fine": [], "coarse": [], "target": [], "marked": [], "scene": [], "train": []}
    images: list[np.ndarray] = []

    def flush() -> None:
        if images:
            fine, coarse = extractor.predict(np.stack(images).astype(np.float32), verbose=0, batch_size=16)
            parts["fine"].append(fine.astype(np.float16))
            parts["coarse"].append(coarse.astype(np.float16))
            images.clear()

    for number, item in enumerate(items):
        image = decode_image(item["path"])
        marks = item["tops"] + [(x, y, side, "none", "none") for x, y, side in item["nones"]]
        for train in [False] + [True] * views:
            array, moved = augmented_view(image, marks, rng, size=SIZE, train=train)
            tops = [m for m in moved if m[3] != "none"]
            if not train:  # the plain view's marks, for the finder's own figures
                item["view_tops"] = [t for t in tops if t[3]]
            images.append(array)
            parts["target"].append(encode_targets(tops, SIZE).astype(np.float16))
            parts["marked"].append(marked_cells(moved).astype(np.uint8))
            parts["scene"].append(number)
            parts["train"].append(train)
        if len(images) >= 80:
            flush()
    flush()
    return {k: np.concatenate(v) if k in ("fine", "coarse") else np.stack(v) for k, v in parts.items()}


def finder_alone(outputs: np.ndarray, scene_of: np.ndarray, items: list[dict], min_score: float) -> dict:
    """Recall of the marked tops and candidates a photo on the plain letterbox views (at most 16 a map)."""
    figures = evaluate_finder(outputs, [items[n]["view_tops"] for n in scene_of], min_score, max_tops=16)
    return {"recall": figures["recall"], "candidates_a_photo": round(figures["found"] / max(len(scene_of), 1), 2)}


def teacher_loss(weight: float):
    """The marks' focal loss, plus the shipped head's map where no mark is (``weight`` times its KL)."""
    import keras.ops as ops

    from bottlecheck.training.finder import finder_loss

    def loss(target, output):
        base = finder_loss(target[..., :5], output)
        heat = ops.clip(output[..., 0], 1e-4, 1 - 1e-4)
        teacher = ops.clip(target[..., 5], 1e-4, 1 - 1e-4)
        follow = target[..., 9]
        kl = teacher * ops.log(teacher / heat) + (1 - teacher) * ops.log((1 - teacher) / (1 - heat))
        count = ops.maximum(ops.sum(ops.cast(ops.equal(target[..., 0], 1.0), "float32")), 1.0)
        peaks = ops.cast(target[..., 5] > 0.2, "float32") * follow
        offsets = ops.sum(ops.abs(output[..., 2:4] - target[..., 7:9]), axis=-1)
        regress = 0.5 * ops.abs(output[..., 1] - target[..., 6]) + offsets
        at_peaks = ops.sum(regress * peaks) / ops.maximum(ops.sum(peaks), 1.0)
        return base + weight * ops.sum(kl * follow) / count + at_peaks

    return loss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--teacher", type=float, default=0.0, help="weight of the shipped head's map (0: none)")
    parser.add_argument("--checked-only", action="store_true", help="only by-eye not-tops are negatives")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--min-score", type=float, default=0.2)
    args = parser.parse_args(argv)
    import_tensorflow()
    import keras

    import bottlecheck.layers  # noqa: F401  (the saved finder's upsampling layer)
    from bottlecheck.training.finder import finder_head, finder_loss
    from bottlecheck.training.tops_model import export_finder

    args.work.mkdir(parents=True, exist_ok=True)
    tag = f"{'checked' if args.checked_only else 'all'}-v{args.views}-s{args.seed}"
    items = scenes(args.checked_only)
    cache = args.work / f"features-{tag}.npz"
    if cache.is_file():
        data = dict(np.load(cache))
        items = json.loads((args.work / f"scenes-{tag}.json").read_text())
    else:
        data = features(items, args.views, args.seed)
        np.savez(cache, **data)
        (args.work / f"scenes-{tag}.json").write_text(json.dumps(items))
    fine, coarse, target, scene_of = data["fine"], data["coarse"], data["target"], data["scene"]
    is_train = data["train"].astype(bool)
    group_of_view = np.array([items[n]["group"] for n in scene_of])
    saved = keras.models.load_model(MODEL / "finder.keras", compile=False)
    shipped_weights = saved.get_layer("finder_head").get_weights()
    shipped = finder_head(SIZE // STRIDE)
    shipped.set_weights(shipped_weights)
    photos = labelled_photos()
    run = f"t{args.teacher:g}-{tag}-e{args.epochs}"
    answers: dict[str, dict] = {}
    alone = {}
    for group in GROUPS:
        test = np.flatnonzero(~is_train & (group_of_view == group))
        train = np.flatnonzero(is_train & (group_of_view != group))
        x = [fine[train].astype(np.float32), coarse[train].astype(np.float32)]
        y = target[train].astype(np.float32)
        if args.teacher:
            follow = y[..., 4] * (1 - data["marked"][train].astype(np.float32))
            y = np.concatenate([y, shipped.predict(x, verbose=0, batch_size=64), follow[..., None]], axis=-1)
        head = finder_head(SIZE // STRIDE)
        head.set_weights(shipped_weights)
        steps = -(-len(train) // 32) * args.epochs
        schedule = keras.optimizers.schedules.CosineDecay(args.lr, steps, alpha=0.05)
        loss = teacher_loss(args.teacher) if args.teacher else finder_loss
        head.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
        head.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0, shuffle=True)
        plain = [fine[test].astype(np.float32), coarse[test].astype(np.float32)]
        alone[group] = {
            "shipped": finder_alone(shipped.predict(plain, verbose=0), scene_of[test], items, args.min_score),
            "fine-tuned": finder_alone(head.predict(plain, verbose=0), scene_of[test], items, args.min_score),
        }
        model = args.work / f"{run}-{group}"
        shutil.rmtree(model, ignore_errors=True)
        model.mkdir()
        for name in ("judge.tflite", "metadata.json"):
            shutil.copy2(MODEL / name, model / name)
        export_finder(head, model)
        rows = args.work / f"{run}-{group}.jsonl"
        paths = "".join(f"{p.path}\n" for p in photos if p.group == group)
        command = ["bottlecheck", "classify", "-", "--model", str(model), "-f", "jsonl", "-o", str(rows), "-q"]
        subprocess.run(command, input=paths, text=True, check=False)
        answers.update(kinds_table.read_answers(rows))
        print(group, json.dumps(alone[group]), flush=True)
    table = kinds_table.table(photos, answers)
    truth = {str(p.path.resolve()): p.truth for p in photos}
    boxes = boxes_table.where_answers_come_from(answers, boxes_table.marks_by_photo(), truth)
    (args.work / f"{run}.json").write_text(json.dumps({"kinds": table, "boxes": boxes, "finder": alone}, indent=1))
    print(kinds_table.markdown(table))
    print(boxes_table.markdown(boxes))


if __name__ == "__main__":
    main()
