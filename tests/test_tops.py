"""Model 2's groundwork: photo/input geometry, heatmap encoding and decoding, rotated and cut training views."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bottlecheck.tops import Letterbox, Top, cut_square, decode_tops
from bottlecheck.training.finder import FINDER_SIZE, STRIDE, _rotated, augmented_view, encode_targets
from bottlecheck.training.judge import JUDGE_SIZE


@pytest.mark.parametrize("width, height", [(1080, 1920), (1920, 1080), (500, 500), (37, 900)])
def test_letterbox_geometry_round_trips(width, height):
    geometry = Letterbox(width, height, 320)
    for x, y in ((0, 0), (width / 3, height / 2), (width - 1, height - 1)):
        ix, iy = geometry.to_input(x, y)
        assert 0 <= ix <= 320 and 0 <= iy <= 320
        assert geometry.to_photo(ix, iy) == pytest.approx((x, y), abs=1e-6)


@pytest.mark.parametrize("width, height", [(1080, 1920), (1920, 1080), (500, 500), (37, 900), (3000, 4000)])
def test_a_snug_letterbox_pads_only_to_a_multiple_and_round_trips(width, height):
    from bottlecheck.imaging import letterbox

    geometry = Letterbox(width, height, 320, multiple=16)
    array = letterbox(Image.new("RGB", (width, height), (200, 10, 10)), 320, multiple=16)
    canvas_w, canvas_h = geometry.canvas
    assert array.shape == (canvas_h, canvas_w, 3)
    assert max(canvas_w, canvas_h) == 320 and canvas_w % 16 == 0 and canvas_h % 16 == 0
    # Less than 16 pixels of grey on the short side, split evenly: the photo fills the rest.
    fitted_w, fitted_h = geometry.fitted
    assert canvas_w - fitted_w < 16 and canvas_h - fitted_h < 16
    left, top = geometry.offset
    assert (array[top + fitted_h // 2, left + fitted_w // 2] == (200, 10, 10)).all()
    for x, y in ((0, 0), (width / 3, height / 2), (width - 1, height - 1)):
        ix, iy = geometry.to_input(x, y)
        assert 0 <= ix <= canvas_w and 0 <= iy <= canvas_h
        assert geometry.to_photo(ix, iy) == pytest.approx((x, y), abs=1e-6)
    if (width, height) == (1080, 1920):
        assert (canvas_w, canvas_h) == (192, 320)  # a phone photo: 40% fewer pixels than 320x320


def test_encoded_tops_decode_to_the_same_places_and_sizes():
    tops = [(40.0, 52.0, 24.0, True), (250.5, 100.0, 10.0, True), (161.0, 290.0, 60.0, True)]
    target = encode_targets(tops)
    assert target.shape == (FINDER_SIZE // STRIDE, FINDER_SIZE // STRIDE, 5)
    found = decode_tops(target[..., 0], target[..., 1], target[..., 2:4], STRIDE, min_score=0.9)
    assert len(found) == 3
    for x, y, side, _ in tops:
        match = min(found, key=lambda t: abs(t.x - x) + abs(t.y - y))
        assert match.x == pytest.approx(x, abs=1e-4) and match.y == pytest.approx(y, abs=1e-4)
        assert match.side == pytest.approx(side, rel=1e-4)


def test_a_hidden_top_is_ignored_not_negative():
    target = encode_targets([(100.0, 100.0, 20.0, False)])
    assert target[..., 0].max() == 0.0  # no positive
    assert target[100 // STRIDE, 100 // STRIDE, 4] == 0.0  # and no penalty for finding it
    assert target[0, 0, 4] == 1.0


def test_decoding_keeps_one_box_per_top_and_drops_weak_peaks():
    heat = np.zeros((40, 40), np.float32)
    heat[10, 10], heat[10, 11], heat[30, 5], heat[20, 20] = 0.9, 0.8, 0.6, 0.2
    found = decode_tops(heat, np.full((40, 40), np.log(16.0)), np.zeros((40, 40, 2)), STRIDE, min_score=0.3)
    assert [(round(t.x), round(t.y)) for t in found] == [(84, 84), (44, 244)]
    assert found[0].box == pytest.approx((76, 76, 92, 92))
    assert isinstance(found[0], Top)


def _dot_image(x: int, y: int, size=(300, 200)) -> Image.Image:
    image = Image.new("RGB", size, (0, 0, 0))
    ImageDraw.Draw(image).ellipse([x - 4, y - 4, x + 4, y + 4], fill=(255, 0, 0))
    return image


@pytest.mark.parametrize("angle", [30, 90, -135, 180])
def test_a_turned_view_carries_its_tops_along(angle):
    turned, tops = _rotated(_dot_image(220, 40), [(220, 40, 8, "open", True)], angle)
    x, y = tops[0][0], tops[0][1]
    assert turned.getpixel((round(x), round(y)))[0] > 200


def test_augmented_views_keep_each_top_on_its_pixels():
    rng = random.Random(3)
    for _ in range(20):
        array, tops = augmented_view(_dot_image(150, 60), [(150, 60, 8, "open", True)], rng, train=True)
        assert array.shape == (FINDER_SIZE, FINDER_SIZE, 3)
        for x, y, side, _ in tops:  # colour jitter aside, the dot is where its annotation says
            patch = array[max(0, round(y) - 1) : round(y) + 2, max(0, round(x) - 1) : round(x) + 2].astype(int)
            assert (patch[..., 0] - patch[..., 2]).max() > 60, (x, y, side)


def test_a_crop_at_the_photo_edge_is_padded_and_keeps_the_top_centred():
    image = _dot_image(5, 100)
    crop = cut_square(image, 5, 100, 40, JUDGE_SIZE)
    assert crop.size == (JUDGE_SIZE, JUDGE_SIZE)
    centre = np.asarray(crop)[JUDGE_SIZE // 2, JUDGE_SIZE // 2]
    assert centre[0] > 200  # the top
    assert tuple(np.asarray(crop)[JUDGE_SIZE // 2, 2]) == (127, 127, 127)  # outside the photo: grey
