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


def test_the_judges_frozen_front_and_trained_back_compose_to_the_exported_judge():
    """Fine-tuning trains the back on the front's outputs; the exported judge must be the two in a row."""
    from bottlecheck.tfquiet import import_tensorflow

    import_tensorflow()
    import keras

    from bottlecheck.training import judge as J
    from bottlecheck.training.tops_model import build_judge

    keras.utils.set_random_seed(0)
    trunk, tail = J.judge_trunk_model(cut=10), J.judge_tail(cut=10)
    for weights in tail.trainable_weights:  # any trained back, not the ImageNet one it starts from
        weights.assign(weights + np.random.default_rng(1).normal(0, 0.02, weights.shape).astype(np.float32))
    crops = np.random.default_rng(0).uniform(0, 255, (4, J.JUDGE_SIZE, J.JUDGE_SIZE, 3)).astype(np.float32)
    logits = tail.predict(trunk.predict(crops, verbose=0), verbose=0) / 2.0
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    exported = build_judge(None, 2.0, tail=tail).predict(crops, verbose=0)
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    assert not any(layer.trainable for layer in tail.layers if isinstance(layer, keras.layers.BatchNormalization))


def _state_dict_of(stages) -> dict:
    """The shapes a state dict of these stages has (no values: the reader only looks at shapes)."""
    from bottlecheck.training.backbone import STEM_CHANNELS

    state, block, channels = {}, 0, STEM_CHANNELS
    for repeats, kernel, _stride, expansion, out_channels in stages:
        for _ in range(repeats):
            state[f"_blocks.{block}._depthwise_conv.weight"] = np.zeros((channels * expansion, 1, kernel, kernel))
            state[f"_blocks.{block}._project_conv.weight"] = np.zeros((out_channels, channels * expansion, 1, 1))
            channels, block = out_channels, block + 1
    return state


def test_stages_read_off_the_weights_are_lite0s():
    from bottlecheck.training.backbone import STAGES, imagenet_weights_path, stages_from_state_dict
    from bottlecheck.training.torch_state import load_state_dict

    assert stages_from_state_dict(load_state_dict(imagenet_weights_path())) == STAGES


def test_the_caps_layer_is_lite0s_last_block():
    """The shipped cap reads the last block's output; Lite1 and Lite2 are read at their own last block."""
    from bottlecheck.training.backbone import STAGES, last_block
    from bottlecheck.training.judge import CAP_LAYER

    assert CAP_LAYER == f"blocks_{last_block(STAGES)}_project_conv" == "blocks_15_project_conv"


def test_stages_of_a_deeper_wider_member_of_the_family_are_read_back():
    """Lite2's stages (21 blocks, wider): the recipe builds it from its weights alone."""
    from bottlecheck.training.backbone import stages_from_state_dict

    lite2 = [(1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88),
             (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)]  # fmt: skip
    assert stages_from_state_dict(_state_dict_of(lite2)) == lite2
