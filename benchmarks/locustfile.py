"""Load-test a bottlecheck deployment with Locust (the seed project's load-testing tool).

Each simulated user posts distinct photos, so the server's result cache cannot answer
for the model. Point it at your own photos for numbers that mean something for you:

    pip install locust
    BOTTLECHECK_PHOTOS=~/line-frames locust -f benchmarks/locustfile.py --host http://localhost:5000
    locust -f benchmarks/locustfile.py --host http://localhost:5000 --headless -u 32 -r 8 -t 1m

Without ``BOTTLECHECK_PHOTOS`` it makes 64 distinct phone-sized JPEGs (1080x1920) in memory.
With API keys configured, set ``BOTTLECHECK_API_KEY``. A request counts as failed unless
it gets 200 with ``Bottle_Status`` and ``Confidence``; 429 and 503 are failures here too,
since a load test should find the rate at which they start.
"""

from __future__ import annotations

import io
import itertools
import os
import random
from pathlib import Path

from locust import HttpUser, between, task

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def _generated_photos(count: int = 64) -> list[tuple[str, bytes]]:
    import numpy as np
    from PIL import Image

    photos = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        small = Image.fromarray(rng.integers(0, 255, (96, 54, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        small.resize((1080, 1920), Image.BILINEAR).save(buffer, "JPEG", quality=90)
        photos.append((f"generated-{seed}.jpg", buffer.getvalue()))
    return photos


def _load_photos() -> list[tuple[str, bytes]]:
    folder = os.environ.get("BOTTLECHECK_PHOTOS")
    if not folder:
        return _generated_photos()
    paths = sorted(p for p in Path(folder).expanduser().rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"BOTTLECHECK_PHOTOS={folder}: no images found")
    return [(p.name, p.read_bytes()) for p in paths[:512]]


PHOTOS = _load_photos()
_next_photo = itertools.count(random.randrange(len(PHOTOS)))


class BottlecheckUser(HttpUser):
    wait_time = between(0, 0.05)

    def on_start(self) -> None:
        key = os.environ.get("BOTTLECHECK_API_KEY")
        if key:
            self.client.headers["X-API-Key"] = key

    @task
    def classify(self) -> None:
        name, data = PHOTOS[next(_next_photo) % len(PHOTOS)]
        with self.client.post(
            "/classify", files={"file": (name, data, "image/jpeg")}, name="/classify", catch_response=True
        ) as response:
            body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
            if response.status_code == 200 and "Bottle_Status" in body and "Confidence" in body:
                response.success()
            else:
                response.failure(f"{response.status_code}: {body.get('error', response.text[:80])}")
