"""The baseline server a user would otherwise write: Flask, one ``model.predict`` per request.

The seed's design: Keras ResNet50 at 224 x 224 (two classes, as bench_batch.py's baseline), the
same route and answer, one ``model.predict`` per request, no batching, no letterbox. (Until model
2 this loaded the bundled one-stage Keras model; a two-stage model has no single Keras file.)
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

    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=2)
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
        x = keras.applications.resnet50.preprocess_input(np.asarray(image, dtype=np.float32)[None])
        p_open = float(model.predict(x, verbose=0)[0, 1])
        status = "open" if p_open >= 0.5 else "closed"
        return jsonify({"Bottle_Status": status, "Confidence": p_open if status == "open" else 1 - p_open})

    @app.get("/healthz")
    def health():
        return jsonify({"status": "ok"})

    return app
