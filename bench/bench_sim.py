"""Simulated cell: control speed with 3 x 128^2 renders, and scripted-expert success rates.

Run: MUJOCO_GL=egl PYTHONPATH=src python bench/bench_sim.py [--seeds 100] [--tasks pick_cube ...]
"""

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from action_images_ros.sim import TASK_NAMES, make_env  # noqa: E402
from action_images_ros.sim.rollout import run_expert_episode  # noqa: E402


def step_rate(task: str, size: int, depth: bool, episodes: int) -> tuple[float, float]:
    """Median control steps/s (expert episodes, rendering included) and median render time (s)."""
    env = make_env(task, image_size=size, render_depth=depth)
    times, render_times = [], []
    try:
        for seed in range(episodes):
            obs = env.reset(seed=seed)
            expert = env.make_expert()
            while not expert.done:
                action = expert.act(obs)
                t0 = time.perf_counter()
                obs, _ = env.step(action)
                times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                env._renderer.render(env.data, depth=depth)  # the same renders once more, timed alone
                render_times.append(time.perf_counter() - t0)
    finally:
        env.close()
    return 1.0 / float(np.median(times)), float(np.median(render_times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=100, help="expert episodes per task for the success rates")
    ap.add_argument("--tasks", nargs="+", default=list(TASK_NAMES), choices=TASK_NAMES)
    ap.add_argument("--speed-episodes", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()

    if not args.skip_speed:
        print("control speed (median over expert steps; 1 step = 0.1 s sim, IK + 50 physics steps + renders):")
        for depth in (False, True):
            rate, render_s = step_rate("pick_cube", 128, depth, args.speed_episodes)
            label = "3 x 128^2 RGB" + (" + depth" if depth else "")
            print(f"  {label:24s} {rate:6.1f} steps/s  (the 3 renders alone: {1000 * render_s:.1f} ms)")

    print(f"scripted expert success over {args.seeds} seeds (seeds 0..{args.seeds - 1}):")
    for task in args.tasks:
        env = make_env(task, image_size=32, render_depth=False)  # success does not depend on image size
        try:
            t0 = time.perf_counter()
            eps = [run_expert_episode(env, s, keep_observations=False) for s in range(args.seeds)]
            dt = time.perf_counter() - t0
        finally:
            env.close()
        wins = np.array([e.success for e in eps])
        lengths = np.array([e.num_steps for e in eps])
        failed = [e.seed for e in eps if not e.success]
        print(f"  {task:14s} success {100 * wins.mean():5.1f} %  steps median {np.median(lengths):.0f} "
              f"(min {lengths.min()}, max {lengths.max()})  clamped steps {sum(e.clamped_steps for e in eps)}  "
              f"[{dt:.0f} s]" + (f"  failed seeds: {failed[:10]}" if failed else ""))


if __name__ == "__main__":
    main()
