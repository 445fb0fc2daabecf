#!/usr/bin/env bash
# The shipped model (3.6.0), end to end: renders, the finder and gate (2.2.0's stages), the cap
# judge and the decision rule's second looks (3.2.0), the rescue gate learned from the real photos'
# marked tops (3.3.0), the photo calibration fitted on the real groups the cap never saw (3.4.0),
# the last look in the photos where nothing else counts (3.5.0), also at the finder's weaker
# candidates there (3.6.0), the leave-one-group-out tables
# they were chosen on, and the per-group, per-kind table on every labelled real photo, both
# written into the model's metadata.
#
#   recipe/recipe.sh WORK_DIR                        # everything: renders ~8 h on 2 cores, training ~40 min
#   recipe/recipe.sh WORK_DIR --finder-from model    # keep the shipped finder and gate: the cap renders
#                                                    # (~40 min on one thread), the cap judge (~5 min), the
#                                                    # rescue gate (~4 min), the photo calibration
#                                                    # (~1 min), the last look (~3 min) and the
#                                                    # tables (~15 min)
#
# Needs: apt-get install blender; pip install -e '.[train,test]'; ../shared/data (REAL_DATA and
# REAL_SOURCES override it). The model is written to WORK_DIR/model, version 3.6.0 (3.4.0 and
# 3.5.0 on the way, in WORK_DIR/m340 and WORK_DIR/m350). Checked on
# 2026-12-06 with --finder-from model (and with 2.2.0's files from git, the same): the same cap,
# each beer source left out to the third decimal (office 0.756, check-ins 0.564, street 0.882), but
# the photo temperature fits at 1.91 where 3.2.0 ships 1.68 and product-poster left out gives 0.792
# (0.797): the real photos it is cross-fitted on have moved since 3.2.0 shipped (not traced).
# The rescue gate and its tables were made by steps 5-7 from 3.2.0's shipped files; run again
# from them (3 min 17 s with the probe's features cached), they give judge.tflite byte for byte and
# the same metadata.json but for its two times (judge.keras differs in its archive's timestamps).
# 3.5.0's last look (step 7) was made from 3.4.0's shipped files on 2026-12-07 (10 s with the
# features cached; the experiment that chose it 2 min 21 s), after the marks' review of that day:
# the rescue gate was learned before it, so 3.4.0's own labels are replayed in the tables; a
# rebuild learns the rescue gate from today's marks (38 more tops), within a draw of those rows
# (left out at 0.95: mean 0.653 and 0.630 against 0.652 and 0.632).
# Run whole on 2026-12-07 (session 25) with --finder-from 2.2.0's files from git (git show
# 26d435c:model/...): 54 minutes on 2 cores (the cap renders 24 of them; the test suite and CI ran
# alongside for part of it). It stopped at step 8: step 7 asked last_look for every candidate under
# the floor, not the shipped two (--floor-tops 2, now added; 3 min 37 s more, and a test holds the
# flag to the model's max_tops). The model it builds: the finder byte for byte; the cap's
# temperature 1.91 (as above) and the rescue gate learned from today's marks, so judge.tflite
# differs; the photo calibration fits at 2.42 (2.76). As served it answers as 3.6.0 within a photo
# or two a group (mean over groups 0.672 against 0.67, no group or kind lower, ECE 0.076 against
# 0.081), and its left-out table gives 3.6.0's rows (0.687 and 0.654 against 0.687 and 0.652).
# The scene renders are not reproducible to the image (model/HISTORY.md, "Model 2's recipe"): a
# full rebuild draws other scenes and measures within a draw of the card's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: recipe/recipe.sh WORK_DIR [--finder-from MODEL_DIR]}
finder_from=
[ "${2:-}" = "--finder-from" ] && finder_from=${3:?--finder-from needs a model directory}
shared=${SHARED_DATA:-../shared/data}
real=${REAL_DATA:-$shared/real}
real_sources=${REAL_SOURCES:-$shared/real-sources}
version=3.6.0
mkdir -p "$work"

# 1. Background plates (scikit-image sample photos and procedural plates; no bottles); the
#    unseen renders get plates of their own.
python recipe/render/make_backgrounds.py --out "$work/bg" --count 240 --seed 7
python recipe/render/make_backgrounds.py --out "$work/bg-eval" --count 60 --seed 99

# 2. The finder and the gate (model 2.2.0's stages): annotated scenes, then both stages trained
#    on them and the real photos; the finder's score floor is 0.2 (model card, "Choices").
if [ -z "$finder_from" ]; then
    blender -b -t 1 -P recipe/render/render_tops.py -- --out "$work/tops" --backgrounds "$work/bg" \
        --start 0 --count 581 --seed 11 >"$work/render-tops-a.log" 2>&1 &
    blender -b -t 1 -P recipe/render/render_tops.py -- --out "$work/tops" --backgrounds "$work/bg" \
        --start 100000 --count 420 --seed 11 >"$work/render-tops-b.log" 2>&1 &
    wait
    python -m recipe.train_tops --renders "$work/tops" --real "$real" --out "$work/m220" --version 2.2.0
    python - "$work/m220/metadata.json" <<'PY'
import json, sys
path = sys.argv[1]
meta = json.load(open(path))
meta["stages"]["finder"]["min_score"] = 0.2
json.dump(meta, open(path, "w"), indent=2)
PY
    finder_from="$work/m220"
fi

# 3. Caps close up, the kinds model 2 got wrong (training), and unseen ones (measuring only).
blender -b -t 1 -P recipe/render/render_caps.py -- --out "$work/caps" --backgrounds "$work/bg" \
    --start 0 --count 377 --seed 41 >"$work/render-caps-a.log" 2>&1 &
blender -b -t 1 -P recipe/render/render_caps.py -- --out "$work/caps" --backgrounds "$work/bg" \
    --start 100000 --count 162 --seed 41 >"$work/render-caps-b.log" 2>&1 &
wait
blender -b -t 1 -P recipe/render/render_caps.py -- --out "$work/caps-eval" --backgrounds "$work/bg-eval" \
    --start 500000 --count 138 --seed 43 >"$work/render-caps-eval.log" 2>&1

# 4. The cap judge beside the kept finder and gate, chosen on each real source left out; the
#    second looks (a band of 0.15 round the threshold; the gate's doubt from p(top) 0.35).
python -m recipe.train_cap_judge --caps "$work/caps" --caps-eval "$work/caps-eval" \
    --report "$work/cap-loo.json" --out "$work/m320" --version 3.2.0 \
    --second-look 0.15 --top-floor 0.35 --finder-from "$finder_from"

# 5. Each repository group left out (--variants: the rescue gate at 0.9 and 0.95 on two draws of
#    its views, the rows 3.3.0 was chosen on), then the rescue gate on every group's marked tops.
python -m recipe.probe_model4 --caps "$work/caps" --cache "$work/m4" --model "$work/m320" \
    --report "$work/m4.json" --variants | tee "$work/m4.md"
python -m recipe.train_rescue_gate --base "$work/m320" --cache "$work/m4" --out "$work/m340" --version 3.4.0

# 6. The photo calibration: one temperature on each counted top's p(open | top), fitted on the
#    answers to the real groups the cap never saw (statuses unchanged).
bottlecheck classify "$real_sources" "$real" --model "$work/m340" -f jsonl -o "$work/real-untempered.jsonl" -q
python -m recipe.fit_photo_calibration "$work/real-untempered.jsonl" --write "$work/m340" \
    --json "$work/calibration.json" | tee "$work/calibration.md"

# 7. The last look, chosen with each group left out on two draws of its views (at 0.95 with the
#    rescue gate's guard at 0.8 no group or kind falls on either), then fitted on every group's
#    marked tops against the checked not-tops (3.5.0); then it also reads the finder's candidates
#    down to 0.05 (--floor: no group or kind falls on either draw; 3.6.0, only the metadata changes).
#    Then every labelled real photo per repository group and per held-out kind with the model
#    itself (in-distribution: its gates saw every group).
python -m recipe.experiments.last_look --cache "$work/m4" --model "$work/m320" --floor 0.05 --floor-tops 2 \
    --report "$work/last-look.json" | tee "$work/last-look.md"
python -m recipe.train_last_look --base "$work/m340" --cache "$work/m4" --out "$work/m350" --version 3.5.0
python -m recipe.lower_last_look_floor --base "$work/m350" --out "$work/model" --version "$version"
bottlecheck classify "$real_sources" "$real" --model "$work/model" -f jsonl -o "$work/real.jsonl" -q
python -m recipe.kinds_table "$work/real.jsonl" --json "$work/kinds.json" | tee "$work/kinds.md"
#    Where those answers come from: on a marked top, on a marked not-top, or on no mark (the card's
#    "Known limits").
python -m recipe.boxes_table "$work/real.jsonl" --json "$work/boxes.json" | tee "$work/boxes.md"

# 8. The tables into the model's metadata (bottlecheck info and the model card show them).
python -m recipe.record_tables "$work/model" --left-out "$work/m4.json" --as-shipped "$work/kinds.json" \
    --last-look "$work/last-look.json"
echo "model $version in $work/model"
