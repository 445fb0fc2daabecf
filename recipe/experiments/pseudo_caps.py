"""Would the photos nobody labelled teach the cap real caps? Self-training, each group left out.

    python -m recipe.experiments.pseudo_caps --caps R/caps --cache R/m4 --model M320 [--report OUT.json]

Issue 36's last untried lever: semi-supervised use of the real photos without a label
(``unlabelled/trashnet-glass``, each real-sources folder's ``unsure/``) and of the candidates
nobody marked in the labelled photos. A **teacher** cap reads every candidate the shipped gate
counts four ways (the crop at spans 2.5, 1.6 and 4, and the 2.5 crop mirrored); where all four
agree beyond ``--sure`` the candidate becomes a training top of that class (a **pseudo-label**).
In a photo labelled closed a top read open is dropped: the photo's label says it is wrong. The
**student** is the cap refitted from 3.2.0's (``fit_linear_cap(prior=...)``, the pull
``bottlecheck train`` uses) on the pseudo-labelled tops, with or without the other groups' marked
tops, each (group, class) weighing alike.

Every figure is a group's photos answered by a student that never saw that group: no pseudo-label
comes from the left-out group's photos (labelled or not: using them would be adapting to the
test set), and a fold's own teacher (``--teacher fold``) never saw it either. The decision rule,
the rescue gate (left out as in 3.3.0's draw 1) and the cross-fitted photo temperature are
``recipe.probe_model4``'s; its cache holds the labelled photos' candidates and features. This adds
the mirrored crops and the unlabelled photos' candidates (4 minutes on 2 cores, cached); each
variant then takes about 20 s. The figures (36 variants, none kept every kind) are in
``model/HISTORY.md``, "the cap taught by the photos nobody labelled".
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import LinearCap, cap_features_model, fit_linear_cap, judge_features_model

from .. import kinds_table
from ..boxes_table import marks_by_photo, on_mark
from ..crops import alike
from ..probe_model4 import (
    SPANS,
    Bench,
    best_temperature,
    cap_looked_again,
    cap_of,
    cap_views,
    gate_looked_again,
    left_out_real_gate,
    rescued,
    sigmoid,
)
from ..real_photos import DATA, FOLDER_GROUPS, GROUPS


def unlabelled_photos(data: Path = DATA) -> list[tuple[Path, str]]:
    """Real photos without a label, with the repository group each came from."""
    photos = [(p, "trashnet") for p in sorted((data / "unlabelled" / "trashnet-glass").glob("*.jpg"))]
    for folder, group in FOLDER_GROUPS.items():
        unsure = data / "real-sources" / folder / "unsure"
        if unsure.is_dir():
            photos += [(p, group) for p in sorted(unsure.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return photos


def candidate_features(base: Classifier, paths: list[Path], cache: Path, name: str, every_span: bool) -> dict:
    """Each photo's candidates: their boxes (photo pixels), and the cap's features and judge rows of
    the mirrored 2.5 crop; with ``every_span`` also both at every span and the head's at 2.5."""
    key = "\n".join([base.artifact.checksum, name, *(str(p) for p in paths)])
    file = cache / f"pseudo-{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz"
    if not file.exists():
        cap, head = cap_features_model(), judge_features_model()
        parts: dict[str, list] = {}
        counts = []
        for path in paths:
            photo = base.preprocess(str(path))
            placed = base.find_tops(photo)  # type: ignore[attr-defined]
            counts.append(len(placed))
            if not placed:
                continue
            to_photo = photo.size[0] / photo.image.width
            parts.setdefault("box", []).append(
                np.array([[x * to_photo, y * to_photo, s * to_photo] for x, y, s, _ in placed])
            )
            for span in SPANS if every_span else SPANS[:1]:
                crops = np.stack([base.crop(photo, x, y, s, span) for x, y, s, _ in placed])  # type: ignore[attr-defined]
                views = [("", crops), ("flip", crops[:, :, ::-1])] if span == SPANS[0] else [("", crops)]
                for tag, view in views:
                    if not every_span and not tag:
                        continue
                    parts.setdefault(f"cap{tag}{span}", []).append(cap.predict(view.astype(np.float32), verbose=0))
                    parts.setdefault(f"rows{tag}{span}", []).append(np.stack(base.judge_crops(list(view))))  # type: ignore[attr-defined]
                if every_span and span == SPANS[0]:
                    parts.setdefault("head", []).append(head.predict(crops.astype(np.float32), verbose=0))
        np.savez(file, counts=np.array(counts), **{k: np.concatenate(v) for k, v in parts.items()})
    return dict(np.load(file))


def p_open_of(rows: np.ndarray) -> np.ndarray:
    return rows[:, 1] / np.maximum(rows[:, 0] + rows[:, 1], 1e-9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, action="append", required=True, help="render_caps.py output")
    parser.add_argument("--cache", type=Path, required=True, help="recipe.probe_model4's cache")
    parser.add_argument("--model", type=Path, required=True, help="model 3.2.0 (the cap and gate 3.4.0 keeps)")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--sure", type=float, action="append", help="agreement needed (default 0.8 and 0.9)")
    args = parser.parse_args(argv)
    import_tensorflow()

    base = Classifier.load(args.model, engine="litert")
    bench = Bench(base, args.cache)
    photos = bench.photos
    truth = {kinds_table.key(p): p.truth for p in photos}
    flips = candidate_features(base, [p.path for p in photos], args.cache, "labelled", every_span=False)
    assert int(flips["counts"].sum()) == len(bench.group), "the finder's candidates differ from the bench's"
    loose = unlabelled_photos()
    more = candidate_features(base, [p for p, _ in loose], args.cache, "unlabelled", every_span=True)
    more_group = np.concatenate([[g] * n for (_, g), n in zip(loose, more["counts"], strict=True)])

    # Labelled photos' candidates on no mark (nobody said what they are), and each photo's label.
    marks = marks_by_photo()
    unmarked, photo_truth = [], []
    for p, start, n in zip(photos, bench.starts, bench.counts, strict=True):
        _, tops = marks.get(str(p.path.resolve()), ("", []))
        for i in range(start, start + n):
            x, y, s = flips["box"][i]
            unmarked.append(not any(on_mark([x - s / 2, y - s / 2, x + s / 2, y + s / 2], m) for m in tops))
            photo_truth.append(p.truth)
    unmarked, photo_truth = np.array(unmarked), np.array(photo_truth)

    # The marked tops and renders (probe_model4's cached 12 views a top).
    _, cap_x, cap_open, cap_group = cap_views(args.caps, args.cache)
    prior = cap_of(args.model)

    # Every pool candidate: four views' features, the shipped gate's p(top) after its look, its group.
    pool = {
        "x": [np.concatenate([bench.arrays[f"cap{s}"], more[f"cap{s}"]]) for s in SPANS]
        + [np.concatenate([flips[f"capflip{SPANS[0]}"], more[f"capflip{SPANS[0]}"]])],
        "group": np.concatenate([bench.group, more_group]),
        "p_top": np.concatenate(
            [
                gate_looked_again(bench.p_top_shipped),
                gate_looked_again({s: 1.0 - more[f"rows{s}"][:, 2] for s in SPANS}),
            ]
        ),
        "labelled": np.concatenate([np.ones(len(bench.group), bool), np.zeros(len(more_group), bool)]),
        "unmarked": np.concatenate([unmarked, np.ones(len(more_group), bool)]),
        "photo_truth": np.concatenate([photo_truth, np.array(["unknown"] * len(more_group))]),
    }

    def pseudo(
        teacher: LinearCap, left_out: str, sure: float, sources: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pool's tops every view agrees on, outside ``left_out``: (features of the four views, labels, groups)."""
        p = np.stack([sigmoid(teacher.logits(x)) for x in pool["x"]])
        opened, closed = (p >= sure).all(axis=0), (p <= 1 - sure).all(axis=0)
        take = (pool["group"] != left_out) & (pool["p_top"] >= 0.5) & pool["unmarked"] & (opened | closed)
        take &= ~(opened & (pool["photo_truth"] == "closed"))
        if sources == "unlabelled":
            take &= ~pool["labelled"]
        rows = np.flatnonzero(take)
        x = np.concatenate([v[rows] for v in pool["x"]])
        return x, np.tile(opened[rows].astype(int), 4), np.tile(np.char.add(pool["group"][rows], ":pseudo"), 4)

    p_top = rescued(gate_looked_again(bench.p_top_shipped), left_out_real_gate(bench, args.cache), 0.95)

    def answers(folds: dict[str, LinearCap], t: float = 1.0) -> dict:
        out = {}
        for g in GROUPS:
            by_span = {s: sigmoid(folds[g].logits(bench.arrays[f"cap{s}"]) / t) for s in SPANS}
            out.update(bench.answers(p_top, cap_looked_again(by_span, p_top), [g]))
        return out

    def temperature_of(folds: dict[str, LinearCap]) -> float:
        return best_temperature(lambda t: answers(folds, t), truth)

    def student(
        g: str, l2: float, marked_tops: bool, teacher: LinearCap | None, sure: float, sources: str
    ) -> LinearCap:
        keep_groups = ["caps-render", *(x for x in GROUPS if x != g)] if marked_tops else ["caps-render"]
        keep = np.flatnonzero(np.isin(cap_group, keep_groups))
        x, y, groups = cap_x[keep], cap_open[keep], cap_group[keep]
        counts = {}
        if teacher is not None:
            px, py, pg = pseudo(teacher, g, sure, sources)
            counts = {"open": int(py.sum()) // 4, "closed": int((1 - py).sum()) // 4}
            x, y, groups = np.concatenate([x, px]), np.concatenate([y, py]), np.concatenate([groups, pg])
        cap = fit_linear_cap(x, y, alike(groups, y), l2, prior=prior)
        cap.pseudo = counts  # type: ignore[attr-defined]
        return cap

    results: dict[str, dict] = {}

    def row(name: str, folds: dict[str, LinearCap]) -> None:
        t = temperature_of(folds)
        table = kinds_table.table(photos, answers(folds, t))
        pseudo_counts = [getattr(c, "pseudo", {}) for c in folds.values()]
        table["pseudo-labels per fold"] = {
            k: int(np.median([c.get(k, 0) for c in pseudo_counts])) for k in ("open", "closed")
        }
        results[f"{name} (T {t:.2f})"] = table
        kinds = " ".join(f"{k[:12]}={v['balanced_accuracy']}" for k, v in table["kinds"].items())
        print(
            f"{name} (T {t:.2f}): mean {table['mean_over_groups']} glass {table['glass']['balanced_accuracy']} "
            f"PET {table['pet']['balanced_accuracy']} ECE {table['all_answered_ece']} | {kinds} | "
            f"pseudo {table['pseudo-labels per fold']}",
            flush=True,
        )

    row("3.3.0 (3.2.0's cap), rescue left out", {g: prior for g in GROUPS})
    for sure in args.sure or (0.8, 0.9):
        for sources in ("unlabelled", "all"):
            for l2 in (10.0, 100.0):
                row(
                    f"pull {l2:g}, pseudo from 3.2.0's cap ({sources}, sure {sure})",
                    {g: student(g, l2, False, prior, sure, sources) for g in GROUPS},
                )
                row(
                    f"pull {l2:g}, marked tops + pseudo from 3.2.0's cap ({sources}, sure {sure})",
                    {g: student(g, l2, True, prior, sure, sources) for g in GROUPS},
                )
        # One round with each fold's own teacher: the cap pulled by the other groups' marked tops.
        teachers = {g: student(g, 10.0, True, None, sure, "all") for g in GROUPS}
        row("pull 10, marked tops (session 18's teacher)", teachers)
        row(
            f"pull 10, marked tops + pseudo from the fold's teacher (all, sure {sure})",
            {g: student(g, 10.0, True, teachers[g], sure, "all") for g in GROUPS},
        )
    for name, table in results.items():
        print(f"\n### {name}\n\n{kinds_table.markdown(table)}")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
