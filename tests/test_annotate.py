"""Annotated copies (classify --save-annotated): the drawing is sized to the photo and covers none of it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bottlecheck.prediction import BottleTop, Prediction
from bottlecheck.writers.annotate import annotated
from tests.helpers import bottle_photo

CAP = (63.0, 16.0, 87.0, 32.0)  # where bottle_photo draws the cap on a 150 x 267 frame


def _closed_with_one_top(path: str) -> Prediction:
    top = BottleTop(CAP, "closed", 0.95, 0.05, 0.99, 0.8)
    return Prediction(path, "closed", 0.95, 0.05, bottles=1, open_tops=0, closed_tops=1, tops=(top,))


def test_a_narrow_photo_gets_a_whole_band_above_it_and_its_cap_stays_visible(tmp_path):
    path = tmp_path / "narrow.png"
    path.write_bytes(bottle_photo(False, size=(150, 267), fmt="PNG"))
    original = np.asarray(Image.open(path).convert("RGB"))
    image = np.asarray(annotated(str(path), _closed_with_one_top(str(path))))
    band = image.shape[0] - original.shape[0]
    assert image.shape[1] == original.shape[1] and band > 0, "the answer goes in a band above the photo"
    # The cap, inside its box's outline, is the photo's own pixels: nothing was drawn over it.
    x0, y0, x1, y1 = (round(v) for v in CAP)
    inside = (slice(y0 + 3, y1 - 2), slice(x0 + 3, x1 - 2))
    np.testing.assert_array_equal(image[band:][inside], original[inside])
    # The box is drawn round it.
    assert (image[band + y0 + 4 : band + y1 - 4, x0] != original[y0 + 4 : y1 - 4, x0]).any(axis=1).all()
    # The band's text fits the band: white (anti-aliased) on green, clear of the right edge, readable.
    text = image[:band].min(axis=2) > 150
    rows, columns = np.nonzero(text.any(axis=1))[0], np.nonzero(text.any(axis=0))[0]
    assert columns.max() < image.shape[1] - 1, "the answer is cut off at the right edge"
    assert rows.max() - rows.min() + 1 >= 7


def test_the_drawing_grows_with_the_photo(tmp_path):
    bands = {}
    for width in (150, 900):
        path = tmp_path / f"{width}.png"
        path.write_bytes(bottle_photo(False, size=(width, width * 16 // 9), fmt="PNG"))
        prediction = _closed_with_one_top(str(path))
        bands[width] = annotated(str(path), prediction).height - width * 16 // 9
    assert bands[900] > 2 * bands[150]  # legible on a phone photo too, not a 12-px line across 1600 px


def test_labels_of_tops_side_by_side_do_not_cover_each_other(tmp_path):
    from bottlecheck.writers.annotate import place_labels

    boxes = [(20.0 + 30 * i, 100.0, 44.0 + 30 * i, 124.0) for i in range(6)]  # a row of six caps, 30 px apart
    bounds = [(0.0, 2.0, 70.0, 14.0)] * 6  # each label 70 px wide: wider than the gap between boxes
    placed = place_labels(boxes, bounds, 300, 400, 1)
    areas = [area for _, _, area in placed]
    for i, a in enumerate(areas):
        assert 0 <= a[1] and a[3] <= 400, a
        for b in areas[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    assert placed[0][1] < boxes[0][1]  # the first label sits above its box, as before
    # And the drawing uses these places: six tops on one photo draw without error.
    path = tmp_path / "row.png"
    path.write_bytes(bottle_photo(False, size=(300, 400), fmt="PNG"))
    tops = tuple(BottleTop(box, "closed", 0.9, 0.1, 0.99, 0.8) for box in boxes)
    prediction = Prediction(str(path), "closed", 0.9, 0.1, bottles=6, open_tops=0, closed_tops=6, tops=tops)
    assert annotated(str(path), prediction).size[0] == 300


def test_a_large_photo_is_drawn_shrunk_with_each_box_where_its_top_is_in_its_status_colour(tmp_path):
    """A 3200 x 2000 photo is shown at 1600 x 1000: boxes in the photo's pixels are halved; red open, green closed."""
    from bottlecheck.writers.annotate import COLOURS

    path = tmp_path / "large.png"
    Image.new("RGB", (3200, 2000), (127, 127, 127)).save(path)
    tops = (
        BottleTop((400.0, 800.0, 800.0, 1200.0), "open", 0.9, 0.9, 0.99, 0.8),
        BottleTop((2000.0, 800.0, 2400.0, 1200.0), "closed", 0.8, 0.2, 0.99, 0.8),
    )
    prediction = Prediction(str(path), "open", 0.9, 0.9, bottles=2, open_tops=1, closed_tops=1, tops=tops)
    image = np.asarray(annotated(str(path), prediction))
    band = image.shape[0] - 1000
    assert image.shape[1] == 1600 and band > 0
    assert tuple(image[band // 2, 2]) == COLOURS["open"]  # the answer's band takes the photo's status colour
    # The left edge of each box, halfway down it, at half the photo's coordinates; the photo's grey beside it.
    assert tuple(image[band + 500, 201]) == COLOURS["open"] and tuple(image[band + 500, 1001]) == COLOURS["closed"]
    assert tuple(image[band + 500, 220]) == (127, 127, 127) and tuple(image[band + 500, 399]) == COLOURS["open"]
