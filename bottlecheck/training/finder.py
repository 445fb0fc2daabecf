"""Train the top finder: a CenterNet-style head on frozen EfficientNet-Lite0 features, from annotated renders.

Why frozen: on 2 CPU cores a 320 px backbone cannot be fine-tuned on thousands of
photos in reasonable time, but its features can be computed once per augmented
view and the small head trained on them for many epochs. The head reads stride-8
features (blocks_4, 40 channels: edges and rims at the scale of a small cap) and
stride-16 features (blocks_10, 112 channels: what the thing is), upsampled and
concatenated, and predicts per 8-pixel cell: a heatmap of top centres, the log of
the top's box side, and the centre's offset within the cell.

Render annotations come from ``recipe/render/render_tops.py``: per image, each
top's box in the frame, whether it is in the frame and whether something hides it.
A hidden top is neither a positive nor a negative (its cells are ignored).
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bottlecheck.imaging import PAD_VALUE, decode_image
from bottlecheck.tops import decode_tops
from bottlecheck.training.data import tone_jitter

# The photo's long side in the finder's input. 256 since 2.2.0 (320 before): with the photo padded
# only to a multiple of 16, a phone photo is 144x256, a third of 320x320's pixels (finder 3.3 against
# 9.9 ms); tops still span 5 pixels or more where the renders put them (crates, rows of bottles).
FINDER_SIZE = 256
# The finder's input is shrunk from the decoded photo with Pillow's reducing_gap: a whole-number
# box reduction first, then bilinear (0.7 against 1.5 ms a phone photo; pixels differ by 0.4 on average).
FINDER_REDUCING_GAP = 1.0
# The exported finder takes the photo fitted to FINDER_SIZE and padded to multiples of this only:
# sides must be multiples of 16 (the stride-16 map, upsampled, meets the stride-8 one).
FINDER_PAD_MULTIPLE = 16
STRIDE = 8
FEATURE_LAYERS = ("blocks_4_add", "blocks_10_add")


@dataclass
class Scene:
    """One annotated image: its path and its tops as (centre x, centre y, side, label, usable) in its own pixels."""

    path: str
    tops: list[tuple[float, float, float, str, bool]] = field(default_factory=list)
    index: int = 0


def render_records(render_dirs: Sequence[str | Path]) -> Iterator[tuple[Path, dict]]:
    """``(directory, record)`` for every scene in each render output's ``labels-*.jsonl``, in order."""
    for directory in map(Path, render_dirs):
        for log in sorted(directory.glob("labels-*.jsonl")):
            for line in log.read_text().splitlines():
                if line.strip():
                    yield directory, json.loads(line)


def load_render_scenes(render_dirs: Sequence[str | Path]) -> list[Scene]:
    """Every rendered scene under each directory (``labels-*.jsonl`` beside ``images/``)."""
    scenes = []
    for directory, meta in render_records(render_dirs):
        image = directory / meta["path"]
        if not image.is_file():
            continue
        tops = []
        for top in meta["tops"]:
            if not top["in_frame"]:
                continue
            x0, y0, x1, y1 = top["box"]
            side = max(x1 - x0, y1 - y0)
            tops.append((top["centre"][0], top["centre"][1], side, top["label"], not top["occluded"]))
        scenes.append(Scene(str(image), tops, meta["index"]))
    return scenes


def photometric(image: Image.Image, rng: random.Random) -> Image.Image:
    """What a phone does to a photo: exposure, contrast, saturation, white balance, blur, noise, JPEG."""
    image = tone_jitter(image, rng, chance=0.7, colour=(0.5, 1.5))
    array = np.asarray(image, dtype=np.float32)
    if rng.random() < 0.4:
        array = array * np.array([rng.uniform(0.85, 1.15) for _ in range(3)], dtype=np.float32)
    if rng.random() < 0.4:
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 8), array.shape)
        array = array + noise.astype(np.float32)
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    if rng.random() < 0.25:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.5)))
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(40, 95))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def augmented_view(
    image: Image.Image, tops: Sequence[tuple], rng: random.Random, size: int = FINDER_SIZE, train: bool = True
) -> tuple[np.ndarray, list[tuple[float, float, float, bool]]]:
    """A letterboxed view of ``image`` with its tops moved along: turned, zoomed out or in, shifted, mirrored.

    Renders stand upright; real photos show bottles lying on a table or held at any angle,
    so a third of the views are turned by any angle (the canvas grows to keep every corner).
    """
    if train and rng.random() < 0.35:
        angle = rng.uniform(-180, 180) if rng.random() < 0.5 else rng.uniform(-30, 30)
        image, tops = _rotated(image, tops, angle)
    width, height = image.size
    zoom = math.exp(rng.uniform(math.log(0.45), math.log(1.8))) if train else 1.0
    fit = size / max(width, height) * zoom
    new_w, new_h = max(1, round(width * fit)), max(1, round(height * fit))
    left = rng.uniform(min(0, size - new_w), max(0, size - new_w)) if train else (size - new_w) / 2
    top_ = rng.uniform(min(0, size - new_h), max(0, size - new_h)) if train else (size - new_h) / 2
    left, top_ = round(left), round(top_)
    canvas = Image.new("RGB", (size, size), (PAD_VALUE,) * 3)
    shrunk = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=FINDER_REDUCING_GAP)
    canvas.paste(shrunk, (left, top_))
    moved = []
    for x, y, side, _label, usable in tops:
        cx, cy = x * fit + left, y * fit + top_
        if 0 <= cx < size and 0 <= cy < size:
            moved.append((cx, cy, side * fit, usable))
    if train and rng.random() < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        moved = [(size - 1 - cx, cy, s, u) for cx, cy, s, u in moved]
    if train:
        canvas = photometric(canvas, rng)
    return np.asarray(canvas, dtype=np.uint8), moved


def _rotated(image: Image.Image, tops: Sequence[tuple], angle: float) -> tuple[Image.Image, list[tuple]]:
    """``image`` turned ``angle`` degrees counter-clockwise on a grown canvas, and its tops with it."""
    width, height = image.size
    turned = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(PAD_VALUE,) * 3)
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    moved = []
    for x, y, side, label, usable in tops:
        dx, dy = x - width / 2, y - height / 2
        # Image y points down, so a counter-clockwise turn on screen is (x, y) -> (x cos + y sin, -x sin + y cos).
        nx, ny = dx * cos + dy * sin + turned.width / 2, -dx * sin + dy * cos + turned.height / 2
        moved.append((nx, ny, side, label, usable))
    return turned, moved


def encode_targets(tops: Sequence[tuple[float, float, float, bool]], size: int = FINDER_SIZE) -> np.ndarray:
    """``(G, G, 5)``: heatmap, log side, offset x, offset y, and a weight (0 where a hidden top is)."""
    grid = size // STRIDE
    target = np.zeros((grid, grid, 5), np.float32)
    target[..., 4] = 1.0
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32) + 0.5
    for cx, cy, side, usable in tops:
        gx, gy = cx / STRIDE, cy / STRIDE
        sigma = max(0.6, side / STRIDE / 4)
        blob = np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * sigma**2))
        if not usable:
            target[..., 4] = np.where(blob > 0.1, 0.0, target[..., 4])
            continue
        target[..., 0] = np.maximum(target[..., 0], blob)
        ix, iy = min(int(gx), grid - 1), min(int(gy), grid - 1)
        target[iy, ix, 0] = 1.0
        target[iy, ix, 1] = math.log(max(side, 2.0))
        target[iy, ix, 2] = gx - (ix + 0.5)
        target[iy, ix, 3] = gy - (iy + 0.5)
    return target


def feature_extractor(size: int | None = FINDER_SIZE):
    """The frozen part: ImageNet EfficientNet-Lite0 up to stride 16, with its stride-8 map as a second output."""
    import keras

    from bottlecheck.training.backbone import efficientnet_lite0_features, load_imagenet_weights

    inputs = keras.Input((size, size, 3), name="image")
    backbone = keras.Model(inputs, efficientnet_lite0_features(inputs))
    load_imagenet_weights(backbone)
    outputs = [backbone.get_layer(name).output for name in FEATURE_LAYERS]
    return keras.Model(inputs, outputs, name="finder_features")


def finder_head(grid: int | None, width: int = 64):
    """The trained part: stride-16 features upsampled onto the stride-8 grid, light convolutions, three outputs.

    ``grid`` None: any grid (the exported finder takes any input whose sides are multiples of 16).
    """
    import keras

    from bottlecheck.layers import Upsample2x

    layers = keras.layers
    half = None if grid is None else grid // 2
    fine = keras.Input((grid, grid, 40), name="stride8")
    coarse = keras.Input((half, half, 112), name="stride16")
    x = layers.Concatenate(name="head_concat")([fine, Upsample2x(name="up_sampling2d")(coarse)])
    x = layers.Conv2D(width, 1, activation="relu", name="head_reduce")(x)
    for k in range(2):
        x = layers.DepthwiseConv2D(3, padding="same", name=f"head_dw{k}")(x)
        x = layers.Conv2D(width, 1, activation="relu", name=f"head_pw{k}")(x)
    # Bias -2.2: the heatmap starts near 0.1 everywhere, as CenterNet does, so early loss is sane.
    heat = layers.Conv2D(1, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(-2.2), name="heat")(x)
    log_side = layers.Conv2D(1, 1, bias_initializer=keras.initializers.Constant(3.0), name="log_side")(x)
    offset = layers.Conv2D(2, 1, activation="tanh", name="offset_raw")(x)
    offset = layers.Rescaling(0.5, name="offset")(offset)
    out = layers.Concatenate(name="tops")([heat, log_side, offset])
    return keras.Model([fine, coarse], out, name="finder_head")


def finder_loss(target, output):
    """CenterNet's focal loss on the heatmap, L1 on log side and offset at top centres; hidden tops ignored."""
    import keras.ops as ops

    heat = ops.clip(output[..., 0], 1e-4, 1 - 1e-4)
    gt, weight = target[..., 0], target[..., 4]
    positive = ops.cast(ops.equal(gt, 1.0), "float32")
    negative = (1.0 - positive) * weight
    pos_loss = -ops.log(heat) * ops.square(1 - heat) * positive
    neg_loss = -ops.log(1 - heat) * ops.square(heat) * ops.power(1 - gt, 4) * negative
    count = ops.maximum(ops.sum(positive), 1.0)
    focal = (ops.sum(pos_loss) + ops.sum(neg_loss)) / count
    side = ops.sum(ops.abs(output[..., 1] - target[..., 1]) * positive) / count
    offset = ops.sum(ops.sum(ops.abs(output[..., 2:4] - target[..., 2:4]), axis=-1) * positive) / count
    return focal + 0.5 * side + offset


def compute_features(
    scenes: Sequence[Scene],
    views: int,
    seed: int,
    train: bool,
    log: Callable[[str], None] = print,
    size: int = FINDER_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backbone features of ``views`` augmented ``size`` x ``size`` views of each scene (float16), and their targets."""
    extractor = feature_extractor(size)
    rng = random.Random(seed)
    images: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    fine_parts: list[np.ndarray] = []
    coarse_parts: list[np.ndarray] = []

    def flush() -> None:
        if images:
            fine, coarse = extractor.predict(np.stack(images).astype(np.float32), verbose=0, batch_size=16)
            fine_parts.append(fine.astype(np.float16))
            coarse_parts.append(coarse.astype(np.float16))
            images.clear()

    for number, scene in enumerate(scenes):
        image = decode_image(scene.path)
        for _ in range(views):
            array, tops = augmented_view(image, scene.tops, rng, size=size, train=train)
            images.append(array)
            targets.append(encode_targets(tops, size))
        if len(images) >= 64:
            flush()
        if number % 100 == 0:
            log(f"features: {number}/{len(scenes)} scenes")
    flush()
    return np.concatenate(fine_parts), np.concatenate(coarse_parts), np.stack(targets)


def build_finder(head, size: int | None = FINDER_SIZE):
    """Backbone and head in one model: the image in, the ``(H/8, W/8, 4)`` top map out (what gets exported).

    ``size`` None: inputs of any height and width (multiples of 16), as exported.
    """
    import keras

    extractor = feature_extractor(size)
    fine, coarse = extractor.outputs
    return keras.Model(extractor.input, head([fine, coarse]), name="top_finder")


def evaluate_finder(
    outputs: np.ndarray, targets_tops: Sequence[Sequence[tuple]], min_score: float = 0.3, max_tops: int = 32
) -> dict[str, float]:
    """Recall and precision of decoded tops against the true ones (a hit: centre within half a side).

    ``max_tops``: the most tops decoded from one map (the shipped finder's metadata says 16).
    """
    found = hits = truth = 0
    for out, tops in zip(outputs, targets_tops, strict=True):
        predicted = decode_tops(out[..., 0], out[..., 1], out[..., 2:4], STRIDE, min_score, max_tops)
        usable = [t for t in tops if t[3]]
        truth += len(usable)
        found += len(predicted)
        matched = set()
        for top in predicted:
            for k, (cx, cy, side, _u) in enumerate(tops):
                if (
                    k not in matched
                    and abs(top.x - cx) <= max(side / 2, STRIDE)
                    and abs(top.y - cy) <= max(side / 2, STRIDE)
                ):
                    matched.add(k)
                    hits += bool(tops[k][3])
                    break
    return {
        "recall": round(hits / max(truth, 1), 4),
        "precision": round(hits / max(found, 1), 4),
        "tops": truth,
        "found": found,
    }
