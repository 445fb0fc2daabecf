"""The ``tops`` kind: find every bottle top, judge each one up close, and say ``unknown`` when no top is visible.

The ``whole-photo`` kind looks at the whole photo at 224 px, where the top of a whole bottle is a
few pixels wide. Here a finder looks at the photo letterboxed to its input size and marks
every top (zero, one or many); each top is then cut from the decoded photo as a square
``crop_span`` times its size, at the judge's input size, so a cap 5 pixels wide in the
finder's view fills the judge's view. The judge says closed, open or ``none`` (not a
top after all: a round logo, a loose cap). The photo is ``open`` when any trusted top
is open, ``closed`` when every trusted top is closed, ``unknown`` when there is none.

A top the judge is unsure of (its p(open | top) within ``second_look.band`` of the threshold,
its p(top) at least ``second_look.min_top``) is judged again at the ``second_look.spans`` (1.6
and 4 times the top) and its p(open | top) is the mean of the three: the judge's answer moves
with the crop's span (a tight crop sees the cap, a wide one the neck and the scene), and
averaging the views is steadier than any one of them. A candidate the gate turns down with
doubt (p(top) from ``second_look.top_floor`` up to the count line, tops 3.2.0 on) gets the same
two looks and counts when the mean of its three p(top) reaches the line: the gate, fitted on
renders at one span, turned down real caps a tighter view sees. What each look gained on real
sources nobody trained on, and what it costs, is in the model card (``model/README.md``) and
its history (``model/HISTORY.md``, 3.1.0 and 3.2.0).

The photo is decoded once, at the smallest JPEG scale whose long side still covers
``decode_side`` pixels (900: half scale, 540x960, for a 1080x1920 phone photo; 960 would ask
one pixel more than half scale gives and decode at full scale, 18.7 against 10 ms a photo):
the finder's input is shrunk from it and the crops are cut from it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from bottlecheck.artifact import TOPS, ModelArtifact
from bottlecheck.classifier import Classifier
from bottlecheck.engines import Engine, load_engine
from bottlecheck.evaluation.metrics import tempered
from bottlecheck.imaging import DEFAULT_MAX_PIXELS, ImageSource, decode_photo, letterbox
from bottlecheck.labels import CLOSED, OPEN, UNKNOWN
from bottlecheck.prediction import TOPS_FIELDS, BottleTop, Prediction
from bottlecheck.tops import Letterbox, cut_square, decode_tops

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+

    from bottlecheck.kinds import KindLoader


#: Most crops per judge call (what a copy of the judge allocates for, whatever a batch holds).
JUDGE_BATCH = 8


@dataclass
class PreparedPhoto:
    """A decoded photo: the image (perhaps at a reduced scale), its own size, and the finder's input."""

    image: Image.Image
    size: tuple[int, int]
    finder_input: np.ndarray


class TopsClassifier(Classifier):
    """The ``tops`` kind: a finder of bottle tops and a judge of each, behind the :class:`Classifier` interface."""

    columns = TOPS_FIELDS
    nested_columns = ("tops",)  # each top's box, status and confidence: JSON and JSONL rows only
    statuses = (OPEN, CLOSED, UNKNOWN)  # unknown: no top it trusts in the photo

    def __init__(
        self,
        artifact: ModelArtifact,
        finder: Engine,
        judge: Engine,
        threshold: float | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        super().__init__(artifact, threshold, max_pixels)
        self.finder = finder
        self.judge = judge
        finder_meta, judge_meta = artifact.stage("finder"), artifact.stage("judge")
        self.finder_size = int(finder_meta["input"]["size"])
        # A finder that takes any size gets the photo padded only to a multiple of this, not to a square.
        self.pad_multiple = finder_meta["input"].get("pad_to_multiple")
        self.reducing_gap = finder_meta["input"].get("reducing_gap")
        self.stride = int(finder_meta["stride"])
        self.min_score = float(finder_meta.get("min_score", 0.3))
        self.max_tops = int(finder_meta.get("max_tops", 16))
        self.judge_size = int(judge_meta["input"]["size"])
        self.crop_span = float(judge_meta["crop_span"])
        self.judge_labels = list(judge_meta["labels"])
        # Where the judge's row holds each answer (read once: every top of every photo needs them).
        self._closed_i, self._open_i, self._none_i = (self.judge_labels.index(k) for k in (CLOSED, OPEN, "none"))
        second_look = judge_meta.get("second_look") or {}
        self.second_spans = tuple(float(span) for span in second_look.get("spans", ()))
        self.second_band = float(second_look.get("band", 0.0))
        self.second_min_top = float(second_look.get("min_top", 0.0))  # and p(top) at least this
        # A candidate the gate turns down with doubt (p(top) from top_floor up to min_top) gets the same looks.
        self.top_floor = second_look.get("top_floor")
        # A second gate learned from real tops (tops 3.3.0 on): the judge's column rescue["column"] holds
        # its p(top), and a candidate the first gate turns down counts when it is at least rescue["sure"].
        rescue = judge_meta.get("rescue") or {}
        self.rescue_column = rescue.get("column")
        self.rescue_sure = float(rescue.get("sure", 1.0))
        # A third gate (tops 3.5.0 on), heard only in a photo where nothing counts after the rescue: a
        # candidate counts when it (column last_look["column"]) is at least "sure" and the rescue gate "guard".
        last_look = judge_meta.get("last_look") or {}
        self.last_look_column = last_look.get("column")
        self.last_look_sure = float(last_look.get("sure", 1.0))
        self.last_look_guard = float(last_look.get("guard", 1.0))
        # And there (tops 3.6.0 on) the finder's candidates under its min_score, down to this, get the last
        # look too: only it can count them. None: only the candidates the finder proposed.
        self.last_look_floor = last_look.get("min_score")
        self.last_look_tops = int(last_look.get("max_tops", self.max_tops))  # the strongest so many of them
        # One more temperature on each counted top's p(open | top), after the looks (tops 3.4.0 on): the
        # cap is too sure on sources it never saw; monotone and fixed at 0.5, so only confidences move.
        self.open_temperature = float((judge_meta.get("photo_calibration") or {}).get("temperature", 1.0))
        decision = artifact.metadata.get("decision", {})
        self.min_top = float(decision.get("min_top_probability", 0.5))
        self.decode_side = int(decision.get("decode_side", 900))
        self.frame_side = self.decode_side  # preprocess shrinks a picture over twice this to it

    @classmethod
    def from_artifact(
        cls, artifact: ModelArtifact, engine: str = "auto", threshold: float | None = None, threads: int | None = None
    ) -> TopsClassifier:
        finder = load_engine(artifact, engine, threads, stage="finder")
        judge = load_engine(artifact, engine, threads, stage="judge")
        return cls(artifact, finder, judge, threshold)

    @property
    def engine_name(self) -> str:
        return self.finder.name

    @property
    def preferred_batch(self) -> int:
        return self.finder.preferred_batch

    def replica(self) -> Self | None:
        finder, judge = self.finder.replica(), self.judge.replica()
        if finder is None or judge is None:
            return None
        twin = copy.copy(self)
        twin.finder, twin.judge = finder, judge
        return twin

    def answer_settings(self) -> dict[str, Any]:
        return {
            **super().answer_settings(),
            "input_size": self.finder_size,
            "pad_value": self.artifact.pad_value,
            "judge_engine": self.judge.name,
            "finder": [
                self.finder_size,
                self.pad_multiple,
                self.reducing_gap,
                self.stride,
                self.min_score,
                self.max_tops,
            ],
            "judge": [self.judge_size, self.crop_span, self.judge_labels],
            "second_look": [self.second_spans, self.second_band, self.second_min_top, self.top_floor],
            "rescue": [self.rescue_column, self.rescue_sure],
            "last_look": [
                self.last_look_column,
                self.last_look_sure,
                self.last_look_guard,
                self.last_look_floor,
                self.last_look_tops,
            ],
            "photo_calibration": self.open_temperature,
            "decision": [self.min_top, self.decode_side],
        }

    def preprocess(self, source: ImageSource) -> PreparedPhoto:
        image, size = decode_photo(source, max_side=self.decode_side, max_pixels=self.max_pixels)
        # JPEGs come back at the DCT scale that covers decode_side (up to twice it): use as is.
        # Other formats decode at full size: shrink them once here.
        if max(image.size) > 2 * self.decode_side:
            image = image.copy()
            image.thumbnail((self.decode_side, self.decode_side), Image.Resampling.BILINEAR)
        array = letterbox(
            image,
            self.finder_size,
            pad_value=self.artifact.pad_value,
            multiple=self.pad_multiple,
            reducing_gap=self.reducing_gap,
        )
        return PreparedPhoto(image, size, array)

    def tops_in(
        self,
        photo: PreparedPhoto,
        finder_output: np.ndarray,
        min_score: float | None = None,
        max_tops: int | None = None,
    ) -> list[tuple[float, float, float, float]]:
        """The tops the finder's output map marks in ``photo``: (x, y, side, score) in the decoded image's pixels.

        Multiply by ``photo.size[0] / photo.image.width`` for the photo's own pixels. ``min_score``
        and ``max_tops`` default to the model's.
        """
        geometry = Letterbox(photo.image.width, photo.image.height, self.finder_size, self.pad_multiple)
        out = finder_output
        tops = decode_tops(
            out[..., 0],
            out[..., 1],
            out[..., 2:4],
            self.stride,
            self.min_score if min_score is None else min_score,
            self.max_tops if max_tops is None else max_tops,
        )
        placed = []
        for top in tops:
            x, y = geometry.to_photo(top.x, top.y)
            placed.append((x, y, top.side / geometry.scale, top.score))
        return placed

    def find_tops(
        self, photo: PreparedPhoto, min_score: float | None = None, max_tops: int | None = None
    ) -> list[tuple[float, float, float, float]]:
        """Run the finder on one photo: :meth:`tops_in` of its output."""
        return self.tops_in(photo, self.finder.run(photo.finder_input[None])[0], min_score, max_tops)

    def crop(self, photo: PreparedPhoto, x: float, y: float, side: float, span: float | None = None) -> np.ndarray:
        """The judge's view of the top at (x, y) with box ``side`` (decoded-image pixels).

        The square is ``span`` times the box's side: the model's ``crop_span`` unless given.
        """
        span = self.crop_span if span is None else span
        square = cut_square(photo.image, x, y, max(side * span, 4.0), self.judge_size)
        return np.asarray(square, dtype=np.uint8)

    def analyse(self, photos: list[PreparedPhoto]) -> list[dict[str, Any]]:
        """Find and judge the tops of a batch of photos; one answer (a dict) per photo."""
        maps = self.finder_maps(photos)
        found = [self.tops_in(photo, out) for photo, out in zip(photos, maps, strict=True)]
        crops = [
            self.crop(photo, x, y, side)
            for photo, placed in zip(photos, found, strict=True)
            for x, y, side, _ in placed
        ]
        rows = self.look_again(photos, found, self.judge_crops(crops))
        found, rows = self.look_below_floor(photos, maps, found, rows)
        judged = iter(rows)
        return [self._answer(photo, placed, judged) for photo, placed in zip(photos, found, strict=True)]

    def look_below_floor(
        self, photos: list[PreparedPhoto], maps: list[np.ndarray], found: list[list], rows: list[np.ndarray]
    ) -> tuple[list[list], list[np.ndarray]]:
        """In each photo where no candidate counts after :meth:`look_again`, the last look at the finder's weaker ones.

        A model whose last look has a ``min_score`` (tops 3.6.0 on) reads the finder's map of such a
        photo again down to that score: the tops the finder scored under its floor (a lip seen end
        on, a crown cut by the frame's edge, a cap in a dim fridge; the strongest ``max_tops`` of them,
        since a photo with no bottle has many) are judged at ``crop_span``, and
        each the last look's gate is at least ``last_look_sure`` of, with the rescue gate at least
        ``last_look_guard``, counts at the last look's p(top), its p(open | top) looked at again as
        any unsure top's. Only those are added, after the photo's own candidates; a photo where
        something counts, or none of them passes, is answered as before
        (``recipe/experiments/last_look.py --floor``). Returns ``found`` and ``rows`` so extended.
        """
        if self.last_look_floor is None or self.last_look_column is None or self.rescue_column is None:
            return found, rows
        floor, none_i = float(self.last_look_floor), self._none_i
        counted = iter(1.0 - row[none_i] >= self.min_top for row in rows)
        quiet = [i for i, placed in enumerate(found) if not any([next(counted) for _ in placed])]
        below = {
            i: [top for top in self.tops_in(photos[i], maps[i], min_score=floor) if top[3] < self.min_score][
                : self.last_look_tops
            ]
            for i in quiet
        }
        crops = [self.crop(photos[i], x, y, side) for i, tops in below.items() for x, y, side, _ in tops]
        if not crops:
            return found, rows
        judged = iter(self.judge_crops(crops))
        last, guard = self.last_look_column, self.rescue_column
        added: dict[int, list[tuple[tuple, np.ndarray]]] = {}
        for i, tops in below.items():
            for top in tops:
                row = next(judged)
                if row[last] >= self.last_look_sure and row[guard] >= self.last_look_guard:
                    added.setdefault(i, []).append((top, self._row(self.p_open_given_top(row), float(row[last]), row)))
        if not added:
            return found, rows
        places = [(photos[i], top) for i, extra in added.items() for top, _ in extra]
        looked = iter(self._cap_looked_again(places, [row for extra in added.values() for _, row in extra]))
        starts = np.cumsum([0, *(len(placed) for placed in found)])
        new_found, new_rows = [], []
        for i, placed in enumerate(found):
            extra = added.get(i, [])
            new_found.append([*placed, *(top for top, _ in extra)])
            new_rows += [*rows[starts[i] : starts[i + 1]], *(next(looked) for _ in extra)]
        return new_found, new_rows

    def look_again(
        self, photos: list[PreparedPhoto], found: list[list], probabilities: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """The judge's rows with each doubtful candidate and each unsure top judged again at the second-look spans.

        ``probabilities`` holds one row per top in ``found`` (photo by photo, in order), judged
        at ``crop_span``. Two kinds of doubt send a candidate back to the judge, cut again at each
        of ``second_spans``:

        - the gate's (tops 3.2.0 on): its p(top) lies from ``top_floor`` up to ``min_top``. Its
          p(none) becomes the mean of its looks. The gate was trained on renders at one span and
          turns down real caps whose finder box is loose (a white cap on a brown bottle seen
          whole); a tighter view often sees the cap it missed, and the mean keeps a glass rim or a
          logo out as often as one look did (the model card);
        - the cap's: it counts (p(top) at least ``min_top`` and ``second_min_top``) and its
          p(open | top) lies within ``second_band`` of the threshold. Its p(open | top) becomes
          the mean of its looks; its p(none) stays as it was. A candidate the gate barely lets
          through (a neck ring below a cap) is not looked at again: a wider view of it tends to
          read open.

        A candidate with both doubts is cut once: the looks the gate's doubt took serve the cap's.
        Between the two, a judge with a rescue gate (tops 3.3.0 on) gets its say: a candidate still
        turned down (p(top) under ``min_top``) counts with the rescue gate's p(top) when that is at
        least ``rescue_sure``. The rescue gate reads the look at ``crop_span`` only, as it was
        measured (``recipe/probe_model4.py``: ``rescued``). Then, in a photo where still no
        candidate counts, a judge with a last look (tops 3.5.0 on) counts each candidate its third
        gate is at least ``last_look_sure`` of while the rescue gate is at least ``last_look_guard``
        (``recipe/experiments/last_look.py``). Every other row is returned as it came; a model with
        none of these returns them all.
        """
        rows = list(probabilities)
        if not self.second_spans:
            return self._last_looked(found, self._rescued(rows))
        none_i = self._none_i
        places = [(photo, top) for photo, placed in zip(photos, found, strict=True) for top in placed]
        looks: dict[int, list[np.ndarray]] = {}  # a candidate's rows at second_spans, once cut
        if self.top_floor is not None:
            doubted = [i for i, row in enumerate(rows) if self.top_floor <= 1.0 - row[none_i] < self.min_top]
            self._judge_again(places, doubted, looks)
            for i in doubted:
                p_none = float(np.mean([row[none_i] for row in [rows[i], *looks[i]]]))
                rows[i] = self._row(self.p_open_given_top(rows[i]), 1.0 - p_none, rows[i])
        return self._cap_looked_again(places, self._last_looked(found, self._rescued(rows)), looks)

    def _judge_again(self, places: list[tuple], indices: list[int], looks: dict[int, list[np.ndarray]]) -> None:
        """Judge each candidate of ``places`` at ``indices`` at every second-look span, into ``looks``."""
        crops = []
        for i in indices:
            photo, (x, y, side, _) = places[i]
            crops += [self.crop(photo, x, y, side, span) for span in self.second_spans]
        again = iter(self.judge_crops(crops))
        for i in indices:
            looks[i] = [next(again) for _ in self.second_spans]

    def _cap_looked_again(
        self, places: list[tuple], rows: list[np.ndarray], looks: dict[int, list[np.ndarray]] | None = None
    ) -> list[np.ndarray]:
        """``rows`` (one per (photo, top) of ``places``) with each unsure counted top's p(open | top) its looks' mean.

        The cap's second look: :meth:`look_again`'s last step, and the same for the tops
        :meth:`look_below_floor` adds after it. ``looks`` holds the rows already cut at the spans (the
        gate's doubt's), so that no candidate is cut twice.
        """
        if self.second_band <= 0 or not self.second_spans:
            return rows
        rows, none_i, looks = list(rows), self._none_i, {} if looks is None else looks
        unsure = [
            i
            for i, row in enumerate(rows)
            if 1.0 - row[none_i] >= max(self.min_top, self.second_min_top)
            and abs(self.p_open_given_top(row) - self.threshold) < self.second_band
        ]
        self._judge_again(places, [i for i in unsure if i not in looks], looks)
        for i in unsure:
            p_open = float(np.mean([self.p_open_given_top(row) for row in [rows[i], *looks[i]]]))
            rows[i] = self._row(p_open, 1.0 - float(rows[i][none_i]), rows[i])
        return rows

    def _rescued(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        """``rows`` with each turned-down candidate the rescue gate is sure of counted at its p(top)."""
        if self.rescue_column is None:
            return rows
        column, none_i = self.rescue_column, self._none_i
        return [
            self._row(self.p_open_given_top(row), float(row[column]), row)
            if 1.0 - row[none_i] < self.min_top and row[column] >= self.rescue_sure
            else row
            for row in rows
        ]

    def _last_looked(self, found: list[list], rows: list[np.ndarray]) -> list[np.ndarray]:
        """``rows`` with the last look taken in each photo of ``found`` where no candidate counts."""
        if self.last_look_column is None or self.rescue_column is None:
            return rows
        column, guard, none_i = self.last_look_column, self.rescue_column, self._none_i
        start = 0
        for placed in found:
            mine = range(start, start + len(placed))
            start += len(placed)
            if any(1.0 - rows[i][none_i] >= self.min_top for i in mine):
                continue
            for i in mine:
                row = rows[i]
                if row[column] >= self.last_look_sure and row[guard] >= self.last_look_guard:
                    rows[i] = self._row(self.p_open_given_top(row), float(row[column]), row)
        return rows

    def _row(self, p_open: float, p_top: float, like: np.ndarray) -> np.ndarray:
        """A judge row like ``like`` (its extra columns kept) holding p(open | top) ``p_open`` and p(top) ``p_top``."""
        row = np.array(like, dtype=np.float64)
        row[self._open_i], row[self._closed_i], row[self._none_i] = p_top * p_open, p_top * (1.0 - p_open), 1.0 - p_top
        return row

    def judge_crops(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """The judge's probabilities for each crop, :data:`JUDGE_BATCH` crops a call at most.

        A batch of photos may hold up to ``max_tops`` candidates each; one call on all of them
        would size the judge's tensors for the largest batch ever seen (about 1.5 MB a crop), and
        a server's memory would creep up with each new record. A crop costs the same at batch 8.
        """
        return [
            row
            for start in range(0, len(crops), JUDGE_BATCH)
            for row in self.judge.run(np.stack(crops[start : start + JUDGE_BATCH]))
        ]

    def finder_maps(self, photos: list[PreparedPhoto]) -> list[np.ndarray]:
        """The finder's output for each photo; photos of one input shape (orientation, aspect) run together."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, photo in enumerate(photos):
            by_shape.setdefault(photo.finder_input.shape, []).append(index)
        maps: list[np.ndarray] = [np.empty(0)] * len(photos)
        for indices in by_shape.values():
            outputs = self.finder.run(np.stack([photos[i].finder_input for i in indices]))
            for i, output in zip(indices, outputs, strict=True):
                maps[i] = output
        return maps

    def answer_with(self, photo: PreparedPhoto, placed: list, probabilities: Sequence[np.ndarray]) -> dict[str, Any]:
        """The decision rule applied to given judge ``probabilities``, one row per ``placed`` top.

        For tools that measure another judge on the same finder candidates
        (``recipe/experiments/train_judge.py``): the answer is the one the model would give with that judge.
        The rows are taken as final: pass them through :meth:`look_again` first for the model's
        second look.
        """
        return self._answer(photo, placed, iter(probabilities))

    def p_open_given_top(self, row: np.ndarray) -> float:
        """p(open | top) from one judge row: open's share of open and closed (the row also holds p(none))."""
        return float(row[self._open_i] / max(row[self._open_i] + row[self._closed_i], 1e-9))

    def calibrated(self, p_open: float) -> float:
        """A counted top's p(open | top) as reported: ``sigmoid(logit(p) / open_temperature)``.

        Applied after every look, so the looks, the statuses (at threshold 0.5) and the order of the
        tops are the judge's own; only how sure the answer says it is changes
        (``recipe/fit_photo_calibration.py`` says why and by how much).
        """
        return p_open if self.open_temperature == 1.0 else float(tempered(p_open, self.open_temperature))

    def _answer(self, photo: PreparedPhoto, placed: list, judged) -> dict[str, Any]:
        none_i = self._none_i
        to_photo = photo.size[0] / photo.image.width
        tops: list[dict[str, Any]] = []
        candidates: list[float] = []
        for x, y, side, score in placed:
            probabilities = next(judged)
            p_top = float(1.0 - probabilities[none_i])
            candidates.append(p_top)
            if p_top < self.min_top:
                continue
            p_open = self.calibrated(self.p_open_given_top(probabilities))
            status, confidence = self.decide(p_open)  # one threshold rule for both kinds of model
            half = side * to_photo / 2
            tops.append(
                {
                    "box": [  # plain floats: a row prints and serialises as numbers, not np.float64(...)
                        round(float(v), 1)
                        for v in (x * to_photo - half, y * to_photo - half, x * to_photo + half, y * to_photo + half)
                    ],
                    "status": status,
                    "confidence": confidence,
                    "p_open": p_open,
                    "p_top": p_top,
                    "score": float(score),
                }
            )
        opened = [t for t in tops if t["status"] == OPEN]
        if not tops:
            # Unknown: the chance that even the likeliest candidate is not a top (above 1 - min_top).
            confidence = 1.0 - max(candidates) if candidates else 1.0
            return {"status": UNKNOWN, "confidence": confidence, "p_open": None, "tops": tops}
        if opened:
            best = max(opened, key=lambda t: t["p_open"])
            return {"status": OPEN, "confidence": best["confidence"], "p_open": best["p_open"], "tops": tops}
        weakest = min(tops, key=lambda t: t["confidence"])
        return {"status": CLOSED, "confidence": weakest["confidence"], "p_open": weakest["p_open"], "tops": tops}

    def infer(self, prepared: list[Any]) -> list[dict[str, Any]]:
        """The answer of each photo as plain data (status, confidence, p_open, tops as dicts): what a cache stores."""
        return self.analyse(prepared)

    def prediction_from(self, name: str, result: dict[str, Any]) -> Prediction:
        tops = [BottleTop.from_mapping(top) for top in result["tops"]]
        return Prediction.with_tops(name, result["status"], result["confidence"], result["p_open"], tops)


def register_kinds(register: Callable[[str, KindLoader], None]) -> None:
    """The hook :mod:`bottlecheck.kinds` calls: this module's kind of model."""
    register(TOPS, TopsClassifier.from_artifact)
