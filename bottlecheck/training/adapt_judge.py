"""``bottlecheck train`` on a two-stage base: refit a ``tops`` model's judge on a user's own labelled photos.

A QA engineer with twenty photos of a new bottle (ten open, ten closed) cannot train a top
finder, and needs not: the shipped finder finds tops it has never seen the like of, and the
judge is what has to learn the new cap. So the finder is kept as it is; in every labelled photo
the finder's most confident top is cut out as the judge sees it, labelled with its folder
(``open``/``closed``: one bottle per photo, or the most prominent one), and the judge is refit
on those crops, starting from the shipped judge. With at least :data:`FINETUNE_MIN_PER_CLASS`
tops of each class, the back of its backbone (the last block, the 1x1 head) learns beside the
linear layer: a linear layer on frozen features, trained on one scene, learned the scene and not
the cap (issue 24; the figures are in model/HISTORY.md). With fewer, only the linear layer
moves. The views are the judge's training views (span 1.5-4 times the top, any turn, grey, hue,
blur, noise, JPEG), so what is left to learn is the cap. Crops cut away from the top, labelled
``none``, keep the judge's "not a top" answer. Where the data directory has corrected tops
(``tops.json``, from ``bottlecheck review --export``), a photo's crops are the tops a person
marked there, not the finder's guess.

A base with the cap judge (tops 3.x: its judge is the gate times a cap, ``build_gated_judge``)
is refit differently: the gate (is this a top) is kept exactly, and only the cap's linear layer
learns, starting from the base's cap and pulled back towards it, so that twenty photos of one
scene add to what the base knew of other caps and places instead of replacing it. How hard it is
pulled (from "keep the base's cap" to "fit one from zero") is chosen by cross-validation on the
user's own training photos (``cross_validation.choose_pull``): no one pull suits every source.

Calibration follows the one-stage rule: a temperature is fitted on the validation crops only
when there are at least ``MIN_CALIBRATION_PER_CLASS`` of each class; otherwise the base
model's temperature is kept, and the metadata says so. The photo-level validation metrics of
the base model and of the adapted one are both written down, so a worse result is visible.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bottlecheck import __version__
from bottlecheck.artifact import load_artifact, write_metadata
from bottlecheck.classifier import Classifier
from bottlecheck.evaluation.datasets import Example, corrected_tops, describe_sources
from bottlecheck.evaluation.evaluate import evaluate
from bottlecheck.labels import LABELS
from bottlecheck.tops_classifier import TopsClassifier
from bottlecheck.train_config import TrainConfig
from bottlecheck.training.cross_validation import PULLS, choose_pull, fit_with_pull, pull_name
from bottlecheck.training.judge import (
    JUDGE_LABELS,
    Crop,
    compute_judge_features,
    copy_weights_by_name,
    judge_tail,
    judge_temperature,
    judge_trunk_model,
)
from bottlecheck.training.split import MIN_CALIBRATION_PER_CLASS, describe_split, split_training_data
from bottlecheck.training.tops_model import LAST_LOOK_LAYER, RESCUE_LAYER

#: Views of each crop while training (position, size, mirror jitter: the finder's errors).
TRAIN_VIEWS = 8
#: ``none`` crops cut from each photo away from its top.
NONE_PER_PHOTO = 2
#: Tops of each class from which the backbone's last block learns too, not only the linear layer.
FINETUNE_MIN_PER_CLASS = 8
#: The last frozen block when the backbone learns: block 15 and the 1x1 head after it train.
ADAPT_CUT = 14
#: How hard the user's tops pull the base's rescue gate (tops 3.3.0 on) away from where it is: None keeps it.
RESCUE_PULL: float | None = 10.0
#: How hard they pull the base's last-look gate (tops 3.5.0 on): None keeps it.
LAST_LOOK_PULL: float | None = None


def find_top_crops(
    classifier: TopsClassifier,
    examples: Sequence[Example],
    seed: int = 0,
    marked: Mapping[str, Sequence[tuple[float, float, float, float]]] | None = None,
) -> tuple[list[Crop], list[str]]:
    """The finder's most confident top in each photo, labelled with the photo's folder, plus ``none`` crops.

    Coordinates are in the photo's own pixels (the judge's training views are cut from the
    full decode). Photos where the finder finds nothing are returned by path: no crop. A photo
    in ``marked`` (path -> boxes ``(x0, y0, x1, y1)`` a person corrected) gives a crop of each of
    its marked tops instead: the person's boxes, not the finder's.
    """
    rng = random.Random(seed)
    crops: list[Crop] = []
    missed: list[str] = []
    for number, example in enumerate(examples):
        photo = classifier.preprocess(example.path)
        boxes = (marked or {}).get(os.path.normpath(example.path))
        if boxes:
            for x0, y0, x1, y1 in boxes:
                side = max(x1 - x0, y1 - y0)
                crops.append(
                    Crop(example.path, (x0 + x1) / 2, (y0 + y1) / 2, side, example.label_name, number, example.source)
                )
            x0, y0, x1, y1 = boxes[0]
            x, y, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
        else:
            tops = classifier.find_tops(photo)
            if not tops:
                missed.append(example.path)
                continue
            x, y, side, _score = max(tops, key=lambda top: top[3])
            to_full = photo.size[0] / photo.image.width
            x, y, side = x * to_full, y * to_full, side * to_full
            crops.append(Crop(example.path, x, y, side, example.label_name, number, example.source))
        width, height = photo.size
        for _ in range(NONE_PER_PHOTO):
            for _attempt in range(30):
                nx, ny = rng.uniform(0, width), rng.uniform(0, height)
                if abs(nx - x) > side * 1.5 or abs(ny - y) > side * 1.5:
                    none_side = side * rng.uniform(0.6, 1.6)
                    crops.append(Crop(example.path, nx, ny, none_side, "none", number, example.source))
                    break
    return crops, missed


def _base_judge(artifact, judge, fine_tune: bool) -> tuple[Any, Any, float]:
    """(front, trainable part, temperature) of the base model's judge.

    The trainable part is its linear layer on pooled features or, with ``fine_tune``, the
    backbone after block :data:`ADAPT_CUT` with the linear layer; the front computes what it
    takes, with the base judge's own weights.
    """

    from bottlecheck.training.judge import judge_features_model, judge_head

    if fine_tune:
        front, trained = judge_trunk_model(cut=ADAPT_CUT), judge_tail(cut=ADAPT_CUT)
    else:
        front, trained = judge_features_model(), judge_head()
        trained.set_weights(judge.get_layer("judge_head").get_weights())
    copy_weights_by_name(judge, front)
    copy_weights_by_name(judge, trained)
    return front, trained, float(artifact.stage("judge")["temperature"])


def adapt_judge(config: TrainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Refit the judge of the two-stage model ``config.base`` on ``config.data_dirs``; save to ``config.out``."""
    from bottlecheck.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from bottlecheck.training.model import artifact_identity

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    artifact = load_artifact(None if config.base == "bundled" else config.base)
    base = TopsClassifier.from_artifact(artifact, engine="litert")
    train_set, val_set = split_training_data(config)
    log(
        f"{describe_split(train_set, val_set)}; base {artifact.name} {artifact.version}: "
        "the finder is kept, the judge is refit"
    )
    marked = corrected_tops(config.data_dirs)
    if marked:
        log(f"tops marked by a person in {len(marked)} photo(s) (tops.json): their crops are cut there")
    train_crops, missed = find_top_crops(base, train_set, config.seed, marked)
    val_crops, val_missed = find_top_crops(base, val_set, config.seed + 1, marked)
    if missed:
        log(f"no top found in {len(missed)} training photo(s), left out: {', '.join(Path(p).name for p in missed[:5])}")
    tops = Counter(c.label for c in train_crops if c.label != "none")
    if min(tops.get(label, 0) for label in LABELS) < 2:
        raise ValueError(f"the finder found too few tops to learn from ({dict(tops)}): need 2 open and 2 closed")

    fine_tune = min(tops.get(label, 0) for label in LABELS) >= FINETUNE_MIN_PER_CLASS
    base_judge = keras.models.load_model(artifact.file("keras", "judge"), compile=False)
    if is_gated(base_judge):
        judge, calibration, how = _refit_cap(base_judge, train_crops, val_crops, config.seed, log)
        settings: dict[str, Any] = {"views": TRAIN_VIEWS, "pulls_towards_base_cap": [str(p) for p in PULLS]}
    else:
        judge, calibration, how = _refit_judge(artifact, base_judge, fine_tune, train_crops, val_crops, config, log)
        settings = {
            "epochs": max(1, config.epochs) * 3,
            "learning_rate": config.learning_rate * (3 if fine_tune else 10),
            "views": TRAIN_VIEWS,
            "fine_tuned": fine_tune,
        }
    log(calibration["note"])
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    for stage_file in artifact.stage("finder")["files"].values():
        shutil.copy2(artifact.directory / stage_file, out / stage_file)
    judge.save(out / "judge.keras")
    from bottlecheck.training.model import export_tflite

    export_tflite(judge, out / "judge.tflite")

    metadata = dict(artifact.metadata)
    metadata["stages"] = {**artifact.stages, "judge": {**artifact.stage("judge")}}
    metadata["stages"]["judge"].update(
        files={"tflite": "judge.tflite", "keras": "judge.keras"}, temperature=round(calibration["temperature"], 4)
    )
    kept = {layer.name for layer in judge.layers}
    if RESCUE_LAYER not in kept:  # a judge rebuilt without it: no fourth output
        metadata["stages"]["judge"].pop("rescue", None)
    if LAST_LOOK_LAYER not in kept:  # nor a fifth (a last look needs the rescue gate beside it)
        metadata["stages"]["judge"].pop("last_look", None)
    if not calibration.get("base_cap_kept"):  # the base's correction of its cap on unseen sources (tops 3.4.0)
        metadata["stages"]["judge"].pop("photo_calibration", None)  # is not the refit cap's: drop it
    identity = artifact_identity(artifact.name, config.version, base_version=artifact.version)
    metadata.update(
        version=identity["version"],
        created=identity["created"],
        training={
            "bottlecheck": __version__,
            "recipe": "bottlecheck train on a two-stage base: the finder kept, the judge refit on the finder's "
            "top in each photo (bottlecheck/training/adapt_judge.py): " + how,
            "base": {"name": artifact.name, "version": artifact.version, "sha256": artifact.checksum},
            "data": describe_sources(config.data_dirs, config.data_root),
            "photos": {"train": len(train_set), "validation": len(val_set)},
            "crops": dict(Counter(c.label for c in train_crops)),
            "no_top_found": {"train": len(missed), "validation": len(val_missed)},
            "calibration": calibration,
            "config": settings,
        },
    )
    write_metadata(out, metadata)

    adapted = Classifier.load(out, engine="litert")
    before, _ = evaluate(base, val_set, workers=config.workers)
    after, _ = evaluate(adapted, val_set, workers=config.workers)
    trust = how_far_to_trust(_photo_summary(after), config.data_dirs)
    metadata["metrics"] = {
        "validation": _photo_summary(after),
        "validation_base_model": _photo_summary(before),
        "trust": trust,
    }
    write_metadata(out, metadata)
    for name, report in (("base model", before), ("adapted", after)):
        summary = _photo_summary(report)
        log(
            f"validation ({len(val_set)} images), {name}: accuracy {summary['accuracy']}, "
            f"balanced accuracy (unknown as wrong) {summary['balanced_accuracy_unknown_as_wrong']}, "
            f"unknown {summary['unknown']}"
        )
    log(trust["note"])
    log(f"wrote {out} in {time.time() - started:.0f}s")
    return metadata


def _refit_judge(artifact, base_judge, fine_tune: bool, train_crops, val_crops, config: TrainConfig, log):
    """A plain judge's refit (tops 2.x's kind): its linear layer, or with ``fine_tune`` the back of its backbone too."""
    import keras

    from bottlecheck.training.tops_model import build_judge

    front, trained, base_temperature = _base_judge(artifact, base_judge, fine_tune)
    log(
        "the judge's last backbone block, 1x1 head and linear layer learn"
        if fine_tune
        else f"fewer than {FINETUNE_MIN_PER_CLASS} tops of a class: only the judge's linear layer learns"
    )
    features, labels = compute_judge_features(train_crops, TRAIN_VIEWS, config.seed, True, lambda _line: None, front)
    val_features, val_labels = compute_judge_features(val_crops, 1, config.seed + 1, False, lambda _line: None, front)
    weights = _class_weights(labels)
    trained.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate * (3 if fine_tune else 10)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    epochs = max(1, config.epochs) * 3
    steps = math.ceil(len(labels) / 32)
    for epoch in range(epochs):
        history = trained.fit(
            features, labels, sample_weight=weights, batch_size=32, epochs=1, verbose=0, shuffle=True
        ).history
        if epoch % 3 == 2 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}, {len(labels)} crop views ({steps} steps)")

    calibration = _calibrate(trained, val_features, val_labels, base_temperature)
    judge = (
        build_judge(None, calibration["temperature"], tail=trained)
        if fine_tune
        else build_judge(trained, calibration["temperature"])
    )
    copy_weights_by_name(front, judge)  # the blocks before the cut are the base judge's, not ImageNet's
    how = (
        f"the backbone after block {ADAPT_CUT}, its 1x1 head and the linear layer"
        if fine_tune
        else "the linear layer alone"
    )
    return judge, calibration, how


def is_gated(judge) -> bool:
    """Whether a judge is the cap judge (tops 3.x): a gate times a cap (``build_gated_judge``)."""
    return "cap" in {layer.name for layer in judge.layers}


def _refit_cap(base_judge, train_crops, val_crops, seed: int, log):
    """The cap judge's refit (tops 3.x): the gate kept, the cap refit from the base's cap towards the user's tops.

    The cap starts where the base's is and an L2 pulls it back there: a linear layer fitted from
    zero on one scene's twenty photos learns that scene (issue 24); pulled towards a cap that knows
    many sources, it moves only as far as the user's tops ask. How hard (:data:`PULLS`, the base's
    cap kept and a fit from zero among them) is chosen by cross-validation on the training photos.
    """
    from bottlecheck.training.judge import (
        LinearCap,
        cap_features_model,
        cap_pooling_of,
        judge_temperature,
    )
    from bottlecheck.training.tops_model import build_gated_judge

    pooling = cap_pooling_of(base_judge)  # the base's cap reads its block pooled this way: so does the refit
    front = cap_features_model(pooling=pooling)
    copy_weights_by_name(base_judge, front)
    kernel, bias = base_judge.get_layer("cap").get_weights()
    prior = LinearCap(kernel[:, 0].astype(np.float64), float(bias[0]))  # in the base's calibrated units
    tops = [c for c in train_crops if c.label != "none"]
    val_tops = [c for c in val_crops if c.label != "none"]
    features, labels = compute_judge_features(tops, TRAIN_VIEWS, seed, True, lambda _line: None, front)
    is_open = (labels == JUDGE_LABELS.index("open")).astype(int)
    weights = _class_weights(labels)
    choice = choose_pull(
        features,
        is_open,
        np.repeat([c.index for c in tops], TRAIN_VIEWS),
        weights,
        prior,
        source_of_view=np.repeat([c.group for c in tops], TRAIN_VIEWS),
    )
    log(choice.describe())
    cap = fit_with_pull(features, is_open, weights, prior, choice.pull)
    log(f"the cap judge's cap: {pull_name(choice.pull)}, on {len(labels)} views of {len(tops)} tops; the gate is kept")
    per_class = [sum(c.label == name for c in val_tops) for name in LABELS]
    calibration: dict[str, Any]
    if math.isinf(choice.pull):  # the base's cap, in the base's calibrated units: nothing to refit
        calibration = {
            "fitted": False,
            "temperature": 1.0,
            "validation_tops_per_class": per_class,
            "note": "the base's cap is kept as it is, and its calibration with it",
            "base_cap_kept": True,
        }
    elif min(per_class) < MIN_CALIBRATION_PER_CLASS:
        calibration = {
            "fitted": False,
            "temperature": 1.0,
            "validation_tops_per_class": per_class,
            "note": f"validation has {per_class[0]} closed and {per_class[1]} open tops, fewer than "
            f"{MIN_CALIBRATION_PER_CLASS} of each: the cap keeps the base cap's calibration (temperature 1 on it)",
        }
    else:
        val_features, val_labels = compute_judge_features(val_tops, 1, seed + 1, False, lambda _line: None, front)
        temperature = judge_temperature(cap.logits(val_features), val_labels == JUDGE_LABELS.index("open"))
        calibration = {
            "fitted": True,
            "temperature": temperature,
            "validation_tops_per_class": per_class,
            "note": f"cap temperature {temperature:.3f} fitted on {len(val_labels)} validation tops",
        }
    judge = build_gated_judge(base_judge, cap, float(calibration["temperature"]), pooling)
    calibration["cross_validation"] = choice.as_metadata()
    how = f"the cap judge's gate kept; its cap: {pull_name(choice.pull)} ({choice.describe()})"
    for layer, (gate, pull) in _refit_real_gates(base_judge, train_crops, seed).items():
        kernel, bias = judge.get_layer(layer).get_weights()
        judge.get_layer(layer).set_weights(
            [gate.kernel.reshape(kernel.shape).astype(kernel.dtype), np.array([gate.bias], dtype=bias.dtype)]
        )
        what = "rescue gate" if layer == RESCUE_LAYER else "last look's gate"
        how += f"; its {what} pulled towards the base's at L2 {pull:g} by the user's tops and not-tops"
        log(f"the {what}: refit on {len(train_crops)} crops, pulled towards the base's at L2 {pull:g}")
    return judge, calibration, how


def _refit_real_gates(base_judge, crops: Sequence[Crop], seed: int) -> dict[str, tuple[Any, float]]:
    """The base's real-photo gates moved towards the user's photos: their tops are tops, the patches beside them not.

    The first gate learned its tops from renders and turns down many real ones (a user's PET
    necks: the photo is then ``unknown`` whatever the cap learns); the rescue gate counts a
    turned-down candidate it is sure of, and the last look (tops 3.5.0) one in a photo where
    nothing else counts. Pulled towards the base's (which know real not-tops: bowls, labels,
    glasses) at :data:`RESCUE_PULL` and :data:`LAST_LOOK_PULL`, twenty photos teach them what a
    top looks like here without unlearning those. Each gate the base has and a pull is set for:
    (its refit, the pull), by layer name; both read the same features.
    """
    names = {layer.name for layer in base_judge.layers}
    asked = ((RESCUE_LAYER, RESCUE_PULL), (LAST_LOOK_LAYER, LAST_LOOK_PULL))
    pulls: dict[str, float] = {layer: pull for layer, pull in asked if pull is not None and layer in names}
    if not pulls:
        return {}
    from bottlecheck.training.judge import LinearCap, fit_linear_cap, judge_features_model

    front = judge_features_model()
    copy_weights_by_name(base_judge, front)
    features, labels = compute_judge_features(crops, TRAIN_VIEWS, seed + 7, True, lambda _line: None, front)
    is_top = (labels != JUDGE_LABELS.index("none")).astype(int)
    counts = np.bincount(is_top, minlength=2).astype(float)
    if counts.min() == 0:
        return {}
    weights = len(is_top) / (2 * counts[is_top])  # tops and not-tops weigh alike
    refits = {}
    for layer, pull in pulls.items():
        kernel, bias = base_judge.get_layer(layer).get_weights()
        prior = LinearCap(kernel[:, 0].astype(np.float64), float(bias[0]))
        refits[layer] = (fit_linear_cap(features, is_top, weights, pull, prior=prior), pull)
    return refits


def _class_weights(labels: np.ndarray) -> np.ndarray:
    """Each of closed, open and none weighs the same in the loss, whatever their counts."""
    counts = np.bincount(labels, minlength=len(JUDGE_LABELS)).astype(float)
    per_class = np.where(counts > 0, len(labels) / (len(JUDGE_LABELS) * np.maximum(counts, 1)), 0.0)
    return per_class[labels]


def _calibrate(head, features: np.ndarray, labels: np.ndarray, base_temperature: float) -> dict[str, Any]:
    per_class = [int((labels == JUDGE_LABELS.index(name)).sum()) for name in LABELS]
    if min(per_class) < MIN_CALIBRATION_PER_CLASS:
        return {
            "fitted": False,
            "temperature": base_temperature,
            "validation_tops_per_class": per_class,
            "note": f"validation has {per_class[0]} closed and {per_class[1]} open tops, fewer than "
            f"{MIN_CALIBRATION_PER_CLASS} of each: the base model's temperature {base_temperature:.3f} is kept",
        }
    temperature = judge_temperature(head.predict(features, verbose=0), labels)
    return {
        "fitted": True,
        "temperature": temperature,
        "validation_tops_per_class": per_class,
        "note": f"temperature {temperature:.3f} fitted on {len(labels)} validation crops",
    }


def wilson_interval(right: int, count: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``right / count`` (sound at small counts, unlike +-2 SE)."""
    if count <= 0:
        return 0.0, 1.0
    p = right / count
    centre = (p + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return max(0.0, centre - half), min(1.0, centre + half)


def how_far_to_trust(validation: dict[str, Any], data_dirs: Sequence[str | Path]) -> dict[str, Any]:
    """What the validation figures can say: their 95% interval, and that they come from the training scenes.

    The validation photos are a share of the same folders the model trained on: the same bottles,
    tables and light. A judge adapted on one scene can fail on the same bottle in another
    (issue 24), so these figures say how it does where it was trained, no more.
    """
    count = int(validation.get("count") or 0)
    accuracy = validation.get("accuracy")
    low, high = wilson_interval(round(float(accuracy) * count), count) if accuracy is not None else (0.0, 1.0)
    folders = ", ".join(Path(d).name for d in data_dirs)
    return {
        "validation_photos": count,
        "accuracy_95_interval": [round(low, 3), round(high, 3)],
        "same_scenes_as_training": True,
        "note": (
            f"how far to trust this: the validation figures are {count} answered photos from the folders trained on "
            f"({folders}); the accuracy's 95% interval is {low:.2f}-{high:.2f}, and they say nothing of other "
            "scenes (another table, light, hand-held): measure those with `bottlecheck evaluate` on photos "
            "taken elsewhere before relying on it"
        ),
    }


def _photo_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Photo-level figures: accuracy of the answers given, and with ``unknown`` counted as wrong."""
    unknown = report.get("unknown", {})
    by_label = unknown.get("by_label", {})
    return {
        "count": report.get("count"),
        "accuracy": report.get("accuracy"),
        "ece": report.get("ece"),
        "unknown": sum(by_label.get(name, 0) for name in LABELS),
        "balanced_accuracy_unknown_as_wrong": unknown.get("balanced_accuracy_unknown_as_wrong")
        or report.get("balanced_accuracy"),
    }
