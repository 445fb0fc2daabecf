#!/usr/bin/env bash
# Model 1's recipe (one stage on the whole photo, replaced by model 2; kept for its history), end to end. Every step is seeded; on a 2-core CPU the
# renders take about 1 s of wall time an image with two shards, training about 30 minutes.
#
#   recipe/model1/recipe.sh WORK_DIR [IMAGES_PER_SHARD]
#
# Needs: apt-get install blender; pip install -e '.[train,test]'; ../shared/data/real.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:?usage: recipe/model1/recipe.sh WORK_DIR [IMAGES_PER_SHARD]}
per_shard=${2:-1000}
real=${REAL_DATA:-../shared/data/real}
mkdir -p "$work"

# 1. Background plates (scikit-image sample photos and procedural plates; no bottles).
python recipe/render/make_backgrounds.py --out "$work/backgrounds" --count 240 --seed 7

# 2. Renders: two shards, one thread each (seed 2; shard starts 0 and 3000).
for start in 0 3000; do
    blender -b -t 1 -P recipe/render/render_bottles.py -- --out "$work/renders" \
        --backgrounds "$work/backgrounds" --start "$start" --count "$per_shard" --seed 2 >"$work/render-$start.log" 2>&1 &
done
wait

# 3. Splits: every 10th image index is test; a fill-level-against-label test subset.
python -m recipe.model1.split_renders --out "$work/data" --source "$work/renders"

# 4. Stage 1: renders only, from ImageNet (one warm-up epoch for the new head, then fine-tuning).
bottlecheck train "$work/data/train" --out "$work/stage1" --base imagenet --warmup-epochs 1 --epochs 10 \
    --lr 1e-4 --trainable-from blocks_5 --patience 3 --seed 0

# 5. Stage 2: renders and the real photos together, from stage 1.
bottlecheck train "$work/data/train" "$real" --out "$work/stage2" --base "$work/stage1" --epochs 3 \
    --lr 5e-5 --trainable-from blocks_5 --patience 2 --seed 0

# 6. Evaluation: rendered test split, fill level against the label, real photos.
for model in stage1 stage2; do
    bottlecheck evaluate "$work/data/test" --model "$work/$model" -f json -q >"$work/$model-test.json"
    bottlecheck evaluate "$work/data/test-fill-against-label" --model "$work/$model" -f json -q >"$work/$model-fill.json"
    bottlecheck evaluate "$real" --model "$work/$model" -f json -q --report "$work/$model-real.html" >"$work/$model-real.json"
done
echo "models in $work/stage1 and $work/stage2"
