"""Train the top judge: open, closed or no top at all, from a close crop around one found top.

The judge sees a square cut around a top, ``span`` times the top's box side, resized to
``JUDGE_SIZE``: the neck and the lip, not the background, so the one-source-per-class
shortcut of the real photos is weakened and a cap that is 5 pixels wide in the whole photo
fills the input. Its third class, ``none``, is what the finder may mistake for a top
(a round logo, a loose cap on the table, a glass rim): the judge can overrule the finder.

Like the finder, it is a frozen ImageNet EfficientNet-Lite0 with a small head trained on
precomputed features of augmented views: the probe in issue 14 showed these
features separate open from closed crops almost perfectly, and on 2 cores it trains in
minutes. Temperature scaling on held-out crops makes its probabilities calibrated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bottlecheck.evaluation.metrics import fit_temperature
from bottlecheck.imaging import PAD_VALUE, decode_image
from bottlecheck.tops import cut_square
from bottlecheck.training.finder import photometric, render_records

JUDGE_SIZE = 128
JUDGE_LABELS = ("closed", "open", "none")
CROP_SPAN = 2.5  # the crop's side in units of the top's box side, at inference


@dataclass
class Crop:
    """A picture holding one top (or none): its path, the top's centre and side in its pixels, and the label."""

    path: str
    x: float
    y: float
    side: float
    label: str
    index: int = 0
    group: str = "rendered"
    family: str = ""  # what kind of top (a cap style, foil, PET, ...): whole families are held out


def load_render_crops(render_dirs: Sequence[str | Path], negatives_per_scene: int = 2, seed: int = 0) -> list[Crop]:
    """The close-ups of tops from the renders, and ``none`` crops cut from the frames away from any top."""
    rng = random.Random(seed)
    crops = []
    for directory, meta in render_records(render_dirs):
        for crop in meta.get("crops", []):
            path = directory / crop["path"]
            if not path.is_file():
                continue
            with Image.open(path) as image:  # older renders recorded an unclipped crop box: fix it here
                scale = image.width / max(1e-6, crop["crop_box"][2] - crop["crop_box"][0])
            top = meta["tops"][crop["top"]]
            bx0, by0, bx1, by1 = top["box"]
            cx0, cy0 = max(0.0, crop["crop_box"][0]), max(0.0, crop["crop_box"][1])
            x, y = ((bx0 + bx1) / 2 - cx0) * scale, ((by0 + by1) / 2 - cy0) * scale
            side = max(bx1 - bx0, by1 - by0) * scale
            crops.append(Crop(str(path), x, y, side, crop["label"], meta["index"]))
        frame = directory / meta["path"]
        tops = [t for t in meta["tops"] if t["in_frame"]]
        sides = [max(t["box"][2] - t["box"][0], t["box"][3] - t["box"][1]) for t in tops] or [30.0]
        for _ in range(negatives_per_scene):
            side = rng.choice(sides) * rng.uniform(0.6, 1.6)
            for _attempt in range(20):
                x, y = rng.uniform(0, meta["width"]), rng.uniform(0, meta["height"])
                if all(abs(x - t["centre"][0]) > side * 1.2 or abs(y - t["centre"][1]) > side * 1.2 for t in tops):
                    crops.append(Crop(str(frame), x, y, side, "none", meta["index"]))
                    break
    return crops


#: Training spans of a view (in units of the top's side), log-uniform: an answer must not move
#: with the crop (tops 2.x's judge, trained at 2.5 +- 30%, flipped between 1.6 and 4: issue 24).
TRAIN_SPAN = (1.5, 4.0)


def judge_view(
    image: Image.Image,
    crop: Crop,
    rng: random.Random,
    train: bool = True,
    low_res_share: float = 0.45,
    hue_share: float = 0.3,
    size: int = JUDGE_SIZE,
) -> np.ndarray:
    """One view of a crop as the judge sees it: cut as the finder would (with its errors), turned, mirrored.

    Training views remove the shortcuts tops 2.x's judge took (issue 24): the span
    moves over :data:`TRAIN_SPAN` and the centre by a quarter of the top's side, so how much
    neck and background the view holds says nothing; a view is turned by any angle half the
    time (bottles lie, lean and are held); colour is changed, sometimes removed, so that a
    white cap on clear glass is told from a bright rim by its shape, not its tone.
    ``low_res_share`` of the views lose their detail and ``hue_share`` have their hue turned: model
    3's cap judge, a linear layer on frozen features that cannot learn to see through a blurred
    view, measured better without either (``recipe/train_cap_judge.py``).
    """
    side, x, y = crop.side, crop.x, crop.y
    span = CROP_SPAN
    if train:
        span = math.exp(rng.uniform(math.log(TRAIN_SPAN[0]), math.log(TRAIN_SPAN[1])))
        x += rng.uniform(-0.25, 0.25) * side  # the finder's position error
        y += rng.uniform(-0.25, 0.25) * side
    view = cut_square(image, x, y, max(side * span, 8.0), size)
    if train:
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < 0.5:
            view = view.rotate(rng.uniform(-180, 180), resample=Image.Resampling.BILINEAR, fillcolor=(PAD_VALUE,) * 3)
        if rng.random() < low_res_share:  # a small top seen up close (street tables: 15-40 px): lose detail first
            low = rng.randint(8, 48)
            view = view.resize((low, low), Image.Resampling.BILINEAR).resize((size,) * 2, Image.Resampling.BILINEAR)
        if rng.random() < 0.15:
            view = view.convert("L").convert("RGB")
        elif rng.random() < hue_share:
            view = hue_shift(view, rng.uniform(-0.5, 0.5))
        view = photometric(view, rng)
    return np.asarray(view, dtype=np.uint8)


def hue_shift(image: Image.Image, turn: float) -> Image.Image:
    """``image`` with every hue turned by ``turn`` of a full circle (saturation and value kept)."""
    hsv = np.asarray(image.convert("HSV"), dtype=np.uint8).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(turn * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def judge_features_model(size: int = JUDGE_SIZE):
    """The whole backbone: ImageNet EfficientNet-Lite0 at ``size`` px, globally pooled (1280 numbers)."""
    import keras

    from bottlecheck.training.backbone import efficientnet_lite0_features, load_imagenet_weights

    inputs = keras.Input((size, size, 3), name="crop")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(efficientnet_lite0_features(inputs))
    model = keras.Model(inputs, pooled, name="judge_features")
    load_imagenet_weights(model)
    return model


#: The judge's backbone is frozen up to this block (stride 16, 112 channels) and fine-tuned after
#: it: a linear layer on frozen features learned the training sources' look (tops 2.x), while the
#: front computed once per view keeps fine-tuning within a 2-core machine's reach.
TRUNK_LAST_BLOCK = 10


def judge_trunk_model(size: int = JUDGE_SIZE, cut: int = TRUNK_LAST_BLOCK):
    """The frozen front: ImageNet EfficientNet-Lite0 up to block ``cut``."""
    import keras

    from bottlecheck.training.backbone import efficientnet_lite0_features, load_imagenet_weights

    inputs = keras.Input((size, size, 3), name="crop")
    model = keras.Model(inputs, efficientnet_lite0_features(inputs, last_block=cut), name="judge_trunk")
    load_imagenet_weights(model)
    return model


def judge_tail(size: int = JUDGE_SIZE, cut: int = TRUNK_LAST_BLOCK, dropout: float = 0.3, l2: float = 1e-3):
    """The trained back: the blocks after the trunk, the 1x1 head, pooling and :func:`judge_head`.

    Starts from ImageNet; batch normalisation keeps ImageNet's statistics (a few thousand crops
    would only add noise to them), the convolutions and the linear layer learn.
    """
    import keras

    from bottlecheck.training.backbone import block_output, efficientnet_lite0_features, load_imagenet_weights

    stride, channels = block_output(cut)
    inputs = keras.Input((size // stride, size // stride, channels), name="trunk")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(efficientnet_lite0_features(inputs, first_block=cut + 1))
    model = keras.Model(inputs, judge_head(dropout, l2)(pooled), name="judge_tail")
    load_imagenet_weights(model)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


def copy_weights_by_name(source, target) -> int:
    """Copy the weights of every layer of ``source`` into ``target``'s layer of the same name; return how many."""
    names = {layer.name for layer in target.layers}
    copied = 0
    for layer in source.layers:
        if layer.name in names and layer.get_weights():
            target.get_layer(layer.name).set_weights(layer.get_weights())
            copied += 1
    return copied


def compute_judge_features(
    crops: Sequence[Crop],
    views: int,
    seed: int,
    train: bool,
    log: Callable[[str], None] = print,
    extractor=None,
    view: Callable[..., np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``extractor``'s outputs (default: the pooled backbone) on ``views`` views of each crop, and the labels.

    ``view`` cuts each view (default :func:`judge_view`).
    """
    view = view or judge_view
    extractor = extractor or judge_features_model()
    rng = random.Random(seed)
    arrays, labels, parts = [], [], []
    cache: dict[str, Image.Image] = {}
    for number, crop in enumerate(crops):
        image = cache.get(crop.path) or decode_image(crop.path)
        cache = {crop.path: image}  # crops of one frame come together
        for _ in range(views):
            arrays.append(view(image, crop, rng, train))
            labels.append(JUDGE_LABELS.index(crop.label))
        if len(arrays) >= 256:
            parts.append(extractor.predict(np.stack(arrays).astype(np.float32), verbose=0, batch_size=64))
            arrays.clear()
        if number % 500 == 0:
            log(f"judge features: {number}/{len(crops)} crops")
    if arrays:
        parts.append(extractor.predict(np.stack(arrays).astype(np.float32), verbose=0, batch_size=64))
    return np.concatenate(parts), np.array(labels)


def judge_head(dropout: float = 0.3, l2: float = 1e-3):
    """The trained part: dropout and one dense layer to three logits (a linear probe, regularised)."""
    import keras

    features = keras.Input((1280,), name="features")
    x = keras.layers.Dropout(dropout)(features)
    logits = keras.layers.Dense(len(JUDGE_LABELS), kernel_regularizer=keras.regularizers.l2(l2), name="judge_logits")(x)
    return keras.Model(features, logits, name="judge_head")


#: The temperatures a judge's fit (its softmax's, or the cap's sigmoid's) may give: outside them
#: it describes the few validation tops, not the judge (as ``training.train.TEMPERATURE_RANGE``
#: bounds a whole-photo model's).
JUDGE_TEMPERATURE_RANGE = (0.3, 6.0)


def judge_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """A judge's temperature: the one fitter (:func:`~bottlecheck.evaluation.metrics.fit_temperature`), bounded.

    The fit is kept within :data:`JUDGE_TEMPERATURE_RANGE`.

    ``logits`` of several columns (closed, open, none) with ``labels`` each crop's column, or
    the cap's one logit with ``labels`` whether each top is open.
    """
    return float(np.clip(fit_temperature(labels, logits), *JUDGE_TEMPERATURE_RANGE))


# ---------------------------------------------------------------- the cap judge (tops 3.x)
#: The block whose pooled output the cap judge reads (Lite0's last, 320 channels, before the 1x1
#: head). Measured leaving one source out on crops of the marked tops: a linear layer on it
#: carried open-vs-closed to unseen sources better than on the 1x1 head's 1280 ImageNet-class
#: features and better than fine-tuning the back of the backbone, which learned the training
#: sources again (the figures: model/HISTORY.md, 3.0.0).
CAP_LAYER = "blocks_15_project_conv"
CAP_CHANNELS = 320
#: How the cap judge pools :data:`CAP_LAYER`'s map (4x4 at the judge's 128 px): ``mean`` over all
#: of it, ``centre`` over its middle 2x2 (the cells over the middle half of the crop, where the top
#: is; their receptive fields still reach the edges, so the neck and background weigh less, not
#: nothing), or both side by side.
CAP_POOLINGS = ("mean", "centre", "mean+centre")


def cap_pooling(block_output, pooling: str = "mean"):
    """Keras layers that pool the cap block's map as ``pooling`` says; shared by training and the shipped judge."""
    import keras

    layers = keras.layers
    if pooling not in CAP_POOLINGS:
        raise ValueError(f"unknown cap pooling {pooling!r}; known: {CAP_POOLINGS}")
    mean = layers.GlobalAveragePooling2D(name="pool_cap")
    if pooling == "mean":
        return mean(block_output)
    side = int(block_output.shape[1])
    centre = layers.GlobalAveragePooling2D(name="pool_cap_centre")(
        layers.Cropping2D(side // 4, name="cap_centre")(block_output)
    )
    if pooling == "centre":
        return centre
    return layers.Concatenate(name="pool_cap_both")([mean(block_output), centre])


def cap_pooling_of(judge) -> str:
    """Which :data:`CAP_POOLINGS` a gated judge was built with (read from its layers' names)."""
    names = {layer.name for layer in judge.layers}
    if "pool_cap_centre" not in names:
        return "mean"
    return "mean+centre" if "pool_cap" in names else "centre"


def cap_features_model(size: int = JUDGE_SIZE, pooling: str = "mean", variant: int = 0):
    """ImageNet EfficientNet-Lite0, frozen, to :data:`CAP_LAYER`'s map pooled as ``pooling`` says.

    ``variant`` 1 or 2 reads Lite1's or Lite2's last block instead (the same place in a deeper,
    wider network): ``recipe/train_cap_judge.py --cap-backbone`` measures them; a shipped judge
    holds Lite0 only, whose gate shares the pass.
    """
    import keras

    from bottlecheck.training.backbone import imagenet_backbone, last_block

    inputs = keras.Input((size, size, 3), name="crop")
    whole, stages = imagenet_backbone(inputs, variant)
    layer = CAP_LAYER if not variant else f"blocks_{last_block(stages)}_project_conv"
    return keras.Model(inputs, cap_pooling(whole.get_layer(layer).output, pooling), name="cap_features")


@dataclass
class LinearCap:
    """p(open | a top) = sigmoid(features @ kernel + bias): standardisation folded into the kernel."""

    kernel: np.ndarray
    bias: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.kernel + self.bias


def fit_linear_cap(
    features: np.ndarray,
    is_open: np.ndarray,
    weights: np.ndarray,
    l2: float = 1e-2,
    steps: int = 400,
    prior: LinearCap | None = None,
) -> LinearCap:
    """Weighted, L2-regularised logistic regression by full-batch gradient descent on standardised features.

    Deterministic (no random start, no shuffling) and a second or two for a few thousand views:
    every fold of a leave-one-out table is refit from scratch in the same way. With ``prior``
    (the cap a model shipped with), the fit starts there and ``l2`` pulls towards it, not towards
    zero: twenty photos of one scene then move the cap as far as they must, and no further
    (``bottlecheck train``: what the base model knew of other caps and scenes is kept).
    """
    x = np.asarray(features, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    y = np.asarray(is_open, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    anchor, bias = np.zeros(z.shape[1]), 0.0
    if prior is not None:  # the prior in standardised units: the same logits on the same features
        anchor = np.asarray(prior.kernel, dtype=np.float64) * scale
        bias = float(prior.bias + mean @ prior.kernel)
    kernel = anchor.copy()
    rate = 0.5 / (1.0 + l2)  # a strong pull must not overshoot
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ kernel + bias)))
        g = (p - y) * w
        kernel -= rate * (z.T @ g + l2 * (kernel - anchor))
        bias -= rate * float(g.sum())
    folded = kernel / scale
    return LinearCap(folded, float(bias - mean @ folded))
