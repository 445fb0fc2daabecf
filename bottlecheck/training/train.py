"""Fine-tune the classifier on labelled folders and write a complete model artefact.

Recipe: EfficientNet-Lite0 from the bundled model (or ImageNet), batch norm kept
in inference mode (small CPU batches would corrupt its statistics), the top
blocks and the head trained with Adam on a cosine schedule, early stopping on
validation loss. Then, on the validation split: temperature scaling so that
confidence means what it says, and the decision threshold with the best
balanced accuracy.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bottlecheck import __version__
from bottlecheck.artifact import TOPS, WHOLE_PHOTO, load_artifact
from bottlecheck.evaluation.datasets import Example, describe_sources
from bottlecheck.evaluation.metrics import choose_threshold, classification_report, fit_temperature, reports_by_source
from bottlecheck.labels import LABELS
from bottlecheck.train_config import TrainConfig
from bottlecheck.training.data import ImageBatches
from bottlecheck.training.split import MIN_CALIBRATION_PER_CLASS, describe_split, split_training_data


def _load_base(config: TrainConfig):
    import keras

    from bottlecheck.training.model import build_classifier, set_temperature

    if config.base == "imagenet":
        return build_classifier(config.input_size), "ImageNet EfficientNet-Lite0"
    artifact = load_artifact(None if config.base == "bundled" else config.base)
    model = keras.models.load_model(artifact.file("keras"), compile=False)
    set_temperature(model, 1.0)
    return model, f"{artifact.name} {artifact.version}"


def _sample_weights(examples: Sequence[Example], source_weights: dict[str, float]) -> list[float]:
    """Balance labels within each source, then scale each source by its weight (default 1)."""
    counts = Counter((e.source, e.label) for e in examples)
    per_source = Counter(e.source for e in examples)
    raw = [
        per_source[e.source] / (2 * counts[(e.source, e.label)]) * source_weights.get(e.source, 1.0) for e in examples
    ]
    mean = float(np.mean(raw))
    return [w / mean for w in raw]


TEMPERATURE_RANGE = (0.5, 4.0)


def calibrate(labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """Temperature and threshold from validation, when there is enough of it to trust them.

    With fewer than ``MIN_CALIBRATION_PER_CLASS`` validation images of either class the
    model keeps temperature 1 and threshold 0.5, and says so; a fitted temperature is kept
    inside ``TEMPERATURE_RANGE`` (outside it, it describes the few images, not the model).
    """
    per_class = [int((labels == k).sum()) for k in (0, 1)]
    if min(per_class) < MIN_CALIBRATION_PER_CLASS:
        return {
            "fitted": False,
            "temperature": 1.0,
            "threshold": 0.5,
            "validation_per_class": per_class,
            "reason": f"validation has {per_class[0]} closed and {per_class[1]} open images, fewer than "
            f"{MIN_CALIBRATION_PER_CLASS} of each: temperature 1 and threshold 0.5 kept, and the validation "
            "numbers can move a lot with one image; add photos or evaluate on a larger set",
        }
    temperature = float(np.clip(fit_temperature(labels, logits), *TEMPERATURE_RANGE))
    threshold = choose_threshold(labels, 1 / (1 + np.exp(-logits / temperature)))
    return {"fitted": True, "temperature": temperature, "threshold": threshold, "validation_per_class": per_class}


def predict_logits(model, examples: Sequence[Example], size: int, batch_size: int, workers: int) -> np.ndarray:
    from bottlecheck.training.model import logit_model

    batches = ImageBatches(examples, size, batch_size, augment_images=False, seed=0, workers=workers)
    return logit_model(model).predict(batches, verbose=0).reshape(-1)


def train(config: TrainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a one-stage model, calibrate, choose the threshold, and save the artefact to ``config.out``.

    A two-stage base (a ``tops`` model, as the bundled one is) is not trained here: its finder is kept and its
    judge refitted by :func:`bottlecheck.training.adapt_judge.adapt_judge` (``bottlecheck train``
    picks that one for such a base).
    """
    if config.base != "imagenet" and load_artifact(None if config.base == "bundled" else config.base).kind == TOPS:
        raise ValueError(
            f"{config.base} is a two-stage model: bottlecheck.training.adapt_judge refits its judge "
            "(bottlecheck train picks it for such a base)"
        )
    from bottlecheck.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from bottlecheck.training.model import artifact_identity, freeze_backbone, save_artifact, set_temperature

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = split_training_data(config)
    examples = [*train_set, *val_set]
    log(describe_split(train_set, val_set))

    model, base_name = _load_base(config)
    weights = _sample_weights(train_set, config.source_weights)
    train_batches = ImageBatches(
        train_set,
        config.input_size,
        config.batch_size,
        augment_images=True,
        seed=config.seed,
        weights=weights,
        workers=config.workers,
    )
    val_batches = ImageBatches(
        val_set, config.input_size, config.batch_size, augment_images=False, seed=config.seed, workers=config.workers
    )
    batches = len(train_batches)  # type: ignore[arg-type]  # a keras PyDataset, made in __new__
    steps = min(batches, config.max_steps_per_epoch or batches)

    class EpochLine(keras.callbacks.Callback):
        def __init__(self, offset: int, phase: str):
            super().__init__()
            self.offset, self.phase = offset, phase

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(
                f"epoch {self.offset + epoch + 1}/{warmup_epochs + config.epochs} ({self.phase}): "
                f"loss {logs.get('loss', math.nan):.4f} acc {logs.get('acc', math.nan):.4f} "
                f"val_loss {logs.get('val_loss', math.nan):.4f} val_acc {logs.get('val_acc', math.nan):.4f} "
                f"val_auc {logs.get('val_auc', math.nan):.4f} ({time.time() - started:.0f}s)"
            )

    def fit(epochs: int, learning_rate: float, offset: int, phase: str, callbacks=()):
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps * epochs), alpha=0.05)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.BinaryAccuracy(name="acc"), keras.metrics.AUC(name="auc")],
        )
        return model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=epochs,
            verbose=0,
            steps_per_epoch=config.max_steps_per_epoch,
            callbacks=[EpochLine(offset, phase), *callbacks],
        )

    # A new head first: random head gradients would otherwise knock the pretrained features about.
    # Only a new (ImageNet) head needs it; a bottlecheck base already has a trained head.
    warmup_epochs = config.warmup_epochs if config.base == "imagenet" else 0
    if warmup_epochs:
        freeze_backbone(model, "open_logit")
        fit(warmup_epochs, config.learning_rate * 10, 0, "head")
    freeze_backbone(model, config.trainable_from)
    history = fit(
        config.epochs,
        config.learning_rate,
        warmup_epochs,
        "fine-tune",
        [keras.callbacks.EarlyStopping("val_loss", patience=config.patience, restore_best_weights=True)],
    )

    logits = predict_logits(model, val_set, config.input_size, config.batch_size, config.workers)
    labels = np.array([e.label for e in val_set])
    calibration = calibrate(labels, logits)
    temperature, threshold = calibration["temperature"], calibration["threshold"]
    p_open = 1 / (1 + np.exp(-logits / temperature))
    set_temperature(model, temperature)
    report = classification_report(labels, p_open, threshold)
    by_source = reports_by_source(labels, p_open, [e.source for e in val_set], threshold)
    log(
        f"validation ({len(val_set)} images): accuracy {report['accuracy']:.4f}, AUC {report['roc_auc']}, "
        f"ECE {report['ece']:.4f}, temperature {temperature:.3f}, threshold {threshold:.3f}"
    )
    if not calibration["fitted"]:
        log(f"note: {calibration['reason']}")

    metadata = {
        **artifact_identity("bottlecheck-lite0", config.version),
        "kind": WHOLE_PHOTO,
        "threshold": round(threshold, 4),
        "training": {
            "bottlecheck": __version__,
            "base": base_name,
            "data": describe_sources(config.data_dirs, config.data_root),
            "train_count": len(train_set),
            "val_count": len(val_set),
            "per_source": {
                s: dict(Counter(LABELS[e.label] for e in examples if e.source == s))
                for s in sorted({e.source for e in examples})
            },
            "epochs_run": len(history.history.get("loss", [])),
            "config": {
                **{k: v for k, v in vars(config).items() if k not in ("data_dirs", "out", "data_root")},
                "base": base_name,
            },
            "seconds": round(time.time() - started, 1),
        },
        "metrics": {"validation": report, "validation_by_source": by_source},
        "calibration": calibration,
    }
    save_artifact(model, config.out, metadata)
    log(f"wrote {config.out} in {time.time() - started:.0f}s")
    return json.loads(json.dumps(metadata))
