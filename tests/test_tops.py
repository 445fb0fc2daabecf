"""Model 2's groundwork: photo/input geometry, heatmap encoding and decoding, rotated and cut training views."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bottlecheck.tops import CROP_REDUCING_GAP, Letterbox, Top, _peaks, cut_square, decode_tops
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


def _cut_on_a_whole_canvas(image: Image.Image, x: float, y: float, side: float, size: int) -> Image.Image:
    """What a crop is by definition: the square on a grey canvas, resized as training's crops were."""
    half = side / 2
    box = (round(x - half), round(y - half), round(x + half), round(y + half))
    inside = (max(0, box[0]), max(0, box[1]), min(image.width, box[2]), min(image.height, box[3]))
    canvas = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), (127, 127, 127))
    if inside[2] > inside[0] and inside[3] > inside[1]:
        canvas.paste(image.crop(inside), (inside[0] - box[0], inside[1] - box[1]))
    return canvas.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=CROP_REDUCING_GAP)


def test_a_crop_reduced_block_by_block_equals_the_crop_on_a_whole_canvas():
    rng = np.random.default_rng(5)
    noise = Image.fromarray(rng.integers(0, 256, (960, 540, 3), dtype=np.uint8))
    odd = Image.fromarray(rng.integers(0, 256, (97, 61, 3), dtype=np.uint8))
    cases = 0
    for image in (noise, odd):
        for _ in range(400):
            # small squares (no reduction), squares inside the photo, and squares wider than it
            side = float(rng.choice([rng.uniform(4, 120), rng.uniform(120, 600), rng.uniform(500, 2500)]))
            x = float(rng.uniform(-300, image.width + 300))
            y = float(rng.uniform(-300, image.height + 300))
            for size in (JUDGE_SIZE, 96):
                expected = np.asarray(_cut_on_a_whole_canvas(image, x, y, side, size))
                assert np.array_equal(np.asarray(cut_square(image, x, y, side, size)), expected), (x, y, side)
                cases += 1
    assert cases == 1600


def test_peaks_are_the_cells_no_neighbour_exceeds_in_the_plain_order():
    """Comparing only the cells above the score finds what comparing the whole map finds, in the same order."""
    rng = np.random.default_rng(9)
    for trial in range(300):
        heat = (rng.random((20, 12)) ** 4).astype(np.float32)
        if trial % 3 == 0:
            heat = np.round(heat, 1)  # ties between neighbours
        padded = np.pad(heat, 1, constant_values=-np.inf)
        neighbours = np.stack([padded[dy : dy + 20, dx : dx + 12] for dy in range(3) for dx in range(3)])
        expected = np.nonzero((heat >= neighbours.max(axis=0)) & (heat >= 0.3))
        ys, xs = _peaks(heat, 0.3)
        assert np.array_equal(ys, expected[0]) and np.array_equal(xs, expected[1])
    assert _peaks(np.zeros((4, 4), np.float32), 0.3)[0].size == 0
