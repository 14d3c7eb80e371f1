#!/bin/bash
# `make demo` as a new user runs it: a fresh clone of this repository, 5 runs (the first builds the venv), then 2
# with both cores kept busy by two busy loops.   scripts/demo_trials.sh [OUT]   (from the repository root)
set -u
R=$(realpath -m "${1:-runs/demo_trials}")
mkdir -p "$R"
C=$(mktemp -d)/clone
git clone -q "$(pwd)" "$C" && cd "$C" && git log --oneline -1 > "$R/commit.txt"
for i in 1 2 3 4 5; do /usr/bin/time -f "%e s" make demo > "$R/clean$i.log" 2>&1; echo "rc=$?" >> "$R/clean$i.log"; done
python3 -c "while True: pass" & A=$!
python3 -c "while True: pass" & B=$!
trap 'kill $A $B' EXIT  # the busy loops end with the script, also when it is interrupted
for i in 1 2; do /usr/bin/time -f "%e s" make demo > "$R/busy$i.log" 2>&1; echo "rc=$?" >> "$R/busy$i.log"; done
grep -H -E "SUCCESS|FAIL|rc=| s$" "$R"/*.log
