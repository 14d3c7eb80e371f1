#!/bin/bash
# What video co-training does to the actions (issue 17), one run: stage 1 of models/fourtask's recipe
# (config/model_fourtask_short.yaml) against the same stage with no video to learn
# (config/model_fourtask_short_actions_only.yaml), from scratch, the same data and time budget, then each
# model's actions on held-out clips and closed loop on unseen seeds (the robot's executor, direct path).
#   scripts/ablate_video.sh [MINUTES] [OUT]   (from the repository root, after `make demo`; ~2 x MINUTES + 15 min)
set -u
M=${1:-25}
R=${2:-runs/ablate_video}
D="data/reach_target data/pick_cube data/place_cube data/stack_cubes"
STEPS=4
mkdir -p "$R"
for arm in video:config/model_fourtask_short.yaml actions_only:config/model_fourtask_short_actions_only.yaml; do
  name=${arm%%:*}; cfg=${arm#*:}
  .venv/bin/action-images train --config "$cfg" --data $D --out "$R/$name" --threads 2 \
      --time-budget $((M * 60)) > "$R/train_$name.log" 2>&1 || { echo "training $name failed"; exit 1; }
done
for name in video actions_only; do
  .venv/bin/action-images evaluate-video --model "$R/$name/model" --per-task --clips 8 --steps $STEPS --threads 2 \
      --data $D > "$R/evalvideo_$name.txt" 2>&1
  for K in reach_target pick_cube place_cube stack_cubes; do
    .venv/bin/action-images eval --no-videos --episodes 20 --seed-offset 400000 --steps $STEPS --model "$R/$name/model" \
        --task $K --out "$R/eval_${name}_$K" > "$R/eval_${name}_$K.log" 2>&1
  done
done
grep -h -E "\[direct\]" "$R"/eval_*.log
