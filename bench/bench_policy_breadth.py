"""Policy breadth: closed-loop success of several models over tasks, robustness conditions and
sampling steps, side by side, with the failure modes of every run.

Each (model, task, condition, steps) cell is one ``action-images eval`` run (direct path: the
robot's chunk executor and safety envelope on simulated time, so the figures do not depend on the
machine's load) with its own ``results.json``; cells already on disk with the same seeds are not run
again, so the matrix can be filled in several sittings. ``--workers`` runs that many evals at once
(one torch thread each). Then it prints the tables:

    python bench/bench_policy_breadth.py --models models/multitask models/action_head \\
        --conditions in_domain viewpoint_small viewpoint_large lighting table_colour calibration_error \\
        --episodes 10 --workers 2
    python bench/bench_policy_breadth.py --models models/multitask models/action_head --steps 1 2 4 6 \\
        --episodes 10 --workers 2
    python bench/bench_policy_breadth.py ... --report-only      # tables from what is on disk

Policy-call medians in the tables are measured under whatever else ran beside the evals; time the
policy alone with bench/bench_model.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TASKS = ["reach_target", "pick_cube", "place_cube", "stack_cubes"]
MODES = ("refused_by_safety", "low_confidence", "wrong_target", "missed_grasp", "dropped_object", "misplaced",
         "timeout")


def cell_dir(out: Path, model: str, condition: str, task: str, steps: int | None, episodes: int,
             seed_offset: int) -> Path:
    return (out / Path(model).name / condition
            / f"{task}_steps{steps if steps else 'default'}_seeds{seed_offset}+{episodes}")


def load_cell(path: Path, episodes: int, seed_offset: int) -> dict | None:
    f = path / "results.json"
    if not f.is_file():
        return None
    r = json.loads(f.read_text())
    if r.get("episodes") != episodes or r.get("seeds", [None])[0] != seed_offset:
        return None
    return r


def same_model(r: dict | None, model: str) -> dict | None:
    """``r`` if it was run with ``model`` (the folder, resolved), else None."""
    if r is None or Path(r.get("model", "")).resolve() != Path(model).resolve():
        return None
    return r


def eval_command(model: str, task: str, condition: str, steps: int | None, episodes: int, seed_offset: int,
                 out: Path) -> list[str]:
    condition, _, probe = condition.partition("+")
    cmd = [sys.executable, "-m", "action_images_ros.cli", "eval", "--model", model, "--task", task,
           "--condition", condition, "--probe", probe or "none", "--episodes", str(episodes),
           "--seed-offset", str(seed_offset), "--threads", "1", "--no-videos", "--out", str(out)]
    if steps:
        cmd += ["--steps", str(steps)]
    return cmd


def run_cells(cells: list[tuple], args) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    where = lambda c: cell_dir(args.out, *c, args.episodes, args.seed_offset)  # noqa: E731
    done = lambda c: same_model(load_cell(where(c), args.episodes, args.seed_offset), c[0])  # noqa: E731
    todo = [c for c in cells if done(c) is None]
    print(f"{len(cells) - len(todo)} of {len(cells)} runs on disk; running {len(todo)} with {args.workers} worker(s)",
          flush=True)
    running: list[tuple[subprocess.Popen, tuple, float]] = []
    failed = []
    while todo or running:
        while todo and len(running) < args.workers:
            c = todo.pop(0)
            d = where(c)
            d.mkdir(parents=True, exist_ok=True)
            with (d / "eval.log").open("w") as log:  # the child keeps its own handle
                p = subprocess.Popen(eval_command(c[0], c[2], c[1], c[3], args.episodes, args.seed_offset, d),
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((p, c, time.monotonic()))
        time.sleep(0.5)
        for item in list(running):
            p, c, t0 = item
            if p.poll() is None:
                continue
            running.remove(item)
            r = done(c)
            if p.returncode != 0 or r is None:
                failed.append(c)
                print(f"FAILED {c} (exit {p.returncode}); see {where(c) / 'eval.log'}", flush=True)
            else:
                print(f"{Path(c[0]).name:>12} {c[1]:>18} {c[2]:>13} steps {c[3] or 'default'}: "
                      f"{r['successes']}/{r['episodes']} in {time.monotonic() - t0:.0f} s", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} eval run(s) failed")


def _rate(r: dict | None) -> str:
    if r is None:
        return "–"
    return f"{r['successes']}/{r['episodes']} ({100 * r['success_rate']:.0f} %)"


def report(args) -> None:
    names = [Path(m).name for m in args.models]
    steps_list = args.steps or [None]
    s0 = steps_list[0]
    def get(m, cond, task, st):
        return same_model(load_cell(cell_dir(args.out, m, cond, task, st, args.episodes, args.seed_offset),
                                    args.episodes, args.seed_offset), m)
    print(f"\n## Success, {args.episodes} seeds from {args.seed_offset} per cell (steps: {s0 or 'model default'})\n")
    print("| task | condition | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for task in args.tasks:
        for cond in args.conditions:
            print(f"| {task} | {cond} | " + " | ".join(_rate(get(m, cond, task, s0)) for m in args.models) + " |")
    print("\n## Failure modes (the conditions above without a probe, summed per model and task)\n")
    print("| model | task | " + " | ".join(MODES) + " |")
    print("|---|---|" + "---|" * len(MODES))
    for m in args.models:
        for task in args.tasks:
            tot = {k: 0 for k in MODES}
            seen = False
            for cond in args.conditions:
                r = None if "+" in cond else get(m, cond, task, s0)
                if r and r.get("failure_modes"):
                    seen = True
                    for k in MODES:
                        tot[k] += r["failure_modes"].get(k, 0)
            if seen:
                print(f"| {Path(m).name} | {task} | " + " | ".join(str(tot[k]) for k in MODES) + " |")
    if len(steps_list) > 1:
        print(f"\n## Sampling steps ({args.conditions[0]}; success, policy-call median under the run's load)\n")
        print("| model | task | " + " | ".join(f"{s} steps" for s in steps_list) + " |")
        print("|---|---|" + "---|" * len(steps_list))
        for m in args.models:
            for task in args.tasks:
                cells = []
                for st in steps_list:
                    r = get(m, args.conditions[0], task, st)
                    lat = "" if r is None or r.get("policy_latency_median_ms") is None else \
                        f", {r['policy_latency_median_ms']:.0f} ms"
                    cells.append(_rate(r) + lat)
                print(f"| {Path(m).name} | {task} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="model folders")
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--conditions", nargs="+", default=["in_domain"],
                    help="see eval/conditions.py; CONDITION+PROBE adds a test-time probe (eval/probes.py), "
                         "e.g. in_domain+gripper_open")
    ap.add_argument("--steps", type=int, nargs="+", default=None, help="denoising steps (default: each model's)")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--seed-offset", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2, help="evals at once (one torch thread each)")
    ap.add_argument("--out", type=Path, default=Path("outputs/breadth"))
    ap.add_argument("--report-only", action="store_true", help="print the tables from the runs on disk")
    args = ap.parse_args()
    for m in args.models:
        if not (Path(m) / "model_index.json").is_file():
            ap.error(f"{m} is not a model folder (no model_index.json)")
    names = [Path(m).name for m in args.models]
    if len(set(names)) != len(names):
        ap.error(f"model folders need distinct names (results are kept per name): {names}")
    if not args.report_only:
        cells = [(m, cond, task, st) for cond in args.conditions for task in args.tasks for m in args.models
                 for st in (args.steps or [None])]
        run_cells(cells, args)
    report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
