"""Chunk execution under policy latency: success, stalls and seams of the executor vs the old drop-and-hold.

Runs ``action-images eval``'s direct path (``eval.closed_loop.run_episode``: the robot's
ChunkExecutor + safety envelope on simulated time) on unseen seeds with a simulated policy latency:
a chunk predicted from the frames of time t reaches the executor at t + latency while the arm keeps
executing, exactly as a slow policy on the real-time cell, but reproducible on a loaded machine.

Executor settings compared (each is an ``ExecutionConfig``; the first is the model's default):

* ``new``: steps due at their absolute times (late steps skipped), blending over 0.2 s, the next
  chunk asked for with half of the current one left or as early as the policy's latency (whichever
  is earlier), whole chunks executed, a chunk that ran out held at its last pose;
* ``new, no blend``: the same with ``blend_s: 0`` (seams without blending);
* ``new, no state forecast``: the same, but a late policy is given the measured pose, not where
  the arm will be when its answer arrives;
* ``drop-and-hold``: the behaviour before: chunks re-based to their arrival, the first half (2 of 4
  keyframes) executed, no blending, chunks from frames older than 1 s dropped, the next chunk asked
  for as soon as one arrives (one at a time). Before, the policy ran at most at 2 Hz, one call at a
  time: for a latency of 0.5 s and more this is that schedule exactly, below it the baseline asks
  more often than it did (in its favour); at latency 0 it would ask every tick, so it is not run there.

Seams: per command, the position step from the previous command and the change of that step (a
jump in commanded velocity: a stop-and-go shows there even when the step itself is small), split into
the first command after a chunk switch ("boundary") and the others ("inside"); max and p99.

    python bench/bench_chunk_execution.py --episodes 20 --latencies 0 0.3 1.0
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

CONFIGS = {
    "new": {},
    "new, no blend": {"blend_s": 0.0},
    "new, no state forecast": {"forecast_state": False},
    "drop-and-hold": {"align": "arrival", "blend_s": 0.0, "execute_fraction": 0.5, "request_fraction": 1.0,
                      "max_plan_age_s": 1.0, "latency_aware": False, "forecast_state": False},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/tiny"))
    ap.add_argument("--task", default="reach_target")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed-offset", type=int, default=100_000)
    ap.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.3, 1.0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from action_images_ros.config import execution_config_for
    from action_images_ros.control.chunk_execution import ChunkExecutor
    from action_images_ros.control.safety import SafetyEnvelope, load_safety_config
    from action_images_ros.eval.closed_loop import ClosedLoopConfig, run_episode, summarize
    from action_images_ros.model_io import load_policy
    from action_images_ros.policy import PolicyRunner
    from action_images_ros.sim import make_env

    torch.set_num_threads(args.threads)
    repo = Path(__file__).resolve().parents[1]
    safety = load_safety_config(repo / "config" / "safety.yaml")
    pipe, _ = load_policy(args.model)
    env = make_env(args.task, image_size=128)
    rows = []
    t_start = time.perf_counter()
    try:
        for latency in args.latencies:
            for name in args.configs:
                if latency == 0.0 and CONFIGS[name].get("request_fraction") == 1.0:
                    continue  # a request every control tick: not what it did, and 10x the policy calls
                execution = execution_config_for(args.model, CONFIGS[name], safety.min_confidence)
                runner = PolicyRunner(pipe, env.cameras, execution=execution)  # as eval: draws judged by its cut rule
                outcomes = []
                for i in range(args.episodes):
                    executor = ChunkExecutor(execution, SafetyEnvelope(safety))
                    outcomes.append(run_episode(env, runner, executor, args.seed_offset + i,
                                                ClosedLoopConfig(latency_s=latency, record_commands=True)))
                s = summarize(args.task, outcomes, "direct")
                steps = {"inside": [], "boundary": []}
                jumps = {"inside": [], "boundary": []}
                for o in outcomes:
                    p = np.asarray([c[1][:3] for c in o.commands]).reshape(-1, 3)
                    switched = [c[2] for c in o.commands]
                    v = 1000 * np.diff(p, axis=0)  # mm per command
                    for k in range(1, len(p)):
                        where = "boundary" if switched[k] else "inside"
                        steps[where].append(float(np.linalg.norm(v[k - 1])))
                        if k >= 2:
                            jumps[where].append(float(np.linalg.norm(v[k - 1] - v[k - 2])))
                rows.append((latency, name, s, {k: np.asarray(x) for k, x in steps.items()},
                             {k: np.asarray(x) for k, x in jumps.items()}))
                print(f"  latency {latency:.1f} s, {name}: {s['successes']}/{s['episodes']}", flush=True)
    finally:
        env.close()

    print(f"\n{args.task}, seeds {args.seed_offset}..{args.seed_offset + args.episodes - 1}, simulated policy "
          f"latency, safety config/safety.yaml ({time.perf_counter() - t_start:.0f} s)\n")
    print("| latency | executor | success | stalls | stall time | refused | mean steps |")
    print("|---|---|---|---|---|---|---|")
    for latency, name, s, _, _ in rows:
        print(f"| {latency:.1f} s | {name} | {s['successes']}/{s['episodes']} = {100 * s['success_rate']:.0f} % | "
              f"{s['stalls']} | {s['stall_time_s']:.1f} s | {s['refused']} | {s['mean_steps']:.1f} |")
    print("\nSeams (mm, max / p99): the step between consecutive commands, and the change of that step\n")
    print("| latency | executor | step inside a chunk | step at a boundary | step change inside | "
          "step change at a boundary |")
    print("|---|---|---|---|---|---|")

    def stat(x: np.ndarray) -> str:
        return f"{x.max():.1f} / {np.percentile(x, 99):.1f}" if x.size else "-"

    for latency, name, _, steps, jumps in rows:
        print(f"| {latency:.1f} s | {name} | {stat(steps['inside'])} | {stat(steps['boundary'])} | "
              f"{stat(jumps['inside'])} | {stat(jumps['boundary'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
