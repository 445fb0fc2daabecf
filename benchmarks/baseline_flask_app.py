"""The baseline server a user would otherwise write: Flask, one ``model.predict`` per request.

Same model (the bundled Keras file), same route and answer, no batching, no letterbox.
Run under the same gunicorn settings as ``bottlecheck serve`` by ``bench_serving.py``:

    gunicorn -k gthread --threads 8 -w 1 'benchmarks.baseline_flask_app:create_app()'
"""

from __future__ import annotations

import io

import numpy as np
from flask import Flask, jsonify, request
from PIL import Image


def create_app() -> Flask:
    import keras

    from bottlecheck.artifact import load_artifact

    model = keras.models.load_model(load_artifact().file("keras"), compile=False)
    app = Flask(__name__)

    @app.post("/classify")
    def classify():
        upload = request.files.get("file")
        if upload is None:
            return jsonify({"error": "No file uploaded"}), 400
        try:
            image = Image.open(io.BytesIO(upload.read())).convert("RGB").resize((224, 224))
        except Exception:
            return jsonify({"error": "Unable to process image"}), 400
        p_open = float(model.predict(np.asarray(image, dtype=np.float32)[None], verbose=0)[0, 0])
        status = "open" if p_open >= 0.5 else "closed"
        return jsonify({"Bottle_Status": status, "Confidence": p_open if status == "open" else 1 - p_open})

    @app.get("/healthz")
    def health():
        return jsonify({"status": "ok"})

    return app
