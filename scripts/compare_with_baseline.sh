#!/bin/bash
# Issue 17's comparison in one run: a model against a baseline on the same unseen seeds, direct path (the robot's
# executor and config/safety.yaml on simulated time), then the graph path, the policy call and held-out clips.
#   scripts/compare_with_baseline.sh [MODEL] [BASELINE] [OUT]   (from the repository root, after `make demo`)
# Each model runs under its folder's runtime (policy_config.runtime), as the robot runs it. About 40 min on 2 cores.
set -u
A=${1:-models/fourtask}
H=${2:-models/head_fourtask}
R=${3:-runs/compare}
mkdir -p "$R"
E=".venv/bin/action-images eval --no-videos"
TASKS="place_cube stack_cubes pick_cube reach_target"
PYTHONPATH=src .venv/bin/python bench/bench_model.py --model "$A" --steps 1 --threads 2 --repeats 40 \
    --baseline models/multitask --baseline-steps 4 > "$R/bench_model.txt" 2>&1
PYTHONPATH=src .venv/bin/python bench/bench_call_breakdown.py --model "$A" > "$R/bench_breakdown.txt" 2>&1
ev() { # name model episodes first-seed condition
  for K in $TASKS; do
    $E --episodes "$3" --seed-offset "$4" --condition "$5" --model "$2" --task $K --out "$R/$1_$K" > "$R/$1_$K.log" 2>&1
  done
}
ev aiI "$A" 50 400000 in_domain
ev headI "$H" 50 400000 in_domain
for C in viewpoint_large viewpoint_small in_domain; do
  ev "ai_$C" "$A" 30 300000 $C
  ev "head_$C" "$H" 30 300000 $C
done
$E --graph --episodes 20 --seed-offset 300000 --model "$A" --task place_cube --out "$R/graph_place" \
    > "$R/graph_place.log" 2>&1
.venv/bin/action-images evaluate-video --model "$A" --per-task --clips 8 --steps 1 --threads 2 \
    --data data/reach_target data/pick_cube data/place_cube data/stack_cubes > "$R/evalvideo.txt" 2>&1
grep -h -E "\[(direct|graph)\]" "$R"/*.log
