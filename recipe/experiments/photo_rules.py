"""Would another rule from a photo's tops to its answer serve real photos better? Chosen with each group left out.

    python -m recipe.experiments.photo_rules --caps R/caps --cache R/m4 --model M320 --out W/judges \
        [--nets W/nets] [--report W/rules.json]

The product's rule: a photo is open when any top the gate counts reads open. Session 22 found
(``finetune_judge``) that most of the candidates the gate counts in closed photos on no marked top
are unmarked tops, not false ones: a beer cooler or a collection box holds many capped bottles
and nobody marked them all. A photo of n capped tops is then answered right only if all n read
closed, so a cap that errs on one top in ten errs on most crowded photos. Rules that weigh the
tops instead:

* ``any, p_open >= t``: the product's rule with a surer bar (t 0.5 is the product's);
* ``share >= r``: open when at least a share r of the counted tops read open;
* ``largest``: the counted top with the largest box decides (the bottle in front);
* ``any of the tops >= r the largest``: the product's rule among the counted tops at least r
  times the largest one's side (the bottles in front, not the caps behind them);
* ``mean``: the counted tops' p_open, weighed by p(top), at 0.5;
* ``any, bar 0.5 + k x (1 - side / largest)``: the product's rule with a surer bar the smaller
  a top is than the largest (a soft form of the last two but one; "the largest open top against
  the largest closed" is the same rule as ``any of the tops >= r the largest``);
* ``learned on the other groups``: a logistic rule over ``photo_features`` (the tops' most and
  least open logit, the largest top's, the mean, the share open, how many, the largest open
  top's size and surest p(top)), fitted on the other groups' photos for each group; its output
  is the photo's p(open), so it has an ECE of its own.

Each is applied to the same candidates, gates and caps as ``finetune_judge`` (every group
answered by stages that never saw it), and to 3.2.0's cap as 3.4.0 ships it. The rule is chosen
with each group left out: the rule best on the mean of the other groups answers the group, so
the last row is a figure no group chose (the learned rules are not among the choices: they
are fitted without the group already). The hand rules give no p(open), so their ECE is blank:
a rule other than ``any`` would need its own photo calibration. ``--nets`` adds session 21's cap, fine-tuned alone
(``finetune_cap --all-groups --save``), on the groups that have both folds.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import fit_linear_cap

from .. import kinds_table
from ..probe_model4 import SPANS, Bench, best_temperature, cap_looked_again, cap_of, sigmoid
from ..real_photos import GROUPS, KINDS
from .finetune_judge import variants
from .finetuned_cap_photos import fold_logits
from .pseudo_caps import candidate_features

#: A rule: (counted tops' p_open, their p(top), their box sides) -> open?
Rule = Callable[[np.ndarray, np.ndarray, np.ndarray], bool]

RULES: dict[str, Rule] = {
    **{f"any, p_open >= {t}": (lambda o, _t, _s, t=t: bool((o >= t).any())) for t in (0.5, 0.6, 0.7, 0.8)},
    **{f"share >= {r}": (lambda o, _t, _s, r=r: bool((o >= 0.5).mean() >= r)) for r in (0.25, 0.5)},
    "largest": lambda o, _t, s: bool(o[np.argmax(s)] >= 0.5),
    **{
        f"any of the tops >= {r} the largest": (lambda o, _t, s, r=r: bool((o[s >= r * s.max()] >= 0.5).any()))
        for r in (0.5, 0.75)
    },
    "mean": lambda o, t, _s: bool(np.average(o, weights=t) >= 0.5),
    **{
        f"any, bar 0.5 + {k} x (1 - side / largest)": (
            lambda o, _t, s, k=k: bool((o >= 0.5 + k * (1 - s / s.max())).any())
        )
        for k in (0.2, 0.4)
    },
}


def answers(bench: Bench, p_top: np.ndarray, p_open: np.ndarray, side: np.ndarray, rule: Rule, groups) -> dict:
    """Each photo's status under ``rule`` (a top counts at p(top) 0.5; unknown when none counts)."""
    out = {}
    for p, start, n in zip(bench.photos, bench.starts, bench.counts, strict=True):
        if p.group not in groups:
            continue
        counted = p_top[start : start + n] >= 0.5
        if not counted.any():
            out[kinds_table.key(p)] = {"status": "unknown", "p_open": None}
            continue
        rows = slice(start, start + n)
        is_open = rule(p_open[rows][counted], p_top[rows][counted], side[rows][counted])
        out[kinds_table.key(p)] = {"status": "open" if is_open else "closed", "p_open": None}
    return out


def photo_features(o: np.ndarray, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """What a learned rule sees of a photo's counted tops (p_open, p(top), box sides)."""
    o = np.clip(o, 1e-4, 1 - 1e-4)
    logit = np.log(o / (1 - o))
    opened = o >= 0.5
    largest = int(np.argmax(s))
    return np.array(
        [
            logit.max(),
            logit.min(),
            logit[largest],
            float(np.average(logit, weights=t)),
            opened.mean(),
            np.log(len(o)),
            s[opened].max() / s.max() if opened.any() else 0.0,
            t[opened].max() if opened.any() else 0.0,
        ]
    )


def learned_answers(bench: Bench, p_top: np.ndarray, p_open: np.ndarray, side: np.ndarray, groups, l2: float) -> dict:
    """Each group's photos answered by a logistic rule over ``photo_features`` fitted on the other groups.

    Each group's open and its closed photos weigh the same in the fit, so that no one group's
    mix of classes sets the rule. Its output is the photo's p(open), so the rule is calibrated
    on the other groups too (the ECE column means something here, unlike the hand rules').
    """
    rows = []
    for p, start, n in zip(bench.photos, bench.starts, bench.counts, strict=True):
        counted = p_top[start : start + n] >= 0.5
        if not counted.any():
            rows.append((p, None))
            continue
        cut = slice(start, start + n)
        rows.append((p, photo_features(p_open[cut][counted], p_top[cut][counted], side[cut][counted])))
    out = {}
    for g in groups:
        train = [(p, f) for p, f in rows if f is not None and p.group != g and p.truth in ("open", "closed")]
        y = np.array([p.truth == "open" for p, _ in train])
        w = np.ones(len(train))
        for h in {p.group for p, _ in train}:
            for truth in (True, False):
                mine = np.array([p.group == h for p, _ in train]) & (y == truth)
                w[mine] = 1.0 / mine.sum() if mine.any() else 0.0
        rule = fit_linear_cap(np.stack([f for _, f in train]), y, w, l2=l2)
        for p, f in rows:
            if p.group != g:
                continue
            if f is None:
                out[kinds_table.key(p)] = {"status": "unknown", "p_open": None}
                continue
            q = float(sigmoid(rule.logits(f[None])[0]))
            out[kinds_table.key(p)] = {"status": "open" if q >= 0.5 else "closed", "p_open": q}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, required=True, help="render_caps.py output (the recipe's cap)")
    parser.add_argument("--cache", type=Path, required=True, help="recipe.probe_model4's cache")
    parser.add_argument("--model", type=Path, required=True, help="model 3.2.0 (its finder, gate and cap)")
    parser.add_argument("--out", type=Path, required=True, help="finetune_judge's folds (GROUP.npz)")
    parser.add_argument("--nets", type=Path, help="finetune_cap --save's folder: adds its cap (where both folds are)")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    import_tensorflow()

    base = Classifier.load(args.model, engine="litert")
    bench = Bench(base, args.cache)
    done = [g for g in GROUPS if (args.out / f"{g}.npz").exists()]
    if args.nets:  # only the groups with both folds
        done = [g for g in done if (args.nets / f"{g}.weights.h5").exists()]
    side = candidate_features(base, [p.path for p in bench.photos], args.cache, "labelled", every_span=False)["box"]
    side = side[:, 2]
    assert len(side) == len(bench.group), "the candidates' boxes differ from the bench's"
    truth = {kinds_table.key(p): p.truth for p in bench.photos}
    gates, caps = variants(args, bench, done)
    shipped = cap_of(args.model)
    caps["3.2.0's cap (as shipped)"] = {s: shipped.logits(bench.arrays[f"cap{s}"]) for s in SPANS}
    if args.nets:
        alone = {s: np.full(len(bench.group), np.nan) for s in SPANS}
        for g in done:
            by_span = fold_logits(base, bench, g, args.nets / f"{g}.weights.h5", args.nets)
            for i, s in enumerate(SPANS):
                alone[s][bench.group == g] = by_span[:, i]
        caps["cap fine-tuned alone"] = alone
    chosen = [
        ("3.4.0's gates", "3.2.0's cap (as shipped)"),
        ("3.4.0's gates", "recipe's cap"),
        ("rescued by the tuned gate", "recipe's cap"),
        ("rescued by the tuned gate", "tuned cap"),
        ("rescued by the tuned gate", "blend 0.25"),
        *((g, "cap fine-tuned alone") for g in ("3.4.0's gates", "rescued by the tuned gate") if args.nets),
    ]
    mine = [p for p in bench.photos if p.group in done]
    report: dict = {}
    for gate_name, cap_name in chosen:
        p_top, logits = gates[gate_name], caps[cap_name]

        def p_open_at(t: float, p_top=p_top, logits=logits) -> np.ndarray:
            return cap_looked_again({s: sigmoid(logits[s] / t) for s in SPANS}, p_top)

        t = best_temperature(lambda t, p_top=p_top: bench.answers(p_top, p_open_at(t), done), truth)
        p_open = p_open_at(t)
        table = {}
        for name, rule in RULES.items():
            given = answers(bench, p_top, p_open, side, rule, done)
            table[name] = {
                **{g: kinds_table.score([p for p in mine if p.group == g], given) for g in done},
                **{k: kinds_table.score([p for p in mine if k in p.kinds], given) for k in KINDS},
                "all": kinds_table.score(mine, given),
            }
        for l2 in (1e-2, 1e-1):
            given = learned_answers(bench, p_top, p_open, side, done, l2)
            table[f"learned on the other groups (l2 {l2:g})"] = {
                **{g: kinds_table.score([p for p in mine if p.group == g], given) for g in done},
                **{k: kinds_table.score([p for p in mine if k in p.kinds], given) for k in KINDS},
                "all": kinds_table.score(mine, given),
            }
        picks, left_out = {}, {}
        for g in done:
            others = [h for h in done if h != g]
            picks[g] = max(RULES, key=lambda r: np.mean([table[r][h]["balanced_accuracy"] for h in others]))
            left_out.update(answers(bench, p_top, p_open, side, RULES[picks[g]], [g]))
        table["chosen with its group left out"] = {
            **{g: kinds_table.score([p for p in mine if p.group == g], left_out) for g in done},
            **{k: kinds_table.score([p for p in mine if k in p.kinds], left_out) for k in KINDS},
            "all": kinds_table.score(mine, left_out),
        }
        kinds = [k for k in KINDS if table["largest"][k]["photos"]]
        print(f"\n### {gate_name}; {cap_name} (T {t:.2f}); picks: {json.dumps(picks)}\n")
        columns = [*done, *kinds]
        print(f"| rule | mean | {' | '.join(columns)} | ECE |\n| --- |{' ---: |' * (2 + len(columns))}")
        for name, row in table.items():
            mean = round(float(np.mean([row[g]["balanced_accuracy"] for g in done])), 3)
            cells = [mean, *(row[c]["balanced_accuracy"] for c in columns), row["all"].get("ece", "-")]
            print(f"| {name} | {' | '.join(str(c) for c in cells)} |")
        report[f"{gate_name}; {cap_name}"] = {"temperature": round(t, 2), "picks": picks, "table": table}
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
