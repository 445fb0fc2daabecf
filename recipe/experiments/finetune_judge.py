"""Does a judge whose one backbone is fine-tuned for both its questions count fewer false tops? (issue 36)

    python -m recipe.experiments.finetune_judge --caps R/caps --caps-eval R/caps-eval --views-cache W/ft \
        --cache R/m4 --model M320 --out W/judges --leave-out G ...      (train: one fold a group)
    python -m recipe.experiments.finetune_judge --caps R/caps --caps-eval R/caps-eval --views-cache W/ft \
        --cache R/m4 --model M320 --out W/judges [--report W/fj.json]   (score the folds there are)

Session 21's cap fine-tuned on every group's marked tops (``finetune_cap --all-groups``) ranks the
left-out groups' caps far better than 3.2.0's linear cap, but the photos did not follow
(``finetuned_cap_photos``): a photo is open when any top the gate counts reads open, and in the
closed photos 3.2.0's gate, learned from renders, counts candidates on no marked top (hk 134,
beercooler 74, algeria-pet 69, crushed-pet 56), some of which any cap reads open. Teaching the
cap that those are "not open" taught it that a small round opening is not open (street tables
0.912 -> 0.059). The other way is the gate's: this fine-tunes one EfficientNet-Lite0 with both
heads the shipped judge has, so that it stays one backbone and one pass:

* the **cap**, p(open | top), a linear layer on the pooled last block, on the marked real tops
  and the cap renders (each (group, class) alike; not-tops weigh nothing);
* the **gate**, p(top), a linear layer on the pooled 1x1 head, on the same tops against the marks
  a person called not a top (``finetune_cap.checked_not_tops``: bowls, glasses, routers, soju caps;
  each (group, top or not) alike).

LP-FT as ``finetune_cap``: both layers start as their linear fits on the frozen views, then every
layer but the batch norms learns at Adam 1e-4 on the hard views for two epochs (the cached views
of ``finetune_cap --all-groups --not-tops``, so the cap sees what session 21's did). A fold saves
the left-out group's bench candidates' gate and cap logits at the three spans (``G.npz``).

Scored on the photos in the product's rule as ``probe_model4`` replays it, each group answered by
the fold that never saw it, against the fair baseline (3.4.0's rule with the cap of 3.2.0's
recipe and the rescue gate each refitted without the group): the fine-tuned gate as the rescue
gate, as a *veto* (a candidate 3.2.0's gate counts is turned down where the fine-tuned gate is
sure it is no top: what the render gate knew about close-ups is kept), and alone; each with the
recipe's cap, the fine-tuned cap and the two blended.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bottlecheck import Classifier
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.judge import CAP_LAYER, JUDGE_SIZE, cap_pooling, fit_linear_cap

from .. import kinds_table
from ..crops import alike, cap_render_crops, marked
from ..probe_model4 import (
    SPANS,
    Bench,
    best_temperature,
    cap_looked_again,
    cap_views,
    gate_looked_again,
    left_out_caps,
    left_out_logits,
    left_out_real_gate,
    rescued,
    sigmoid,
)
from ..real_photos import GROUPS, OLDER_GROUPS
from ..train_cap_judge import each_source_and_class_alike
from .finetune_cap import checked_not_tops, views
from .finetuned_cap_photos import candidate_crops, summary

VIEWS, EPOCHS, LR, BATCH, L2 = 8, 2, 1e-4, 32, 1e-2


def judge_network():
    """Lite0 with the judge's two heads: [cap logit, gate logit]; the features model for the linear start."""
    import keras

    from bottlecheck.training.backbone import imagenet_backbone

    inputs = keras.Input((JUDGE_SIZE, JUDGE_SIZE, 3), name="crop")
    whole, _ = imagenet_backbone(inputs, 0)
    cap_pooled = cap_pooling(whole.get_layer(CAP_LAYER).output, "mean")
    head_pooled = keras.layers.GlobalAveragePooling2D(name="pool")(whole.output)
    cap = keras.layers.Dense(1, name="cap_logit")(cap_pooled)
    gate = keras.layers.Dense(1, name="gate_logit")(head_pooled)
    model = keras.Model(inputs, keras.layers.Concatenate(name="logits")([cap, gate]))
    for layer in model.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return model, keras.Model(inputs, [cap_pooled, head_pooled])


def two_head_loss(packed, logits):
    """Weighted binary cross-entropy of both heads; ``packed`` holds [is_open, is_top, cap weight, gate weight]."""
    import keras

    ops = keras.ops

    def bce(y, z):
        return ops.maximum(z, 0) - z * y + ops.log1p(ops.exp(-ops.abs(z)))

    cap = packed[:, 2] * bce(packed[:, 0], logits[:, 0])
    gate = packed[:, 3] * bce(packed[:, 1], logits[:, 1])
    return ops.mean(cap + gate)


def training_crops(caps: Path, caps_eval: Path) -> list:
    """``finetune_cap --all-groups --not-tops``' crops, in its order (so its cached views serve)."""
    tops = marked(("open", "closed")) + [c for c in cap_render_crops([caps]) if c.label in ("open", "closed")]
    unseen = [c for c in cap_render_crops([caps_eval], group="caps-unseen") if c.label in ("open", "closed")]
    return tops + checked_not_tops() + unseen


def train_fold(group_out: str, crops: list, hard: np.ndarray, frozen: dict, base: Classifier, bench: Bench) -> dict:
    """Train without ``group_out``; its bench candidates' cap and gate logits at each span."""
    import keras

    group = np.array([c.group for c in crops])
    label = np.array([c.label for c in crops])
    of_view = np.repeat(np.arange(len(crops)), VIEWS)
    keep = (group[of_view] != group_out) & (group[of_view] != "caps-unseen")
    kept = of_view[keep]
    is_top, is_open = label[kept] != "none", label[kept] == "open"
    cap_weight = np.zeros(len(kept))
    cap_weight[is_top] = each_source_and_class_alike(crops, kept[is_top])
    gate_weight = alike(group[kept], is_top)
    cap = fit_linear_cap(frozen["cap"][keep][is_top], is_open[is_top].astype(int), cap_weight[is_top], L2)
    gate = fit_linear_cap(frozen["head"][keep], is_top.astype(int), gate_weight, L2)

    keras.utils.set_random_seed(0)
    model, _ = judge_network()
    model.get_layer("cap_logit").set_weights(
        [cap.kernel.reshape(-1, 1).astype(np.float32), np.array([cap.bias], np.float32)]
    )
    model.get_layer("gate_logit").set_weights(
        [gate.kernel.reshape(-1, 1).astype(np.float32), np.array([gate.bias], np.float32)]
    )
    model.compile(optimizer=keras.optimizers.Adam(LR), loss=two_head_loss)
    order = np.random.default_rng(0).permutation(len(kept))
    packed = np.stack([is_open, is_top, cap_weight, gate_weight], axis=1)[order].astype(np.float32)
    model.fit(hard[keep][order].astype(np.float32), packed, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=True)

    by_photo = candidate_crops(base, bench, group_out)
    both = np.concatenate([np.stack([model.predict(c, verbose=0) for c in crops], axis=1) for crops in by_photo])
    return {"cap": both[:, :, 0], "gate": both[:, :, 1]}


def variants(args: argparse.Namespace, bench: Bench, done: list[str]) -> tuple[dict, dict]:
    """The gates' p(top) of every bench candidate, and the caps' logits by span (the done groups' rows)."""
    n = len(bench.group)
    tuned = {k: {s: np.full(n, np.nan) for s in SPANS} for k in ("cap", "gate")}
    for g in done:
        stored = np.load(args.out / f"{g}.npz")
        for k in tuned:
            for i, s in enumerate(SPANS):
                tuned[k][s][bench.group == g] = stored[k][:, i]

    recipe = left_out_logits(bench, left_out_caps(cap_views([args.caps], args.cache)[1:], OLDER_GROUPS, done))

    shipped_top = gate_looked_again(bench.p_top_shipped)
    as_shipped = rescued(shipped_top, left_out_real_gate(bench, args.cache), 0.95)
    tuned_top = gate_looked_again({s: sigmoid(tuned["gate"][s]) for s in SPANS})
    gates = {
        "3.4.0's gates": as_shipped,
        "rescued by the tuned gate": rescued(shipped_top, tuned_top, 0.95),
        **{
            f"3.4.0's, vetoed below {v}": np.where((as_shipped >= 0.5) & (tuned_top < v), tuned_top, as_shipped)
            for v in (0.05, 0.2)
        },
        "the tuned gate alone": tuned_top,
    }
    caps = {
        "recipe's cap": recipe,
        "tuned cap": tuned["cap"],
        "blend 0.25": {s: 0.75 * recipe[s] + 0.25 * tuned["cap"][s] for s in SPANS},
    }
    return gates, caps


def score(args: argparse.Namespace, bench: Bench, done: list[str]) -> dict:
    """Every variant's answers to the done groups' photos, per group and kind."""
    truth = {kinds_table.key(p): p.truth for p in bench.photos}
    gates, caps = variants(args, bench, done)
    results = {}
    for gate_name, p_top in gates.items():
        for cap_name, cap_logits in caps.items():

            def answers(t: float, p_top=p_top, cap_logits=cap_logits) -> dict:
                by_span = {s: sigmoid(cap_logits[s] / t) for s in SPANS}
                return bench.answers(p_top, cap_looked_again(by_span, p_top), done)

            t = best_temperature(answers, truth)
            results[f"{gate_name}; {cap_name}"] = summary(bench.photos, done, answers(t), t)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=Path, required=True, help="render_caps.py output (training)")
    parser.add_argument("--caps-eval", type=Path, required=True, help="render_caps.py's unseen renders")
    parser.add_argument("--views-cache", type=Path, required=True, help="finetune_cap's --cache (the views)")
    parser.add_argument("--cache", type=Path, required=True, help="recipe.probe_model4's cache")
    parser.add_argument("--model", type=Path, required=True, help="model 3.2.0 (its finder, gate and cap)")
    parser.add_argument("--out", type=Path, required=True, help="each fold's candidates' logits (GROUP.npz)")
    parser.add_argument("--leave-out", action="append", default=[], help="train the fold without this group")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    import_tensorflow()

    base = Classifier.load(args.model, engine="litert")
    bench = Bench(base, args.cache)
    to_train = [g for g in args.leave_out if not (args.out / f"{g}.npz").exists()]
    if to_train:
        crops = training_crops(args.caps, args.caps_eval)
        hard = views(crops, VIEWS, 0, True, args.views_cache)
        frozen_file = args.views_cache / f"judge-frozen-v{VIEWS}-n{len(crops)}.npz"
        if not frozen_file.exists():
            started = time.time()
            _, features = judge_network()
            recipe_views = views(crops, VIEWS, 0, False, args.views_cache).astype(np.float32)
            cap, head = features.predict(recipe_views, batch_size=64, verbose=0)
            np.savez(frozen_file, cap=cap, head=head)
            print(f"frozen features in {time.time() - started:.0f} s", flush=True)
        frozen = dict(np.load(frozen_file))
        args.out.mkdir(parents=True, exist_ok=True)
        for g in to_train:
            started = time.time()
            np.savez(args.out / f"{g}.npz", **train_fold(g, crops, hard, frozen, base, bench))
            print(f"{g}: {time.time() - started:.0f} s", flush=True)

    done = [g for g in GROUPS if (args.out / f"{g}.npz").exists()]
    if not done:
        return
    results = score(args, bench, done)
    kinds = list(next(iter(results.values()))["kinds"])
    print(f"\n| gate; cap | mean | {' | '.join(done)} | {' | '.join(kinds)} | ECE | T |")
    print(f"| --- |{' ---: |' * (len(done) + len(kinds) + 3)}")
    for name, r in results.items():
        cells = [r["mean_over_groups"], *(r["groups"][g]["balanced_accuracy"] for g in done)]
        cells += [r["kinds"][k]["balanced_accuracy"] for k in kinds] + [r["all_answered_ece"], r["temperature"]]
        print(f"| {name} | {' | '.join(str(c) for c in cells)} |")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
