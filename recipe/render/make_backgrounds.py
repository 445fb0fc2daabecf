"""Make the background plates the renderer puts behind and around the bottles.

Two sources, both free of beer bottles so that no label can leak through them:
crops of the colour and grey photos that scikit-image ships (a cat, a coffee
cup, a motorcycle, textures of brick, grass and gravel) and procedural plates
(gradients, bokeh lights, stripes, blotches) that imitate kitchens, bars, car
interiors at night and factory walls. Seeded: the same seed gives the same files.

    python recipe/render/make_backgrounds.py --out /tmp/bc-backgrounds --count 240
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

PHOTOS = [
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
    "stereo_motorcycle",
    "clock",
]


def _photo(rng: np.random.Generator, size: int) -> Image.Image:
    import skimage.data

    name = PHOTOS[rng.integers(len(PHOTOS))]
    array = getattr(skimage.data, name)()
    if isinstance(array, tuple):
        array = array[0]
    image = Image.fromarray(np.asarray(array)).convert("RGB")
    w, h = image.size
    crop = int(min(w, h) * rng.uniform(0.4, 1.0))
    left, top = rng.integers(0, w - crop + 1), rng.integers(0, h - crop + 1)
    image = image.crop((left, top, left + crop, top + crop)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:  # tint grey photos and shift colours so they are not always the same
        tint = rng.uniform(0.6, 1.3, size=3)
        image = Image.fromarray(np.clip(np.asarray(image) * tint, 0, 255).astype(np.uint8))
    return image


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = np.clip((np.cos(angle) * xx + np.sin(angle) * yy), 0, 1)[..., None]
    return a * (1 - t) + b * t


def _procedural(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.choice(["bokeh", "stripes", "blotches", "night"])
    base = _gradient(rng, size)
    if kind in ("bokeh", "night"):
        if kind == "night":
            base *= 0.15
        canvas = Image.fromarray(base.astype(np.uint8))
        glow = np.zeros((size, size, 3))
        yy, xx = np.mgrid[0:size, 0:size]
        for _ in range(rng.integers(5, 40)):
            cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, size / 6)
            colour = rng.uniform(60, 255, 3)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
            glow = np.maximum(glow, disc * colour * rng.uniform(0.3, 1.0))
        glow_image = Image.fromarray(glow.astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(1, 6)))
        return Image.fromarray(np.clip(np.asarray(canvas) + np.asarray(glow_image), 0, 255).astype(np.uint8))
    if kind == "stripes":
        period = rng.uniform(6, 60)
        yy, xx = np.mgrid[0:size, 0:size]
        axis = xx if rng.random() < 0.5 else yy
        wave = (np.sin(axis / period * 2 * np.pi) > rng.uniform(-0.5, 0.5))[..., None]
        other = rng.uniform(0, 255, 3)
        return Image.fromarray((base * wave + other * (1 - wave)).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(0, 3))
        )
    noise = rng.uniform(0, 1, (size // 16, size // 16, 1))
    noise = np.asarray(Image.fromarray((noise[..., 0] * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC))
    t = (noise / 255.0)[..., None]
    other = _gradient(rng, size)
    return Image.fromarray((base * t + other * (1 - t)).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for index in range(args.count):
        image = _photo(rng, args.size) if rng.random() < 0.45 else _procedural(rng, args.size)
        image.save(args.out / f"bg_{index:04d}.jpg", quality=92)
    print(f"wrote {args.count} backgrounds to {args.out}")


if __name__ == "__main__":
    main()
