"""Training-time augmentation and batches.

Augmentation varies what must not matter and never removes the top of the
bottle: colour, blur (focus and motion), JPEG quality, a small tilt (the canvas
grows to keep every corner), mirror, and the bottle's scale and position inside
the letterbox. It starts from the same ``decode_image`` and ends in the same
``letterbox`` as inference, so training and serving see identical pixels.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from bottlecheck.imaging import PAD_VALUE, ImageError, decode_image, letterbox


def _motion_blur(image: Image.Image, rng: random.Random) -> Image.Image:
    """Directional smear: shrink along one axis and stretch back (a cheap box blur)."""
    length = rng.uniform(2, 6)
    angle = rng.uniform(0, 180)
    rotated = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(PAD_VALUE,) * 3)
    w, h = rotated.size
    smeared = rotated.resize((max(1, int(w / length)), h), Image.Resampling.BILINEAR).resize(
        (w, h), Image.Resampling.BILINEAR
    )
    back = smeared.rotate(-angle, resample=Image.Resampling.BILINEAR, expand=False)
    left, top = (w - image.size[0]) // 2, (h - image.size[1]) // 2
    return back.crop((left, top, left + image.size[0], top + image.size[1]))


def tone_jitter(image: Image.Image, rng: random.Random, chance: float, colour: tuple[float, float]) -> Image.Image:
    """Exposure and contrast (0.6-1.4) and saturation (``colour``), each changed with probability ``chance``."""
    for enhancer, low, high in (
        (ImageEnhance.Brightness, 0.6, 1.4),
        (ImageEnhance.Contrast, 0.6, 1.4),
        (ImageEnhance.Color, *colour),
    ):
        if rng.random() < chance:
            image = enhancer(image).enhance(rng.uniform(low, high))
    return image


def augment(image: Image.Image, size: int, rng: random.Random) -> np.ndarray:
    """One random training view of ``image`` as a letterboxed ``uint8`` array."""
    # Work near the output resolution: cheap, and the blur radii mean the same for every photo.
    image = image.copy()
    image.thumbnail((size * 2, size * 2), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        image = image.rotate(
            rng.uniform(-12, 12), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(PAD_VALUE,) * 3
        )
    image = tone_jitter(image, rng, chance=0.8, colour=(0.4, 1.6))
    if rng.random() < 0.3:  # colour cast: white balance of another light
        cast = np.array([rng.uniform(0.8, 1.2) for _ in range(3)], dtype=np.float32)
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) * cast, 0, 255).astype(np.uint8))
    blur = rng.random()
    if blur < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    elif blur < 0.3:
        image = _motion_blur(image, rng)
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(30, 95))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    scale = 1.0 if rng.random() < 0.4 else rng.uniform(0.55, 1.0)
    array = letterbox(image, size, scale=scale, center=(rng.random(), rng.random()))
    if rng.random() < 0.15:  # sensor noise
        noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 8), array.shape)
        array = np.clip(array + noise, 0, 255).astype(np.uint8)
    return array


class ImageBatches:
    """Keras ``PyDataset`` of (images, labels, weights) batches, decoded and augmented in threads."""

    def __new__(cls, *args, **kwargs):  # subclass keras.utils.PyDataset lazily: no TF import at module load
        import keras

        class _Batches(keras.utils.PyDataset):
            def __init__(self, examples, size, batch_size, augment_images, seed, weights=None, workers=2):
                super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
                self.examples = list(examples)
                self.size, self.batch_size, self.augment_images = size, batch_size, augment_images
                self.seed, self.epoch = seed, 0
                self.weights = weights
                self.order = list(range(len(self.examples)))
                self._shuffle()

            def _shuffle(self):
                if self.augment_images:
                    random.Random(self.seed + self.epoch).shuffle(self.order)

            def __len__(self):
                return max(1, (len(self.examples) + self.batch_size - 1) // self.batch_size)

            def __getitem__(self, index):
                ids = self.order[index * self.batch_size : (index + 1) * self.batch_size]
                images = np.stack([self._load(i, index) for i in ids]).astype(np.float32)
                labels = np.array([self.examples[i].label for i in ids], dtype=np.float32)[:, None]
                if self.weights is None:
                    return images, labels
                weights = np.array([self.weights[i] for i in ids], dtype=np.float32)
                return images, labels, weights

            def _load(self, i, batch_index):
                example = self.examples[i]
                try:
                    image = decode_image(example.path, max_side=self.size * 2)
                except ImageError:
                    return np.full((self.size, self.size, 3), PAD_VALUE, np.uint8)
                if not self.augment_images:
                    return letterbox(image, self.size)
                rng = random.Random(hash((self.seed, self.epoch, i, batch_index)))
                return augment(image, self.size, rng)

            def on_epoch_end(self):
                self.epoch += 1
                self._shuffle()

        return _Batches(*args, **kwargs)
