"""Assemble and export a ``tops`` model: the finder (backbone + head) and the judge (backbone + head + temperature).

Both stages are saved as Keras models (the TensorFlow engine, further training) and as
float32 TFLite (LiteRT, the default engine). ``metadata.json`` describes both stages:
their files, inputs, outputs, the finder's stride and score threshold, the judge's crop
span, labels and temperature, and the decision rule that turns tops into an answer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bottlecheck.artifact import TOPS, load_artifact, write_metadata
from bottlecheck.tops import CROP_REDUCING_GAP
from bottlecheck.training.finder import FINDER_PAD_MULTIPLE, FINDER_REDUCING_GAP, FINDER_SIZE, STRIDE, build_finder
from bottlecheck.training.finder import finder_head as finder_head_model
from bottlecheck.training.judge import CROP_SPAN, JUDGE_LABELS, JUDGE_SIZE, judge_features_model
from bottlecheck.training.judge import judge_head as judge_head_model
from bottlecheck.training.model import export_tflite, input_spec


def build_judge(head, temperature: float, tail=None):
    """Crop in, calibrated probabilities of (closed, open, none) out.

    ``head`` is the linear layer (a ``judge_head`` model); with ``tail`` (a fine-tuned
    :func:`~bottlecheck.training.judge.judge_tail`), the backbone's blocks after the trunk take
    the tail's weights and ``head`` is the tail's own.
    """
    import keras

    from bottlecheck.training.judge import copy_weights_by_name

    features = judge_features_model(JUDGE_SIZE)
    if tail is not None:
        copy_weights_by_name(tail, features)
        head = _fresh(judge_head_model, tail.get_layer("judge_head"))
    logits = head(features.output)
    scaled = keras.layers.Rescaling(1.0 / float(temperature), name="temperature")(logits)
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(scaled)
    return keras.Model(features.input, probabilities, name="top_judge")


def build_gated_judge(base_judge, cap, cap_temperature: float, pooling: str = "mean"):
    """The cap judge (tops 3.x): crop in, (closed, open, none) out, from one pass of one frozen backbone.

    Whether a crop holds a top at all (``none``) is ``base_judge``'s answer, kept as it was:
    tops 2.x's judge, whose finder-and-gate put its boxes on the right tops and said ``unknown``
    on every close-up without a top. Whether that top is open is the cap judge's: ``cap`` (a
    :class:`~bottlecheck.training.judge.LinearCap`) on the pooled output of the backbone's last
    block, at ``cap_temperature``. The two multiply: open = p(top) p(open | top). Only Keras's
    own layers, so the saved model loads without our code and converts to TFLite as it is.
    """
    import keras

    from bottlecheck.training.judge import CAP_LAYER, LinearCap, cap_pooling, copy_weights_by_name

    features = judge_features_model(JUDGE_SIZE)
    copy_weights_by_name(base_judge, features)
    gate_head = _fresh(judge_head_model, base_judge.get_layer("judge_head"))
    # 1 / the base's temperature: a plain judge (tops 2.x) calls it "temperature", a gated judge "gate_temperature"
    names = {layer.name for layer in base_judge.layers}
    scaling = "gate_temperature" if "gate_temperature" in names else "temperature"
    gate_scale = float(base_judge.get_layer(scaling).get_config()["scale"])
    layers = keras.layers
    gate = layers.Softmax(name="gate")(
        layers.Rescaling(gate_scale, name="gate_temperature")(gate_head(features.output))
    )
    none = layers.Dense(1, use_bias=False, trainable=False, name="p_none")(gate)
    pooled = cap_pooling(features.get_layer(CAP_LAYER).output, pooling)
    cap_layer = layers.Dense(1, activation="sigmoid", name="cap")
    p_open = cap_layer(pooled)
    top = layers.Rescaling(-1.0, offset=1.0, name="p_top")(none)
    opened = layers.Multiply(name="p_open_and_top")([top, p_open])
    closed = layers.Subtract(name="p_closed_and_top")([top, opened])
    probabilities = layers.Concatenate(name="probabilities", dtype="float32")([closed, opened, none])
    model = keras.Model(features.input, probabilities, name="top_judge")
    model.get_layer("p_none").set_weights([np.array([[0.0], [0.0], [1.0]], dtype=np.float32)])
    scale = 1.0 / float(cap_temperature)
    cap_layer.set_weights(
        [np.asarray(cap.kernel * scale, dtype=np.float32)[:, None], np.array([cap.bias * scale], dtype=np.float32)]
    )
    # A base with a rescue gate (tops 3.3.0 on) or a last look (3.5.0 on) keeps them, as it keeps its gate.
    for layer, add in ((RESCUE_LAYER, with_rescue_gate), (LAST_LOOK_LAYER, with_last_look)):
        if layer in names:
            kernel, bias = base_judge.get_layer(layer).get_weights()
            model = add(model, LinearCap(kernel[:, 0].astype(np.float64), float(bias[0])))
    return model


#: The layer of a judge's rescue gate (``with_rescue_gate``): its p(top) is the judge's fourth output.
RESCUE_LAYER = "rescue_gate"
#: The layer of a judge's last-look gate (``with_last_look``): its p(top) is the judge's fifth output.
LAST_LOOK_LAYER = "last_look_gate"


def with_rescue_gate(judge, gate):
    """``judge`` with a fourth output: a second gate's p(top), ``gate`` (a ``LinearCap``) on the pooled 1x1 head.

    The judge's three probabilities pass through unchanged; the decision rule reads the fourth
    only where the first gate turned a candidate down (``TopsClassifier.look_again``). The
    second gate is learned from real marked tops and not-tops, the first from renders: kept
    apart, each keeps what it knew (the model card says what either alone lost). The same
    backbone pass feeds both: no second model, no extra cost beyond one 1280-wide dot product.
    """
    return _with_gate_column(judge, gate, RESCUE_LAYER, "probabilities_and_rescue")


def with_last_look(judge, gate):
    """``judge`` (with a rescue gate) with a fifth output: a third gate's p(top), on the same pooled 1x1 head.

    The decision rule reads it only in a photo where no candidate counts after the rescue gate
    has had its say (``TopsClassifier.look_again``), so every photo the judge answered before is
    answered as before. The third gate is learned from real tops against the not-tops someone
    looked at, without the rule-made ones that teach a gate to refuse what the render gate
    refused; alone it would answer close-ups with no top, so the rescue gate must agree too.
    """
    if RESCUE_LAYER not in {layer.name for layer in judge.layers}:
        raise ValueError("a last look needs the judge's rescue gate: its p(top) is the last look's guard")
    return _with_gate_column(judge, gate, LAST_LOOK_LAYER, "probabilities_rescue_and_last_look")


def _with_gate_column(judge, gate, layer: str, output: str):
    """``judge`` with one more column: sigmoid(``gate``) on its pooled 1x1 head, a Dense layer named ``layer``."""
    import keras

    layers = keras.layers
    dense = layers.Dense(1, activation="sigmoid", name=layer)
    p_top = dense(judge.get_layer("pool").output)
    outputs = layers.Concatenate(name=output, dtype="float32")([judge.output, p_top])
    model = keras.Model(judge.input, outputs, name=judge.name)
    dense.set_weights([np.asarray(gate.kernel, dtype=np.float32)[:, None], np.array([gate.bias], dtype=np.float32)])
    return model


def _fresh(make, trained):
    """A new, never-compiled head with the trained weights: the saved model then loads without our loss."""
    head = make()
    head.set_weights(trained.get_weights())
    return head


def finder_input_spec(size: int = FINDER_SIZE, reducing_gap: float | None = FINDER_REDUCING_GAP) -> dict[str, Any]:
    """The finder's input as the metadata records it: the photo's long side at ``size``, padded to multiples of 16."""
    spec = input_spec(size)
    spec["resize"] = (
        "letterbox: long side to size, bilinear (Pillow's reducing_gap where given), centred, no crop; the "
        "short side padded only up to a multiple of pad_to_multiple (inputs with sides multiples of 16 work)"
    )
    spec["pad_to_multiple"] = FINDER_PAD_MULTIPLE
    if reducing_gap:
        spec["reducing_gap"] = reducing_gap
    return spec


def export_finder(head, directory: Path) -> None:
    """Write ``finder.keras`` and ``finder.tflite``: the frozen backbone and ``head``, for inputs of any size."""
    finder = build_finder(_fresh(lambda: finder_head_model(None), head), None)
    finder.save(directory / "finder.keras")
    export_tflite(finder, directory / "finder.tflite")


def save_tops_artifact(
    finder_head,
    judge_head,
    temperature: float,
    directory: str | Path,
    metadata: dict[str, Any],
    min_score: float = 0.3,
    threshold: float = 0.5,
    min_top_probability: float = 0.5,
    finder_from: str | Path | None = None,
    finder_size: int = FINDER_SIZE,
    judge_tail=None,
    judge_backbone: str = "EfficientNet-Lite0 (ImageNet), frozen, pooled; trained linear head",
    judge=None,
    judge_stage: dict[str, Any] | None = None,
) -> Path:
    """Write ``finder.{keras,tflite}``, ``judge.{keras,tflite}`` and ``metadata.json`` into ``directory``.

    With ``finder_from`` (a two-stage model directory) its finder files are copied as they are and
    ``finder_head`` is not used: a judge retrained alone answers beside the same finder. A built
    ``judge`` (:func:`build_gated_judge`) is saved as it is; ``judge_stage`` adds to (or replaces
    entries of) the judge's description in the metadata.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if finder_from is None:
        export_finder(finder_head, directory)
    else:
        for name in ("finder.keras", "finder.tflite"):
            shutil.copy2(Path(finder_from) / name, directory / name)
    if judge is None:
        head = None if judge_tail is not None else _fresh(judge_head_model, judge_head)
        judge = build_judge(head, temperature, tail=judge_tail)
    judge.save(directory / "judge.keras")
    export_tflite(judge, directory / "judge.tflite")
    crop_input = input_spec(JUDGE_SIZE)
    crop_input["resize"] = (
        f"a square {CROP_SPAN:g} times the top's box side around its centre, bilinear "
        f"(Pillow's reducing_gap {CROP_REDUCING_GAP:g})"
    )
    # A finder copied from another model is described as that model describes it.
    finder_input = (
        finder_input_spec(finder_size) if finder_from is None else load_artifact(finder_from).stage("finder")["input"]
    )
    full = {
        "kind": TOPS,
        "labels": ["closed", "open"],
        "positive_label": "open",
        "input": finder_input,
        "threshold": threshold,
        "stages": {
            "finder": {
                "files": {"tflite": "finder.tflite", "keras": "finder.keras"},
                "input": finder_input,
                "stride": STRIDE,
                "output": "(N, G, G, 4) per 8-px cell: top-centre heatmap, log of the box side in input "
                "pixels, centre offset x and y in cells",
                "min_score": min_score,
                "max_tops": 16,
                "backbone": "EfficientNet-Lite0 (ImageNet) to stride 16, frozen; trained head",
            },
            "judge": {
                "files": {"tflite": "judge.tflite", "keras": "judge.keras"},
                "input": crop_input,
                "crop_span": CROP_SPAN,
                "labels": list(JUDGE_LABELS),
                "temperature": round(float(temperature), 4),
                "output": "(N, 3) calibrated probabilities of closed, open, none (not a top)",
                "backbone": judge_backbone,
                **(judge_stage or {}),
            },
        },
        "decision": {
            "threshold": threshold,
            "min_top_probability": min_top_probability,
            "decode_side": 900,
            "rule": "a top counts when 1 - p(none) >= min_top_probability; the photo is open when any "
            "counted top has p_open >= threshold, closed when every counted top is closed, unknown "
            "when no top counts",
        },
        **metadata,
    }
    write_metadata(directory, full)
    return directory
