"""The EfficientNet-Lite0 port: Google's ImageNet weights, read without torch, give the right answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from bottlecheck.training.backbone import build_imagenet_classifier  # noqa: E402

# ImageNet class indices: 281-285 are domestic cats, 967 espresso.
EXPECTED = {"chelsea": {281, 282, 283, 284, 285}, "coffee": {967}}


def _center_crop(array: np.ndarray) -> np.ndarray:
    image = Image.fromarray(array).convert("RGB")
    w, h = image.size
    scale = 224 / min(w, h)
    image = image.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    return np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32)


def test_imagenet_top1_on_known_photos():
    model = build_imagenet_classifier()
    batch = np.stack([_center_crop(getattr(skimage_data, name)()) for name in EXPECTED])
    top1 = np.argmax(model.predict(batch, verbose=0), axis=1)
    for (name, classes), predicted in zip(EXPECTED.items(), top1, strict=True):
        assert predicted in classes, f"{name}: predicted ImageNet class {predicted}"
